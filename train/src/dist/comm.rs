//! The communicator: what a rank needs from the transport that connects it to the others.

use thiserror::Error;

/// A failed collective.
#[derive(Debug, Error)]
pub enum CommError {
    /// The ranks passed buffers of different lengths to the same collective.
    #[error("{collective}: rank {rank} passed {actual} values, rank 0 passed {expected}")]
    LengthMismatch {
        /// The collective.
        collective: &'static str,
        /// The rank whose buffer differs.
        rank: usize,
        /// Rank 0's length.
        expected: usize,
        /// That rank's length.
        actual: usize,
    },
    /// The output buffer of an all-gather is not world_size × the input.
    #[error("all-gather: output holds {actual} values, expected {expected} (world size × input)")]
    GatherOutput {
        /// world_size × the input length.
        expected: usize,
        /// The output length.
        actual: usize,
    },
    /// A peer did not reach the collective in time (it died, errored or hangs).
    #[error("{collective}: rank {rank} did not arrive within {timeout:?} (did it fail?)")]
    PeerTimeout {
        /// The collective.
        collective: &'static str,
        /// The first rank that is missing.
        rank: usize,
        /// The time waited.
        timeout: std::time::Duration,
    },
    /// The transport itself failed.
    #[error("{backend}: {message}")]
    Transport {
        /// The backend (`mpi`, `nccl`, …).
        backend: &'static str,
        /// What it reported.
        message: String,
    },
}

/// One rank's view of a data-parallel world. Every rank calls the same collectives in the same
/// order with buffers of the same length; each call returns once all ranks reached it.
///
/// # Examples
/// ```
/// use patchmix_train::dist::{Communicator, ThreadWorld};
/// let ranks = ThreadWorld::ranks(2);
/// let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
///     let handles: Vec<_> = ranks.iter().map(|rank| s.spawn(move || {
///         let mut x = vec![rank.rank() as f32 + 1.0; 3];
///         rank.all_reduce_sum(&mut x).unwrap();
///         x
///     })).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums, vec![vec![3.0; 3], vec![3.0; 3]]);
/// ```
pub trait Communicator: Send + Sync {
    /// This rank, in `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// Replaces `data` by its elementwise sum over all ranks (the same result on every rank).
    ///
    /// # Errors
    /// [`CommError`] when the ranks disagree on the length, a peer fails, or the transport does.
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<(), CommError>;
    /// Writes every rank's `local` into `out`, concatenated in rank order
    /// (`out.len() == world_size · local.len()`).
    ///
    /// # Errors
    /// As [`Communicator::all_reduce_sum`], and [`CommError::GatherOutput`] for a wrong `out`.
    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<(), CommError>;
}

/// Checks an all-gather's output length.
pub(crate) fn check_gather_output(
    world_size: usize,
    local: &[f32],
    out: &[f32],
) -> Result<(), CommError> {
    let expected = world_size * local.len();
    if out.len() == expected {
        Ok(())
    } else {
        Err(CommError::GatherOutput {
            expected,
            actual: out.len(),
        })
    }
}

/// Copies rank 0's `mine` into `out` on every rank (a collective; the other ranks' `mine` is
/// ignored), through an all-gather of the bytes as `f32` (exact for bytes).
///
/// # Errors
/// The transport's, or [`CommError::LengthMismatch`] when `mine` and `out` differ in length.
///
/// # Examples
/// ```
/// use patchmix_train::dist::{Communicator, ThreadWorld, share_from_rank0};
/// let ranks = ThreadWorld::ranks(2);
/// let got: Vec<[u8; 3]> = std::thread::scope(|s| {
///     let h: Vec<_> = ranks.iter().map(|r| s.spawn(move || {
///         let mine = [r.rank() as u8 + 7; 3];
///         let mut out = [0u8; 3];
///         share_from_rank0(r, &mine, &mut out).unwrap();
///         out
///     })).collect();
///     h.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(got, vec![[7; 3], [7; 3]]);
/// ```
pub fn share_from_rank0(
    comm: &dyn Communicator,
    mine: &[u8],
    out: &mut [u8],
) -> Result<(), CommError> {
    if mine.len() != out.len() {
        return Err(CommError::LengthMismatch {
            collective: "share_from_rank0",
            rank: comm.rank(),
            expected: mine.len(),
            actual: out.len(),
        });
    }
    let local: Vec<f32> = mine.iter().map(|&b| f32::from(b)).collect();
    let mut all = vec![0.0f32; local.len() * comm.world_size()];
    comm.all_gather(&local, &mut all)?;
    for (o, &v) in out.iter_mut().zip(&all[..local.len()]) {
        *o = v as u8;
    }
    Ok(())
}
