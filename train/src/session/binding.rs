//! The IoBinding engine: the state in two sets of fixed device buffers used in turn
//! (ping-pong, one binding per direction, so the addresses are fixed and ORT's CUDA graphs can
//! replay the step), the batch and the scalars staged in (pinned, on CUDA) host buffers and
//! copied into fixed device buffers, and only the loss scalars copied back.

use super::error::EngineError;
use super::feeds::{Feed, StepIo, host_part};
use crate::device::Placement;
use crate::step::HostState;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::Tensor;

/// A per-step input: a host staging buffer (pinned on CUDA) and the fixed device buffer bound
/// to the session.
struct Staged {
    host: Tensor<f32>,
    dev: Tensor<f32>,
}

/// The IoBinding engine: fixed device buffers, two state sets used in turn.
pub(super) struct Bound {
    /// The state's inputs, in [`StepIo::state`] order.
    state: Vec<(&'static str, usize)>,
    /// `sets[k][i]`: state tensor i of set k.
    sets: [Vec<Tensor<f32>>; 2],
    /// The set holding the live state.
    cur: usize,
    /// Per-step inputs in [`StepIo::inputs`] order.
    inputs: Vec<Staged>,
    /// Loss outputs in [`StepIo::losses`] order.
    losses: Vec<Staged>,
    /// `bindings[k]` reads set k and writes set 1 − k.
    bindings: [IoBinding; 2],
    /// Run options per direction (each its own CUDA graph id).
    run_options: [RunOptions; 2],
}

impl Bound {
    /// Allocates the buffers of `io` on `placement` and binds them to `session`.
    pub fn new(
        session: &Session,
        io: &StepIo,
        placement: Placement,
        cuda_graph: bool,
    ) -> Result<Bound, EngineError> {
        let (dev_alloc, in_alloc, out_alloc) = match placement {
            Placement::Cpu => (
                Allocator::default(),
                Allocator::default(),
                Allocator::default(),
            ),
            Placement::Cuda(id) => {
                let dev = Allocator::new(
                    session,
                    MemoryInfo::new(
                        AllocationDevice::CUDA,
                        id as i32,
                        AllocatorType::Device,
                        MemoryType::Default,
                    )?,
                )?;
                // Pinned host staging makes the copies real DMA; plain host memory if the
                // session has no pinned allocator.
                let pinned = |t: MemoryType| -> Allocator {
                    MemoryInfo::new(AllocationDevice::CUDA_PINNED, 0, AllocatorType::Device, t)
                        .and_then(|m| Allocator::new(session, m))
                        .unwrap_or_default()
                };
                (
                    dev,
                    pinned(MemoryType::CPUInput),
                    pinned(MemoryType::CPUOutput),
                )
            }
        };
        let mut sets: [Vec<Tensor<f32>>; 2] = [Vec::new(), Vec::new()];
        for set in &mut sets {
            for s in &io.state {
                set.push(Tensor::<f32>::new(&dev_alloc, [s.len])?);
            }
        }
        let staged = |alloc: &Allocator, shape: &[usize]| -> Result<Staged, EngineError> {
            Ok(Staged {
                host: Tensor::<f32>::new(alloc, shape)?,
                dev: Tensor::<f32>::new(&dev_alloc, shape)?,
            })
        };
        let inputs = io
            .inputs
            .iter()
            .map(|s| staged(&in_alloc, &s.shape))
            .collect::<Result<Vec<_>, _>>()?;
        let mut losses = io
            .losses
            .iter()
            .map(|_| staged(&out_alloc, &[]))
            .collect::<Result<Vec<_>, _>>()?;
        let mut bindings = [session.create_binding()?, session.create_binding()?];
        let mut run_options = [RunOptions::new()?, RunOptions::new()?];
        for (k, binding) in bindings.iter_mut().enumerate() {
            for (i, s) in io.state.iter().enumerate() {
                binding.bind_input(s.input, &sets[k][i])?;
                binding.bind_output(s.output, &mut sets[1 - k][i])?;
            }
            for (spec, s) in io.inputs.iter().zip(&inputs) {
                binding.bind_input(spec.name.as_str(), &s.dev)?;
            }
            for ((name, _), s) in io.losses.iter().zip(&mut losses) {
                binding.bind_output(*name, &mut s.dev)?;
            }
            if cuda_graph {
                // Each direction binds other addresses, so each gets its own captured graph.
                run_options[k].set("gpu_graph_id", k.to_string())?;
            }
        }
        Ok(Bound {
            state: io.state.iter().map(|s| (s.input, s.len)).collect(),
            sets,
            cur: 0,
            inputs,
            losses,
            bindings,
            run_options,
        })
    }

    /// Copies a host state into the live set.
    pub fn load(&mut self, h: &HostState) -> Result<(), EngineError> {
        for (i, (input, _)) in self.state.iter().enumerate() {
            let v = host_part(h, input);
            let src = Tensor::from_array(([v.len()], v.to_vec()))?;
            src.copy_into(&mut self.sets[self.cur][i])?;
        }
        Ok(())
    }

    /// The live value of state input `input` on the host (`None` if the step has no such
    /// input).
    pub fn to_host(&self, input: &str) -> Result<Option<Vec<f32>>, EngineError> {
        let Some(i) = self.state.iter().position(|(n, _)| *n == input) else {
            return Ok(None);
        };
        let t = &self.sets[self.cur][i];
        let mut h = Tensor::<f32>::new(&Allocator::default(), [self.state[i].1])?;
        t.copy_into(&mut h)?;
        Ok(Some(h.try_extract_tensor::<f32>()?.1.to_vec()))
    }

    /// Runs one step on `feeds` (in [`StepIo::inputs`] order) and returns the loss values
    /// (in [`StepIo::losses`] order).
    pub fn run(
        &mut self,
        session: &mut Session,
        feeds: Vec<Feed<'_>>,
    ) -> Result<Vec<f32>, EngineError> {
        for (s, f) in self.inputs.iter_mut().zip(feeds) {
            let (_, buf) = s.host.try_extract_tensor_mut::<f32>()?;
            match f {
                Feed::Slice(d) => buf.copy_from_slice(d),
                Feed::Scalar(v) => buf[0] = v,
            }
            s.host.copy_into(&mut s.dev)?;
        }
        let k = self.cur;
        drop(session.run_binding_with_options(&self.bindings[k], &self.run_options[k])?);
        self.cur = 1 - k;
        let mut out = Vec::with_capacity(self.losses.len());
        for s in &mut self.losses {
            s.dev.copy_into(&mut s.host)?;
            out.push(s.host.try_extract_tensor::<f32>()?.1[0]);
        }
        Ok(out)
    }
}
