//! The fine-tuning transforms of the original's `main_finetune.py` (`build_transform`), as
//! timm's `create_transform(is_training=True, …)` builds them:
//!
//! | data | training | evaluation |
//! |---|---|---|
//! | 32 px | `RandomCrop(32, padding=4)` → HFlip 0.5 → RandAugment → Normalize → RandomErasing | Normalize |
//! | larger | `RandomResizedCrop(size, (0.08, 1), (3/4, 4/3), bicubic)` → HFlip 0.5 → RandAugment → Normalize → RandomErasing | Resize(⌊256/224 · size⌋, bicubic) → CenterCrop(size) → Normalize |
//!
//! timm drops the colour jitter (0.4 in the recipe) whenever an auto-augment policy is set, so
//! with RandAugment on there is none; with it off, `ColorJitter(0.4, 0.4, 0.4)` runs after the
//! flip. Random erasing works on the normalised floats.
//!
//! Every random draw of a sample comes from one RNG; [`FinetuneTransform::train_sample`] seeds
//! it from `(seed, epoch, position)` as the pretraining loader does, so a sample's floats do
//! not depend on threads or batch size. Consumed by the fine-tuning data path (the batch then
//! goes through [`crate::augment::mixup`]); evaluation is
//! [`Preprocess`](patchmix_export::data::Preprocess), shared with kNN and the linear probe.

use image::{Rgb, RgbImage};
use patchmix_export::data::Preprocess;
use patchmix_export::data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, normalize_into};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::AugmentError;
use super::crop::random_resized_crop;
use super::erasing::RandomErasing;
use super::flip::hflip;
use super::jitter::ColorJitter;
use super::randaugment::{RandAugment, RandAugmentConfig};
use super::random::coin;
use crate::data::sample_rng;

/// The first (geometric) transform of training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FirstCrop {
    /// torchvision's `RandomCrop(size, padding)`: pad with black, then a uniform `size × size`
    /// window (the original's choice for 32-px data).
    PadCrop {
        /// Black border added on every side.
        padding: u32,
    },
    /// `RandomResizedCrop` with bicubic resampling.
    ResizedCrop {
        /// Area fraction range.
        scale: (f64, f64),
        /// Aspect-ratio range.
        ratio: (f64, f64),
    },
}

/// Settings of the fine-tuning transforms.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::finetune::{FinetuneConfig, FirstCrop};
///
/// assert_eq!(FinetuneConfig::recipe(32).first, FirstCrop::PadCrop { padding: 4 });
/// assert_eq!(FinetuneConfig::recipe(224).eval_resize(), 256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Side of the model input.
    pub size: u32,
    /// The first transform.
    pub first: FirstCrop,
    /// Probability of a horizontal flip.
    pub hflip: f64,
    /// RandAugment (the recipe's `rand-m9-mstd0.5-inc1`); `None` for none.
    pub rand_augment: Option<RandAugmentConfig>,
    /// Colour-jitter strength for brightness, contrast and saturation; used only when
    /// `rand_augment` is `None`, as timm does.
    pub color_jitter: f64,
    /// Random erasing after normalisation.
    pub erasing: RandomErasing,
    /// Normalisation means.
    pub mean: [f32; 3],
    /// Normalisation standard deviations.
    pub std: [f32; 3],
}

impl FinetuneConfig {
    /// The original recipe at `size`: 32 px and below pad-crop by 4, larger sizes
    /// random-resized-crop `(0.08, 1)`; flip 0.5, RandAugment `rand-m9-mstd0.5-inc1` (bicubic,
    /// ImageNet-mean fill), colour jitter 0.4 (inactive), erasing 0.25 pixel mode, ImageNet
    /// mean/std.
    pub fn recipe(size: u32) -> Self {
        let first = if size <= 32 {
            FirstCrop::PadCrop { padding: 4 }
        } else {
            FirstCrop::ResizedCrop {
                scale: (0.08, 1.0),
                ratio: (3.0 / 4.0, 4.0 / 3.0),
            }
        };
        Self {
            size,
            first,
            hflip: 0.5,
            rand_augment: Some(RandAugmentConfig::default()),
            color_jitter: 0.4,
            erasing: RandomErasing::default(),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The shorter side before the evaluation centre crop: `⌊256/224 · size⌋` above 32 px,
    /// `size` otherwise (the original does not resize 32-px data).
    pub fn eval_resize(&self) -> u32 {
        if self.size > 32 {
            (256.0 / 224.0 * f64::from(self.size)) as u32
        } else {
            self.size
        }
    }

    /// The evaluation preprocessing (resize, centre crop, normalise).
    pub fn eval(&self) -> Preprocess {
        Preprocess {
            resize: self.eval_resize(),
            crop: self.size,
            mean: self.mean,
            std: self.std,
        }
    }

    /// Floats of one transformed image: `3 · size²`.
    pub fn floats(&self) -> usize {
        3 * (self.size as usize).pow(2)
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`AugmentError::Config`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |m: String| Err(AugmentError::Config(format!("finetune.{m}")));
        if self.size == 0 || self.size > 4096 {
            return bad(format!("size = {} must be in 1..=4096", self.size));
        }
        match self.first {
            FirstCrop::PadCrop { padding } if padding > 1024 => {
                return bad(format!("padding = {padding} must be at most 1024"));
            }
            FirstCrop::ResizedCrop { scale, ratio } => {
                if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
                    return bad(format!("scale = {scale:?} must satisfy 0 < lo ≤ hi ≤ 1"));
                }
                if !(ratio.0 > 0.0 && ratio.0 <= ratio.1 && ratio.1.is_finite()) {
                    return bad(format!("ratio = {ratio:?} must satisfy 0 < lo ≤ hi"));
                }
            }
            FirstCrop::PadCrop { .. } => {}
        }
        if !(0.0..=1.0).contains(&self.hflip) {
            return bad(format!(
                "hflip = {} is not a probability in [0, 1]",
                self.hflip
            ));
        }
        if !(self.color_jitter.is_finite() && self.color_jitter >= 0.0) {
            return bad(format!("color_jitter = {} must be ≥ 0", self.color_jitter));
        }
        if let Some(ra) = &self.rand_augment {
            ra.validate()
                .map_err(|e| AugmentError::Config(format!("finetune.rand_augment: {e}")))?;
        }
        self.erasing
            .check()
            .map_err(|e| AugmentError::Config(format!("finetune.erasing: {e}")))?;
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return bad(format!(
                "mean {:?} / std {:?} must be finite with std non-zero",
                self.mean, self.std
            ));
        }
        Ok(())
    }
}

/// torchvision's `RandomCrop(size, padding)` on a PIL image: a black border of `padding`, then
/// the window at `top ∈ 0..=H+2p−size`, `left ∈ 0..=W+2p−size` (top drawn first).
///
/// # Errors
///
/// [`AugmentError::Config`] when the padded image is smaller than `size` (torchvision raises).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::finetune::pad_crop_at;
///
/// let img = image::RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]));
/// // Padding 1 and the window at (0, 0): the top row and left column are border.
/// let c = pad_crop_at(&img, 2, 1, 0, 0);
/// assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
/// assert_eq!(c.get_pixel(1, 1).0, [9, 9, 9]);
/// ```
pub fn pad_crop_at(img: &RgbImage, size: u32, padding: u32, top: u32, left: u32) -> RgbImage {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    RgbImage::from_fn(size, size, |x, y| {
        let sx = i64::from(x) + i64::from(left) - i64::from(padding);
        let sy = i64::from(y) + i64::from(top) - i64::from(padding);
        if (0..w).contains(&sx) && (0..h).contains(&sy) {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([0, 0, 0])
        }
    })
}

fn random_pad_crop<R: Rng + ?Sized>(
    rng: &mut R,
    img: &RgbImage,
    size: u32,
    padding: u32,
) -> Result<RgbImage, AugmentError> {
    let (pw, ph) = (img.width() + 2 * padding, img.height() + 2 * padding);
    if pw < size || ph < size {
        return Err(AugmentError::Config(format!(
            "a {}×{} image padded by {padding} is smaller than the {size}-px crop",
            img.width(),
            img.height()
        )));
    }
    let top = rng.random_range(0..=ph - size);
    let left = rng.random_range(0..=pw - size);
    Ok(pad_crop_at(img, size, padding, top, left))
}

/// The training and evaluation transforms of fine-tuning.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::finetune::{FinetuneConfig, FinetuneTransform};
///
/// let t = FinetuneTransform::new(FinetuneConfig::recipe(32))?;
/// let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 128]));
/// let mut a = vec![0.0; t.config().floats()];
/// let mut b = a.clone();
/// t.train_sample(&img, 7, 0, 3, &mut a)?;
/// t.train_sample(&img, 7, 0, 3, &mut b)?;
/// assert_eq!(a, b); // a function of (seed, epoch, position)
/// # Ok::<(), patchmix_train::augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FinetuneTransform {
    cfg: FinetuneConfig,
    rand_augment: Option<RandAugment>,
}

impl FinetuneTransform {
    /// Validates `cfg`.
    ///
    /// # Errors
    ///
    /// As [`FinetuneConfig::validate`].
    pub fn new(cfg: FinetuneConfig) -> Result<Self, AugmentError> {
        cfg.validate()?;
        let rand_augment = cfg
            .rand_augment
            .map(RandAugment::new)
            .transpose()
            .map_err(|e| AugmentError::Config(format!("finetune.rand_augment: {e}")))?;
        Ok(Self { cfg, rand_augment })
    }

    /// The settings.
    pub fn config(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// The 8-bit part of training: crop, flip, RandAugment (or colour jitter), in that order
    /// of draws.
    ///
    /// # Errors
    ///
    /// [`AugmentError::Config`] when a pad-crop does not fit the image.
    pub fn train_image<R: Rng + ?Sized>(
        &self,
        img: &RgbImage,
        rng: &mut R,
    ) -> Result<RgbImage, AugmentError> {
        let c = &self.cfg;
        let mut v = match c.first {
            FirstCrop::PadCrop { padding } => random_pad_crop(rng, img, c.size, padding)?,
            FirstCrop::ResizedCrop { scale, ratio } => {
                random_resized_crop(rng, img, c.size, scale, ratio)
            }
        };
        if coin(rng, c.hflip) {
            hflip(&mut v);
        }
        match &self.rand_augment {
            Some(ra) => v = ra.apply(&v, rng),
            None if c.color_jitter > 0.0 => {
                let j = ColorJitter {
                    brightness: c.color_jitter,
                    contrast: c.color_jitter,
                    saturation: c.color_jitter,
                    hue: 0.0,
                };
                j.sample(rng).apply(&mut v);
            }
            None => {}
        }
        Ok(v)
    }

    /// The whole training transform into `out` (`floats()` floats, CHW): [`Self::train_image`],
    /// normalisation, then random erasing, all drawing from `rng`.
    ///
    /// # Errors
    ///
    /// [`AugmentError::Config`] when a pad-crop does not fit or `out` has the wrong length.
    pub fn train_into<R: Rng + ?Sized>(
        &self,
        img: &RgbImage,
        rng: &mut R,
        out: &mut [f32],
    ) -> Result<(), AugmentError> {
        let v = self.train_image(img, rng)?;
        normalize_into(&v, self.cfg.mean, self.cfg.std, out)
            .map_err(|e| AugmentError::Config(e.to_string()))?;
        let s = self.cfg.size as usize;
        self.cfg.erasing.apply(rng, out, 3, s, s);
        Ok(())
    }

    /// [`Self::train_into`] with the RNG of sample `position` of `epoch`
    /// ([`sample_rng`](crate::data::sample_rng)`(seed, epoch, position)`).
    ///
    /// # Errors
    ///
    /// As [`Self::train_into`].
    pub fn train_sample(
        &self,
        img: &RgbImage,
        seed: u64,
        epoch: u64,
        position: usize,
        out: &mut [f32],
    ) -> Result<(), AugmentError> {
        self.train_into(img, &mut sample_rng(seed, epoch, position), out)
    }

    /// The evaluation transform into `out` (`floats()` floats): resize, centre crop, normalise.
    ///
    /// # Errors
    ///
    /// [`AugmentError::Config`] when `out` has the wrong length.
    pub fn eval_into(&self, img: &RgbImage, out: &mut [f32]) -> Result<(), AugmentError> {
        self.cfg
            .eval()
            .apply_into(img, out)
            .map_err(|e| AugmentError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::erasing::EraseMode;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn photo(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
        })
    }

    /// The recipe with every random op off but the first crop.
    fn plain(size: u32) -> FinetuneConfig {
        FinetuneConfig {
            hflip: 0.0,
            rand_augment: None,
            color_jitter: 0.0,
            erasing: RandomErasing {
                probability: 0.0,
                ..RandomErasing::default()
            },
            ..FinetuneConfig::recipe(size)
        }
    }

    #[test]
    fn pad_crop_by_hand() {
        let img = RgbImage::from_fn(3, 3, |x, y| Rgb([(10 * y + x) as u8, 0, 0]));
        // Padding 2, window 3 at (top 1, left 3): rows −1..2, cols 1..4 of the image.
        let c = pad_crop_at(&img, 3, 2, 1, 3);
        let red: Vec<u8> = c.pixels().map(|p| p.0[0]).collect();
        assert_eq!(red, vec![0, 0, 0, 1, 2, 0, 11, 12, 0]);
        // The centre window of padding p is the image itself.
        assert_eq!(pad_crop_at(&img, 3, 2, 2, 2), img);
        // The draw order: top in 0..=2p first, then left.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let big = photo(32, 32);
        for _ in 0..50 {
            let mut replay = rng.clone();
            let top = replay.random_range(0..=8u32);
            let left = replay.random_range(0..=8u32);
            let out = random_pad_crop(&mut rng, &big, 32, 4).unwrap();
            assert_eq!(out, pad_crop_at(&big, 32, 4, top, left));
        }
        assert!(random_pad_crop(&mut rng, &photo(10, 10), 32, 4).is_err());
    }

    #[test]
    fn recipe_transforms_by_stage() {
        let img = photo(32, 32);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Everything off but a zero-padding crop: the normalised image itself.
        let mut cfg = plain(32);
        cfg.first = FirstCrop::PadCrop { padding: 0 };
        let t = FinetuneTransform::new(cfg).unwrap();
        let mut out = vec![0.0; cfg.floats()];
        t.train_into(&img, &mut rng, &mut out).unwrap();
        let mut want = vec![0.0; cfg.floats()];
        normalize_into(&img, IMAGENET_MEAN, IMAGENET_STD, &mut want).unwrap();
        assert_eq!(out, want);
        // Flip always: the mirror image.
        let t = FinetuneTransform::new(FinetuneConfig { hflip: 1.0, ..cfg }).unwrap();
        let mut mirrored = img.clone();
        hflip(&mut mirrored);
        assert_eq!(t.train_image(&img, &mut rng).unwrap(), mirrored);
        // Erasing always (const mode): only a box of zeros differs from the plain output.
        let erasing = RandomErasing {
            probability: 1.0,
            mode: EraseMode::Const,
            ..RandomErasing::default()
        };
        let t = FinetuneTransform::new(FinetuneConfig { erasing, ..cfg }).unwrap();
        t.train_into(&img, &mut rng, &mut out).unwrap();
        let differ: Vec<usize> = (0..out.len()).filter(|&i| out[i] != want[i]).collect();
        assert!(!differ.is_empty() && differ.iter().all(|&i| out[i] == 0.0));
        // RandAugment on: outputs vary between samples but stay 32×32.
        let full = FinetuneTransform::new(FinetuneConfig::recipe(32)).unwrap();
        let a = full.train_image(&img, &mut rng).unwrap();
        assert_eq!(a.dimensions(), (32, 32));
    }

    #[test]
    fn colour_jitter_only_without_randaugment() {
        let img = photo(32, 32);
        // RandAugment on with prob 0: no op applies and jitter must not run either (timm).
        let mut cfg = plain(32);
        cfg.first = FirstCrop::PadCrop { padding: 0 };
        cfg.rand_augment = Some(RandAugmentConfig {
            prob: 0.0,
            ..RandAugmentConfig::default()
        });
        cfg.color_jitter = 0.4;
        let t = FinetuneTransform::new(cfg).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20 {
            assert_eq!(t.train_image(&img, &mut rng).unwrap(), img);
        }
        // Without RandAugment, jitter 0.4 changes the image.
        let t = FinetuneTransform::new(FinetuneConfig {
            rand_augment: None,
            ..cfg
        })
        .unwrap();
        assert!((0..20).any(|_| t.train_image(&img, &mut rng).unwrap() != img));
    }

    #[test]
    fn resized_crop_and_eval_sizes() {
        let t = FinetuneTransform::new(FinetuneConfig::recipe(48)).unwrap();
        let img = photo(80, 60);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            t.train_image(&img, &mut rng).unwrap().dimensions(),
            (48, 48)
        );
        // Eval: shorter side ⌊256/224 · 48⌋ = ⌊54.86⌋ = 54, centre crop 48.
        assert_eq!(t.config().eval_resize(), 54);
        let mut out = vec![0.0; t.config().floats()];
        t.eval_into(&img, &mut out).unwrap();
        let want = Preprocess::new(54, 48);
        let mut w = vec![0.0; want.floats_per_image()];
        want.apply_into(&img, &mut w).unwrap();
        assert_eq!(out, w);
        // 32 px: no resize, the image itself normalised.
        let t32 = FinetuneTransform::new(FinetuneConfig::recipe(32)).unwrap();
        let img32 = photo(32, 32);
        let mut out = vec![0.0; 3 * 32 * 32];
        t32.eval_into(&img32, &mut out).unwrap();
        let mut want = vec![0.0; 3 * 32 * 32];
        normalize_into(&img32, IMAGENET_MEAN, IMAGENET_STD, &mut want).unwrap();
        assert_eq!(out, want);
        assert_eq!(FinetuneConfig::recipe(224).eval_resize(), 256);
        assert_eq!(FinetuneConfig::recipe(384).eval_resize(), 438);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = FinetuneConfig {
            hflip: 2.0,
            ..FinetuneConfig::recipe(32)
        };
        let e = FinetuneTransform::new(bad).unwrap_err().to_string();
        assert!(e.contains("finetune.hflip = 2"), "{e}");
        let mut bad = FinetuneConfig::recipe(64);
        bad.erasing.probability = -0.1;
        let e = FinetuneTransform::new(bad).unwrap_err().to_string();
        assert!(e.contains("finetune.erasing: probability = -0.1"), "{e}");
        let t = FinetuneTransform::new(FinetuneConfig::recipe(32)).unwrap();
        let mut short = vec![0.0; 10];
        assert!(t.train_sample(&photo(32, 32), 0, 0, 0, &mut short).is_err());
        assert!(
            t.train_sample(&photo(8, 8), 0, 0, 0, &mut vec![0.0; 3 * 32 * 32])
                .is_err()
        );
    }

    #[test]
    fn samples_depend_only_on_seed_epoch_position() {
        let t = FinetuneTransform::new(FinetuneConfig::recipe(32)).unwrap();
        let img = photo(32, 32);
        let run = |seed, epoch, pos| {
            let mut out = vec![0.0; 3 * 32 * 32];
            t.train_sample(&img, seed, epoch, pos, &mut out).unwrap();
            out
        };
        assert_eq!(run(1, 2, 3), run(1, 2, 3));
        assert_ne!(run(1, 2, 3), run(1, 2, 4));
        assert_ne!(run(1, 2, 3), run(1, 3, 3));
    }
}
