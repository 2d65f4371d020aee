//! Random erasing on a normalised CHW image, as timm's `RandomErasing(probability, mode)`
//! applies it after `Normalize` (the original's fine-tuning: probability 0.25, `mode='pixel'`,
//! one box).
//!
//! Draws, in timm's order: the coin (erase unless `u > probability`); then up to 10 attempts of
//! an area fraction uniform in `[min_area, max_area]` and an aspect ratio log-uniform in
//! `[min_aspect, 1/min_aspect]`, `h = round(√(area·aspect))`, `w = round(√(area/aspect))`
//! (half to even), accepted when `w < W` and `h < H` (strictly); then `top ∈ 0..=H−h`,
//! `left ∈ 0..=W−w` and the fill (per-pixel standard normal noise in pixel mode, drawn channel
//! by channel, row by row).
//!
//! Consumed by [`crate::augment::finetune`]'s training transform.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::random::uniform;

/// What fills the erased box (timm's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EraseMode {
    /// Zeros (the normalised mean).
    Const,
    /// One standard-normal value per channel.
    Rand,
    /// A standard-normal value per pixel and channel (the recipe).
    Pixel,
}

/// timm's `RandomErasing` settings (one box per image).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::erasing::{EraseMode, RandomErasing};
///
/// let re = RandomErasing::default();
/// assert_eq!((re.probability, re.mode), (0.25, EraseMode::Pixel));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomErasing {
    /// Probability of erasing an image.
    pub probability: f64,
    /// Smallest erased area fraction.
    pub min_area: f64,
    /// Largest erased area fraction.
    pub max_area: f64,
    /// Smallest aspect ratio `h / w`; the largest is its inverse.
    pub min_aspect: f64,
    /// The fill.
    pub mode: EraseMode,
}

impl Default for RandomErasing {
    /// The recipe: probability 0.25, pixel mode, timm's defaults area 0.02–1/3, aspect 0.3.
    fn default() -> Self {
        Self {
            probability: 0.25,
            min_area: 0.02,
            max_area: 1.0 / 3.0,
            min_aspect: 0.3,
            mode: EraseMode::Pixel,
        }
    }
}

/// timm's box size for a target area (pixels) and aspect ratio:
/// `h = round(√(area·aspect))`, `w = round(√(area/aspect))`, Python's round (half to even).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::erasing::erase_size;
///
/// assert_eq!(erase_size(40.0, 2.5), (10, 4)); // √100, √16
/// ```
pub fn erase_size(area: f64, aspect: f64) -> (usize, usize) {
    let h = (area * aspect).sqrt().round_ties_even() as usize;
    let w = (area / aspect).sqrt().round_ties_even() as usize;
    (h, w)
}

/// An erased box in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl RandomErasing {
    /// A description of the first bad setting, if any.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(format!(
                "probability = {} is not in [0, 1]",
                self.probability
            ));
        }
        if !(0.0 < self.min_area && self.min_area <= self.max_area && self.max_area <= 1.0) {
            return Err(format!(
                "area ({}, {}) must satisfy 0 < min ≤ max ≤ 1",
                self.min_area, self.max_area
            ));
        }
        if !(self.min_aspect > 0.0 && self.min_aspect.is_finite()) {
            return Err(format!("min_aspect = {} must be > 0", self.min_aspect));
        }
        Ok(())
    }

    /// The box draw after the coin: up to 10 attempts, `None` when none fits.
    pub fn sample_box<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        height: usize,
        width: usize,
    ) -> Option<EraseBox> {
        let area = (height * width) as f64;
        let (lo, hi) = (self.min_aspect.ln(), (1.0 / self.min_aspect).ln());
        for _ in 0..10 {
            let target = uniform(rng, self.min_area, self.max_area) * area;
            let aspect = uniform(rng, lo, hi).exp();
            let (h, w) = erase_size(target, aspect);
            if w < width && h < height {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                return Some(EraseBox {
                    top,
                    left,
                    height: h,
                    width: w,
                });
            }
        }
        None
    }

    /// Erases in place one box of the CHW image `img` (`channels × height × width` floats),
    /// returning it (`None`: not erased). A slice of another length is left alone.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::augment::erasing::RandomErasing;
    /// use rand::SeedableRng;
    ///
    /// let re = RandomErasing { probability: 1.0, ..RandomErasing::default() };
    /// let mut img = vec![7.0f32; 3 * 16 * 16];
    /// let b = re.apply(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0), &mut img, 3, 16, 16).unwrap();
    /// let changed = img.iter().filter(|v| **v != 7.0).count();
    /// assert_eq!(changed, 3 * b.height * b.width);
    /// ```
    pub fn apply<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        img: &mut [f32],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Option<EraseBox> {
        if img.len() != channels * height * width || rng.random::<f64>() > self.probability {
            return None;
        }
        let b = self.sample_box(rng, height, width)?;
        let per_channel: Vec<f32> = match self.mode {
            EraseMode::Rand => (0..channels).map(|_| StandardNormal.sample(rng)).collect(),
            _ => vec![0.0; channels],
        };
        for (c, fill) in per_channel.iter().enumerate() {
            for y in b.top..b.top + b.height {
                let row = (c * height + y) * width;
                for v in &mut img[row + b.left..row + b.left + b.width] {
                    *v = match self.mode {
                        EraseMode::Pixel => StandardNormal.sample(rng),
                        _ => *fill,
                    };
                }
            }
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn only_the_box_changes_and_boxes_follow_the_ranges() {
        let re = RandomErasing {
            probability: 1.0,
            ..RandomErasing::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (c, h, w) = (3, 20, 24);
        let mut noise = Vec::new();
        for _ in 0..300 {
            let mut img = vec![9.0f32; c * h * w];
            let b = re
                .apply(&mut rng, &mut img, c, h, w)
                .expect("20×24 always fits");
            assert!(b.top + b.height <= h && b.left + b.width <= w);
            assert!(b.height < h && b.width < w);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let v = img[(ch * h + y) * w + x];
                        let inside = (b.top..b.top + b.height).contains(&y)
                            && (b.left..b.left + b.width).contains(&x);
                        if inside {
                            noise.push(v);
                        } else {
                            assert_eq!(v, 9.0);
                        }
                    }
                }
            }
            // Area before rounding is in [0.02, 1/3] of 480 = [9.6, 160]; rounding each side by
            // at most ½ keeps it within (√9.6 − ½)² … (√160 + ½)².
            let area = (b.height * b.width) as f64;
            assert!((6.7..=173.2).contains(&area), "{b:?}");
        }
        // Pixel mode: standard normal noise.
        let n = noise.len() as f64;
        let mean = noise.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = noise
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var} over {n}"
        );
    }

    #[test]
    fn sizes_round_half_to_even() {
        // √(6.25·1) = 2.5 → 2 (even), √(12.25) = 3.5 → 4; aspect 1/4 swaps the roles.
        assert_eq!(erase_size(6.25, 1.0), (2, 2));
        assert_eq!(erase_size(12.25, 1.0), (4, 4));
        assert_eq!(erase_size(64.0, 0.25), (4, 16));
        // 0.02 of a 32×32 image at aspect 0.3: h = round(√6.144) = round(2.48) = 2,
        // w = round(√68.27) = round(8.26) = 8.
        assert_eq!(erase_size(0.02 * 1024.0, 0.3), (2, 8));
    }

    #[test]
    fn probability_and_modes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let never = RandomErasing {
            probability: 0.0,
            ..RandomErasing::default()
        };
        let mut img = vec![1.0f32; 3 * 8 * 8];
        for _ in 0..100 {
            assert!(never.apply(&mut rng, &mut img, 3, 8, 8).is_none());
        }
        let quarter = RandomErasing::default();
        let hits = (0..4000)
            .filter(|_| {
                quarter
                    .apply(&mut rng, &mut vec![0.0f32; 3 * 32 * 32], 3, 32, 32)
                    .is_some()
            })
            .count();
        assert!((850..=1150).contains(&hits), "{hits} of 4000 at p 0.25");
        // Const mode writes zeros; rand mode one value per channel.
        let konst = RandomErasing {
            probability: 1.0,
            mode: EraseMode::Const,
            ..RandomErasing::default()
        };
        let mut img = vec![5.0f32; 2 * 16 * 16];
        let b = konst.apply(&mut rng, &mut img, 2, 16, 16).unwrap();
        assert_eq!(
            img.iter().filter(|&&v| v == 0.0).count(),
            2 * b.height * b.width
        );
        let per_channel = RandomErasing {
            mode: EraseMode::Rand,
            ..konst
        };
        let mut img = vec![5.0f32; 2 * 16 * 16];
        let b = per_channel.apply(&mut rng, &mut img, 2, 16, 16).unwrap();
        let first = img[b.top * 16 + b.left];
        let second = img[(16 + b.top) * 16 + b.left];
        assert_eq!(
            img[..256].iter().filter(|&&v| v == first).count(),
            b.height * b.width
        );
        assert_ne!(first, second);
        // A 1×1 image: only a 0×0 box passes `w < 1, h < 1`, so nothing is erased (no panic).
        let mut tiny = vec![3.0f32; 3];
        let _ = konst.apply(&mut rng, &mut tiny, 3, 1, 1);
        assert_eq!(tiny, vec![3.0; 3]);
        // A slice of the wrong length is left alone.
        let mut wrong = vec![3.0f32; 5];
        assert!(konst.apply(&mut rng, &mut wrong, 3, 2, 2).is_none());
        assert!(
            RandomErasing {
                min_area: 0.5,
                max_area: 0.2,
                ..RandomErasing::default()
            }
            .check()
            .is_err()
        );
    }
}
