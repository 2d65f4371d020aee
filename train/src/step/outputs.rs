//! What one training step returns to the host: its loss terms.

/// The step's loss terms.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    /// CE(q1, k2, I).
    pub src: f32,
    /// CE(q_m2, sg(k1), T_mix).
    pub mix: f32,
    /// CE(q_m2, k_m1, T_mix2).
    pub mix2: f32,
    /// Multi-crop: (1/n)·Σ_j [CE(q_lj, sg(k1), I) + CE(q_lj, sg(k2), I)] (0 without local
    /// crops).
    #[serde(default)]
    pub multi: f32,
    /// Multi-crop: (1/n)·Σ_j [CE(q_mlj, sg(k1), T_mix) + CE(q_mlj, sg(k2), T_mix)] (0 without
    /// local crops).
    #[serde(default)]
    pub multi_mix: f32,
    /// src + mix/2 + mix2/2 + multi + multi_mix.
    pub total: f32,
    /// fp16: the gradients overflowed at this loss scale, so AdamW was not applied (the
    /// scale is halved for the next step).
    #[serde(default)]
    pub skipped: bool,
}
