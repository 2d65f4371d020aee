//! Soft contrastive targets: origin-to-origin, mix-to-origin and mix-to-mix.
//!
//! Each function fills a row-major `B × N` buffer, `N = B·world_size` columns (all the images of
//! all ranks); this rank's images are the columns `rank·B .. rank·B + B`. With smoothing `s`,
//! every entry starts at the off value `s/N`, and target `c` of row `b` adds its share of `1 − s`:
//!
//! * **origin** (no mix): row `b` targets `b` with share `1`, so on value `(1 − s) + s/N`;
//! * **mix-to-origin**: row `b` targets `(b + i) mod B` for `i < m`, share `1/m` each, on value
//!   `(1 − s)/m + s/N`;
//! * **mix-to-mix**: row `b` targets `(b − m + 1 + k) mod B` for `k < 2m − 1` with weight
//!   `w_k = 1 − |m − k − 1|/m`, share `w_k/m`, on value `(1 − s)·w_k/m + s/N`. Written with the
//!   offset `d = k − m + 1`, the share of `(b, b + d)` is `(m − |d|)/m²`.
//!
//! **Difference from the original.** When `B < 2m − 1` (mix-to-mix) or `B < m` (mix-to-origin)
//! targets repeat modulo `B`. The original scatters the on value, so a repeated column is
//! *overwritten* and its row sums to less than 1. Here the shares of repeated targets are
//! *accumulated*, so every row sums to exactly 1 (up to rounding) for every `B ≥ 1`. For
//! `B ≥ 2m − 1` both agree.
//!
//! Values are computed in `f64` in closed form (no loop over `m`) and rounded once to the output
//! type; they agree with the original's float32 arithmetic to within a few ULP.

use crate::num::{LabelFloat, check_len, mul};
use crate::{Error, Result};

/// Who the labels are for: batch `B` per rank, `world_size` ranks, this `rank`, smoothing `s`.
///
/// # Examples
///
/// ```
/// use patchmix_core::LabelSpec;
///
/// let spec = LabelSpec::new(4, 2, 1, 0.1)?;
/// assert_eq!(spec.num_classes(), 8);
/// assert_eq!(spec.len(), 32);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelSpec {
    batch: usize,
    world_size: usize,
    rank: usize,
    smoothing: f64,
    classes: usize,
    len: usize,
}

impl LabelSpec {
    /// Checks and stores the parameters.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroBatch`], [`Error::ZeroWorldSize`], [`Error::RankOutOfRange`] if
    /// `rank ≥ world_size`, [`Error::InvalidSmoothing`] unless `0 ≤ s ≤ 1`, and
    /// [`Error::SizeOverflow`] if `B·N` overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_core::{Error, LabelSpec};
    ///
    /// assert_eq!(LabelSpec::new(4, 2, 2, 0.1), Err(Error::RankOutOfRange { rank: 2, world_size: 2 }));
    /// assert_eq!(LabelSpec::new(4, 1, 0, 1.5), Err(Error::InvalidSmoothing { smoothing: 1.5 }));
    /// ```
    pub fn new(batch: usize, world_size: usize, rank: usize, smoothing: f64) -> Result<Self> {
        if batch == 0 {
            return Err(Error::ZeroBatch);
        }
        if world_size == 0 {
            return Err(Error::ZeroWorldSize);
        }
        if rank >= world_size {
            return Err(Error::RankOutOfRange { rank, world_size });
        }
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(Error::InvalidSmoothing { smoothing });
        }
        let classes = mul(batch, world_size, "class count N = B·world_size")?;
        let len = mul(batch, classes, "label buffer length B·N")?;
        Ok(Self {
            batch,
            world_size,
            rank,
            smoothing,
            classes,
            len,
        })
    }

    /// A single-rank spec (`world_size = 1`, `rank = 0`).
    ///
    /// # Errors
    ///
    /// As for [`LabelSpec::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = patchmix_core::LabelSpec::single(8, 0.0)?;
    /// assert_eq!(spec.num_classes(), 8);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    pub fn single(batch: usize, smoothing: f64) -> Result<Self> {
        Self::new(batch, 1, 0, smoothing)
    }

    /// The batch size `B` per rank.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::single(8, 0.0).unwrap().batch(), 8);
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }

    /// The number of ranks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::new(8, 4, 1, 0.0).unwrap().world_size(), 4);
    /// ```
    pub const fn world_size(&self) -> usize {
        self.world_size
    }

    /// This rank.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::new(8, 4, 1, 0.0).unwrap().rank(), 1);
    /// ```
    pub const fn rank(&self) -> usize {
        self.rank
    }

    /// The smoothing `s`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::single(8, 0.1).unwrap().smoothing(), 0.1);
    /// ```
    pub const fn smoothing(&self) -> f64 {
        self.smoothing
    }

    /// Columns per row, `N = B·world_size`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::new(8, 4, 1, 0.0).unwrap().num_classes(), 32);
    /// ```
    pub const fn num_classes(&self) -> usize {
        self.classes
    }

    /// Length of a label buffer, `B·N`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::new(8, 4, 1, 0.0).unwrap().len(), 256);
    /// ```
    #[allow(clippy::len_without_is_empty)] // never empty: B ≥ 1 and N ≥ 1
    pub const fn len(&self) -> usize {
        self.len
    }

    /// The off value `s/N`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::LabelSpec::single(4, 0.2).unwrap().off_value(), 0.05);
    /// ```
    pub fn off_value(&self) -> f64 {
        self.smoothing / self.classes as f64
    }

    /// Fills `out` with the off value, then row `b`, column `rank·B + c` for `c < B` with
    /// `off + (1 − s)·share(b, (c − b) mod B)`.
    fn fill<F: LabelFloat>(&self, out: &mut [F], share: impl Fn(usize) -> f64) -> Result<()> {
        check_len("labels", self.len, out.len())?;
        let off = self.off_value();
        let on = 1.0 - self.smoothing;
        let offset = self.rank * self.batch;
        for (b, row) in out.chunks_exact_mut(self.classes).enumerate() {
            row.fill(F::from_f64(off));
            for (c, slot) in row[offset..offset + self.batch].iter_mut().enumerate() {
                let d = (c + self.batch - b) % self.batch;
                let w = share(d);
                if w != 0.0 {
                    *slot = F::from_f64(on * w + off);
                }
            }
        }
        Ok(())
    }
}

/// Origin-to-origin targets: the identity with smoothing (on value `(1 − s) + s/N`).
///
/// # Errors
///
/// [`Error::BufferLength`] if `out.len() != B·N`.
///
/// # Examples
///
/// ```
/// use patchmix_core::{LabelSpec, fill_origin_targets};
///
/// let spec = LabelSpec::new(2, 2, 1, 0.2)?; // N = 4, columns 2..4 are this rank's
/// let mut out = [0.0f32; 8];
/// fill_origin_targets(&spec, &mut out)?;
/// assert_eq!(out, [0.05, 0.05, 0.85, 0.05, 0.05, 0.05, 0.05, 0.85]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn fill_origin_targets<F: LabelFloat>(spec: &LabelSpec, out: &mut [F]) -> Result<()> {
    spec.fill(out, |d| if d == 0 { 1.0 } else { 0.0 })
}

/// Mix-to-origin targets (`soft_target`): row `b` holds `(b + i) mod B` for `i < m`, each with
/// share `1/m` (accumulated when `B < m`).
///
/// The share of offset `d` is `#{i < m : i ≡ d (mod B)}/m`.
///
/// # Errors
///
/// [`Error::ZeroMix`] if `m = 0`, [`Error::BufferLength`] if `out.len() != B·N`.
///
/// # Examples
///
/// ```
/// use patchmix_core::{LabelSpec, fill_mix_to_origin_targets};
///
/// let spec = LabelSpec::single(3, 0.0)?;
/// let mut out = [0.0f32; 9];
/// fill_mix_to_origin_targets(&spec, 2, &mut out)?;
/// assert_eq!(out, [0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 0.5]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn fill_mix_to_origin_targets<F: LabelFloat>(
    spec: &LabelSpec,
    mix: usize,
    out: &mut [F],
) -> Result<()> {
    if mix == 0 {
        return Err(Error::ZeroMix);
    }
    let batch = spec.batch;
    spec.fill(out, |d| {
        if d < mix {
            let count = (mix - 1 - d) / batch + 1;
            count as f64 / mix as f64
        } else {
            0.0
        }
    })
}

/// Mix-to-mix targets (`soft_mix_target`): row `b` holds `(b − m + 1 + k) mod B` for
/// `k < 2m − 1`, with share `w_k/m`, `w_k = 1 − |m − k − 1|/m` (accumulated when `B < 2m − 1`).
///
/// The share of offset `d` is `Σ (m − |δ|)/m²` over `δ ≡ d (mod B)`, `|δ| < m`, summed in closed
/// form.
///
/// # Errors
///
/// [`Error::ZeroMix`] if `m = 0`, [`Error::BufferLength`] if `out.len() != B·N`.
///
/// # Examples
///
/// ```
/// use patchmix_core::{LabelSpec, fill_mix_to_mix_targets};
///
/// let spec = LabelSpec::single(3, 0.0)?;
/// let mut out = [0.0f64; 9];
/// fill_mix_to_mix_targets(&spec, 2, &mut out)?;
/// // Row 0 holds 2 (w = 1/2), 0 (w = 1), 1 (w = 1/2), each divided by m = 2.
/// assert_eq!(&out[..3], &[0.5, 0.25, 0.25]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn fill_mix_to_mix_targets<F: LabelFloat>(
    spec: &LabelSpec,
    mix: usize,
    out: &mut [F],
) -> Result<()> {
    if mix == 0 {
        return Err(Error::ZeroMix);
    }
    let batch = spec.batch as u128;
    let m = mix as u128;
    // Σ_{j ≥ 0, a + jB ≤ m − 1} (m − a − jB) for 0 ≤ a: J + 1 terms, J = ⌊(m − 1 − a)/B⌋.
    let arm = |a: u128| -> u128 {
        if a > m - 1 {
            return 0;
        }
        let terms = (m - 1 - a) / batch + 1;
        // terms ≤ m, so terms·(m − a) < 2^128 and B·J·(J+1)/2 ≤ terms·(m − a).
        terms * (m - a) - batch * (terms * (terms - 1) / 2)
    };
    let m2 = (mix as f64) * (mix as f64);
    spec.fill(out, |d| {
        let d = d as u128;
        // δ ≥ 0: δ = d + jB. δ < 0: |δ| = (B − d) + jB.
        let sum = arm(d) + arm(batch - d);
        sum as f64 / m2
    })
}

#[cfg(feature = "alloc")]
mod owned {
    use super::{
        LabelSpec, fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets,
    };
    use crate::Result;
    use crate::num::LabelFloat;
    use alloc::vec;
    use alloc::vec::Vec;

    /// [`fill_origin_targets`] into a new `Vec` of `B·N` values (feature `alloc`).
    ///
    /// # Errors
    ///
    /// As for [`fill_origin_targets`].
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = patchmix_core::LabelSpec::single(2, 0.0)?;
    /// assert_eq!(patchmix_core::origin_targets::<f32>(&spec)?, vec![1.0, 0.0, 0.0, 1.0]);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    pub fn origin_targets<F: LabelFloat>(spec: &LabelSpec) -> Result<Vec<F>> {
        let mut out = vec![F::from_f64(0.0); spec.len()];
        fill_origin_targets(spec, &mut out)?;
        Ok(out)
    }

    /// [`fill_mix_to_origin_targets`] into a new `Vec` of `B·N` values (feature `alloc`).
    ///
    /// # Errors
    ///
    /// As for [`fill_mix_to_origin_targets`].
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = patchmix_core::LabelSpec::single(2, 0.0)?;
    /// assert_eq!(patchmix_core::mix_to_origin_targets::<f32>(&spec, 2)?, vec![0.5; 4]);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    pub fn mix_to_origin_targets<F: LabelFloat>(spec: &LabelSpec, mix: usize) -> Result<Vec<F>> {
        let mut out = vec![F::from_f64(0.0); spec.len()];
        fill_mix_to_origin_targets(spec, mix, &mut out)?;
        Ok(out)
    }

    /// [`fill_mix_to_mix_targets`] into a new `Vec` of `B·N` values (feature `alloc`).
    ///
    /// # Errors
    ///
    /// As for [`fill_mix_to_mix_targets`].
    ///
    /// # Examples
    ///
    /// ```
    /// let spec = patchmix_core::LabelSpec::single(1, 0.0)?;
    /// assert_eq!(patchmix_core::mix_to_mix_targets::<f64>(&spec, 3)?, vec![1.0]);
    /// # Ok::<(), patchmix_core::Error>(())
    /// ```
    pub fn mix_to_mix_targets<F: LabelFloat>(spec: &LabelSpec, mix: usize) -> Result<Vec<F>> {
        let mut out = vec![F::from_f64(0.0); spec.len()];
        fill_mix_to_mix_targets(spec, mix, &mut out)?;
        Ok(out)
    }
}

#[cfg(feature = "alloc")]
pub use owned::{mix_to_mix_targets, mix_to_origin_targets, origin_targets};
