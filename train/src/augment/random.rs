//! The few random draws the augmentations need, written so that no range can panic.

use rand::{Rng, RngExt};

/// A uniform draw in `[lo, hi)` (`lo` when the range is empty), as `torch.empty(1).uniform_`.
pub fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// `true` with probability `p` (`p <= 0` never, `p >= 1` always), as `torch.rand(1) < p`.
pub fn coin<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// A uniform integer in `0..=max`, as `torch.randint(0, max + 1)`.
pub fn int_to<R: Rng + ?Sized>(rng: &mut R, max: u32) -> u32 {
    rng.random_range(0..=max)
}

/// A uniformly random permutation of `0..4` (Fisher–Yates), as `torch.randperm(4)`.
pub fn perm4<R: Rng + ?Sized>(rng: &mut R) -> [usize; 4] {
    let mut p = [0, 1, 2, 3];
    for i in (1..4).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}
