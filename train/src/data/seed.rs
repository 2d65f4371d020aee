//! Seeds and orders: everything random in the loader is a function of `(seed, epoch, position)`.

use patchmix_export::data::mix_seed;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Domain tag of the per-epoch shuffle seed.
const SHUFFLE: u64 = 0x5348_5546; // "SHUF"
/// Domain tag of the per-sample augmentation seed.
const SAMPLE: u64 = 0x5341_4D50; // "SAMP"
/// Domain tag of the per-batch Mixup/CutMix seed.
const MIX: u64 = 0x4D49_5842; // "MIXB"

/// The order of `n` samples in `epoch`: a Fisher–Yates shuffle driven by a `ChaCha8Rng`
/// seeded with `mix_seed([seed, epoch, SHUFFLE])` (SplitMix64 folding).
///
/// # Examples
///
/// ```
/// use patchmix_train::data::epoch_order;
///
/// let a = epoch_order(10, 42, 0);
/// assert_eq!(a, epoch_order(10, 42, 0));
/// assert_ne!(a, epoch_order(10, 42, 1));
/// let mut sorted = a.clone();
/// sorted.sort();
/// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
/// ```
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, epoch, SHUFFLE]));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order
}

/// The augmentation seed of the sample at `position` (0-based, in epoch order) of `epoch`:
/// `mix_seed([seed, epoch, position, SAMPLE])`. Independent of threads and batch size.
pub fn sample_seed(seed: u64, epoch: u64, position: usize) -> u64 {
    mix_seed(&[seed, epoch, position as u64, SAMPLE])
}

/// The RNG of one sample: a `ChaCha8Rng` seeded with [`sample_seed`].
pub fn sample_rng(seed: u64, epoch: u64, position: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sample_seed(seed, epoch, position))
}

/// The RNG of one batch's Mixup/CutMix draw ([`crate::augment::mixup::Mixup::sample`]):
/// a `ChaCha8Rng` seeded with `mix_seed([seed, epoch, step, MIX])`, independent of the
/// per-sample streams, so a resumed run draws the same λ and boxes.
///
/// # Examples
///
/// ```
/// use patchmix_train::data::mix_rng;
/// use rand::Rng;
///
/// assert_eq!(mix_rng(1, 2, 3).next_u64(), mix_rng(1, 2, 3).next_u64());
/// assert_ne!(mix_rng(1, 2, 3).next_u64(), mix_rng(1, 2, 4).next_u64());
/// ```
pub fn mix_rng(seed: u64, epoch: u64, step: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix_seed(&[seed, epoch, step, MIX]))
}
