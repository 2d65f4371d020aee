//! The errors of the training engine's session.

use crate::device::DeviceError;
use crate::step::Precision;
use patchmix_export::graph::GraphError;
use patchmix_export::onnx::OnnxWriteError;
use patchmix_export::weights::WeightsError;
use std::path::PathBuf;

/// Errors of the training engine's session.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// ONNX Runtime failed.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    /// The requested device cannot be used (the message says what is missing and how to
    /// provide it).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A host array has the wrong size.
    #[error("{what} has {got} elements, the step expects {want}")]
    Size {
        /// Which input.
        what: String,
        /// Its length.
        got: usize,
        /// The expected length.
        want: usize,
    },
    /// The batch and the compiled step disagree on which inputs exist.
    #[error(transparent)]
    Input(#[from] InputMismatch),
    /// The compiled step declares an input the engine cannot feed.
    #[error("the step declares input `{name}` ({why}), which the engine cannot feed")]
    UnfeedableInput {
        /// The graph input.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A data-parallel step without a communicator for its collectives, or with one of
    /// another world size.
    #[error(
        "the step was compiled for {step} data-parallel ranks but the session's communicator has {communicator} (0: none given)"
    )]
    WorldSize {
        /// The step's world size.
        step: usize,
        /// The communicator's (0 when `SessionOptions::collectives` is not set).
        communicator: usize,
    },
    /// Collectives on the GPU (NCCL) for a session that runs on the CPU.
    #[error(
        "--dist nccl runs the collectives on the GPU, but the step runs on the CPU ({0}); use --device cuda, or --dist mpi for CPU ranks"
    )]
    CollectivesNeedCuda(String),
    /// ONNX Runtime did not return an output the step declares.
    #[error("step output `{0}` missing")]
    MissingOutput(String),
    /// A half-precision step could not be rebuilt with emulated products for the CPU.
    #[error("rebuilding the {precision} step for the CPU: {source}")]
    CpuRebuild {
        /// The step's precision.
        precision: Precision,
        /// Why the rebuild failed.
        source: GraphError,
    },
    /// A reproducer file or directory could not be written.
    #[error("{}: {source}", dir.display())]
    Io {
        /// The reproducer's directory.
        dir: PathBuf,
        /// What failed.
        source: ReproducerIo,
    },
}

/// What failed while writing a reproducer.
#[derive(Debug, thiserror::Error)]
pub enum ReproducerIo {
    /// The directory could not be created.
    #[error(transparent)]
    Dir(#[from] std::io::Error),
    /// `step.onnx` could not be written.
    #[error(transparent)]
    Graph(#[from] OnnxWriteError),
    /// `feeds.safetensors` could not be written.
    #[error(transparent)]
    Feeds(#[from] WeightsError),
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for EngineError {
    fn from(e: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        EngineError::Ort(e.into())
    }
}

/// A batch that does not fit the compiled step: inputs that one has and the other lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputMismatch {
    /// The step was built with local crops; the batch has none.
    #[error("the step has local crops but the batch has none")]
    MissingLocalCrops,
    /// The batch has local crops; the step was built without them.
    #[error("the batch has local crops but the step was built without them")]
    UnexpectedLocalCrops,
    /// An fp16 step run without a loss scale.
    #[error("the fp16 step needs a loss scale")]
    MissingLossScale,
    /// A loss scale given to a step without loss scaling.
    #[error("a loss scale was given to a step without loss scaling")]
    UnexpectedLossScale,
}
