//! The index algebra of PatchMix: shuffle, group mix and unshuffle composed into one gather.
//!
//! Notation (as in the original implementation, `module/mix.py` of visresearch/patchmix):
//! a batch of `B` images is cut into `T = grid²` tokens each, numbered row-major
//! (`t = row·grid + col`).
//!
//! * **Shuffle.** One permutation `perm` of `0..T` is shared by the batch: shuffled position `j`
//!   holds token `perm[j]`; `inv = argsort(perm)`, i.e. `inv[perm[j]] = j`.
//! * **Group mix.** `S = ⌊T/m⌋`. For `j < m·S`: `l = b·m + ⌊j/S⌋`,
//!   `l' = (l + (l mod m)·m) mod (B·m)`, `b' = ⌊l'/m⌋`, `j' = (l' mod m)·S + j mod S`, and output
//!   `(b, j)` takes input `(b', j')`. Positions `j ≥ m·S` are not mixed. So mixed image `b` holds
//!   `S` tokens from each of the images `b, b+1, …, b+m−1 (mod B)`.
//! * **Unshuffle.** Output token `(b, t)` sits at shuffled position `inv[t]`.
//!
//! The composite is one gather over the `B·T` tokens of the batch,
//! `source[b·T + t] = b'·T + perm[j']` with `(b', j') = mix(b, inv[t])`, and it is a bijection.
//! Working the formula through, `j' = j` and `perm[j'] = t`: a token never moves within its image,
//! only between images, `source[b·T+t] = ((b + ⌊inv[t]/S⌋) mod B)·T + t` when `inv[t] < m·S`.
//! [`fill_source`] nevertheless evaluates the literal formula above.

use crate::num::{IndexInt, check_len, index_from, mul};
use crate::{Error, Result};

/// The validated shape of a PatchMix plan: batch `B`, grid (so `T = grid²` tokens per image) and
/// mix number `m`.
///
/// # Examples
///
/// ```
/// use patchmix_core::MixGeometry;
///
/// let g = MixGeometry::new(8, 4, 3)?;
/// assert_eq!((g.tokens(), g.group_size(), g.mixed_tokens(), g.total_tokens()), (16, 5, 15, 128));
/// # Ok::<(), patchmix_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MixGeometry {
    batch: usize,
    grid: usize,
    mix: usize,
    tokens: usize,
    total: usize,
}

impl MixGeometry {
    /// Checks and stores `B = batch`, `grid` and `m = mix`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroBatch`], [`Error::ZeroGrid`], [`Error::ZeroMix`],
    /// [`Error::MixExceedsTokens`] when `m > T`, and [`Error::SizeOverflow`] when `grid²` or
    /// `B·T` overflows `usize`.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_core::{Error, MixGeometry};
    ///
    /// assert!(MixGeometry::new(2, 4, 2).is_ok());
    /// assert_eq!(MixGeometry::new(0, 4, 2), Err(Error::ZeroBatch));
    /// assert_eq!(MixGeometry::new(2, 4, 0), Err(Error::ZeroMix));
    /// assert_eq!(MixGeometry::new(2, 2, 5), Err(Error::MixExceedsTokens { mix: 5, tokens: 4 }));
    /// ```
    pub fn new(batch: usize, grid: usize, mix: usize) -> Result<Self> {
        if batch == 0 {
            return Err(Error::ZeroBatch);
        }
        if grid == 0 {
            return Err(Error::ZeroGrid);
        }
        if mix == 0 {
            return Err(Error::ZeroMix);
        }
        let tokens = mul(grid, grid, "token count T = grid²")?;
        if mix > tokens {
            return Err(Error::MixExceedsTokens { mix, tokens });
        }
        let total = mul(batch, tokens, "token count B·T")?;
        Ok(Self {
            batch,
            grid,
            mix,
            tokens,
            total,
        })
    }

    /// The batch size `B`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 2, 2).unwrap().batch(), 3);
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens per image side.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 2, 2).unwrap().grid(), 2);
    /// ```
    pub const fn grid(&self) -> usize {
        self.grid
    }

    /// The mix number `m` (images per mixed image).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 2, 2).unwrap().mix(), 2);
    /// ```
    pub const fn mix(&self) -> usize {
        self.mix
    }

    /// Tokens per image, `T = grid²`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 2, 2).unwrap().tokens(), 4);
    /// ```
    pub const fn tokens(&self) -> usize {
        self.tokens
    }

    /// Tokens taken from each source image, `S = ⌊T/m⌋`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 3, 2).unwrap().group_size(), 4);
    /// ```
    pub const fn group_size(&self) -> usize {
        self.tokens / self.mix
    }

    /// Mixed shuffled positions per image, `m·S` (the tail `T − m·S` is not mixed).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 3, 2).unwrap().mixed_tokens(), 8);
    /// ```
    pub const fn mixed_tokens(&self) -> usize {
        self.mix * (self.tokens / self.mix)
    }

    /// Tokens in the batch, `B·T` (the length of `source`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::MixGeometry::new(3, 2, 2).unwrap().total_tokens(), 12);
    /// ```
    pub const fn total_tokens(&self) -> usize {
        self.total
    }

    /// The group mix on shuffled positions: output `(b, j)` takes input `(b', j')`, by the literal
    /// formula of the [module documentation](self). `None` when `b ≥ B` or `j ≥ T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = patchmix_core::MixGeometry::new(4, 2, 2)?; // T = 4, S = 2
    /// assert_eq!(g.mix_source(0, 0), Some((0, 0)));
    /// assert_eq!(g.mix_source(0, 2), Some((1, 2)));
    /// assert_eq!(g.mix_source(3, 3), Some((0, 3)));
    /// assert_eq!(g.mix_source(4, 0), None);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    pub fn mix_source(&self, b: usize, j: usize) -> Option<(usize, usize)> {
        if b >= self.batch || j >= self.tokens {
            return None;
        }
        let m = self.mix;
        let s = self.group_size();
        if j >= m * s {
            return Some((b, j));
        }
        // b < B and j/S < m, so l < B·m ≤ B·T fits usize. (l mod m)·m may not (m² can exceed
        // usize), so the literal formula is evaluated in u128, where it cannot overflow.
        let l = b * m + j / s;
        let (l128, m128) = (l as u128, m as u128);
        let lm = (self.batch * m) as u128;
        let shifted = ((l128 + (l128 % m128) * m128) % lm) as usize; // < B·m: fits usize
        Some((shifted / m, (shifted % m) * s + j % s))
    }
}

/// Fills `inv` with the inverse of `perm` (`inv[perm[j]] = j`, i.e. `argsort(perm)`) and so
/// checks that `perm` is a permutation of `0..perm.len()`. Needs no allocation.
///
/// # Errors
///
/// [`Error::BufferLength`] if `inv.len() != perm.len()`, [`Error::PermutationOutOfRange`] for an
/// entry that is negative or `≥ T`, [`Error::PermutationDuplicate`] for a repeated entry, and
/// [`Error::IndexOverflow`] if `T − 1` does not fit `J`.
///
/// # Examples
///
/// ```
/// use patchmix_core::{Error, fill_inverse};
///
/// let mut inv = [0u32; 4];
/// fill_inverse(&[2u32, 0, 3, 1], &mut inv)?;
/// assert_eq!(inv, [1, 3, 0, 2]);
/// assert_eq!(
///     fill_inverse(&[2u32, 0, 2, 1], &mut inv),
///     Err(Error::PermutationDuplicate { value: 2, first: 0, second: 2 })
/// );
/// # Ok::<(), Error>(())
/// ```
pub fn fill_inverse<P: IndexInt, J: IndexInt>(perm: &[P], inv: &mut [J]) -> Result<()> {
    let tokens = perm.len();
    check_len("inv", tokens, inv.len())?;
    if tokens == 0 {
        return Ok(());
    }
    index_from::<J>(tokens - 1)?;
    for (position, &p) in perm.iter().enumerate() {
        match p.to_usize() {
            Some(t) if t < tokens => {
                if let Some(slot) = inv.get_mut(t) {
                    *slot = index_from(position)?;
                }
            }
            _ => {
                return Err(Error::PermutationOutOfRange {
                    position,
                    value: p.to_i128(),
                    tokens,
                });
            }
        }
    }
    // Every entry is in range. `perm` is a permutation iff it is onto, iff every t is the image of
    // the position inv[t] last written for it. A value missing from `perm` cannot pass this check
    // whatever `inv` held before.
    let onto = inv.iter().enumerate().all(|(t, &j)| {
        j.to_usize()
            .and_then(|j| perm.get(j))
            .and_then(|p| p.to_usize())
            == Some(t)
    });
    if onto {
        return Ok(());
    }
    // Not onto, so some value repeats: the first position whose value was overwritten later.
    for (first, &p) in perm.iter().enumerate() {
        let value = p.to_usize().unwrap_or(0);
        let second = inv.get(value).and_then(|j| j.to_usize()).unwrap_or(first);
        if second != first {
            return Err(Error::PermutationDuplicate {
                value,
                first,
                second,
            });
        }
    }
    // Unreachable for a non-onto map of a finite set into itself; reported as a duplicate anyway.
    Err(Error::PermutationDuplicate {
        value: 0,
        first: 0,
        second: 0,
    })
}

/// Fills `source` (length `B·T`) with the PatchMix gather for `perm`:
/// `source[b·T + t] = b'·T + perm[j']` where `(b', j') = geometry.mix_source(b, inv[t])`.
///
/// Output token `k` of the mixed batch is input token `source[k]`; see [`crate::apply`] for
/// moving the data. `source` also serves as scratch space, so no allocation is needed.
///
/// # Errors
///
/// [`Error::PermutationLength`] if `perm.len() != T`, the permutation errors of
/// [`fill_inverse`], [`Error::BufferLength`] if `source.len() != B·T`, and
/// [`Error::IndexOverflow`] if `B·T − 1` does not fit `I`.
///
/// # Examples
///
/// ```
/// use patchmix_core::{MixGeometry, fill_source};
///
/// // B = 2, a 2×2 grid (T = 4), m = 2, so S = 2; identity shuffle.
/// let g = MixGeometry::new(2, 2, 2)?;
/// let mut source = [0u32; 8];
/// fill_source(&g, &[0u32, 1, 2, 3], &mut source)?;
/// // Image 0 keeps tokens 0, 1 and takes 2, 3 from image 1; image 1 the other way round.
/// assert_eq!(source, [0, 1, 6, 7, 4, 5, 2, 3]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn fill_source<P: IndexInt, I: IndexInt>(
    geometry: &MixGeometry,
    perm: &[P],
    source: &mut [I],
) -> Result<()> {
    let tokens = geometry.tokens();
    if perm.len() != tokens {
        return Err(Error::PermutationLength {
            expected: tokens,
            actual: perm.len(),
        });
    }
    check_len("source", geometry.total_tokens(), source.len())?;
    index_from::<I>(geometry.total_tokens() - 1)?;
    let (inv, _) = source.split_at_mut(tokens);
    fill_inverse(perm, inv)?;
    // Rows from the last to the first: row 0 holds inv until it is overwritten in place, entry by
    // entry, each entry reading only its own inv[t].
    for b in (0..geometry.batch()).rev() {
        for t in 0..tokens {
            let k = b * tokens + t;
            let j = source
                .get(t)
                .and_then(|j| j.to_usize())
                .ok_or(Error::SizeOverflow { what: "inverse" })?;
            let (b_src, j_src) = geometry
                .mix_source(b, j)
                .ok_or(Error::SizeOverflow { what: "mix source" })?;
            let t_src = perm
                .get(j_src)
                .and_then(|p| p.to_usize())
                .ok_or(Error::SizeOverflow { what: "perm" })?;
            let value = index_from(b_src * tokens + t_src)?;
            if let Some(slot) = source.get_mut(k) {
                *slot = value;
            }
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
pub use owned::MixPlan;

#[cfg(feature = "alloc")]
mod owned {
    use super::{MixGeometry, fill_inverse, fill_source};
    use crate::apply::{ImageShape, apply_nchw, apply_patches};
    use crate::num::IndexInt;
    use crate::{Result, fill_permutation};
    use alloc::vec;
    use alloc::vec::Vec;

    /// An owned PatchMix plan (feature `alloc`): geometry, `perm`, `inv` and the `source` gather.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_core::{ImageShape, MixPlan};
    ///
    /// let plan = MixPlan::from_seed(4, 4, 2, 42)?; // B = 4, 4×4 grid, m = 2
    /// let shape = ImageShape::square(3, 8); // C = 3, 8×8 pixels, so 2×2 patches
    /// let images: Vec<f32> = (0..4 * 3 * 8 * 8).map(|x| x as f32).collect();
    /// let mut mixed = vec![0.0f32; images.len()];
    /// plan.apply_nchw(shape, &images, &mut mixed)?;
    /// assert_eq!(plan.source().len(), 4 * 16);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MixPlan {
        geometry: MixGeometry,
        perm: Vec<u32>,
        inverse: Vec<u32>,
        source: Vec<u32>,
    }

    impl MixPlan {
        /// The plan whose permutation is drawn from `seed` (see [`crate::rng`]).
        ///
        /// # Errors
        ///
        /// Those of [`MixGeometry::new`], and [`crate::Error::IndexOverflow`] if `B·T − 1`
        /// does not fit `u32`.
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_seed(2, 2, 2, 0)?;
        /// assert_eq!(plan.perm().len(), 4);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn from_seed(batch: usize, grid: usize, mix: usize, seed: u64) -> Result<Self> {
            let geometry = MixGeometry::new(batch, grid, mix)?;
            crate::num::index_from::<u32>(geometry.total_tokens() - 1)?;
            let mut perm = vec![0u32; geometry.tokens()];
            fill_permutation(seed, &mut perm)?;
            Self::build(geometry, perm)
        }

        /// The plan for a caller-supplied permutation of `0..T`.
        ///
        /// # Errors
        ///
        /// Those of [`MixGeometry::new`] and [`fill_source`] (`perm` not a permutation of the
        /// right length, `B·T − 1` not fitting `u32`).
        ///
        /// # Examples
        ///
        /// ```
        /// use patchmix_core::{Error, MixPlan};
        ///
        /// let plan = MixPlan::from_permutation(2, 2, 2, &[3usize, 2, 1, 0])?;
        /// assert_eq!(plan.inverse(), &[3, 2, 1, 0]);
        /// assert!(matches!(
        ///     MixPlan::from_permutation(2, 2, 2, &[0usize, 1, 2]),
        ///     Err(Error::PermutationLength { expected: 4, actual: 3 })
        /// ));
        /// # Ok::<(), Error>(())
        /// ```
        pub fn from_permutation<P: IndexInt>(
            batch: usize,
            grid: usize,
            mix: usize,
            perm: &[P],
        ) -> Result<Self> {
            let geometry = MixGeometry::new(batch, grid, mix)?;
            if perm.len() != geometry.tokens() {
                return Err(crate::Error::PermutationLength {
                    expected: geometry.tokens(),
                    actual: perm.len(),
                });
            }
            crate::num::index_from::<u32>(geometry.total_tokens() - 1)?;
            let mut inverse = vec![0u32; perm.len()];
            fill_inverse(perm, &mut inverse)?;
            let perm = perm
                .iter()
                .map(|p| p.to_usize().map_or(Ok(0), crate::num::index_from::<u32>))
                .collect::<Result<Vec<u32>>>()?;
            Self::build(geometry, perm)
        }

        fn build(geometry: MixGeometry, perm: Vec<u32>) -> Result<Self> {
            let mut inverse = vec![0u32; perm.len()];
            fill_inverse(&perm, &mut inverse)?;
            let mut source = vec![0u32; geometry.total_tokens()];
            fill_source(&geometry, &perm, &mut source)?;
            Ok(Self {
                geometry,
                perm,
                inverse,
                source,
            })
        }

        /// The geometry (`B`, grid, `m`).
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_seed(2, 2, 2, 0)?;
        /// assert_eq!(plan.geometry().batch(), 2);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn geometry(&self) -> &MixGeometry {
            &self.geometry
        }

        /// The shuffle: shuffled position `j` holds token `perm[j]`.
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_permutation(1, 2, 1, &[1u32, 0, 3, 2])?;
        /// assert_eq!(plan.perm(), &[1, 0, 3, 2]);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn perm(&self) -> &[u32] {
            &self.perm
        }

        /// `inv = argsort(perm)`: token `t` sits at shuffled position `inv[t]`.
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_permutation(1, 2, 1, &[1u32, 2, 3, 0])?;
        /// assert_eq!(plan.inverse(), &[3, 0, 1, 2]);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn inverse(&self) -> &[u32] {
            &self.inverse
        }

        /// The gather: output token `k` (= `b·T + t`) is input token `source[k]`.
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_permutation(2, 2, 2, &[0u32, 1, 2, 3])?;
        /// assert_eq!(plan.source(), &[0, 1, 6, 7, 4, 5, 2, 3]);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn source(&self) -> &[u32] {
            &self.source
        }

        /// The gather converted to another index type (e.g. `i64` for an ONNX `Gather`).
        ///
        /// # Errors
        ///
        /// [`crate::Error::IndexOverflow`] if an index does not fit `I`.
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_seed(2, 2, 2, 0)?;
        /// let idx: Vec<i64> = plan.source_as()?;
        /// assert_eq!(idx.len(), 8);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn source_as<I: IndexInt>(&self) -> Result<Vec<I>> {
            self.source
                .iter()
                .map(|&s| crate::num::index_from(s as usize))
                .collect()
        }

        /// Applies the plan to a patch buffer `[B, T, token_len]` (see [`apply_patches`]).
        ///
        /// # Errors
        ///
        /// Those of [`apply_patches`] (buffer lengths).
        ///
        /// # Examples
        ///
        /// ```
        /// let plan = patchmix_core::MixPlan::from_permutation(2, 2, 2, &[0u32, 1, 2, 3])?;
        /// let input = [0u8, 1, 2, 3, 4, 5, 6, 7];
        /// let mut out = [0u8; 8];
        /// plan.apply_patches(1, &input, &mut out)?;
        /// assert_eq!(out, [0, 1, 6, 7, 4, 5, 2, 3]);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn apply_patches<E: Copy>(
            &self,
            token_len: usize,
            input: &[E],
            output: &mut [E],
        ) -> Result<()> {
            apply_patches(&self.geometry, &self.source, token_len, input, output)
        }

        /// Applies the plan to an NCHW image buffer (see [`apply_nchw`]).
        ///
        /// # Errors
        ///
        /// Those of [`apply_nchw`] (image shape, buffer lengths).
        ///
        /// # Examples
        ///
        /// ```
        /// use patchmix_core::{ImageShape, MixPlan};
        ///
        /// let plan = MixPlan::from_seed(2, 2, 2, 5)?;
        /// let input = [1.0f32; 2 * 1 * 4 * 4];
        /// let mut out = [0.0f32; 32];
        /// plan.apply_nchw(ImageShape::square(1, 4), &input, &mut out)?;
        /// assert_eq!(out, input);
        /// # Ok::<(), patchmix_core::Error>(())
        /// ```
        pub fn apply_nchw<E: Copy>(
            &self,
            shape: ImageShape,
            input: &[E],
            output: &mut [E],
        ) -> Result<()> {
            apply_nchw(&self.geometry, &self.source, shape, input, output)
        }
    }
}
