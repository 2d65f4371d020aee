//! The two-view pipeline (MoCo v3 / PatchMix) and its multi-crop extension.
//!
//! | view | ops |
//! |---|---|
//! | 1 | RandomResizedCrop → ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8 → Grayscale p 0.2 → GaussianBlur σ∈[0.1, 2] p 1.0 → HFlip p 0.5 → Normalize |
//! | 2 | the same with GaussianBlur p 0.1, plus Solarize(128) p 0.2 before the flip |
//! | local (multi-crop) | view 1's ops on a smaller RandomResizedCrop |
//!
//! Random draws happen in a fixed order (view 1, view 2, then the locals; within a view:
//! crop box, jitter coin [+ order and factors], grey coin, blur coin [+ σ], solarize coin, flip
//! coin), so the output is a pure function of the image and the RNG state.

use image::RgbImage;
use patchmix_export::data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, normalize_into};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::blur::gaussian_blur;
use super::crop::random_resized_crop;
use super::flip::hflip;
use super::gray::grayscale;
use super::jitter::ColorJitter;
use super::random::{coin, uniform};
use super::solarize::solarize;

/// A bad augmentation setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AugmentError {
    /// A setting is out of its range; the message names it and the range.
    #[error("augmentation config: {0}")]
    Config(String),
}

/// The probabilistic ops of one view (everything after the crop).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewSpec {
    /// ColorJitter strengths.
    pub jitter: ColorJitter,
    /// Probability of applying ColorJitter.
    pub jitter_p: f64,
    /// Probability of converting to grey.
    pub gray_p: f64,
    /// Probability of blurring.
    pub blur_p: f64,
    /// Range of the blur σ (pixels), drawn uniformly.
    pub blur_sigma: (f64, f64),
    /// Probability of solarizing (threshold 128).
    pub solarize_p: f64,
    /// Probability of a horizontal flip.
    pub flip_p: f64,
}

impl ViewSpec {
    /// View 1 of MoCo v3 / PatchMix: jitter 0.8, grey 0.2, blur 1.0, no solarize, flip 0.5.
    pub fn view1() -> Self {
        Self {
            jitter: ColorJitter::default(),
            jitter_p: 0.8,
            gray_p: 0.2,
            blur_p: 1.0,
            blur_sigma: (0.1, 2.0),
            solarize_p: 0.0,
            flip_p: 0.5,
        }
    }

    /// View 2: as view 1 with blur 0.1 and solarize 0.2.
    pub fn view2() -> Self {
        Self {
            blur_p: 0.1,
            solarize_p: 0.2,
            ..Self::view1()
        }
    }

    fn check(&self, name: &str) -> Result<(), AugmentError> {
        let probs = [
            ("jitter_p", self.jitter_p),
            ("gray_p", self.gray_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
            ("flip_p", self.flip_p),
        ];
        for (what, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(AugmentError::Config(format!(
                    "{name}.{what} = {p} is not a probability in [0, 1]"
                )));
            }
        }
        let j = self.jitter;
        for (what, s) in [
            ("brightness", j.brightness),
            ("contrast", j.contrast),
            ("saturation", j.saturation),
        ] {
            if !(s.is_finite() && s >= 0.0) {
                return Err(AugmentError::Config(format!(
                    "{name}.jitter.{what} = {s} must be ≥ 0"
                )));
            }
        }
        if !(0.0..=0.5).contains(&j.hue) {
            return Err(AugmentError::Config(format!(
                "{name}.jitter.hue = {} must be in [0, 0.5]",
                j.hue
            )));
        }
        let (lo, hi) = self.blur_sigma;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 100.0) {
            return Err(AugmentError::Config(format!(
                "{name}.blur_sigma = ({lo}, {hi}) must satisfy 0 ≤ lo ≤ hi ≤ 100"
            )));
        }
        Ok(())
    }
}

impl Default for ViewSpec {
    fn default() -> Self {
        Self::view1()
    }
}

/// Multi-crop (the ImageNet recipe): `n_local` extra crops of `local_size` with crop scale
/// `(min_crop, global_crop)`; the two global views then use `(global_crop, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiCrop {
    /// Number of local crops per image.
    pub n_local: usize,
    /// Side of the local crops.
    pub local_size: u32,
    /// The area fraction separating local from global crops.
    pub global_crop: f64,
}

/// Settings of the [`Pipeline`].
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::{AugmentConfig, MultiCrop};
///
/// let mut cfg = AugmentConfig::new(32, 0.08);
/// cfg.multi_crop = Some(MultiCrop { n_local: 4, local_size: 16, global_crop: 0.4 });
/// assert_eq!(cfg.global_scale(), (0.4, 1.0));
/// assert_eq!(cfg.local_scale(), Some((0.08, 0.4)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Side of the two global views.
    pub size: u32,
    /// Smallest crop area fraction (MoCo v3's `crop_min`, default 0.08).
    pub min_crop: f64,
    /// Aspect-ratio range of the crops (default 3/4 to 4/3).
    pub ratio: (f64, f64),
    /// Normalisation means (default ImageNet).
    pub mean: [f32; 3],
    /// Normalisation standard deviations (default ImageNet).
    pub std: [f32; 3],
    /// View 1's ops.
    pub view1: ViewSpec,
    /// View 2's ops.
    pub view2: ViewSpec,
    /// The local crops' ops (default: view 1's).
    pub local_view: ViewSpec,
    /// Multi-crop, off by default.
    pub multi_crop: Option<MultiCrop>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::new(224, 0.08)
    }
}

impl AugmentConfig {
    /// The original two views at `size` with crop scale `(min_crop, 1)`, ImageNet mean/std.
    pub fn new(size: u32, min_crop: f64) -> Self {
        Self {
            size,
            min_crop,
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            view1: ViewSpec::view1(),
            view2: ViewSpec::view2(),
            local_view: ViewSpec::view1(),
            multi_crop: None,
        }
    }

    /// Crop scale of the two global views.
    pub fn global_scale(&self) -> (f64, f64) {
        match self.multi_crop {
            Some(m) => (m.global_crop, 1.0),
            None => (self.min_crop, 1.0),
        }
    }

    /// Crop scale of the local views, when multi-crop is on.
    pub fn local_scale(&self) -> Option<(f64, f64)> {
        self.multi_crop.map(|m| (self.min_crop, m.global_crop))
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`AugmentError::Config`] naming the first bad setting and its allowed range.
    pub fn validate(&self) -> Result<(), AugmentError> {
        if self.size == 0 || self.size > 4096 {
            return Err(AugmentError::Config(format!(
                "size = {} must be in 1..=4096",
                self.size
            )));
        }
        if !(self.min_crop > 0.0 && self.min_crop <= 1.0) {
            return Err(AugmentError::Config(format!(
                "min_crop = {} must be in (0, 1]",
                self.min_crop
            )));
        }
        let (lo, hi) = self.ratio;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi) {
            return Err(AugmentError::Config(format!(
                "ratio = ({lo}, {hi}) must satisfy 0 < lo ≤ hi"
            )));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(AugmentError::Config(format!(
                "mean {:?} / std {:?} must be finite with std non-zero",
                self.mean, self.std
            )));
        }
        self.view1.check("view1")?;
        self.view2.check("view2")?;
        self.local_view.check("local_view")?;
        if let Some(m) = self.multi_crop {
            if !(m.global_crop > self.min_crop && m.global_crop < 1.0) {
                return Err(AugmentError::Config(format!(
                    "multi_crop.global_crop = {} must be in (min_crop = {}, 1)",
                    m.global_crop, self.min_crop
                )));
            }
            if m.local_size == 0 || m.local_size > 4096 {
                return Err(AugmentError::Config(format!(
                    "multi_crop.local_size = {} must be in 1..=4096",
                    m.local_size
                )));
            }
            if m.n_local > 64 {
                return Err(AugmentError::Config(format!(
                    "multi_crop.n_local = {} must be at most 64",
                    m.n_local
                )));
            }
        }
        Ok(())
    }
}

/// The augmented u8 views of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewImages {
    /// View 1.
    pub view1: RgbImage,
    /// View 2.
    pub view2: RgbImage,
    /// The local crops (empty without multi-crop).
    pub locals: Vec<RgbImage>,
}

/// The two-view (plus optional local views) augmentation pipeline.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::{AugmentConfig, Pipeline};
/// use rand::SeedableRng;
///
/// let pipe = Pipeline::new(AugmentConfig::new(16, 0.2))?;
/// let img = image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 90]));
/// let a = pipe.augment(&img, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
/// let b = pipe.augment(&img, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
/// assert_eq!(a, b);
/// assert_eq!(a.view1.dimensions(), (16, 16));
/// let mut floats = vec![0.0; pipe.view_floats()];
/// pipe.normalize_into(&a.view1, &mut floats);
/// # Ok::<(), patchmix_train::augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    cfg: AugmentConfig,
}

impl Pipeline {
    /// Validates `cfg`.
    ///
    /// # Errors
    ///
    /// As [`AugmentConfig::validate`].
    pub fn new(cfg: AugmentConfig) -> Result<Self, AugmentError> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The settings.
    pub fn config(&self) -> &AugmentConfig {
        &self.cfg
    }

    /// Number of local crops per image (0 without multi-crop).
    pub fn n_local(&self) -> usize {
        self.cfg.multi_crop.map_or(0, |m| m.n_local)
    }

    /// Side of the local crops (0 without multi-crop).
    pub fn local_size(&self) -> u32 {
        self.cfg.multi_crop.map_or(0, |m| m.local_size)
    }

    /// Floats of one normalised global view: `3 · size²`.
    pub fn view_floats(&self) -> usize {
        3 * (self.cfg.size as usize).pow(2)
    }

    /// Floats of one normalised local view: `3 · local_size²`.
    pub fn local_floats(&self) -> usize {
        3 * (self.local_size() as usize).pow(2)
    }

    /// One view: crop with `scale` to `size`, then `spec`'s ops in the table's order.
    pub fn view<R: Rng + ?Sized>(
        &self,
        img: &RgbImage,
        rng: &mut R,
        spec: &ViewSpec,
        size: u32,
        scale: (f64, f64),
    ) -> RgbImage {
        let mut v = random_resized_crop(rng, img, size, scale, self.cfg.ratio);
        if coin(rng, spec.jitter_p) {
            spec.jitter.sample(rng).apply(&mut v);
        }
        if coin(rng, spec.gray_p) {
            grayscale(&mut v);
        }
        if coin(rng, spec.blur_p) {
            let sigma = uniform(rng, spec.blur_sigma.0, spec.blur_sigma.1);
            v = gaussian_blur(&v, sigma as f32);
        }
        if coin(rng, spec.solarize_p) {
            solarize(&mut v, 128);
        }
        if coin(rng, spec.flip_p) {
            hflip(&mut v);
        }
        v
    }

    /// All views of `img`, drawing from `rng` in the documented order.
    pub fn augment<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> ViewImages {
        let c = &self.cfg;
        let global = c.global_scale();
        let view1 = self.view(img, rng, &c.view1, c.size, global);
        let view2 = self.view(img, rng, &c.view2, c.size, global);
        let locals = match (c.multi_crop, c.local_scale()) {
            (Some(m), Some(scale)) => (0..m.n_local)
                .map(|_| self.view(img, rng, &c.local_view, m.local_size, scale))
                .collect(),
            _ => Vec::new(),
        };
        ViewImages {
            view1,
            view2,
            locals,
        }
    }

    /// `ToTensor` + `Normalize`: writes `img` as f32 CHW into `out`
    /// (`3 · width · height` floats; only as many as fit are written otherwise).
    pub fn normalize_into(&self, img: &RgbImage, out: &mut [f32]) {
        if normalize_into(img, self.cfg.mean, self.cfg.std, out).is_err() {
            // Wrong length: a caller bug; fill what fits rather than panic.
            let mut tmp = vec![0.0; 3 * img.width() as usize * img.height() as usize];
            let _ = normalize_into(img, self.cfg.mean, self.cfg.std, &mut tmp);
            let n = tmp.len().min(out.len());
            out[..n].copy_from_slice(&tmp[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn photo() -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8])
        })
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let mut cfg = AugmentConfig::new(16, 0.08);
        cfg.multi_crop = Some(MultiCrop {
            n_local: 3,
            local_size: 8,
            global_crop: 0.4,
        });
        let pipe = Pipeline::new(cfg).unwrap();
        let img = photo();
        let a = pipe.augment(&img, &mut ChaCha8Rng::seed_from_u64(11));
        let b = pipe.augment(&img, &mut ChaCha8Rng::seed_from_u64(11));
        let c = pipe.augment(&img, &mut ChaCha8Rng::seed_from_u64(12));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a.view1, a.view2);
        assert_eq!(a.locals.len(), 3);
        assert!(a.locals.iter().all(|l| l.dimensions() == (8, 8)));
    }

    #[test]
    fn identity_spec_is_a_plain_resize() {
        let none = ViewSpec {
            jitter_p: 0.0,
            gray_p: 0.0,
            blur_p: 0.0,
            solarize_p: 0.0,
            flip_p: 0.0,
            ..ViewSpec::view1()
        };
        let mut cfg = AugmentConfig::new(3, 1.0);
        cfg.ratio = (1.0, 1.0);
        cfg.view1 = none;
        cfg.view2 = ViewSpec {
            flip_p: 1.0,
            solarize_p: 1.0,
            ..none
        };
        let pipe = Pipeline::new(cfg).unwrap();
        let img = RgbImage::from_fn(3, 3, |x, y| {
            image::Rgb([(x * 100) as u8, (y * 100) as u8, 200])
        });
        let v = pipe.augment(&img, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(v.view1, img);
        // View 2: solarize (200 → 55, 200 → 55) then flip.
        assert_eq!(v.view2.get_pixel(0, 0).0, [55, 0, 55]);
        assert_eq!(v.view2.get_pixel(2, 2).0, [0, 55, 55]);
        let mut out = vec![0.0; 27];
        pipe.normalize_into(&v.view1, &mut out);
        assert!((out[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((out[26] - (200.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }

    #[test]
    fn bad_configs_are_rejected_with_names() {
        let mut cfg = AugmentConfig::new(32, 0.08);
        cfg.view2.solarize_p = 1.5;
        let e = Pipeline::new(cfg).unwrap_err().to_string();
        assert!(e.contains("view2.solarize_p = 1.5"), "{e}");
        let mut cfg = AugmentConfig::new(32, 0.5);
        cfg.multi_crop = Some(MultiCrop {
            n_local: 2,
            local_size: 16,
            global_crop: 0.4,
        });
        let e = Pipeline::new(cfg).unwrap_err().to_string();
        assert!(
            e.contains("global_crop = 0.4 must be in (min_crop = 0.5, 1)"),
            "{e}"
        );
        assert!(Pipeline::new(AugmentConfig::new(0, 0.08)).is_err());
        assert!(Pipeline::new(AugmentConfig::new(8, 0.0)).is_err());
    }

    #[test]
    fn config_round_trips_through_serde() {
        let mut cfg = AugmentConfig::new(32, 0.2);
        cfg.multi_crop = Some(MultiCrop {
            n_local: 2,
            local_size: 16,
            global_crop: 0.4,
        });
        let text = serde_json::to_string(&cfg).unwrap();
        let back: AugmentConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let partial: AugmentConfig = serde_json::from_str(r#"{"size": 64}"#).unwrap();
        assert_eq!(partial.view2, ViewSpec::view2());
    }
}
