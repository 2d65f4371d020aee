//! RandAugment as timm's `rand_augment_transform` builds it from a config string such as the
//! original fine-tuning recipe's `rand-m9-mstd0.5-inc1`.
//!
//! Per image: `num_ops` ops drawn uniformly with replacement from the op list (`inc1`: timm's
//! `_RAND_INCREASING_TRANSFORMS`, 15 ops). Each drawn op then, in timm's order: applies with
//! probability `prob` (0.5); draws its magnitude `N(m, mstd)` clipped to `[0, 10]`; turns it
//! into its argument (timm's `*_level_to_arg`, a coin flips the sign of signed ones); runs.
//! Geometric ops fill with the dataset mean in bytes (timm's `img_mean`, `(124, 116, 104)`
//! for ImageNet) and resample with the training interpolation (bicubic in the recipe).
//!
//! Consumed by [`crate::augment::finetune`]'s training transform.

use std::str::FromStr;

use image::RgbImage;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::affine::{Resample, rotate, shear_x, shear_y, translate_x, translate_y};
use super::jitter::{adjust_brightness, adjust_contrast, adjust_saturation};
use super::sharpness::adjust_sharpness;
use super::tone::{autocontrast, equalize, invert, posterize, solarize, solarize_add};

/// timm's `_LEVEL_DENOM`: magnitudes are on a 0–10 scale.
const LEVEL_DENOM: f64 = 10.0;

/// One RandAugment op (timm's names; the `inc1` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandOp {
    /// `AutoContrast` (no argument).
    AutoContrast,
    /// `Equalize` (no argument).
    Equalize,
    /// `Invert` (no argument).
    Invert,
    /// `Rotate`: ±30·m/10 degrees.
    Rotate,
    /// `PosterizeIncreasing`: keep `4 − ⌊4·m/10⌋` bits.
    PosterizeIncreasing,
    /// `SolarizeIncreasing`: threshold `256 − min(256, ⌊256·m/10⌋)`.
    SolarizeIncreasing,
    /// `SolarizeAdd`: add `min(128, ⌊110·m/10⌋)` below 128.
    SolarizeAdd,
    /// `ColorIncreasing`: saturation factor `max(0.1, 1 ± 0.9·m/10)`.
    ColorIncreasing,
    /// `ContrastIncreasing`: contrast factor as `ColorIncreasing`.
    ContrastIncreasing,
    /// `BrightnessIncreasing`: brightness factor as `ColorIncreasing`.
    BrightnessIncreasing,
    /// `SharpnessIncreasing`: sharpness factor as `ColorIncreasing`.
    SharpnessIncreasing,
    /// `ShearX`: ±0.3·m/10.
    ShearX,
    /// `ShearY`: ±0.3·m/10.
    ShearY,
    /// `TranslateXRel`: ±0.45·m/10 of the width.
    TranslateXRel,
    /// `TranslateYRel`: ±0.45·m/10 of the height.
    TranslateYRel,
}

impl RandOp {
    /// timm's name of the op (its `NAME_TO_OP` key).
    pub fn timm_name(self) -> &'static str {
        match self {
            RandOp::AutoContrast => "AutoContrast",
            RandOp::Equalize => "Equalize",
            RandOp::Invert => "Invert",
            RandOp::Rotate => "Rotate",
            RandOp::PosterizeIncreasing => "PosterizeIncreasing",
            RandOp::SolarizeIncreasing => "SolarizeIncreasing",
            RandOp::SolarizeAdd => "SolarizeAdd",
            RandOp::ColorIncreasing => "ColorIncreasing",
            RandOp::ContrastIncreasing => "ContrastIncreasing",
            RandOp::BrightnessIncreasing => "BrightnessIncreasing",
            RandOp::SharpnessIncreasing => "SharpnessIncreasing",
            RandOp::ShearX => "ShearX",
            RandOp::ShearY => "ShearY",
            RandOp::TranslateXRel => "TranslateXRel",
            RandOp::TranslateYRel => "TranslateYRel",
        }
    }

    /// Whether timm draws a random sign for the op's argument.
    pub fn is_signed(self) -> bool {
        matches!(
            self,
            RandOp::Rotate
                | RandOp::ColorIncreasing
                | RandOp::ContrastIncreasing
                | RandOp::BrightnessIncreasing
                | RandOp::SharpnessIncreasing
                | RandOp::ShearX
                | RandOp::ShearY
                | RandOp::TranslateXRel
                | RandOp::TranslateYRel
        )
    }

    /// timm's `_RAND_INCREASING_TRANSFORMS`, in its order (the `inc1` list).
    pub const INCREASING: [RandOp; 15] = [
        RandOp::AutoContrast,
        RandOp::Equalize,
        RandOp::Invert,
        RandOp::Rotate,
        RandOp::PosterizeIncreasing,
        RandOp::SolarizeIncreasing,
        RandOp::SolarizeAdd,
        RandOp::ColorIncreasing,
        RandOp::ContrastIncreasing,
        RandOp::BrightnessIncreasing,
        RandOp::SharpnessIncreasing,
        RandOp::ShearX,
        RandOp::ShearY,
        RandOp::TranslateXRel,
        RandOp::TranslateYRel,
    ];
}

/// An op's argument after timm's `level_to_arg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpArg {
    /// No argument.
    None,
    /// A real argument (degrees, factor, shear, translate fraction).
    Real(f64),
    /// An integer argument (bits, threshold, addend).
    Int(u32),
}

/// timm's `level_to_arg` of `op` at magnitude `m` (already clipped to `[0, 10]`); signed ops
/// draw their sign from `rng` (negative when a uniform draw is `> 0.5`, as timm's
/// `_randomly_negate`), then [`level_to_arg_signed`].
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::randaugment::{OpArg, RandOp, level_to_arg};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// assert_eq!(level_to_arg(RandOp::PosterizeIncreasing, 9.0, &mut rng), OpArg::Int(1));
/// assert_eq!(level_to_arg(RandOp::SolarizeAdd, 9.0, &mut rng), OpArg::Int(99));
/// let OpArg::Real(deg) = level_to_arg(RandOp::Rotate, 5.0, &mut rng) else { panic!() };
/// assert_eq!(deg.abs(), 15.0);
/// ```
pub fn level_to_arg<R: Rng + ?Sized>(op: RandOp, m: f64, rng: &mut R) -> OpArg {
    let negate = op.is_signed() && rng.random::<f64>() > 0.5;
    level_to_arg_signed(op, m, negate)
}

/// timm's `level_to_arg` of `op` at magnitude `m` with the sign given (`negate` is ignored by
/// unsigned ops): rotate `30·m/10` degrees, posterize `4 − ⌊4·m/10⌋` bits, solarize threshold
/// `256 − min(256, ⌊256·m/10⌋)`, solarize-add `min(128, ⌊110·m/10⌋)`, enhance factors
/// `max(0.1, 1 ± 0.9·m/10)`, shear `0.3·m/10`, translate `0.45·m/10` of the side.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::randaugment::{OpArg, RandOp, level_to_arg_signed};
///
/// assert_eq!(level_to_arg_signed(RandOp::ShearX, 5.0, true), OpArg::Real(-0.15));
/// assert_eq!(level_to_arg_signed(RandOp::BrightnessIncreasing, 10.0, true), OpArg::Real(0.1));
/// ```
pub fn level_to_arg_signed(op: RandOp, m: f64, negate: bool) -> OpArg {
    let level = m / LEVEL_DENOM;
    let sign = |v: f64| if negate { -v } else { v };
    match op {
        RandOp::AutoContrast | RandOp::Equalize | RandOp::Invert => OpArg::None,
        RandOp::Rotate => OpArg::Real(sign(level * 30.0)),
        RandOp::PosterizeIncreasing => OpArg::Int(4 - (level * 4.0) as u32),
        RandOp::SolarizeIncreasing => OpArg::Int(256 - ((level * 256.0) as u32).min(256)),
        RandOp::SolarizeAdd => OpArg::Int(((level * 110.0) as u32).min(128)),
        RandOp::ColorIncreasing
        | RandOp::ContrastIncreasing
        | RandOp::BrightnessIncreasing
        | RandOp::SharpnessIncreasing => OpArg::Real((1.0 + sign(level * 0.9)).max(0.1)),
        RandOp::ShearX | RandOp::ShearY => OpArg::Real(sign(level * 0.3)),
        RandOp::TranslateXRel | RandOp::TranslateYRel => OpArg::Real(sign(level * 0.45)),
    }
}

/// Runs `op` with its argument (as timm's op functions with `fillcolor = fill` and
/// `resample`).
pub fn apply_op(
    img: &RgbImage,
    op: RandOp,
    arg: OpArg,
    resample: Resample,
    fill: [u8; 3],
) -> RgbImage {
    let real = match arg {
        OpArg::Real(v) => v,
        OpArg::Int(i) => f64::from(i),
        OpArg::None => 0.0,
    };
    let int = match arg {
        OpArg::Int(i) => i,
        _ => 0,
    };
    let mut out = img.clone();
    match op {
        RandOp::AutoContrast => autocontrast(&mut out),
        RandOp::Equalize => equalize(&mut out),
        RandOp::Invert => invert(&mut out),
        RandOp::Rotate => return rotate(img, real, resample, fill),
        RandOp::PosterizeIncreasing => posterize(&mut out, int),
        RandOp::SolarizeIncreasing => solarize(&mut out, int.min(256) as u16),
        RandOp::SolarizeAdd => solarize_add(&mut out, int.min(255) as u8),
        // PIL's `ImageEnhance` factors are C floats.
        RandOp::ColorIncreasing => adjust_saturation(&mut out, real as f32),
        RandOp::ContrastIncreasing => adjust_contrast(&mut out, real as f32),
        RandOp::BrightnessIncreasing => adjust_brightness(&mut out, real as f32),
        RandOp::SharpnessIncreasing => adjust_sharpness(&mut out, real as f32),
        RandOp::ShearX => return shear_x(img, real, resample, fill),
        RandOp::ShearY => return shear_y(img, real, resample, fill),
        RandOp::TranslateXRel => return translate_x(img, real, resample, fill),
        RandOp::TranslateYRel => return translate_y(img, real, resample, fill),
    }
    out
}

/// A bad RandAugment config string or setting.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum RandAugmentError {
    /// The config string or a setting is unusable; the message names the part.
    #[error("RandAugment config: {0}")]
    Config(String),
}

/// RandAugment settings, as parsed from timm's config strings.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::randaugment::RandAugmentConfig;
///
/// let cfg: RandAugmentConfig = "rand-m9-mstd0.5-inc1".parse()?;
/// assert_eq!((cfg.magnitude, cfg.magnitude_std, cfg.num_ops, cfg.prob), (9.0, 0.5, 2, 0.5));
/// assert!(cfg.increasing);
/// assert!("rand-m9-x3".parse::<RandAugmentConfig>().is_err());
/// # Ok::<(), patchmix_train::augment::randaugment::RandAugmentError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandAugmentConfig {
    /// Magnitude `m` (0–10 scale).
    pub magnitude: f64,
    /// Standard deviation of the per-op magnitude noise (0: fixed magnitude).
    pub magnitude_std: f64,
    /// Ops per image (`n`).
    pub num_ops: usize,
    /// Probability of each drawn op (`p`).
    pub prob: f64,
    /// The increasing-severity op set (`inc1`); only that set is implemented.
    pub increasing: bool,
    /// Fill colour of the geometric ops (timm's `img_mean`).
    pub fill: [u8; 3],
    /// Resampling of the geometric ops.
    pub resample: Resample,
}

impl Default for RandAugmentConfig {
    /// `rand-m9-mstd0.5-inc1` with ImageNet-mean fill and bicubic resampling (the recipe).
    fn default() -> Self {
        Self {
            magnitude: 9.0,
            magnitude_std: 0.5,
            num_ops: 2,
            prob: 0.5,
            increasing: true,
            fill: [124, 116, 104],
            resample: Resample::Bicubic,
        }
    }
}

impl FromStr for RandAugmentConfig {
    type Err = RandAugmentError;

    /// Parses timm's `rand-…` strings: sections `m` (int), `n` (int), `p` (float), `mstd`
    /// (float), `inc` (0/1); timm's defaults `m10, n2, p0.5, mstd0, inc0` otherwise.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('-');
        if parts.next() != Some("rand") {
            return Err(RandAugmentError::Config(format!(
                "{s:?} does not start with \"rand\""
            )));
        }
        let mut cfg = Self {
            magnitude: 10.0,
            magnitude_std: 0.0,
            increasing: false,
            ..Self::default()
        };
        for part in parts {
            let split = part
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(part.len());
            let (key, val) = part.split_at(split);
            let bad =
                || RandAugmentError::Config(format!("section {part:?} of {s:?} is not understood"));
            let num: f64 = val.parse().map_err(|_| bad())?;
            match key {
                "m" => cfg.magnitude = val.parse::<u32>().map_err(|_| bad())?.into(),
                "n" => cfg.num_ops = val.parse().map_err(|_| bad())?,
                "p" => cfg.prob = num,
                // timm: a std above 100 means uniform sampling, which is not implemented.
                "mstd" if num <= 100.0 => cfg.magnitude_std = num,
                "inc" => cfg.increasing = val.parse::<u32>().map_err(|_| bad())? != 0,
                _ => return Err(bad()),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

impl RandAugmentConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`RandAugmentError::Config`] for a magnitude outside `[0, 10]`, a negative or
    /// non-finite std, a probability outside `[0, 1]`, more than 16 ops, or `increasing` off
    /// (timm's default op set is not implemented).
    pub fn validate(&self) -> Result<(), RandAugmentError> {
        let bad = |m: String| Err(RandAugmentError::Config(m));
        if !(0.0..=LEVEL_DENOM).contains(&self.magnitude) {
            return bad(format!("magnitude {} must be in [0, 10]", self.magnitude));
        }
        if !(self.magnitude_std.is_finite() && self.magnitude_std >= 0.0) {
            return bad(format!(
                "magnitude_std {} must be finite and ≥ 0",
                self.magnitude_std
            ));
        }
        if !(0.0..=1.0).contains(&self.prob) {
            return bad(format!("prob {} is not a probability in [0, 1]", self.prob));
        }
        if self.num_ops > 16 {
            return bad(format!("num_ops {} must be at most 16", self.num_ops));
        }
        if !self.increasing {
            return bad("only the increasing op set (inc1) is implemented".into());
        }
        Ok(())
    }
}

/// RandAugment over the `inc1` op set.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::randaugment::{RandAugment, RandAugmentConfig};
/// use rand::SeedableRng;
///
/// let ra = RandAugment::new(RandAugmentConfig::default())?;
/// let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 90]));
/// let a = ra.apply(&img, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
/// let b = ra.apply(&img, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
/// assert_eq!(a, b);
/// # Ok::<(), patchmix_train::augment::randaugment::RandAugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RandAugment {
    cfg: RandAugmentConfig,
    noise: Option<Normal<f64>>,
}

/// One applied op of a [`RandAugment`] draw (for inspection and tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpDraw {
    /// The op.
    pub op: RandOp,
    /// Whether its `prob` coin applied it.
    pub applied: bool,
    /// Its argument (`OpArg::None` when not applied).
    pub arg: OpArg,
}

impl RandAugment {
    /// Validates `cfg`.
    ///
    /// # Errors
    ///
    /// As [`RandAugmentConfig::validate`].
    pub fn new(cfg: RandAugmentConfig) -> Result<Self, RandAugmentError> {
        cfg.validate()?;
        let noise = if cfg.magnitude_std > 0.0 {
            Some(
                Normal::new(cfg.magnitude, cfg.magnitude_std)
                    .map_err(|e| RandAugmentError::Config(format!("magnitude noise: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self { cfg, noise })
    }

    /// The settings.
    pub fn config(&self) -> &RandAugmentConfig {
        &self.cfg
    }

    /// Draws the ops of one image in timm's order: the `num_ops` choices first, then per op
    /// its coin, its magnitude (`N(m, std)` clipped to `[0, 10]`) and its argument's sign.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<OpDraw> {
        let ops = RandOp::INCREASING;
        let chosen: Vec<RandOp> = (0..self.cfg.num_ops)
            .map(|_| ops[rng.random_range(0..ops.len())])
            .collect();
        chosen
            .into_iter()
            .map(|op| {
                // timm: `if prob < 1 and random() > prob: skip`.
                if self.cfg.prob < 1.0 && !coin_le(rng, self.cfg.prob) {
                    return OpDraw {
                        op,
                        applied: false,
                        arg: OpArg::None,
                    };
                }
                let m = match self.noise {
                    Some(n) => n.sample(rng),
                    None => self.cfg.magnitude,
                };
                let m = m.clamp(0.0, LEVEL_DENOM);
                OpDraw {
                    op,
                    applied: true,
                    arg: level_to_arg(op, m, rng),
                }
            })
            .collect()
    }

    /// Runs the drawn ops on `img`.
    pub fn apply_draws(&self, img: &RgbImage, draws: &[OpDraw]) -> RgbImage {
        let mut out = img.clone();
        for d in draws.iter().filter(|d| d.applied) {
            out = apply_op(&out, d.op, d.arg, self.cfg.resample, self.cfg.fill);
        }
        out
    }

    /// [`RandAugment::sample`] then [`RandAugment::apply_draws`].
    pub fn apply<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> RgbImage {
        let draws = self.sample(rng);
        self.apply_draws(img, &draws)
    }
}

/// `true` when a uniform draw is `≤ p` (timm applies an op unless `random() > p`).
fn coin_le<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    rng.random::<f64>() <= p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn levels_by_hand() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // m = 9: posterize 4 − ⌊3.6⌋ = 1 bit; solarize 256 − ⌊230.4⌋ = 26; add ⌊99⌋ = 99.
        assert_eq!(
            level_to_arg(RandOp::PosterizeIncreasing, 9.0, &mut rng),
            OpArg::Int(1)
        );
        assert_eq!(
            level_to_arg(RandOp::SolarizeIncreasing, 9.0, &mut rng),
            OpArg::Int(26)
        );
        assert_eq!(
            level_to_arg(RandOp::SolarizeAdd, 9.0, &mut rng),
            OpArg::Int(99)
        );
        // m = 10: 0 bits, threshold 0, add 110; m = 0: 4 bits, threshold 256 (no-op), add 0.
        assert_eq!(
            level_to_arg(RandOp::PosterizeIncreasing, 10.0, &mut rng),
            OpArg::Int(0)
        );
        assert_eq!(
            level_to_arg(RandOp::SolarizeIncreasing, 10.0, &mut rng),
            OpArg::Int(0)
        );
        assert_eq!(
            level_to_arg(RandOp::SolarizeAdd, 10.0, &mut rng),
            OpArg::Int(110)
        );
        assert_eq!(
            level_to_arg(RandOp::PosterizeIncreasing, 0.0, &mut rng),
            OpArg::Int(4)
        );
        assert_eq!(
            level_to_arg(RandOp::SolarizeIncreasing, 0.0, &mut rng),
            OpArg::Int(256)
        );
        // Enhance factors: 1 ± 0.9·m/10, at least 0.1: m = 9 → 1.81 or 0.19; m = 10 → 1.9 or 0.1.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let OpArg::Real(f) = level_to_arg(RandOp::ContrastIncreasing, 9.0, &mut rng) else {
                panic!()
            };
            seen.insert((f * 1000.0).round() as i64);
            let OpArg::Real(g) = level_to_arg(RandOp::ColorIncreasing, 10.0, &mut rng) else {
                panic!()
            };
            assert!((g - 1.9).abs() < 1e-12 || (g - 0.1).abs() < 1e-12, "{g}");
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![190, 1810]);
        // Shear ±0.27, translate ±0.405, rotate ±27 at m = 9.
        for (op, v) in [
            (RandOp::ShearX, 0.27),
            (RandOp::TranslateYRel, 0.405),
            (RandOp::Rotate, 27.0),
        ] {
            let OpArg::Real(a) = level_to_arg(op, 9.0, &mut rng) else {
                panic!()
            };
            assert!((a.abs() - v).abs() < 1e-12, "{op:?} {a}");
        }
        assert_eq!(level_to_arg(RandOp::Equalize, 9.0, &mut rng), OpArg::None);
    }

    #[test]
    fn config_strings_parse_as_timm() {
        let cfg: RandAugmentConfig = "rand-m9-mstd0.5-inc1".parse().unwrap();
        assert_eq!(cfg, RandAugmentConfig::default());
        let cfg: RandAugmentConfig = "rand-n3-m7-p0.8-inc1".parse().unwrap();
        assert_eq!(
            (cfg.num_ops, cfg.magnitude, cfg.prob, cfg.magnitude_std),
            (3, 7.0, 0.8, 0.0)
        );
        for bad in [
            "rand-m9",
            "augmix-m9-inc1",
            "rand-m11-inc1",
            "rand-q3-inc1",
            "rand-mstd200-inc1",
        ] {
            assert!(bad.parse::<RandAugmentConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ops_dispatch_to_their_functions() {
        let img = RgbImage::from_fn(6, 5, |x, y| {
            image::Rgb([(x * 40) as u8, (y * 50) as u8, 77])
        });
        let fill = [124, 116, 104];
        let r = Resample::Bicubic;
        let mut inv = img.clone();
        invert(&mut inv);
        assert_eq!(apply_op(&img, RandOp::Invert, OpArg::None, r, fill), inv);
        let mut post = img.clone();
        posterize(&mut post, 1);
        assert_eq!(
            apply_op(&img, RandOp::PosterizeIncreasing, OpArg::Int(1), r, fill),
            post
        );
        assert_eq!(
            apply_op(&img, RandOp::TranslateXRel, OpArg::Real(0.5), r, fill),
            translate_x(&img, 0.5, r, fill)
        );
        assert_eq!(
            apply_op(&img, RandOp::SolarizeIncreasing, OpArg::Int(256), r, fill),
            img
        );
    }

    #[test]
    fn draws_follow_the_probability_and_clip_the_magnitude() {
        let ra = RandAugment::new(RandAugmentConfig::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut applied, mut total) = (0, 0);
        let mut ops_seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let d = ra.sample(&mut rng);
            assert_eq!(d.len(), 2);
            for x in d {
                total += 1;
                ops_seen.insert(format!("{:?}", x.op));
                if x.applied {
                    applied += 1;
                    if let (RandOp::Rotate, OpArg::Real(deg)) = (x.op, x.arg) {
                        assert!(deg.abs() <= 30.0);
                    }
                }
            }
        }
        assert_eq!(ops_seen.len(), 15);
        // prob 0.5 of 4000: within ±300 with overwhelming probability.
        assert!((1700..=2300).contains(&applied), "{applied} of {total}");
        let never = RandAugment::new(RandAugmentConfig {
            prob: 0.0,
            ..RandAugmentConfig::default()
        })
        .unwrap();
        let img = RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
        assert_eq!(never.apply(&img, &mut rng), img);
    }
}
