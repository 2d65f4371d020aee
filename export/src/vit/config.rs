//! ViT hyper-parameters, presets and the timm parameter list.

use std::fmt;
use std::str::FromStr;

use super::layout::timm_vit_shapes;

/// A ViT configuration or preset name that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VitConfigError {
    /// The patch size is 0 or does not divide the image size (or the image size is 0).
    #[error("patch size {patch} does not divide image size {img}")]
    PatchDoesNotDivideImage {
        /// Patch side in pixels.
        patch: usize,
        /// Image side in pixels.
        img: usize,
    },
    /// A width, depth or head count of 0, or a head count that does not divide the width.
    #[error("heads {heads} must divide dim {dim} (both > 0), depth {depth} > 0")]
    BadWidthDepthOrHeads {
        /// Attention heads.
        heads: usize,
        /// Embedding width.
        dim: usize,
        /// Number of blocks.
        depth: usize,
    },
    /// A preset name that is not one of the presets.
    #[error("unknown preset `{0}`: expected vit-tiny, vit-small or vit-base")]
    UnknownPreset(String),
}

/// Architecture of a timm-style VisionTransformer (pre-norm, qkv bias, CLS token, learned
/// position embedding, LayerNorm eps 1e-6, MLP ratio 4, exact GELU).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VitConfig {
    /// Input image side in pixels (square images).
    pub img: usize,
    /// Patch side in pixels; must divide `img`.
    pub patch: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
}

/// The architecture presets of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VitPreset {
    /// D 192, depth 12, heads 3.
    Tiny,
    /// D 384, depth 12, heads 12 (the PatchMix recipe's head count).
    Small,
    /// D 768, depth 12, heads 12.
    Base,
}

impl VitPreset {
    /// (dim, depth, heads).
    pub fn dims(self) -> (usize, usize, usize) {
        match self {
            VitPreset::Tiny => (192, 12, 3),
            VitPreset::Small => (384, 12, 12),
            VitPreset::Base => (768, 12, 12),
        }
    }

    /// The preset at a given image and patch size.
    ///
    /// # Errors
    /// As [`VitConfig::validate`].
    pub fn config(self, img: usize, patch: usize) -> Result<VitConfig, VitConfigError> {
        let c = self.with_overrides(img, patch, None, None, None);
        c.validate()?;
        Ok(c)
    }

    /// The preset at a given image and patch size with optional width, depth and head-count
    /// overrides (not validated; see [`VitConfig::validate`]).
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::vit::VitPreset;
    /// let c = VitPreset::Tiny.with_overrides(28, 4, Some(64), Some(4), None);
    /// assert_eq!((c.dim, c.depth, c.heads), (64, 4, 3));
    /// ```
    pub fn with_overrides(
        self,
        img: usize,
        patch: usize,
        dim: Option<usize>,
        depth: Option<usize>,
        heads: Option<usize>,
    ) -> VitConfig {
        let (d, l, h) = self.dims();
        VitConfig {
            img,
            patch,
            dim: dim.unwrap_or(d),
            depth: depth.unwrap_or(l),
            heads: heads.unwrap_or(h),
        }
    }
}

impl FromStr for VitPreset {
    type Err = VitConfigError;
    fn from_str(s: &str) -> Result<Self, VitConfigError> {
        match s {
            "vit-tiny" | "tiny" => Ok(VitPreset::Tiny),
            "vit-small" | "small" => Ok(VitPreset::Small),
            "vit-base" | "base" => Ok(VitPreset::Base),
            other => Err(VitConfigError::UnknownPreset(other.to_string())),
        }
    }
}

impl fmt::Display for VitPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VitPreset::Tiny => "vit-tiny",
            VitPreset::Small => "vit-small",
            VitPreset::Base => "vit-base",
        })
    }
}

impl VitConfig {
    /// Checks that the sizes fit together.
    ///
    /// # Errors
    /// [`VitConfigError::PatchDoesNotDivideImage`] or
    /// [`VitConfigError::BadWidthDepthOrHeads`], naming the parameter that does not fit.
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::vit::VitPreset;
    /// let bad = VitPreset::Tiny.with_overrides(30, 4, None, None, None);
    /// assert_eq!(bad.validate().unwrap_err().to_string(), "patch size 4 does not divide image size 30");
    /// ```
    pub fn validate(&self) -> Result<(), VitConfigError> {
        if self.patch == 0 || self.img == 0 || !self.img.is_multiple_of(self.patch) {
            return Err(VitConfigError::PatchDoesNotDivideImage {
                patch: self.patch,
                img: self.img,
            });
        }
        if self.dim == 0
            || self.depth == 0
            || self.heads == 0
            || !self.dim.is_multiple_of(self.heads)
        {
            return Err(VitConfigError::BadWidthDepthOrHeads {
                heads: self.heads,
                dim: self.dim,
                depth: self.depth,
            });
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img / self.patch
    }

    /// Patch tokens T = grid².
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Every parameter as (timm name, shape), in timm's state_dict order: [`timm_vit_shapes`]
    /// at this configuration's width, depth, patch size and token count.
    pub fn param_specs(&self) -> Vec<(String, Vec<usize>)> {
        timm_vit_shapes(self.dim, self.depth, self.patch, self.tokens())
    }

    /// The number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.param_specs()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_parameter_that_does_not_fit() {
        let cfg = |img, patch, dim, depth, heads| VitConfig {
            img,
            patch,
            dim,
            depth,
            heads,
        };
        assert_eq!(
            cfg(30, 4, 8, 1, 2).validate().unwrap_err().to_string(),
            "patch size 4 does not divide image size 30"
        );
        assert_eq!(
            cfg(32, 0, 8, 1, 2).validate().unwrap_err().to_string(),
            "patch size 0 does not divide image size 32"
        );
        assert_eq!(
            cfg(32, 4, 8, 1, 3).validate().unwrap_err().to_string(),
            "heads 3 must divide dim 8 (both > 0), depth 1 > 0"
        );
        assert_eq!(
            cfg(32, 4, 8, 0, 2).validate(),
            Err(VitConfigError::BadWidthDepthOrHeads {
                heads: 2,
                dim: 8,
                depth: 0
            })
        );
        assert_eq!(
            "vit-huge".parse::<VitPreset>().unwrap_err().to_string(),
            "unknown preset `vit-huge`: expected vit-tiny, vit-small or vit-base"
        );
        assert_eq!("small".parse::<VitPreset>(), Ok(VitPreset::Small));
        let as_string = VitPreset::Tiny.config(32, 5).unwrap_err().to_string();
        assert_eq!(as_string, "patch size 5 does not divide image size 32");
    }
}
