//! The architecture and frame of one PatchMix training step.

use super::precision::Precision;
use patchmix_export::vit::{VitConfig, VitConfigError};

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
    /// A [`StepConfigError`] naming the parameter.
    pub fn validate(&self) -> Result<(), StepConfigError> {
        self.vit.validate()?;
        if self.batch < 2 {
            return Err(StepConfigError::BatchTooSmall { batch: self.batch });
        }
        if self.mix == 0 || self.mix > self.vit.tokens() {
            return Err(StepConfigError::MixOutOfRange {
                mix: self.mix,
                tokens: self.vit.tokens(),
            });
        }
        if self.hidden == 0 || self.out == 0 {
            return Err(StepConfigError::ZeroHeadWidth);
        }
        if let Some(l) = &self.local {
            let patch = self.vit.patch;
            if l.count == 0 {
                return Err(StepConfigError::NoLocalCrops);
            }
            if l.img < patch || l.img % patch != 0 {
                return Err(StepConfigError::LocalCropSize { img: l.img, patch });
            }
            if self.mix > l.tokens(patch) {
                return Err(StepConfigError::MixExceedsLocalTokens {
                    mix: self.mix,
                    tokens: l.tokens(patch),
                    img: l.img,
                });
            }
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(StepConfigError::DropPath(self.drop_path));
        }
        Ok(())
    }
}

/// A [`StepConfig`] whose sizes do not fit together ([`StepConfig::validate`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StepConfigError {
    /// The encoder configuration is unusable.
    #[error(transparent)]
    Vit(#[from] VitConfigError),
    /// Fewer than 2 images per step.
    #[error("batch {batch} is too small: BatchNorm in training mode needs at least 2")]
    BatchTooSmall {
        /// Images per step.
        batch: usize,
    },
    /// The PatchMix group count is 0 or above the token count.
    #[error("mix m = {mix} must be in 1..={tokens} (the token count)")]
    MixOutOfRange {
        /// PatchMix groups m.
        mix: usize,
        /// Patch tokens of a global view.
        tokens: usize,
    },
    /// The projector/predictor hidden or output width is 0.
    #[error("hidden and out widths must be > 0")]
    ZeroHeadWidth,
    /// Multi-crop is on with a local crop count of 0.
    #[error("local crops: count must be ≥ 1 (or turn multi-crop off)")]
    NoLocalCrops,
    /// The local crop side is not a positive multiple of the patch size.
    #[error("local crop size {img} must be a positive multiple of the patch size {patch}")]
    LocalCropSize {
        /// Local crop side in pixels.
        img: usize,
        /// Patch side in pixels.
        patch: usize,
    },
    /// The PatchMix group count exceeds the tokens of a local crop.
    #[error("mix m = {mix} exceeds the {tokens} tokens of a {img}-pixel local crop")]
    MixExceedsLocalTokens {
        /// PatchMix groups m.
        mix: usize,
        /// Patch tokens of a local crop.
        tokens: usize,
        /// Local crop side in pixels.
        img: usize,
    },
    /// The drop-path rate is outside `[0, 1)`.
    #[error("drop path {0} must be in [0, 1)")]
    DropPath(f32),
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
        let err = |c: StepConfig| c.validate().unwrap_err().to_string();
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
