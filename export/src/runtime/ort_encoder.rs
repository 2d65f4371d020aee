//! Encoder inference with ONNX Runtime (CPU execution provider).

use super::{Embed, RuntimeError, check_batch, ort_env};
use ndarray::{Array2, ArrayView4, Ix2};
use ort::session::{Session, builder::GraphOptimizationLevel};
use ort::value::TensorRef;

/// An ONNX Runtime-backed encoder.
pub struct OrtEncoder {
    session: Session,
    img: usize,
}

fn backend(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: "ort",
        message: e.to_string(),
    }
}

impl OrtEncoder {
    /// Loads an ONNX model whose first input is `[batch, 3, H, W]`.
    ///
    /// # Errors
    /// [`RuntimeError::Setup`] if ONNX Runtime cannot be found, [`RuntimeError::Backend`] if it
    /// rejects the model.
    pub fn from_bytes(bytes: &[u8]) -> Result<OrtEncoder, RuntimeError> {
        let (_, env) = ort_env::ensure_ort()?;
        let session = Session::builder(&env)
            .map_err(backend)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(backend)?
            // Explicit: with 0, ORT pins its pool threads while the caller floats, which
            // costs up to a third of the throughput on small machines.
            .with_intra_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .map_err(backend)?
            .commit_from_memory(bytes)
            .map_err(backend)?;
        let img = session
            .inputs()
            .first()
            .and_then(|i| i.dtype().tensor_shape().map(|s| s.to_vec()))
            .and_then(|s| s.get(3).copied())
            .filter(|&d| d > 0)
            .ok_or_else(|| backend("the model's input is not [batch, 3, H, W] with a fixed H"))?;
        Ok(OrtEncoder {
            session,
            img: img as usize,
        })
    }
}

impl Embed for OrtEncoder {
    fn embed(&mut self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>, RuntimeError> {
        check_batch(&images, self.img)?;
        let std = images.as_standard_layout();
        let input = TensorRef::from_array_view(std.view()).map_err(backend)?;
        let outputs = self.session.run(ort::inputs![input]).map_err(backend)?;
        let arr = outputs[0].try_extract_array::<f32>().map_err(backend)?;
        arr.into_dimensionality::<Ix2>()
            .map(|a| a.to_owned())
            .map_err(backend)
    }

    fn image_size(&self) -> usize {
        self.img
    }
}
