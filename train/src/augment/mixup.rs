//! Mixup / CutMix on a normalised batch and its soft targets, as timm's `Mixup` computes them
//! in batch mode (`mode='batch'`, `correct_lam=True`), which the original's fine-tuning uses
//! with `mixup_alpha 0.8, cutmix_alpha 1.0, prob 1.0, switch_prob 0.5, label_smoothing 0.1`.
//!
//! One draw per batch ([`Mixup::sample`]): with probability `prob` the batch is mixed; then
//! CutMix with probability `switch_prob` (when both alphas are positive), λ ~ Beta(α, α) of the
//! chosen kind. A CutMix box is timm's `rand_bbox` ([`cut_box`]) and λ is corrected to the
//! box's clipped area ([`box_lambda`]). Sample `i` is mixed with sample `n − 1 − i` (timm's
//! `x.flip(0)`), and its target is `λ·smooth(yᵢ) + (1 − λ)·smooth(y_{n−1−i})`
//! ([`mixed_targets`]).
//!
//! Consumed by the fine-tuning step: the host mixes each batch after the loader's per-sample
//! transforms ([`crate::augment::finetune`]) and feeds the targets to a soft-target
//! cross-entropy.

use rand::{Rng, RngExt};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use super::random::coin;

/// A bad Mixup setting or a batch that does not fit it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum MixupError {
    /// A setting is out of its range; the message names it.
    #[error("mixup config: {0}")]
    Config(String),
    /// The batch or its labels do not fit (odd batch, wrong length, label out of range).
    #[error("mixup batch: {0}")]
    Batch(String),
}

/// Mixup settings (timm's `Mixup` arguments, batch mode).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::MixupConfig;
///
/// let cfg = MixupConfig::default(); // the original's fine-tuning recipe
/// assert_eq!((cfg.mixup_alpha, cfg.cutmix_alpha, cfg.label_smoothing), (0.8, 1.0, 0.1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixupConfig {
    /// Mixup's Beta α (0: no Mixup).
    pub mixup_alpha: f64,
    /// CutMix's Beta α (0: no CutMix).
    pub cutmix_alpha: f64,
    /// Probability of mixing a batch at all.
    pub prob: f64,
    /// Probability of CutMix rather than Mixup when both are on.
    pub switch_prob: f64,
    /// Label smoothing of the targets.
    pub label_smoothing: f64,
    /// Correct λ to the area of the clipped CutMix box.
    pub correct_lam: bool,
}

impl Default for MixupConfig {
    /// The original's `config/finetune/*.py`: Mixup 0.8, CutMix 1.0, prob 1, switch 0.5,
    /// smoothing 0.1, λ corrected.
    fn default() -> Self {
        Self {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5,
            label_smoothing: 0.1,
            correct_lam: true,
        }
    }
}

/// A CutMix box: rows `y0..y1`, columns `x0..x1` (timm's `yl, yh, xl, xh`); may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
}

impl CutBox {
    /// Pixels inside the box.
    pub fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// timm's `rand_bbox` for a given centre `(cy, cx)`: the cut is `⌊H·√(1−λ)⌋ × ⌊W·√(1−λ)⌋`,
/// the box `cy − ⌊cut_h/2⌋ .. cy + ⌊(cut_h+1)/2⌋` (and the same across), each end clipped to
/// `[0, H]` / `[0, W]`. timm draws `cy` in `0..H` and `cx` in `0..W`.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::{CutBox, cut_box};
///
/// // λ = 0.75 on 8×8: √0.25 = 0.5, a 4×4 cut centred at (1, 6) clips at the top and right.
/// assert_eq!(cut_box(8, 8, 0.75, 1, 6), CutBox { y0: 0, y1: 3, x0: 4, x1: 8 });
/// ```
pub fn cut_box(height: usize, width: usize, lam: f64, cy: usize, cx: usize) -> CutBox {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    // Python's int() truncates toward zero; the product is non-negative.
    let cut_h = (height as f64 * ratio) as i64;
    let cut_w = (width as f64 * ratio) as i64;
    let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
    let (cy, cx) = (cy as i64, cx as i64);
    // Python's `//` floors; both operands are non-negative here.
    CutBox {
        y0: clip(cy - cut_h / 2, height),
        y1: clip(cy + (cut_h + 1) / 2, height),
        x0: clip(cx - cut_w / 2, width),
        x1: clip(cx + (cut_w + 1) / 2, width),
    }
}

/// timm's `correct_lam`: `1 − box area / (H·W)`.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::{CutBox, box_lambda};
///
/// assert_eq!(box_lambda(CutBox { y0: 0, y1: 3, x0: 4, x1: 8 }, 8, 8), 1.0 - 12.0 / 64.0);
/// ```
pub fn box_lambda(b: CutBox, height: usize, width: usize) -> f64 {
    1.0 - b.area() as f64 / (height * width) as f64
}

/// One batch's mixing draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mix {
    /// No mixing (λ = 1): the targets are plain label smoothing.
    Off,
    /// Mixup: every pixel `λ·x + (1 − λ)·x_flip`.
    Mixup {
        /// The weight of the sample itself.
        lam: f64,
    },
    /// CutMix: the box's pixels come from the flipped batch.
    CutMix {
        /// The weight of the sample itself (corrected to the box when `correct_lam`).
        lam: f64,
        /// The pasted box.
        cut: CutBox,
    },
}

impl Mix {
    /// The λ of the targets (1 for [`Mix::Off`]).
    pub fn lambda(&self) -> f64 {
        match *self {
            Mix::Off => 1.0,
            Mix::Mixup { lam } | Mix::CutMix { lam, .. } => lam,
        }
    }
}

/// timm's `one_hot` with label smoothing `s`: `off = s / classes`, `on = 1 − s + off`
/// (both rounded to f32), row-major `[labels.len(), classes]`.
///
/// # Errors
///
/// [`MixupError::Batch`] when a label is not below `classes`.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::smooth_one_hot;
///
/// let t = smooth_one_hot(&[1], 4, 0.1)?;
/// assert_eq!(t, vec![0.025, 0.925, 0.025, 0.025]);
/// # Ok::<(), patchmix_train::augment::mixup::MixupError>(())
/// ```
pub fn smooth_one_hot(
    labels: &[usize],
    classes: usize,
    smoothing: f64,
) -> Result<Vec<f32>, MixupError> {
    let off = smoothing / classes as f64;
    let on = 1.0 - smoothing + off;
    let mut out = vec![off as f32; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        if y >= classes {
            return Err(MixupError::Batch(format!(
                "label {y} of sample {i} is not below the class count {classes}"
            )));
        }
        out[i * classes + y] = on as f32;
    }
    Ok(out)
}

/// timm's `mixup_target`: `λ·smooth(y) + (1 − λ)·smooth(y.flip(0))`, each product in f32 with
/// λ and `1 − λ` rounded to f32 (as PyTorch multiplies an f32 tensor by a Python float).
///
/// # Errors
///
/// As [`smooth_one_hot`].
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::mixed_targets;
///
/// // Two samples, classes 0 and 1, no smoothing, λ = 0.75: [0.75, 0.25] and [0.25, 0.75].
/// let t = mixed_targets(&[0, 1], 2, 0.0, 0.75)?;
/// assert_eq!(t, vec![0.75, 0.25, 0.25, 0.75]);
/// # Ok::<(), patchmix_train::augment::mixup::MixupError>(())
/// ```
pub fn mixed_targets(
    labels: &[usize],
    classes: usize,
    smoothing: f64,
    lam: f64,
) -> Result<Vec<f32>, MixupError> {
    let y1 = smooth_one_hot(labels, classes, smoothing)?;
    let n = labels.len();
    let (a, b) = (lam as f32, (1.0 - lam) as f32);
    let mut out = vec![0.0f32; y1.len()];
    for i in 0..n {
        let j = n - 1 - i;
        for k in 0..classes {
            out[i * classes + k] = y1[i * classes + k] * a + y1[j * classes + k] * b;
        }
    }
    Ok(out)
}

/// Mixes an NCHW batch in place as timm's `_mix_batch` does for `mix`: Mixup blends sample
/// `i` with sample `n − 1 − i` (`x·λ + x_flip·(1 − λ)` in f32), CutMix copies the box from
/// sample `n − 1 − i`. Both read the unmixed batch.
///
/// # Errors
///
/// [`MixupError::Batch`] when `images` is not `n · chw` floats or the box does not fit `hw`.
pub fn mix_images(
    mix: &Mix,
    images: &mut [f32],
    n: usize,
    channels: usize,
    (height, width): (usize, usize),
) -> Result<(), MixupError> {
    let hw = height * width;
    let chw = channels * hw;
    if images.len() != n * chw {
        return Err(MixupError::Batch(format!(
            "{} floats are not {n} images of {channels}×{height}×{width}",
            images.len()
        )));
    }
    match *mix {
        Mix::Off => {}
        Mix::Mixup { lam } => {
            let (a, b) = (lam as f32, (1.0 - lam) as f32);
            let orig = images.to_vec();
            for i in 0..n {
                let j = n - 1 - i;
                let (dst, src) = (
                    &mut images[i * chw..(i + 1) * chw],
                    &orig[j * chw..(j + 1) * chw],
                );
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *d * a + *s * b;
                }
            }
        }
        Mix::CutMix { cut, .. } => {
            if cut.y1 > height || cut.x1 > width || cut.y0 > cut.y1 || cut.x0 > cut.x1 {
                return Err(MixupError::Batch(format!(
                    "cut box {cut:?} does not fit {height}×{width}"
                )));
            }
            // Swapping the box between i and n − 1 − i is the flip's copy for both of them.
            for i in 0..n / 2 {
                let j = n - 1 - i;
                let (head, tail) = images.split_at_mut(j * chw);
                let (a, b) = (&mut head[i * chw..(i + 1) * chw], &mut tail[..chw]);
                for c in 0..channels {
                    for y in cut.y0..cut.y1 {
                        let row = c * hw + y * width;
                        a[row + cut.x0..row + cut.x1]
                            .swap_with_slice(&mut b[row + cut.x0..row + cut.x1]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// timm's `Mixup` in batch mode: draws a [`Mix`] per batch and applies it.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::mixup::{Mixup, MixupConfig};
/// use rand::SeedableRng;
///
/// let mixup = Mixup::new(MixupConfig::default())?;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
/// let mut images = vec![0.5f32; 4 * 3 * 8 * 8];
/// let (mix, targets) = mixup.mix_batch(&mut rng, &mut images, 3, (8, 8), &[0, 1, 2, 3], 10)?;
/// assert_eq!(targets.len(), 4 * 10);
/// assert!(mix.lambda() > 0.0 && mix.lambda() <= 1.0);
/// # Ok::<(), patchmix_train::augment::mixup::MixupError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mixup {
    cfg: MixupConfig,
    mixup_beta: Option<Beta<f64>>,
    cutmix_beta: Option<Beta<f64>>,
}

impl Mixup {
    /// Validates `cfg`.
    ///
    /// # Errors
    ///
    /// [`MixupError::Config`] naming a negative or non-finite α, a probability outside
    /// `[0, 1]` or a smoothing outside `[0, 1)`.
    pub fn new(cfg: MixupConfig) -> Result<Self, MixupError> {
        let beta = |name: &str, a: f64| -> Result<Option<Beta<f64>>, MixupError> {
            if !(a.is_finite() && a >= 0.0) {
                return Err(MixupError::Config(format!(
                    "{name} = {a} must be finite and ≥ 0"
                )));
            }
            if a == 0.0 {
                return Ok(None);
            }
            Beta::new(a, a)
                .map(Some)
                .map_err(|e| MixupError::Config(format!("{name} = {a}: {e}")))
        };
        for (name, p) in [("prob", cfg.prob), ("switch_prob", cfg.switch_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(MixupError::Config(format!(
                    "{name} = {p} is not a probability in [0, 1]"
                )));
            }
        }
        if !(0.0..1.0).contains(&cfg.label_smoothing) {
            return Err(MixupError::Config(format!(
                "label_smoothing = {} must be in [0, 1)",
                cfg.label_smoothing
            )));
        }
        Ok(Self {
            cfg,
            mixup_beta: beta("mixup_alpha", cfg.mixup_alpha)?,
            cutmix_beta: beta("cutmix_alpha", cfg.cutmix_alpha)?,
        })
    }

    /// The settings.
    pub fn config(&self) -> &MixupConfig {
        &self.cfg
    }

    /// One batch's draw, in timm's order: the `prob` coin, the `switch_prob` coin (only when
    /// both kinds are on), λ ~ Beta(α, α), then for CutMix the centre `cy ∈ 0..H`, `cx ∈ 0..W`
    /// and the corrected λ. λ = 1 exactly is [`Mix::Off`], as timm skips the mixing then.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, (height, width): (usize, usize)) -> Mix {
        if !coin(rng, self.cfg.prob) {
            return Mix::Off;
        }
        let (cutmix, beta) = match (self.mixup_beta, self.cutmix_beta) {
            (Some(m), Some(c)) => {
                if coin(rng, self.cfg.switch_prob) {
                    (true, c)
                } else {
                    (false, m)
                }
            }
            (Some(m), None) => (false, m),
            (None, Some(c)) => (true, c),
            (None, None) => return Mix::Off,
        };
        let lam = beta.sample(rng);
        if lam == 1.0 {
            return Mix::Off;
        }
        if !cutmix {
            return Mix::Mixup { lam };
        }
        let cy = rng.random_range(0..height.max(1));
        let cx = rng.random_range(0..width.max(1));
        let cut = cut_box(height, width, lam, cy, cx);
        let lam = if self.cfg.correct_lam {
            box_lambda(cut, height, width)
        } else {
            lam
        };
        Mix::CutMix { lam, cut }
    }

    /// Draws a [`Mix`], mixes the NCHW `images` (`labels.len()` samples of `channels × H × W`)
    /// in place and returns it with the soft targets (`[n, classes]`, row-major).
    ///
    /// # Errors
    ///
    /// [`MixupError::Batch`] for an odd batch (timm requires an even one), images that are
    /// not `n` samples of that shape, or a label not below `classes`.
    pub fn mix_batch<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        images: &mut [f32],
        channels: usize,
        hw: (usize, usize),
        labels: &[usize],
        classes: usize,
    ) -> Result<(Mix, Vec<f32>), MixupError> {
        let n = labels.len();
        if !n.is_multiple_of(2) {
            return Err(MixupError::Batch(format!("batch size {n} must be even")));
        }
        // Checks the labels before touching the images.
        smooth_one_hot(labels, classes, 0.0)?;
        if images.len() != n * channels * hw.0 * hw.1 {
            return Err(MixupError::Batch(format!(
                "{} floats are not {n} images of {channels}×{}×{}",
                images.len(),
                hw.0,
                hw.1
            )));
        }
        let mix = self.sample(rng, hw);
        mix_images(&mix, images, n, channels, hw)?;
        let targets = mixed_targets(labels, classes, self.cfg.label_smoothing, mix.lambda())?;
        Ok((mix, targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn boxes_clip_at_each_edge() {
        // 10×10, λ = 0.64: √0.36 = 0.6, cut 6×6, half-below 3, half-above (6+1)//2 = 3.
        // Centre (5, 5): rows 2..8, cols 2..8, nothing clipped.
        assert_eq!(
            cut_box(10, 10, 0.64, 5, 5),
            CutBox {
                y0: 2,
                y1: 8,
                x0: 2,
                x1: 8
            }
        );
        // Top/left edge: centre (1, 0) → rows −2..4 → 0..4, cols −3..3 → 0..3.
        assert_eq!(
            cut_box(10, 10, 0.64, 1, 0),
            CutBox {
                y0: 0,
                y1: 4,
                x0: 0,
                x1: 3
            }
        );
        // Bottom/right edge: centre (9, 8) → rows 6..12 → 6..10, cols 5..11 → 5..10.
        assert_eq!(
            cut_box(10, 10, 0.64, 9, 8),
            CutBox {
                y0: 6,
                y1: 10,
                x0: 5,
                x1: 10
            }
        );
        // Odd cut: 7×5 image, λ = 0.5 → √0.5 = 0.7071: cut_h = int(4.95) = 4, cut_w = int(3.54) = 3;
        // centre (3, 2): rows 3−2..3+2 = 1..5, cols 2−1..2+2 = 1..4.
        assert_eq!(
            cut_box(7, 5, 0.5, 3, 2),
            CutBox {
                y0: 1,
                y1: 5,
                x0: 1,
                x1: 4
            }
        );
        // λ = 0: the cut is the whole image, centred at (0, 0) it keeps only its lower-right quarter.
        assert_eq!(
            cut_box(4, 4, 0.0, 0, 0),
            CutBox {
                y0: 0,
                y1: 2,
                x0: 0,
                x1: 2
            }
        );
    }

    #[test]
    fn lambda_is_corrected_to_the_clipped_area() {
        // The 6×6 box clipped to 4×3 covers 12 of 100 pixels: λ = 0.88, not 0.64.
        let b = cut_box(10, 10, 0.64, 1, 0);
        assert_eq!(box_lambda(b, 10, 10), 0.88);
        // Unclipped: 36 of 100 → exactly the drawn 0.64.
        assert_eq!(box_lambda(cut_box(10, 10, 0.64, 5, 5), 10, 10), 1.0 - 0.36);
    }

    #[test]
    fn targets_by_hand() {
        // 4 classes, s = 0.1: off = 0.025, on = 0.925. Labels [2, 0], λ = 0.7:
        // row 0 = 0.7·smooth(2) + 0.3·smooth(0) = [0.3·0.925 + 0.7·0.025, 0.025, 0.7·0.925 + 0.3·0.025, 0.025]
        //       = [0.295, 0.025, 0.655, 0.025]; row 1 the mirror: [0.655, 0.025, 0.295, 0.025].
        let t = mixed_targets(&[2, 0], 4, 0.1, 0.7).unwrap();
        let want = [0.295, 0.025, 0.655, 0.025, 0.655, 0.025, 0.295, 0.025];
        for (g, w) in t.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{t:?}");
        }
        // Rows sum to one.
        assert!((t[..4].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // λ = 1: plain label smoothing.
        assert_eq!(
            mixed_targets(&[3], 4, 0.1, 1.0).unwrap(),
            smooth_one_hot(&[3], 4, 0.1).unwrap()
        );
        let e = smooth_one_hot(&[0, 4], 4, 0.1).unwrap_err().to_string();
        assert!(e.contains("label 4 of sample 1"), "{e}");
    }

    #[test]
    fn mixup_pixels_by_hand() {
        // Two 1×1×2 images [1, 2] and [10, 20], λ = 0.75:
        // image 0 = 0.75·[1, 2] + 0.25·[10, 20] = [3.25, 6.5]; image 1 = [7.75, 15.5].
        let mut x = vec![1.0, 2.0, 10.0, 20.0];
        mix_images(&Mix::Mixup { lam: 0.75 }, &mut x, 2, 1, (1, 2)).unwrap();
        assert_eq!(x, vec![3.25, 6.5, 7.75, 15.5]);
    }

    #[test]
    fn cutmix_pixels_by_hand() {
        // Four 1-channel 3×3 images filled with 1, 2, 3, 4; box rows 1..3, cols 0..2.
        // Image 0 takes image 3's box, 1 takes 2's, 2 takes 1's, 3 takes 0's.
        let mut x: Vec<f32> = (1..=4).flat_map(|v| [v as f32; 9]).collect();
        let cut = CutBox {
            y0: 1,
            y1: 3,
            x0: 0,
            x1: 2,
        };
        mix_images(
            &Mix::CutMix {
                lam: 5.0 / 9.0,
                cut,
            },
            &mut x,
            4,
            1,
            (3, 3),
        )
        .unwrap();
        let img0 = [1., 1., 1., 4., 4., 1., 4., 4., 1.];
        let img1 = [2., 2., 2., 3., 3., 2., 3., 3., 2.];
        let img2 = [3., 3., 3., 2., 2., 3., 2., 2., 3.];
        let img3 = [4., 4., 4., 1., 1., 4., 1., 1., 4.];
        assert_eq!(x, [img0, img1, img2, img3].concat());
        assert!(mix_images(&Mix::Off, &mut x, 4, 1, (3, 4)).is_err());
        let outside = CutBox {
            y0: 0,
            y1: 4,
            x0: 0,
            x1: 1,
        };
        assert!(
            mix_images(
                &Mix::CutMix {
                    lam: 0.5,
                    cut: outside
                },
                &mut x,
                4,
                1,
                (3, 3)
            )
            .is_err()
        );
    }

    #[test]
    fn sampling_follows_the_switch_and_corrects_lambda() {
        let mixup = Mixup::new(MixupConfig::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut n_cut, mut n_mix) = (0, 0);
        for _ in 0..2000 {
            match mixup.sample(&mut rng, (16, 12)) {
                Mix::CutMix { lam, cut } => {
                    n_cut += 1;
                    assert_eq!(lam, box_lambda(cut, 16, 12));
                }
                Mix::Mixup { lam } => {
                    n_mix += 1;
                    assert!(lam > 0.0 && lam < 1.0);
                }
                Mix::Off => panic!("prob 1.0 never skips"),
            }
        }
        // switch_prob 0.5: a binomial(2000, 0.5) is within 1000 ± 150 with overwhelming probability.
        assert!((850..=1150).contains(&n_cut), "{n_cut} {n_mix}");
        let off = Mixup::new(MixupConfig {
            prob: 0.0,
            ..MixupConfig::default()
        })
        .unwrap();
        assert_eq!(off.sample(&mut rng, (4, 4)), Mix::Off);
        let only_cut = Mixup::new(MixupConfig {
            mixup_alpha: 0.0,
            ..MixupConfig::default()
        })
        .unwrap();
        assert!(matches!(
            only_cut.sample(&mut rng, (4, 4)),
            Mix::CutMix { .. }
        ));
    }

    #[test]
    fn mix_batch_checks_its_input() {
        let mixup = Mixup::new(MixupConfig::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut x = vec![0.0; 3 * 4];
        let e = mixup
            .mix_batch(&mut rng, &mut x, 1, (2, 2), &[0, 1, 2], 3)
            .unwrap_err();
        assert!(e.to_string().contains("batch size 3 must be even"), "{e}");
        let mut x = vec![0.0; 2 * 4];
        let e = mixup
            .mix_batch(&mut rng, &mut x, 1, (2, 2), &[0, 5], 3)
            .unwrap_err();
        assert!(e.to_string().contains("label 5"), "{e}");
        let e = mixup
            .mix_batch(&mut rng, &mut x, 1, (2, 3), &[0, 1], 3)
            .unwrap_err();
        assert!(e.to_string().contains("8 floats"), "{e}");
        for bad in [
            MixupConfig {
                mixup_alpha: -1.0,
                ..MixupConfig::default()
            },
            MixupConfig {
                prob: 1.5,
                ..MixupConfig::default()
            },
            MixupConfig {
                label_smoothing: 1.0,
                ..MixupConfig::default()
            },
        ] {
            assert!(matches!(Mixup::new(bad), Err(MixupError::Config(_))));
        }
    }
}
