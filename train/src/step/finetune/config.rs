//! The architecture and optimizer shape of one fine-tuning step.

use super::super::precision::Precision;
use patchmix_export::vit::{VitConfig, VitConfigError};

/// Everything that fixes the fine-tune step graph: the encoder, the classifier head, the
/// batch, drop path, the layer-wise lr decay and the precision.
///
/// # Examples
/// ```
/// use patchmix_train::step::FinetuneStepConfig;
/// let c = FinetuneStepConfig::tiny(10);
/// assert!(c.validate().is_ok());
/// // timm's layer decay: the stem gets decay^(depth+1), the head 1.
/// assert_eq!(c.layer_scale(0), 0.75f32.powi(3));
/// assert_eq!(c.layer_scale(3), 1.0);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneStepConfig {
    /// The encoder.
    pub vit: VitConfig,
    /// Classes of the `Linear(D, classes)` head.
    pub classes: usize,
    /// Images per step B.
    pub batch: usize,
    /// Maximum drop-path rate (linearly increasing over blocks, timm's
    /// `linspace(0, rate, depth)`); 0 disables drop path.
    pub drop_path: f32,
    /// Layer-wise lr decay (timm's `param_groups_layer_decay`), in `(0, 1]`.
    pub layer_decay: f32,
    /// The precision of the matrix products; fp16 adds dynamic loss scaling.
    #[serde(default)]
    pub precision: Precision,
}

impl FinetuneStepConfig {
    /// The smallest useful step (img 8, patch 2, D 16, depth 2, heads 2, B 8, drop path 0.1,
    /// layer decay 0.75, f32) for tests and smoke benchmarks.
    pub fn tiny(classes: usize) -> FinetuneStepConfig {
        FinetuneStepConfig {
            vit: VitConfig {
                img: 8,
                patch: 2,
                dim: 16,
                depth: 2,
                heads: 2,
            },
            classes,
            batch: 8,
            drop_path: 0.1,
            layer_decay: 0.75,
            precision: Precision::Fp32,
        }
    }

    /// timm's layer count for layer decay: the stem, the blocks, then the head
    /// (`num_layers = depth + 1`; layer ids `0..=depth + 1`).
    pub fn num_layers(&self) -> usize {
        self.vit.depth + 1
    }

    /// The lr scale of layer id `layer`: `layer_decay^(num_layers − layer)`.
    pub fn layer_scale(&self, layer: usize) -> f32 {
        let exp = self.num_layers().saturating_sub(layer);
        (self.layer_decay as f64).powi(exp as i32) as f32
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

    /// Whether the step takes drop-path masks.
    pub fn has_drop_path(&self) -> bool {
        self.drop_path > 0.0
    }

    /// Whether the step scales its loss (fp16).
    pub fn scales_loss(&self) -> bool {
        self.precision == Precision::Fp16
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// A [`FinetuneStepConfigError`] naming the field.
    pub fn validate(&self) -> Result<(), FinetuneStepConfigError> {
        self.vit.validate()?;
        if self.classes < 2 {
            return Err(FinetuneStepConfigError::Classes(self.classes));
        }
        if self.batch == 0 {
            return Err(FinetuneStepConfigError::Batch);
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(FinetuneStepConfigError::DropPath(self.drop_path));
        }
        if !(self.layer_decay > 0.0 && self.layer_decay <= 1.0) {
            return Err(FinetuneStepConfigError::LayerDecay(self.layer_decay));
        }
        Ok(())
    }
}

/// A [`FinetuneStepConfig`] whose values do not fit ([`FinetuneStepConfig::validate`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FinetuneStepConfigError {
    /// The encoder configuration is unusable.
    #[error(transparent)]
    Vit(#[from] VitConfigError),
    /// Fewer than two classes.
    #[error("classes = {0}: a classifier needs at least 2")]
    Classes(usize),
    /// A batch of 0 images.
    #[error("batch must be ≥ 1")]
    Batch,
    /// The drop-path rate is outside `[0, 1)`.
    #[error("drop path {0} must be in [0, 1)")]
    DropPath(f32),
    /// The layer decay is outside `(0, 1]`.
    #[error("layer decay {0} must be in (0, 1]")]
    LayerDecay(f32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let err = |f: fn(&mut FinetuneStepConfig)| {
            let mut c = FinetuneStepConfig::tiny(10);
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(err(|c| c.classes = 1).contains("classes = 1"));
        assert!(err(|c| c.batch = 0).contains("batch"));
        assert!(err(|c| c.drop_path = 1.0).contains("drop path"));
        assert!(err(|c| c.layer_decay = 0.0).contains("layer decay"));
        assert!(err(|c| c.vit.heads = 3).contains("heads 3"));
    }

    #[test]
    fn drop_path_rates_are_timm_linspace() {
        let c = FinetuneStepConfig {
            vit: VitConfig {
                depth: 3,
                ..FinetuneStepConfig::tiny(10).vit
            },
            ..FinetuneStepConfig::tiny(10)
        };
        assert_eq!(c.drop_path_rates(), vec![0.0, 0.05, 0.1]);
    }
}
