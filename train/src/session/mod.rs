//! Running compiled steps in ONNX Runtime with the training state kept as ORT values.
//!
//! One [`StepSession::run`] is one `Session::run`: parameters, AdamW moments, BN buffers and
//! the momentum encoder are inputs, and their updated versions (outputs) replace them for the
//! next step without a host copy. Only the batch and the scalars go in, and the four loss
//! scalars come out; [`StepSession::to_host`] copies the state out for checkpoints. What goes
//! in and comes out is read from the compiled graph's declared inputs and outputs.
//!
//! On the CPU (the default) the state lives in ORT values that are fed to `Session::run` and
//! replaced by its outputs. On CUDA ([`DeviceOptions`], [`crate::device`]) the session runs
//! through `IoBinding`: two sets of state buffers are allocated once in device memory, each
//! step reads one set and writes the other (ping-pong, with a binding per direction, so the
//! addresses are fixed and ORT's CUDA graphs can replay the step), the batch and the scalars
//! are staged in pinned host buffers and copied into fixed device buffers, and only the loss
//! scalars come back. The same bound path runs on the CPU with `io_binding: true`, which is how
//! it is tested without a GPU.

mod binding;
mod builder;
mod error;
mod fallback;
mod feeds;
mod finetune;
mod plain;
mod reproducer;

pub use builder::{Collectives, SessionOptions};
pub use error::{EngineError, InputMismatch, ReproducerIo};
pub use finetune::{FinetuneFeeds, FinetuneOutput, FinetuneSession};

use crate::device::{self, DeviceOptions, Placement};
use crate::step::{HostState, LossScaler, Losses, StepGraph, StepInputs};
use binding::Bound;
use feeds::StepIo;
use ort::session::Session;
use patchmix_export::onnx::to_onnx_bytes;
use plain::Plain;

/// A compiled step bound to an ORT session and its live state.
pub struct StepSession {
    session: Session,
    step: StepGraph,
    io: StepIo,
    engine: Engine,
    placement: Placement,
    steps_taken: u64,
    scaler: Option<LossScaler>,
}

/// How the live state is held.
enum Engine {
    /// ORT values fed to `Session::run` and replaced by its outputs.
    Plain(Plain),
    /// Fixed buffers bound through `IoBinding`.
    Bound(Box<Bound>),
}

impl StepSession {
    /// Compiles the step into an ORT session on the CPU and uploads the initial state.
    ///
    /// # Errors
    /// ORT errors, a step whose inputs the engine cannot feed, or a state of the wrong size.
    pub fn new(
        step: StepGraph,
        opts: &SessionOptions,
        init: &HostState,
    ) -> Result<StepSession, EngineError> {
        Self::new_on_device(step, opts, &DeviceOptions::default(), init)
    }

    /// Compiles the step into an ORT session on the requested device and uploads the initial
    /// state: into ORT values on the CPU, into fixed device buffers bound through `IoBinding`
    /// on CUDA (or on the CPU with `io_binding`). `cuda[:N]` fails with a message that names
    /// what is missing rather than falling back; `auto` falls back to the CPU, saying so
    /// (`log::info!`), when CUDA does not load or the session cannot be built on it. A
    /// native half-precision step that will run on the CPU is rebuilt with its products
    /// emulated.
    ///
    /// # Errors
    /// [`EngineError::Device`] when CUDA was requested and cannot be used; ORT errors, a step
    /// whose inputs the engine cannot feed, or a state of the wrong size.
    pub fn new_on_device(
        step: StepGraph,
        opts: &SessionOptions,
        dev: &DeviceOptions,
        init: &HostState,
    ) -> Result<StepSession, EngineError> {
        let communicator = opts
            .collectives
            .as_ref()
            .map_or(0, |c| c.comm().world_size());
        if step.collectives && communicator != step.world_size {
            return Err(EngineError::WorldSize {
                step: step.world_size,
                communicator,
            });
        }
        let prepared = device::prepare(dev.device)?;
        if opts.collectives.as_ref().is_some_and(|c| c.on_device())
            && prepared.placement == Placement::Cpu
        {
            return Err(EngineError::CollectivesNeedCuda(format!(
                "--device {}",
                dev.device
            )));
        }
        let step = fallback::fit_to_device(step, prepared.placement)?;
        let io = StepIo::of(&step)?;
        let bytes = to_onnx_bytes(&step.graph);
        let (session, placement) = builder::build_on_device(&bytes, opts, dev, &prepared)?;
        let engine = if placement == Placement::Cpu && !dev.io_binding {
            Engine::Plain(Plain::default())
        } else {
            let cuda_graph = dev.cuda_graph && placement != Placement::Cpu;
            Engine::Bound(Box::new(Bound::new(&session, &io, placement, cuda_graph)?))
        };
        let mut s = StepSession {
            session,
            step,
            io,
            engine,
            placement,
            steps_taken: 0,
            scaler: None,
        };
        s.load(init)?;
        Ok(s)
    }

    /// The compiled step.
    pub fn step_graph(&self) -> &StepGraph {
        &self.step
    }

    /// Where the session runs (for `auto`, what it resolved to).
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Whether the state lives in fixed buffers bound through `IoBinding`.
    pub fn is_bound(&self) -> bool {
        matches!(self.engine, Engine::Bound(_))
    }

    /// Replaces the live state.
    ///
    /// # Errors
    /// A state of the wrong size, or ORT errors.
    pub fn load(&mut self, h: &HostState) -> Result<(), EngineError> {
        let l = &self.step.layout;
        let check = |what: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(EngineError::Size {
                    what: what.into(),
                    got,
                    want,
                })
            }
        };
        check("params", h.params.len(), l.params.len())?;
        check("exp_avg", h.exp_avg.len(), l.params.len())?;
        check("exp_avg_sq", h.exp_avg_sq.len(), l.params.len())?;
        check("buffers", h.buffers.len(), l.buffers.len())?;
        check("momentum", h.momentum.len(), l.momentum.len())?;
        match &mut self.engine {
            Engine::Plain(p) => p.load(&self.io, h)?,
            Engine::Bound(b) => b.load(h)?,
        }
        self.steps_taken = h.step;
        self.scaler = self
            .step
            .config
            .scales_loss()
            .then(|| h.scaler.unwrap_or_default());
        Ok(())
    }

    /// Copies the live state to the host.
    ///
    /// # Errors
    /// ORT errors.
    pub fn to_host(&self) -> Result<HostState, EngineError> {
        use crate::step::names;
        let get = |input: &str| -> Result<Vec<f32>, EngineError> {
            let v = match &self.engine {
                Engine::Plain(p) => p.to_host(input)?,
                Engine::Bound(b) => b.to_host(input)?,
            };
            Ok(v.unwrap_or_default())
        };
        Ok(HostState {
            params: get(names::PARAMS)?,
            exp_avg: get(names::EXP_AVG)?,
            exp_avg_sq: get(names::EXP_AVG_SQ)?,
            buffers: get(names::BUFFERS)?,
            momentum: get(names::MOMENTUM_PARAMS)?,
            step: self.steps_taken,
            scaler: self.scaler,
        })
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// The fp16 loss scaler (`None` for fp32/bf16 steps).
    pub fn loss_scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// Runs one training step and returns its losses.
    ///
    /// # Errors
    /// Inputs of the wrong size ([`EngineError::Size`]) or that the step does not take
    /// ([`EngineError::Input`]), a missing output, or ORT errors.
    pub fn run(&mut self, x: &StepInputs<'_>) -> Result<Losses, EngineError> {
        let t = (self.steps_taken + 1) as f32;
        let feeds = self.io.host_feeds(x, t, self.scaler.map(|s| s.scale))?;
        let values = match &mut self.engine {
            Engine::Bound(b) => b.run(&mut self.session, feeds)?,
            Engine::Plain(p) => p.run(&mut self.session, &self.io, feeds)?,
        };
        let losses = self.io.losses_from(&values);
        if let Some(s) = &mut self.scaler {
            s.update(!losses.skipped);
        }
        if !losses.skipped {
            self.steps_taken += 1;
        }
        Ok(losses)
    }
}
