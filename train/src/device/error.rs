//! The errors of device selection.

use super::parse::DEVICE_FORMS;
use patchmix_export::runtime::ort_env::OrtEnvError;

/// Device errors.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A device string that is not one of the accepted forms.
    #[error("unknown device `{value}`: expected {DEVICE_FORMS}")]
    Parse {
        /// The rejected text.
        value: String,
    },
    /// CUDA was requested and cannot be used; the message says what is missing and how to
    /// provide it.
    #[error("{0}")]
    CudaUnavailable(String),
    /// ONNX Runtime could not be provisioned or loaded.
    #[error(transparent)]
    Setup(#[from] OrtEnvError),
}
