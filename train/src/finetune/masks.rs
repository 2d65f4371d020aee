//! The drop-path masks of a fine-tune step, drawn on the host as the pretraining step's.

use crate::step::FinetuneStepConfig;
use rand::{Rng, RngExt};
use std::ops::Range;

/// timm's per-sample drop path as scales: for each block's attention and MLP residual (in
/// that order) and each of the B images, `1/keep` with probability `keep = 1 − rate` (the
/// block's rate from [`FinetuneStepConfig::drop_path_rates`]) and 0 otherwise; `2·depth·B`
/// values, row-major `[2·depth, B]`. Empty when drop path is off.
///
/// # Examples
/// ```
/// use patchmix_train::finetune::drop_path_masks;
/// use patchmix_train::step::FinetuneStepConfig;
/// use rand::SeedableRng;
/// let cfg = FinetuneStepConfig::tiny(10); // depth 2, rates [0, 0.1]
/// let m = drop_path_masks(&cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
/// assert_eq!(m.len(), 2 * 2 * cfg.batch);
/// // Block 0 has rate 0: every image keeps both residuals at scale 1.
/// assert!(m[..2 * cfg.batch].iter().all(|&v| v == 1.0));
/// ```
pub fn drop_path_masks<R: Rng + ?Sized>(cfg: &FinetuneStepConfig, rng: &mut R) -> Vec<f32> {
    if !cfg.has_drop_path() {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(2 * cfg.vit.depth * cfg.batch);
    for rate in cfg.drop_path_rates() {
        let keep = 1.0 - rate;
        for _ in 0..2 * cfg.batch {
            let kept = rng.random::<f32>() < keep;
            v.push(if kept { 1.0 / keep } else { 0.0 });
        }
    }
    v
}

/// A data-parallel rank's share of the drop-path masks of a global batch of `batch` images:
/// its `rows` of each of the `2·depth` rows of `masks` (`[2·depth, batch]`, from
/// [`drop_path_masks`] for the global batch), `[2·depth, rows.len()]`. The masks are drawn
/// per global sample, so W ranks drop exactly the paths one process drops. Empty masks stay
/// empty.
///
/// # Examples
/// ```
/// use patchmix_train::finetune::rank_masks;
/// let m: Vec<f32> = (0..8).map(|v| v as f32).collect(); // [2, 4]
/// assert_eq!(rank_masks(&m, 4, 2..4), [2.0, 3.0, 6.0, 7.0]);
/// ```
pub fn rank_masks(masks: &[f32], batch: usize, rows: Range<usize>) -> Vec<f32> {
    masks
        .chunks(batch.max(1))
        .flat_map(|row| row.get(rows.clone()).unwrap_or_default().iter().copied())
        .collect()
}
