//! The architecture and frame of one PatchMix training step.

use super::precision::Precision;
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
    /// Multi-crop local crops (the ImageNet recipe), or `None`.
    #[serde(default)]
    pub local: Option<LocalCrops>,
    /// The precision of the matrix products; fp16 adds dynamic loss scaling (the
    /// `loss_scale` input and the `grads_finite` output).
    #[serde(default)]
    pub precision: Precision,
}

/// The multi-crop local crops: `count` crops of `img`×`img` pixels per image. They go through
/// the base encoder (with its position embedding bicubically resized to the local grid, as
/// the original's `interpolate_pos_encoding`), the projector and the predictor, as two extra
/// passes of n·B rows (the crops, then their PatchMix), and add the original's two loss terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalCrops {
    /// Crops per image n.
    pub count: usize,
    /// Crop side in pixels (a multiple of the patch size).
    pub img: usize,
}

impl LocalCrops {
    /// Tokens per local crop (without the CLS token).
    pub fn tokens(&self, patch: usize) -> usize {
        (self.img / patch) * (self.img / patch)
    }
}

impl StepConfig {
    /// The smallest useful step (img 8, patch 2, D 16, depth 2, heads 2, h 32, o 16, B 8,
    /// m 2, no local crops): for tests and smoke benchmarks (`patchmix bench step --config
    /// tiny`).
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::step::{Frame, StepConfig};
    /// let c = StepConfig::tiny(Frame::Momentum, 0.1);
    /// assert!(c.validate().is_ok());
    /// assert_eq!(c.vit.tokens(), 16);
    /// ```
    pub fn tiny(frame: Frame, drop_path: f32) -> StepConfig {
        StepConfig {
            vit: VitConfig {
                img: 8,
                patch: 2,
                dim: 16,
                depth: 2,
                heads: 2,
            },
            hidden: 32,
            out: 16,
            batch: 8,
            mix: 2,
            frame,
            drop_path,
            local: None,
            precision: Precision::Fp32,
        }
    }

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
    /// encoder; v1 and mix2 with one; then `local` and `local_mix` with local crops.
    pub fn base_passes(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = match self.frame {
            Frame::NoMomentum => vec!["view1", "view2", "mix1", "mix2"],
            Frame::Momentum => vec!["view1", "mix2"],
        };
        if self.local.is_some() {
            p.extend(["local", "local_mix"]);
        }
        p
    }

    /// Rows (images) of a pass: n·B for the local passes, B otherwise.
    pub fn pass_rows(&self, pass: &str) -> usize {
        match (&self.local, pass) {
            (Some(l), "local" | "local_mix") => l.count * self.batch,
            _ => self.batch,
        }
    }

    /// Whether the step scales its loss (fp16): it then takes `loss_scale` and outputs
    /// `grads_finite`.
    pub fn scales_loss(&self) -> bool {
        self.precision == Precision::Fp16
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
        if let Some(l) = &self.local {
            let p = self.vit.patch;
            if l.count == 0 {
                return Err("local crops: count must be ≥ 1 (or turn multi-crop off)".into());
            }
            if l.img < p || l.img % p != 0 {
                return Err(format!(
                    "local crop size {} must be a positive multiple of the patch size {p}",
                    l.img
                ));
            }
            if self.mix > l.tokens(p) {
                return Err(format!(
                    "mix m = {} exceeds the {} tokens of a {}-pixel local crop",
                    self.mix,
                    l.tokens(p),
                    l.img
                ));
            }
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(format!("drop path {} must be in [0, 1)", self.drop_path));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_local(count: usize, img: usize) -> StepConfig {
        StepConfig {
            local: Some(LocalCrops { count, img }),
            ..StepConfig::tiny(Frame::Momentum, 0.0)
        }
    }

    #[test]
    fn local_crop_settings_are_checked_with_messages_naming_them() {
        assert!(with_local(2, 4).validate().is_ok());
        let err = |c: StepConfig| c.validate().unwrap_err();
        assert!(err(with_local(0, 4)).contains("count must be ≥ 1"));
        assert!(err(with_local(2, 5)).contains("multiple of the patch size 2"));
        assert!(err(with_local(2, 0)).contains("multiple of the patch size 2"));
        assert!(err(with_local(2, 2)).contains("exceeds the 1 tokens"));
    }

    #[test]
    fn local_passes_have_n_times_the_rows() {
        let c = with_local(3, 4);
        assert_eq!(c.base_passes(), vec!["view1", "mix2", "local", "local_mix"]);
        assert_eq!(c.pass_rows("local"), 24);
        assert_eq!(c.pass_rows("local_mix"), 24);
        assert_eq!(c.pass_rows("view1"), 8);
    }
}
