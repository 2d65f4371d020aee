//! What can stop a pretraining run, its checkpoints, its metrics or its kNN monitor. Each
//! error displays as one line that names the file, field or step concerned.

use crate::augment::AugmentError;
use crate::data::LoaderError;
use crate::session::EngineError;
use patchmix_export::data::DataError;
use patchmix_export::graph::GraphError;
use patchmix_export::knn::KnnError;
use patchmix_export::onnx::OnnxWriteError;
use patchmix_export::runtime::RuntimeError;
use patchmix_export::weights::WeightsError;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of `patchmix pretrain`'s library side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PretrainError {
    /// The configuration is unusable (the message says which setting and why).
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// The resolved configuration could not be written as TOML.
    #[error("cannot write the configuration as TOML: {0}")]
    ConfigToml(#[from] toml::ser::Error),
    /// The evaluation data cannot be scored against the training data (other classes).
    #[error(transparent)]
    EvalData(#[from] super::eval_data::EvalDataError),
    /// A dataset specification does not parse.
    #[error("dataset `{spec}`: {message}")]
    DatasetSpec {
        /// The specification as given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or decoding data failed (the message names the file).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The augmentation settings are unusable.
    #[error(transparent)]
    Augment(#[from] AugmentError),
    /// The loader failed (the message names the file).
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// The loader gave fewer batches than an epoch has steps.
    #[error("the loader ended early")]
    LoaderEnded,
    /// The thread preparing the next step's inputs panicked.
    #[error("the batch preparation thread panicked")]
    PreparationPanicked,
    /// The data-parallel world could not start, or its ranks disagree.
    #[error(transparent)]
    Launch(#[from] crate::dist::LaunchError),
    /// The run does not fit the data-parallel world it was started in.
    #[error("{ranks} ranks: {message}")]
    Ranks {
        /// The world size.
        ranks: usize,
        /// What does not fit.
        message: String,
    },
    /// A step's PatchMix inputs could not be prepared.
    #[error(transparent)]
    Prepare(#[from] crate::step::BatchError),
    /// A schedule (learning rate, weight decay, temperature, momentum) has invalid parameters.
    #[error(transparent)]
    Schedule(#[from] patchmix_core::Error),
    /// The step or the encoder graph could not be built.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The training step's session failed (boxed: the engine's errors are large, and this
    /// error travels through every fallible function of the loop).
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// The step session cannot be created on the requested device.
    #[error("--device {device}: {source}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why it cannot be used.
        #[source]
        source: Box<EngineError>,
    },
    /// The output directory cannot be created.
    #[error("cannot create output directory {}: {source}; choose a writable --out", path.display())]
    CreateOutDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The output directory exists but cannot be written to.
    #[error("output directory {} is not writable: {source}; choose a writable --out", path.display())]
    OutDirNotWritable {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `read`, `create`, `append to`, ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Moving a finished checkpoint into place failed.
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        /// The temporary directory.
        from: PathBuf,
        /// The checkpoint's name.
        to: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A weights file could not be read or written (the message names it).
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The exported encoder could not be written.
    #[error(transparent)]
    Onnx(#[from] OnnxWriteError),
    /// The encoder could not be run for the kNN evaluation.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The kNN evaluation failed.
    #[error(transparent)]
    Knn(#[from] KnnError),
    /// Features or images could not be arranged into an array.
    #[error("{what}: {source}")]
    Shape {
        /// Which array.
        what: &'static str,
        /// The cause.
        #[source]
        source: ndarray::ShapeError,
    },
    /// `--resume` names neither a checkpoint nor a run directory with one.
    #[error("--resume {arg}: no checkpoint there (expected progress.json or checkpoints/last)")]
    NoCheckpoint {
        /// The argument.
        arg: String,
    },
    /// The checkpoint's architecture or batch differs from the configuration's.
    #[error(
        "checkpoint {} was made with a different architecture or batch; resume with its config.toml",
        dir.display()
    )]
    CheckpointMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// A JSON file of a checkpoint (`progress.json`) cannot be parsed or written.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint's tensors do not make a training state.
    #[error("{}: {source}", path.display())]
    CheckpointState {
        /// The `state.safetensors` file.
        path: PathBuf,
        /// What is missing or wrong.
        #[source]
        source: StateDictError,
    },
    /// fp16: the gradients overflowed at every loss scale for too long.
    #[error(
        "fp16: the gradients overflowed {skips} steps in a row (loss {loss}, loss scale now {scale}) at step {step}; the activations themselves overflow half precision: use --precision bf16 or fp32, or lower the learning rate"
    )]
    Fp16Overflow {
        /// Skipped steps in a row.
        skips: u32,
        /// The last step's loss.
        loss: f32,
        /// The loss scale after the last skip.
        scale: f32,
        /// The global step.
        step: u64,
    },
    /// The loss became NaN or infinite.
    #[error(
        "loss became {loss} at step {step} (epoch {epoch}); stopping. The last good checkpoint is {}; lower the learning rate or check the data",
        last_checkpoint.as_deref().map_or_else(|| "none".to_string(), |p| p.display().to_string())
    )]
    NonFiniteLoss {
        /// The loss.
        loss: f32,
        /// The global step.
        step: u64,
        /// The epoch.
        epoch: u64,
        /// The last checkpoint written, if any.
        last_checkpoint: Option<PathBuf>,
    },
}

impl PretrainError {
    /// A [`PretrainError::Io`]: `action` failed on `path`.
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> PretrainError {
        PretrainError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why a checkpoint's tensors do not make a training state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StateDictError {
    /// A tensor is missing.
    #[error("missing `{0}`")]
    Missing(String),
    /// A counter is negative.
    #[error("negative `{0}`")]
    Negative(String),
    /// A counter is too large.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
    /// The loss scale is not a finite positive number.
    #[error("`{name}` is {value}; it must be finite and > 0")]
    BadScale {
        /// The tensor.
        name: &'static str,
        /// Its value.
        value: f32,
    },
    /// Part of the loss scaler's state is missing.
    #[error("`{present}` is present but `{missing}` is missing")]
    IncompleteScaler {
        /// The tensor found.
        present: &'static str,
        /// The tensor missing.
        missing: String,
    },
    /// A parameter or buffer is missing or mis-shaped (the message names it).
    #[error("{0}")]
    Layout(String),
}

impl From<EngineError> for PretrainError {
    fn from(e: EngineError) -> Self {
        PretrainError::Engine(Box::new(e))
    }
}
