//! The per-step host data of one training step (besides the state).

/// The per-step data.
#[derive(Clone, Debug)]
pub struct StepInputs<'a> {
    /// view1, view2, mix1, mix2, each B·3·H·W.
    pub images: [&'a [f32]; 4],
    /// target_src, target_mix, target_mix2, each B·N.
    pub targets: [&'a [f32]; 3],
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// Loss temperature τ.
    pub temperature: f32,
    /// EMA momentum μ (ignored without a momentum encoder).
    pub momentum: f32,
    /// Drop-path scales per base pass, each 2·depth·(rows of that pass) (empty when drop
    /// path is off).
    pub drop_path: Vec<&'a [f32]>,
    /// Multi-crop: the local crops and their PatchMix, each n·B·3·l·l (crop-major), or
    /// `None` without local crops.
    pub local: Option<[&'a [f32]; 2]>,
}
