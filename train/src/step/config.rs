//! The architecture and frame of one PatchMix training step.

use patchmix_export::vit::VitConfig;

/// Whether keys come from the base encoder (detached) or from an EMA momentum encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frame {
    /// k = head(enc(x)), q = pred(k) (the ViT-T CIFAR recipe).
    NoMomentum,
    /// q = pred(head(enc(x))), k = head_m(enc_m(x)) with an EMA momentum encoder.
    Momentum,
}

/// Everything that fixes the step graph's shapes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepConfig {
    /// The encoder.
    pub vit: VitConfig,
    /// Projector/predictor hidden width h.
    pub hidden: usize,
    /// Projector/predictor output width o.
    pub out: usize,
    /// Images per step B.
    pub batch: usize,
    /// PatchMix groups m.
    pub mix: usize,
    /// The key frame.
    pub frame: Frame,
    /// Maximum drop-path rate (linearly increasing over blocks); 0 disables drop path.
    pub drop_path: f32,
}

impl StepConfig {
    /// The per-block drop-path rates `rate·i/(depth−1)` (timm's `linspace(0, rate, depth)`).
    pub fn drop_path_rates(&self) -> Vec<f32> {
        let d = self.vit.depth;
        (0..d)
            .map(|i| {
                if d > 1 {
                    self.drop_path * i as f32 / (d - 1) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Base-encoder passes that take drop-path masks: v1, v2, mix1, mix2 without a momentum
    /// encoder; v1 and mix2 with one.
    pub fn base_passes(&self) -> &'static [&'static str] {
        match self.frame {
            Frame::NoMomentum => &["view1", "view2", "mix1", "mix2"],
            Frame::Momentum => &["view1", "mix2"],
        }
    }

    /// Whether drop-path mask inputs exist.
    pub fn has_drop_path(&self) -> bool {
        self.drop_path > 0.0
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// A message naming the parameter.
    pub fn validate(&self) -> Result<(), String> {
        self.vit.validate()?;
        if self.batch < 2 {
            return Err(format!(
                "batch {} is too small: BatchNorm in training mode needs at least 2",
                self.batch
            ));
        }
        if self.mix == 0 || self.mix > self.vit.tokens() {
            return Err(format!(
                "mix m = {} must be in 1..={} (the token count)",
                self.mix,
                self.vit.tokens()
            ));
        }
        if self.hidden == 0 || self.out == 0 {
            return Err("hidden and out widths must be > 0".into());
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(format!("drop path {} must be in [0, 1)", self.drop_path));
        }
        Ok(())
    }
}
