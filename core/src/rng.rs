//! The small, fully specified PRNG that draws seeded permutations.
//!
//! Another runtime reproduces a plan from a seed by reimplementing exactly this:
//!
//! 1. **Generator: SplitMix64** (Steele, Lea & Flood 2014), state `s` = the 64-bit seed. Each
//!    draw does, in wrapping 64-bit arithmetic:
//!    `s += 0x9E3779B97F4A7C15; z = s; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//!    z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)`.
//! 2. **Unbiased bounded draw** `below(n)` for `n ≥ 1`: let `r = (2^64 − n) mod n`
//!    (= `2^64 mod n`); draw `x` until `x ≥ r`; return `x mod n`. The accepted range
//!    `[r, 2^64)` holds a multiple of `n` values, so every result is equally likely.
//! 3. **Fisher–Yates** ("Durstenfeld", from the back): `perm = [0, 1, …, T−1]`; for
//!    `i = T−1` down to `1`: `j = below(i + 1)`; swap `perm[i]` and `perm[j]`.
//!
//! A Python version, for reference:
//!
//! ```text
//! M = (1 << 64) - 1
//! def splitmix64(state):
//!     while True:
//!         state = (state + 0x9E3779B97F4A7C15) & M
//!         z = state
//!         z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
//!         z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
//!         yield z ^ (z >> 31)
//! def permutation(seed, T):
//!     g = splitmix64(seed); perm = list(range(T))
//!     for i in range(T - 1, 0, -1):
//!         n = i + 1; r = (1 << 64) % n
//!         x = next(g)
//!         while x < r: x = next(g)
//!         j = x % n
//!         perm[i], perm[j] = perm[j], perm[i]
//!     return perm
//! ```
//!
//! The first outputs of SplitMix64 for seed 0 are `0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, …`.

use crate::num::IndexInt;
use crate::{Error, Result};

/// The SplitMix64 generator (see the [module documentation](self) for the exact definition).
///
/// # Examples
///
/// ```
/// use patchmix_core::SplitMix64;
///
/// let mut rng = SplitMix64::new(0);
/// assert_eq!(rng.next_u64(), 0xE220A8397B1DCDAF);
/// assert!(rng.below(10) < 10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state is `seed`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _rng = patchmix_core::SplitMix64::new(42);
    /// ```
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rng = patchmix_core::SplitMix64::new(0);
    /// assert_eq!(rng.next_u64(), 0xE220A8397B1DCDAF);
    /// assert_eq!(rng.next_u64(), 0x6E789E6AA1B965F4);
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from `0..n` by rejection (see the [module documentation](self)).
    /// `n = 0` stands for `2^64`, i.e. one raw draw.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rng = patchmix_core::SplitMix64::new(1);
    /// assert_eq!(rng.below(1), 0);
    /// assert!(rng.below(3) < 3);
    /// ```
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return self.next_u64();
        }
        let reject_below = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= reject_below {
                return x % n;
            }
        }
    }
}

/// Fills `perm` with the permutation of `0..perm.len()` drawn from `seed` (SplitMix64 +
/// unbiased Fisher–Yates, exactly as in the [module documentation](self)).
///
/// # Errors
///
/// [`Error::IndexOverflow`] if `perm.len() − 1` does not fit `I`.
///
/// # Examples
///
/// ```
/// let mut perm = [0u32; 16];
/// patchmix_core::fill_permutation(7, &mut perm).unwrap();
/// let mut sorted = perm;
/// sorted.sort();
/// assert_eq!(sorted, core::array::from_fn::<u32, 16, _>(|i| i as u32));
/// ```
pub fn fill_permutation<I: IndexInt>(seed: u64, perm: &mut [I]) -> Result<()> {
    let len = perm.len();
    if len == 0 {
        return Ok(());
    }
    if I::from_usize(len - 1).is_none() {
        return Err(Error::IndexOverflow {
            value: len - 1,
            index_type: I::NAME,
        });
    }
    for (i, slot) in perm.iter_mut().enumerate() {
        *slot = crate::num::index_from(i)?;
    }
    let mut rng = SplitMix64::new(seed);
    for i in (1..len).rev() {
        // i + 1 ≤ len ≤ usize::MAX fits u64 on every supported target; the draw is ≤ i.
        let j = rng.below(i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    Ok(())
}
