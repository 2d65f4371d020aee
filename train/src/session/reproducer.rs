//! Writing a step as a standalone reproducer: `step.onnx` and `feeds.safetensors`.

use super::StepSession;
use super::error::{EngineError, ReproducerIo};
use super::feeds::{Feed, host_part};
use crate::step::StepInputs;
use ndarray::ArrayD;
use patchmix_export::weights::{StateDict, save_safetensors};
use std::path::Path;

impl StepSession {
    /// Writes the step as a standalone reproducer: `step.onnx` (the compiled graph) and
    /// `feeds.safetensors` (every input of one `Session::run`: the live state, the batch and
    /// the scalars, under the graph's input names). Any ONNX Runtime, e.g. Python's
    /// `onnxruntime.InferenceSession("step.onnx").run(None, feeds)`, can then replay the step,
    /// which is how optimiser and execution-provider differences are bisected.
    ///
    /// # Errors
    /// Inputs of the wrong size ([`EngineError::Size`], [`EngineError::Input`]), ORT errors,
    /// or [`EngineError::Io`] for files that cannot be written.
    pub fn save_reproducer(&self, dir: &Path, x: &StepInputs<'_>) -> Result<(), EngineError> {
        let io = |e: ReproducerIo| EngineError::Io {
            dir: dir.to_path_buf(),
            source: e,
        };
        let arr = |shape: Vec<usize>, v: Vec<f32>| -> Result<ArrayD<f32>, EngineError> {
            let got = v.len();
            ArrayD::from_shape_vec(shape, v).map_err(|e| EngineError::Size {
                what: format!("reproducer feed ({e})"),
                got,
                want: 0,
            })
        };
        let mut sd = StateDict::new();
        let host = self.to_host()?;
        for s in &self.io.state {
            let v = host_part(&host, s.input).to_vec();
            sd.insert(s.input.into(), arr(vec![v.len()], v)?);
        }
        let feeds = self.io.host_feeds(
            x,
            (self.steps_taken + 1) as f32,
            self.scaler.map(|s| s.scale),
        )?;
        for (spec, feed) in self.io.inputs.iter().zip(feeds) {
            let data = match feed {
                Feed::Slice(d) => d.to_vec(),
                Feed::Scalar(v) => vec![v],
            };
            sd.insert(spec.name.clone(), arr(spec.shape.clone(), data)?);
        }
        std::fs::create_dir_all(dir).map_err(|e| io(e.into()))?;
        patchmix_export::onnx::write_onnx(&self.step.graph, &dir.join("step.onnx"))
            .map_err(|e| io(e.into()))?;
        save_safetensors(dir.join("feeds.safetensors"), &sd, None).map_err(|e| io(e.into()))?;
        Ok(())
    }
}
