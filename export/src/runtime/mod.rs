//! Running exported encoders: tract (pure Rust, default) or ONNX Runtime (feature `ort`).

use ndarray::{Array2, ArrayView4};
use std::path::Path;
use std::str::FromStr;

#[cfg(feature = "ort")]
mod ort_encoder;
#[cfg(feature = "ort")]
pub mod ort_env;
mod tract_encoder;

#[cfg(feature = "ort")]
pub use ort_encoder::OrtEncoder;
pub use tract_encoder::TractEncoder;

/// Errors of the inference runtimes.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The runtime rejected the model or failed to run it.
    #[error("{runtime}: {message}")]
    Backend {
        /// `tract` or `ort`.
        runtime: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The input batch does not fit the model.
    #[error("input batch has shape {got:?}, the model expects [batch, 3, {img}, {img}]")]
    BadInput {
        /// The batch's shape.
        got: Vec<usize>,
        /// The model's image side.
        img: usize,
    },
    /// ONNX Runtime could not be provisioned.
    #[cfg(feature = "ort")]
    #[error(transparent)]
    Setup(#[from] ort_env::OrtEnvError),
    /// ONNX Runtime was asked for, but this build has no ONNX Runtime support.
    #[error("this build has no ONNX Runtime support (feature `ort`)")]
    OrtNotBuilt,
}

/// A runtime name that is not `tract` or `ort`.
///
/// # Examples
/// ```
/// use patchmix_export::runtime::Runtime;
/// let e = "onnx".parse::<Runtime>().unwrap_err();
/// assert_eq!(e.to_string(), "unknown runtime `onnx`: expected tract or ort");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime `{name}`: expected tract or ort")]
pub struct UnknownRuntime {
    /// The rejected name.
    pub name: String,
}

/// Which runtime executes the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// tract, pure Rust.
    Tract,
    /// ONNX Runtime through the `ort` crate.
    Ort,
}

impl FromStr for Runtime {
    type Err = UnknownRuntime;
    fn from_str(s: &str) -> Result<Self, UnknownRuntime> {
        match s {
            "tract" => Ok(Runtime::Tract),
            "ort" => Ok(Runtime::Ort),
            o => Err(UnknownRuntime {
                name: o.to_string(),
            }),
        }
    }
}

/// An encoder that maps normalised images [B, 3, H, W] to features [B, D].
pub trait Embed {
    /// Embeds one batch.
    ///
    /// # Errors
    /// [`RuntimeError`] on a bad batch or a runtime failure.
    fn embed(&mut self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>, RuntimeError>;
    /// The image side the model expects.
    fn image_size(&self) -> usize;
}

/// Opens an ONNX encoder with the chosen runtime.
///
/// # Errors
/// [`RuntimeError`] when the file is unreadable, the model is rejected, or (for `ort`) ONNX
/// Runtime cannot be provisioned or the crate was built without the `ort` feature.
pub fn open_encoder(path: &Path, runtime: Runtime) -> Result<Box<dyn Embed + Send>, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    match runtime {
        Runtime::Tract => Ok(Box::new(TractEncoder::from_bytes(&bytes)?)),
        #[cfg(feature = "ort")]
        Runtime::Ort => Ok(Box::new(OrtEncoder::from_bytes(&bytes)?)),
        #[cfg(not(feature = "ort"))]
        Runtime::Ort => Err(RuntimeError::OrtNotBuilt),
    }
}

/// Reads the image side from an `images` input of shape [batch, 3, H, W].
fn check_batch(images: &ArrayView4<'_, f32>, img: usize) -> Result<(), RuntimeError> {
    let s = images.shape();
    if s[1] != 3 || s[2] != img || s[3] != img || s[0] == 0 {
        return Err(RuntimeError::BadInput {
            got: s.to_vec(),
            img,
        });
    }
    Ok(())
}
