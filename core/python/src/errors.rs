//! Errors as Python sees them: a `ValueError` whose message starts with the argument's name.

use patchmix_core::Error;
use pyo3::PyErr;
use pyo3::exceptions::PyValueError;

/// A `ValueError` "`{argument}: {message}`".
pub(crate) fn value_error(argument: &str, message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{argument}: {message}"))
}

/// A core error as a `ValueError` naming the Python argument it is about. Errors about a
/// buffer (length, size, index range) name `buffer_argument`, the array the call was given.
pub(crate) fn core_error(buffer_argument: &str, err: Error) -> PyErr {
    value_error(argument_of(&err).unwrap_or(buffer_argument), err)
}

/// The Python argument a core error is about, where the error itself says which.
fn argument_of(err: &Error) -> Option<&'static str> {
    Some(match err {
        Error::ZeroBatch => "batch",
        Error::ZeroGrid => "grid",
        Error::ZeroMix | Error::MixExceedsTokens { .. } => "mix",
        Error::PermutationLength { .. }
        | Error::PermutationOutOfRange { .. }
        | Error::PermutationDuplicate { .. } => "perm",
        Error::InvalidSmoothing { .. } => "smoothing",
        Error::ZeroWorldSize => "world_size",
        Error::RankOutOfRange { .. } => "rank",
        Error::InvalidScheduleValue { name, .. } => *name,
        Error::WarmupExceedsTotal { .. } => "warmup_iters",
        Error::ScheduleIndexOutOfRange { .. } => "iter",
        Error::EpochOutOfRange { .. } => "epoch",
        Error::InvalidMomentum { .. } => "base_momentum",
        _ => return None,
    })
}

/// `value` as a `usize`, or a `ValueError` naming `argument` when it is negative.
pub(crate) fn non_negative(argument: &str, value: i64) -> Result<usize, PyErr> {
    usize::try_from(value).map_err(|_| value_error(argument, format!("{value} is negative")))
}

/// `value` as a `u64`, or a `ValueError` naming `argument` when it is outside 0..2⁶⁴.
pub(crate) fn unsigned_64(argument: &str, value: i128) -> Result<u64, PyErr> {
    u64::try_from(value).map_err(|_| value_error(argument, format!("{value} is not in 0..2**64")))
}
