//! The error type of the weights module.

use std::io;
use std::path::{Path, PathBuf};

use safetensors::tensor::SafeTensorError;

use super::StateDictDiff;
use crate::atomic::AtomicWriteError;

/// Errors of this module. Every variant caused by a file names that file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// Reading, writing, syncing or renaming a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename into place", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, bad header JSON, bad offsets...).
    #[error(
        "{} is not a valid safetensors file ({source}); it may be truncated or not a \
         safetensors file at all: re-export it with `safetensors.torch.save_file`",
        path.display()
    )]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What the safetensors parser rejected.
        #[source]
        source: SafeTensorError,
    },
    /// A tensor has a dtype this crate cannot convert to `f32`/`i64`.
    #[error(
        "{}: tensor `{tensor}` has dtype {dtype}, which is not supported; convert it to \
         float32 (or an integer dtype) before saving",
        path.display()
    )]
    UnsupportedDtype {
        /// The file concerned.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },
    /// A tensor's contents cannot be represented (a `U64` above `i64::MAX`, a shape ndarray
    /// cannot index).
    #[error("{}: tensor `{tensor}`: {reason}", path.display())]
    BadTensor {
        /// The file concerned.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The data given to a save function cannot be written.
    #[error("cannot save {}: {reason}", path.display())]
    Save {
        /// The destination.
        path: PathBuf,
        /// What is wrong with the input.
        reason: String,
    },
    /// The state dict does not have the expected keys/shapes.
    #[error("{origin} does not match the expected model: {diff}")]
    Mismatch {
        /// Where the state dict came from (a file name, or "state dict").
        origin: String,
        /// All the differences.
        diff: StateDictDiff,
    },
}

impl WeightsError {
    pub(super) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<AtomicWriteError> for WeightsError {
    fn from(e: AtomicWriteError) -> Self {
        Self::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
