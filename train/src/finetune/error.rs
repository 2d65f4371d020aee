//! Errors of fine-tuning.

use crate::session::EngineError;
use patchmix_export::weights::WeightsError;
use std::path::PathBuf;

/// Why a fine-tuning operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinetuneError {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `create`…).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing or reading weights failed.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl FinetuneError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        FinetuneError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
