//! The plain engine: the state held in ORT values that are fed to `Session::run` and replaced
//! by its outputs (the CPU's default).

use super::error::EngineError;
use super::feeds::{Feed, StepIo, host_part};
use crate::step::HostState;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};

/// The live state as ORT values, in [`StepIo::state`] order.
#[derive(Default)]
pub(super) struct Plain {
    state: Vec<(&'static str, DynValue)>,
}

fn tensor1(v: &[f32]) -> Result<DynValue, EngineError> {
    Ok(Tensor::from_array(([v.len()], v.to_vec()))?.into_dyn())
}

impl Plain {
    /// Replaces the live state with a copy of `h`.
    pub fn load(&mut self, io: &StepIo, h: &HostState) -> Result<(), EngineError> {
        self.state = io
            .state
            .iter()
            .map(|s| Ok((s.input, tensor1(host_part(h, s.input))?)))
            .collect::<Result<_, EngineError>>()?;
        Ok(())
    }

    /// The live value of state input `input` on the host (`None` if the step has no such
    /// input).
    pub fn to_host(&self, input: &str) -> Result<Option<Vec<f32>>, EngineError> {
        match self.state.iter().find(|(n, _)| *n == input) {
            Some((_, v)) => Ok(Some(v.try_extract_tensor::<f32>()?.1.to_vec())),
            None => Ok(None),
        }
    }

    /// Runs one step on `feeds` (in [`StepIo::inputs`] order), keeps the updated state and
    /// returns the loss values (in [`StepIo::losses`] order).
    pub fn run(
        &mut self,
        session: &mut Session,
        io: &StepIo,
        feeds: Vec<Feed<'_>>,
    ) -> Result<Vec<f32>, EngineError> {
        let mut inputs: Vec<(String, SessionInputValue<'_>)> =
            Vec::with_capacity(self.state.len() + feeds.len());
        for (name, v) in &self.state {
            inputs.push((name.to_string(), v.into()));
        }
        for (spec, feed) in io.inputs.iter().zip(feeds) {
            let v: SessionInputValue<'_> = match feed {
                Feed::Slice(d) => TensorRef::from_array_view((spec.shape.clone(), d))?
                    .into_dyn()
                    .into(),
                Feed::Scalar(v) => Tensor::from_array(((), vec![v]))?.into_dyn().into(),
            };
            inputs.push((spec.name.clone(), v));
        }
        let mut outputs = session.run(inputs)?;
        let mut vals = Vec::with_capacity(io.losses.len());
        for (n, _) in &io.losses {
            let v = outputs
                .get(n)
                .ok_or_else(|| EngineError::MissingOutput(n.to_string()))?;
            vals.push(v.try_extract_tensor::<f32>()?.1[0]);
        }
        let mut next = Vec::with_capacity(self.state.len());
        for ((name, _), spec) in self.state.iter().zip(&io.state) {
            let v = outputs
                .remove(spec.output)
                .ok_or_else(|| EngineError::MissingOutput(spec.output.to_string()))?;
            next.push((*name, v));
        }
        drop(outputs);
        self.state = next;
        Ok(vals)
    }
}
