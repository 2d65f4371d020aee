//! Encoder inference with tract. Plans are optimised per batch size and cached.

use super::{Embed, RuntimeError, check_batch};
use ndarray::{Array2, ArrayView4, Ix2};
use std::collections::HashMap;
use tract_onnx::prelude::*;

type Plan = std::sync::Arc<TypedSimplePlan>;

/// A tract-backed encoder.
pub struct TractEncoder {
    model: InferenceModel,
    img: usize,
    plans: HashMap<usize, Plan>,
}

fn backend(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        runtime: "tract",
        message: format!("{e:#}"),
    }
}

impl TractEncoder {
    /// Parses an ONNX model whose first input is `[batch, 3, H, W]`.
    ///
    /// # Errors
    /// [`RuntimeError::Backend`] if tract rejects the model.
    pub fn from_bytes(bytes: &[u8]) -> Result<TractEncoder, RuntimeError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(backend)?;
        let fact = model.input_fact(0).map_err(backend)?;
        let img = fact
            .shape
            .dims()
            .nth(3)
            .and_then(tract_onnx::tract_hir::infer::Factoid::concretize)
            .and_then(|d| d.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
            .ok_or_else(|| backend("the model's input is not [batch, 3, H, W] with a fixed H"))?;
        Ok(TractEncoder {
            model,
            img,
            plans: HashMap::new(),
        })
    }

    fn plan(&mut self, batch: usize) -> Result<&Plan, RuntimeError> {
        if !self.plans.contains_key(&batch) {
            let plan = self
                .model
                .clone()
                .with_input_fact(0, f32::fact([batch, 3, self.img, self.img]).into())
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(backend)?;
            self.plans.insert(batch, plan);
        }
        Ok(&self.plans[&batch])
    }
}

impl Embed for TractEncoder {
    fn embed(&mut self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>, RuntimeError> {
        check_batch(&images, self.img)?;
        let batch = images.shape()[0];
        let input: Tensor = images.to_owned().into_dyn().into();
        let plan = self.plan(batch)?;
        let out = plan.run(tvec!(input.into())).map_err(backend)?;
        let arr = out[0].to_plain_array_view::<f32>().map_err(backend)?;
        arr.into_dimensionality::<Ix2>()
            .map(|a| a.to_owned())
            .map_err(backend)
    }

    fn image_size(&self) -> usize {
        self.img
    }
}
