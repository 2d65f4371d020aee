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

/// Why a fine-tuning run cannot start or stopped (every message names the file, field or
/// step concerned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A setting is unusable.
    #[error("{field}: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The data cannot be used.
    #[error("{spec}: {message}")]
    Data {
        /// The dataset spec.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The weights cannot be used.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss stopped being finite.
    #[error("the loss is {loss} at step {step} (epoch {epoch}): stopping")]
    NonFinite {
        /// The global step.
        step: u64,
        /// The epoch.
        epoch: u64,
        /// The loss.
        loss: f32,
    },
    /// The data-parallel ranks disagree (configurations or initial states), or their
    /// start-up exchange failed.
    #[error(transparent)]
    Launch(#[from] crate::dist::LaunchError),
    /// Anything else.
    #[error(transparent)]
    Finetune(#[from] FinetuneError),
    /// The classifier could not be exported.
    #[error(transparent)]
    Classifier(#[from] patchmix_export::classifier::ClassifierError),
}

impl From<EngineError> for RunError {
    fn from(e: EngineError) -> Self {
        RunError::Finetune(FinetuneError::Engine(e))
    }
}
