//! Running compiled steps in ONNX Runtime with the training state kept as ORT values.
//!
//! One [`StepSession::run`] is one `Session::run`: parameters, AdamW moments, BN buffers and
//! the momentum encoder are inputs, and their updated versions (outputs) replace them for the
//! next step without a host copy. Only the batch and the scalars go in, and the four loss
//! scalars come out; [`StepSession::to_host`] copies the state out for checkpoints.
//!
//! On the CPU (the default) the state lives in ORT values that are fed to `Session::run` and
//! replaced by its outputs. On CUDA ([`DeviceOptions`], [`crate::device`]) the session runs
//! through `IoBinding`: two sets of state buffers are allocated once in device memory, each
//! step reads one set and writes the other (ping-pong, with a binding per direction, so the
//! addresses are fixed and ORT's CUDA graphs can replay the step), the batch and the scalars
//! are staged in pinned host buffers and copied into fixed device buffers, and only the loss
//! scalars come back. The same bound path runs on the CPU with `io_binding: true`, which is how
//! it is tested without a GPU.

use crate::device::{self, CudaOptions, Device, DeviceError, Placement};
use crate::step::{Frame, LossScaler, StepConfig, StepGraph, names};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{DynValue, Tensor, TensorRef};
use patchmix_export::onnx::to_onnx_bytes;
use std::path::PathBuf;

/// Errors of the training engine's session.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// ONNX Runtime could not be provisioned.
    #[error("{0}")]
    Setup(String),
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
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for EngineError {
    fn from(e: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        EngineError::Ort(e.into())
    }
}

/// The trained state on the host, in the step's flat layouts.
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    /// Flat parameters.
    pub params: Vec<f32>,
    /// AdamW first moments.
    pub exp_avg: Vec<f32>,
    /// AdamW second moments.
    pub exp_avg_sq: Vec<f32>,
    /// BN running statistics.
    pub buffers: Vec<f32>,
    /// Momentum-encoder parameters (empty without one).
    pub momentum: Vec<f32>,
    /// Optimizer steps taken (AdamW's t; fp16 steps skipped for overflow do not count).
    pub step: u64,
    /// The fp16 loss scaler (`None` for fp32/bf16 steps).
    pub scaler: Option<LossScaler>,
}

/// The per-step data.
#[derive(Clone, Debug)]
pub struct StepInputs<'a> {
    /// view1, view2, mix1, mix2, each B·3·H·W.
    pub images: [&'a [f32]; 4],
    /// target_src, target_mix, target_mix2, each B·N.
    pub targets: [&'a [f32]; 3],
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// Loss temperature τ.
    pub temperature: f32,
    /// EMA momentum μ (ignored without a momentum encoder).
    pub momentum: f32,
    /// Drop-path scales per base pass, each 2·depth·(rows of that pass) (empty when drop
    /// path is off).
    pub drop_path: Vec<&'a [f32]>,
    /// Multi-crop: the local crops and their PatchMix, each n·B·3·l·l (crop-major), or
    /// `None` without local crops.
    pub local: Option<[&'a [f32]; 2]>,
}

/// The step's loss terms.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    /// CE(q1, k2, I).
    pub src: f32,
    /// CE(q_m2, sg(k1), T_mix).
    pub mix: f32,
    /// CE(q_m2, k_m1, T_mix2).
    pub mix2: f32,
    /// Multi-crop: (1/n)·Σ_j [CE(q_lj, sg(k1), I) + CE(q_lj, sg(k2), I)] (0 without local
    /// crops).
    #[serde(default)]
    pub multi: f32,
    /// Multi-crop: (1/n)·Σ_j [CE(q_mlj, sg(k1), T_mix) + CE(q_mlj, sg(k2), T_mix)] (0 without
    /// local crops).
    #[serde(default)]
    pub multi_mix: f32,
    /// src + mix/2 + mix2/2 + multi + multi_mix.
    pub total: f32,
    /// fp16: the gradients overflowed at this loss scale, so AdamW was not applied (the
    /// scale is halved for the next step).
    #[serde(default)]
    pub skipped: bool,
}

/// Session settings.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Intra-op threads (`None`: one per available core, set explicitly; see [`build_session`]).
    pub threads: Option<usize>,
    /// ORT graph optimisation level 0–3 (Disable, Basic, Extended, All). The default is 3,
    /// the fastest on the step (`patchmix bench step --opt-levels 0,1,2,3`); all four give the
    /// same step (`ort_optimisation_levels_agree_on_the_step`).
    pub opt_level: u8,
    /// Write an ORT profile with this path prefix.
    pub profile: Option<PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: None,
            opt_level: 3,
            profile: None,
        }
    }
}

/// Where and how a step session runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// `cpu` (default), `cuda[:N]` (an error if CUDA cannot be used) or `auto`.
    pub device: Device,
    /// ORT's CUDA graph capture (CUDA only; the step is then one graph replay).
    pub cuda_graph: bool,
    /// TF32 tensor-core math for fp32 MatMul/Gemm on CUDA.
    pub tf32: bool,
    /// Run the IoBinding path (fixed ping-pong state buffers) on the CPU too. CUDA always
    /// uses it; on the CPU the default is the plain `Session::run` path.
    pub io_binding: bool,
}

fn level_of(opt_level: u8) -> GraphOptimizationLevel {
    match opt_level {
        0 => GraphOptimizationLevel::Disable,
        1 => GraphOptimizationLevel::Level1,
        2 => GraphOptimizationLevel::Level2,
        _ => GraphOptimizationLevel::Level3,
    }
}

fn session_builder(
    env: &ort::environment::Environment,
    opts: &SessionOptions,
) -> Result<ort::session::builder::SessionBuilder, EngineError> {
    let mut b = Session::builder(env)?.with_optimization_level(level_of(opts.opt_level))?;
    // Always set the intra-op thread count: left at 0, ORT pins its pool threads to cores
    // while the calling thread floats, and on a 2-core machine one run in two then loses a
    // third of its speed (measured: 223–326 img/s bimodal vs 297–325 img/s with 2 explicit).
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    b = b.with_intra_threads(threads)?;
    if let Some(p) = &opts.profile {
        b = b.with_profiling(p)?;
    }
    Ok(b)
}

/// Builds an ORT session for a model on the CPU.
///
/// # Errors
/// Setup or ORT errors.
pub fn build_session(bytes: &[u8], opts: &SessionOptions) -> Result<Session, EngineError> {
    build_session_on(bytes, opts, &DeviceOptions::default()).map(|(s, _)| s)
}

/// Builds an ORT session for a model on the requested device and returns where it runs.
/// `cuda[:N]` loads ORT's CUDA build and registers its CUDA provider, and fails with a message
/// that names what is missing rather than falling back; `auto` falls back to the CPU, saying
/// so on stderr, when CUDA does not load or the session cannot be built on it.
///
/// # Errors
/// [`EngineError::Device`] when CUDA was requested and cannot be used; setup or ORT errors.
pub fn build_session_on(
    bytes: &[u8],
    opts: &SessionOptions,
    dev: &DeviceOptions,
) -> Result<(Session, Placement), EngineError> {
    build_session_prepared(bytes, opts, dev, &device::prepare(dev.device)?)
}

/// [`build_session_on`] with ONNX Runtime already prepared for `dev.device`.
fn build_session_prepared(
    bytes: &[u8],
    opts: &SessionOptions,
    dev: &DeviceOptions,
    prepared: &device::Prepared,
) -> Result<(Session, Placement), EngineError> {
    let cuda = CudaOptions {
        device_id: 0,
        cuda_graph: dev.cuda_graph,
        tf32: dev.tf32,
        memory_limit: None,
    };
    let b = session_builder(&prepared.env, opts)?;
    let (mut b, placement) = device::register_execution_provider(b, prepared, &cuda)?;
    match (b.commit_from_memory(bytes), placement) {
        (Ok(s), p) => Ok((s, p)),
        (Err(e), Placement::Cuda(_)) if dev.device == Device::Auto => {
            eprintln!(
                "patchmix: --device auto: using the CPU, because the step session could not be built on CUDA: {e}"
            );
            let mut b = session_builder(&prepared.env, opts)?;
            Ok((b.commit_from_memory(bytes)?, Placement::Cpu))
        }
        (Err(e), Placement::Cuda(id)) => {
            let e = e.to_string();
            Err(EngineError::Device(DeviceError::CudaUnavailable(format!(
                "building the step session on cuda:{id} failed ({}): {e}{}",
                prepared.lib.display(),
                device::missing_library_hint(&e)
            ))))
        }
        (Err(e), Placement::Cpu) => Err(e.into()),
    }
}

/// A compiled step bound to an ORT session and its live state.
pub struct StepSession {
    session: Session,
    step: StepGraph,
    engine: Engine,
    placement: Placement,
    steps_taken: u64,
    scaler: Option<LossScaler>,
}

/// How the live state is held.
enum Engine {
    /// ORT values fed to `Session::run` and replaced by its outputs.
    Plain(Vec<(&'static str, DynValue)>),
    /// Fixed buffers bound through `IoBinding`.
    Bound(Box<Bound>),
}

fn tensor1(v: &[f32]) -> Result<DynValue, EngineError> {
    Ok(Tensor::from_array(([v.len()], v.to_vec()))?.into_dyn())
}

/// One step input's host data, in the order of [`input_specs`].
enum Feed<'a> {
    Slice(&'a [f32]),
    Scalar(f32),
}

/// Every per-step input of the step (not the state): name and shape, in feed order.
fn input_specs(cfg: &StepConfig) -> Vec<(String, Vec<usize>)> {
    let (b, img) = (cfg.batch, cfg.vit.img);
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    for name in names::IMAGES {
        v.push((name.to_string(), vec![b, 3, img, img]));
    }
    for name in names::TARGETS {
        v.push((name.to_string(), vec![b, b]));
    }
    if let Some(l) = &cfg.local {
        for name in names::LOCAL_IMAGES {
            v.push((name.to_string(), vec![l.count * b, 3, l.img, l.img]));
        }
    }
    let mut scalars = vec![names::LR, names::WD, names::STEP, names::TEMPERATURE];
    if cfg.frame == Frame::Momentum {
        scalars.push(names::MOMENTUM);
    }
    if cfg.scales_loss() {
        scalars.push(names::LOSS_SCALE);
    }
    for name in scalars {
        v.push((name.to_string(), vec![]));
    }
    if cfg.has_drop_path() {
        for pass in cfg.base_passes() {
            v.push((
                format!("{}{pass}", names::DROP_PATH_PREFIX),
                vec![2 * cfg.vit.depth, cfg.pass_rows(pass), 1, 1],
            ));
        }
    }
    v
}

/// Checks a step's host inputs against the config and returns them in [`input_specs`] order.
fn host_feeds<'a>(
    cfg: &StepConfig,
    x: &StepInputs<'a>,
    t: f32,
    loss_scale: Option<f32>,
) -> Result<Vec<Feed<'a>>, EngineError> {
    let (b, img) = (cfg.batch, cfg.vit.img);
    let img_len = b * 3 * img * img;
    let mut feeds = Vec::with_capacity(24);
    for (name, data) in names::IMAGES.iter().zip(x.images) {
        if data.len() != img_len {
            return Err(EngineError::Size {
                what: name.to_string(),
                got: data.len(),
                want: img_len,
            });
        }
        feeds.push(Feed::Slice(data));
    }
    for (name, data) in names::TARGETS.iter().zip(x.targets) {
        if data.len() != b * b {
            return Err(EngineError::Size {
                what: name.to_string(),
                got: data.len(),
                want: b * b,
            });
        }
        feeds.push(Feed::Slice(data));
    }
    match (&cfg.local, x.local) {
        (Some(l), Some(locals)) => {
            let rows = l.count * b;
            for (name, data) in names::LOCAL_IMAGES.iter().zip(locals) {
                let want = rows * 3 * l.img * l.img;
                if data.len() != want {
                    return Err(EngineError::Size {
                        what: name.to_string(),
                        got: data.len(),
                        want,
                    });
                }
                feeds.push(Feed::Slice(data));
            }
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(EngineError::Setup(
                "the step has local crops but the batch has none".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(EngineError::Setup(
                "the batch has local crops but the step was built without them".into(),
            ));
        }
    }
    feeds.extend([x.lr, x.wd, t, x.temperature].map(Feed::Scalar));
    if cfg.frame == Frame::Momentum {
        feeds.push(Feed::Scalar(x.momentum));
    }
    match (cfg.scales_loss(), loss_scale) {
        (true, Some(s)) => feeds.push(Feed::Scalar(s)),
        (false, None) => {}
        (true, None) => {
            return Err(EngineError::Setup(
                "the fp16 step needs a loss scale".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(EngineError::Setup(
                "a loss scale was given to a step without loss scaling".into(),
            ));
        }
    }
    if cfg.has_drop_path() {
        for (pass, data) in cfg.base_passes().iter().zip(&x.drop_path) {
            let rows = cfg.pass_rows(pass);
            let want = 2 * cfg.vit.depth * rows;
            if data.len() != want {
                return Err(EngineError::Size {
                    what: format!("drop-path masks of {pass}"),
                    got: data.len(),
                    want,
                });
            }
            feeds.push(Feed::Slice(data));
        }
        if x.drop_path.len() != cfg.base_passes().len() {
            return Err(EngineError::Size {
                what: "drop-path pass list".into(),
                got: x.drop_path.len(),
                want: cfg.base_passes().len(),
            });
        }
    }
    Ok(feeds)
}

/// The scalar outputs of a step, in [`Losses`] order (`src, mix, mix2, total[, multi,
/// multi_mix][, grads_finite]`).
fn loss_names(cfg: &StepConfig) -> Vec<&'static str> {
    let mut v = names::LOSSES.to_vec();
    if cfg.local.is_some() {
        v.extend(names::LOSS_MULTI);
    }
    if cfg.scales_loss() {
        v.push(names::GRADS_FINITE);
    }
    v
}

fn losses_from(cfg: &StepConfig, v: &[f32]) -> Losses {
    let (multi, multi_mix) = if cfg.local.is_some() {
        (v[4], v[5])
    } else {
        (0.0, 0.0)
    };
    let skipped = cfg.scales_loss() && v.last().is_none_or(|&f| f != 1.0);
    Losses {
        src: v[0],
        mix: v[1],
        mix2: v[2],
        total: v[3],
        multi,
        multi_mix,
        skipped,
    }
}

/// ONNX Runtime's CPU EP computes no matrix product in half precision: it has no bf16
/// MatMul/Gemm, and it runs fp16 ones in f32 between casts that its graph transformer then
/// removes together with the graph's own round trips (checked with onnxruntime 1.31.1: an
/// fp16 Gemm between casts returns the f32 product unrounded). A native half-precision step
/// that will run on the CPU is therefore rebuilt with its products emulated (rounded to the
/// half type, computed in f32; the numbers of a half-precision run, at fp32 speed), saying so
/// on stderr.
fn fit_to_device(step: StepGraph, placement: Placement) -> Result<StepGraph, EngineError> {
    use patchmix_export::graph::Compute;
    let Compute::Native(dtype) = step.compute else {
        return Ok(step);
    };
    if placement != Placement::Cpu {
        return Ok(step);
    }
    eprintln!(
        "patchmix: {} on the CPU: ONNX Runtime's CPU EP has no half-precision matrix kernels, so the products are emulated ({dtype:?} rounding, f32 kernels): the numbers of a half-precision run, no speed-up (the rounding casts make it slower than fp32)",
        step.config.precision
    );
    crate::step::build_step_with(&step.config, true).map_err(|e| {
        EngineError::Setup(format!(
            "rebuilding the {} step for the CPU: {e}",
            step.config.precision
        ))
    })
}

/// The state inputs (name, output name, length) of a step, in [`HostState`] order.
fn state_specs(step: &StepGraph) -> Vec<(&'static str, &'static str, usize)> {
    let l = &step.layout;
    let mut v = vec![
        (names::PARAMS, names::STATE_OUTPUTS[0], l.params.len()),
        (names::EXP_AVG, names::STATE_OUTPUTS[1], l.params.len()),
        (names::EXP_AVG_SQ, names::STATE_OUTPUTS[2], l.params.len()),
        (names::BUFFERS, names::STATE_OUTPUTS[3], l.buffers.len()),
    ];
    if step.config.frame == Frame::Momentum {
        v.push((
            names::MOMENTUM_PARAMS,
            names::STATE_OUTPUTS[4],
            l.momentum.len(),
        ));
    }
    v
}

/// A per-step input: a host staging buffer (pinned on CUDA) and the fixed device buffer bound
/// to the session.
struct Staged {
    host: Tensor<f32>,
    dev: Tensor<f32>,
}

/// The IoBinding engine: fixed device buffers, two state sets used in turn.
struct Bound {
    /// The state's (input, output, length), in [`HostState`] order.
    state: Vec<(&'static str, &'static str, usize)>,
    /// `sets[k][i]`: state tensor i of set k.
    sets: [Vec<Tensor<f32>>; 2],
    /// The set holding the live state.
    cur: usize,
    /// Per-step inputs in [`input_specs`] order.
    inputs: Vec<Staged>,
    /// Loss outputs in [`loss_names`] order.
    losses: Vec<Staged>,
    /// `bindings[k]` reads set k and writes set 1 − k.
    bindings: [IoBinding; 2],
    /// Run options per direction (each its own CUDA graph id).
    run_options: [RunOptions; 2],
}

impl Bound {
    fn new(
        session: &Session,
        step: &StepGraph,
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
        let state = state_specs(step);
        let mut sets: [Vec<Tensor<f32>>; 2] = [Vec::new(), Vec::new()];
        for set in &mut sets {
            for (_, _, len) in &state {
                set.push(Tensor::<f32>::new(&dev_alloc, [*len])?);
            }
        }
        let staged = |alloc: &Allocator, shape: &[usize]| -> Result<Staged, EngineError> {
            Ok(Staged {
                host: Tensor::<f32>::new(alloc, shape)?,
                dev: Tensor::<f32>::new(&dev_alloc, shape)?,
            })
        };
        let specs = input_specs(&step.config);
        let inputs = specs
            .iter()
            .map(|(_, shape)| staged(&in_alloc, shape))
            .collect::<Result<Vec<_>, _>>()?;
        let loss_out = loss_names(&step.config);
        let mut losses = loss_out
            .iter()
            .map(|_| staged(&out_alloc, &[]))
            .collect::<Result<Vec<_>, _>>()?;
        let mut bindings = [session.create_binding()?, session.create_binding()?];
        let mut run_options = [RunOptions::new()?, RunOptions::new()?];
        for (k, binding) in bindings.iter_mut().enumerate() {
            for (i, (input, output, _)) in state.iter().enumerate() {
                binding.bind_input(*input, &sets[k][i])?;
                binding.bind_output(*output, &mut sets[1 - k][i])?;
            }
            for ((name, _), s) in specs.iter().zip(&inputs) {
                binding.bind_input(name.as_str(), &s.dev)?;
            }
            for (name, s) in loss_out.iter().zip(&mut losses) {
                binding.bind_output(*name, &mut s.dev)?;
            }
            if cuda_graph {
                // Each direction binds other addresses, so each gets its own captured graph.
                run_options[k].set("gpu_graph_id", k.to_string())?;
            }
        }
        Ok(Bound {
            state,
            sets,
            cur: 0,
            inputs,
            losses,
            bindings,
            run_options,
        })
    }

    fn load(&mut self, h: &HostState) -> Result<(), EngineError> {
        let host = [
            &h.params,
            &h.exp_avg,
            &h.exp_avg_sq,
            &h.buffers,
            &h.momentum,
        ];
        for (i, v) in host.iter().enumerate().take(self.state.len()) {
            let src = Tensor::from_array(([v.len()], v.to_vec()))?;
            src.copy_into(&mut self.sets[self.cur][i])?;
        }
        Ok(())
    }

    fn to_host(&self, i: usize) -> Result<Vec<f32>, EngineError> {
        let t = &self.sets[self.cur][i];
        let mut h = Tensor::<f32>::new(&Allocator::default(), [self.state[i].2])?;
        t.copy_into(&mut h)?;
        Ok(h.try_extract_tensor::<f32>()?.1.to_vec())
    }

    fn run(
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

impl StepSession {
    /// Compiles the step into an ORT session on the CPU and uploads the initial state.
    ///
    /// # Errors
    /// Setup or ORT errors, or a state of the wrong size.
    pub fn new(
        step: StepGraph,
        opts: &SessionOptions,
        init: &HostState,
    ) -> Result<StepSession, EngineError> {
        Self::new_on_device(step, opts, &DeviceOptions::default(), init)
    }

    /// Compiles the step into an ORT session on the requested device ([`build_session_on`])
    /// and uploads the initial state: into ORT values on the CPU, into fixed device buffers
    /// bound through `IoBinding` on CUDA (or on the CPU with `io_binding`).
    ///
    /// # Errors
    /// [`EngineError::Device`] when CUDA was requested and cannot be used; setup or ORT
    /// errors, or a state of the wrong size.
    pub fn new_on_device(
        step: StepGraph,
        opts: &SessionOptions,
        dev: &DeviceOptions,
        init: &HostState,
    ) -> Result<StepSession, EngineError> {
        let prepared = device::prepare(dev.device)?;
        let step = fit_to_device(step, prepared.placement)?;
        let bytes = to_onnx_bytes(&step.graph);
        let (session, placement) = build_session_prepared(&bytes, opts, dev, &prepared)?;
        let engine = if placement == Placement::Cpu && !dev.io_binding {
            Engine::Plain(Vec::new())
        } else {
            let cuda_graph = dev.cuda_graph && placement != Placement::Cpu;
            Engine::Bound(Box::new(Bound::new(
                &session, &step, placement, cuda_graph,
            )?))
        };
        let mut s = StepSession {
            session,
            step,
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
            Engine::Plain(state) => {
                let mut fresh = vec![
                    (names::PARAMS, tensor1(&h.params)?),
                    (names::EXP_AVG, tensor1(&h.exp_avg)?),
                    (names::EXP_AVG_SQ, tensor1(&h.exp_avg_sq)?),
                    (names::BUFFERS, tensor1(&h.buffers)?),
                ];
                if self.step.config.frame == Frame::Momentum {
                    fresh.push((names::MOMENTUM_PARAMS, tensor1(&h.momentum)?));
                }
                *state = fresh;
            }
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
        let get = |name: &str| -> Result<Vec<f32>, EngineError> {
            match &self.engine {
                Engine::Plain(state) => match state.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => Ok(v.try_extract_tensor::<f32>()?.1.to_vec()),
                    None => Ok(Vec::new()),
                },
                Engine::Bound(b) => match b.state.iter().position(|(n, _, _)| *n == name) {
                    Some(i) => b.to_host(i),
                    None => Ok(Vec::new()),
                },
            }
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

    /// Writes the step as a standalone reproducer: `step.onnx` (the compiled graph) and
    /// `feeds.safetensors` (every input of one `Session::run`: the live state, the batch and
    /// the scalars, under the graph's input names). Any ONNX Runtime, e.g. Python's
    /// `onnxruntime.InferenceSession("step.onnx").run(None, feeds)`, can then replay the step,
    /// which is how optimiser and execution-provider differences are bisected.
    ///
    /// # Errors
    /// Inputs of the wrong size, ORT errors, or files that cannot be written.
    pub fn save_reproducer(
        &self,
        dir: &std::path::Path,
        x: &StepInputs<'_>,
    ) -> Result<(), EngineError> {
        use ndarray::ArrayD;
        let io = |e: &dyn std::fmt::Display| EngineError::Setup(format!("{}: {e}", dir.display()));
        let cfg = &self.step.config;
        let arr = |shape: Vec<usize>, v: Vec<f32>| -> Result<ArrayD<f32>, EngineError> {
            let got = v.len();
            ArrayD::from_shape_vec(shape, v).map_err(|e| EngineError::Size {
                what: format!("reproducer feed ({e})"),
                got,
                want: 0,
            })
        };
        let mut sd = patchmix_export::weights::StateDict::new();
        let host = self.to_host()?;
        let state = [
            host.params,
            host.exp_avg,
            host.exp_avg_sq,
            host.buffers,
            host.momentum,
        ];
        for ((name, _, _), v) in state_specs(&self.step).into_iter().zip(state) {
            sd.insert(name.into(), arr(vec![v.len()], v)?);
        }
        let feeds = host_feeds(
            cfg,
            x,
            (self.steps_taken + 1) as f32,
            self.scaler.map(|s| s.scale),
        )?;
        for ((name, shape), feed) in input_specs(cfg).into_iter().zip(feeds) {
            let data = match feed {
                Feed::Slice(d) => d.to_vec(),
                Feed::Scalar(v) => vec![v],
            };
            sd.insert(name, arr(shape, data)?);
        }
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        patchmix_export::onnx::write_onnx(&self.step.graph, &dir.join("step.onnx"))
            .map_err(|e| io(&e))?;
        patchmix_export::weights::save_safetensors(dir.join("feeds.safetensors"), &sd, None)
            .map_err(|e| io(&e))?;
        Ok(())
    }

    /// Runs one training step and returns its losses.
    ///
    /// # Errors
    /// Inputs of the wrong size, or ORT errors.
    pub fn run(&mut self, x: &StepInputs<'_>) -> Result<Losses, EngineError> {
        let cfg = &self.step.config;
        let t = (self.steps_taken + 1) as f32;
        let feeds = host_feeds(cfg, x, t, self.scaler.map(|s| s.scale))?;
        let losses = match &mut self.engine {
            Engine::Bound(b) => losses_from(cfg, &b.run(&mut self.session, feeds)?),
            Engine::Plain(state) => {
                let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> =
                    Vec::with_capacity(24);
                for (name, v) in state.iter() {
                    inputs.push((name.to_string(), v.into()));
                }
                for ((name, shape), feed) in input_specs(cfg).into_iter().zip(feeds) {
                    let v: ort::session::SessionInputValue<'_> = match feed {
                        Feed::Slice(d) => TensorRef::from_array_view((shape, d))?.into_dyn().into(),
                        Feed::Scalar(v) => Tensor::from_array(((), vec![v]))?.into_dyn().into(),
                    };
                    inputs.push((name, v));
                }
                let mut outputs = self.session.run(inputs)?;
                let mut vals = Vec::with_capacity(6);
                for n in loss_names(cfg) {
                    let v = outputs
                        .get(n)
                        .ok_or_else(|| EngineError::Setup(format!("step output `{n}` missing")))?;
                    vals.push(v.try_extract_tensor::<f32>()?.1[0]);
                }
                let mut next = Vec::with_capacity(state.len());
                for ((name, _), out) in state.iter().zip(names::STATE_OUTPUTS) {
                    let v = outputs.remove(out).ok_or_else(|| {
                        EngineError::Setup(format!("step output `{out}` missing"))
                    })?;
                    next.push((*name, v));
                }
                drop(outputs);
                *state = next;
                losses_from(cfg, &vals)
            }
        };
        if let Some(s) = &mut self.scaler {
            s.update(!losses.skipped);
        }
        if !losses.skipped {
            self.steps_taken += 1;
        }
        Ok(losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{LocalCrops, StepConfig};

    fn cfg(frame: Frame, drop_path: f32, local: Option<LocalCrops>) -> StepConfig {
        StepConfig {
            batch: 4,
            local,
            ..StepConfig::tiny(frame, drop_path)
        }
    }

    #[test]
    fn input_specs_follow_the_feed_order_and_sizes() {
        let c = cfg(Frame::Momentum, 0.1, Some(LocalCrops { count: 2, img: 4 }));
        let specs = input_specs(&c);
        let names: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            &names[..12],
            [
                "view1",
                "view2",
                "mix1",
                "mix2",
                "target_src",
                "target_mix",
                "target_mix2",
                "local",
                "local_mix",
                "lr",
                "wd",
                "step"
            ]
        );
        assert_eq!(&names[12..14], ["temperature", "momentum"]);
        let passes: Vec<String> = c
            .base_passes()
            .iter()
            .map(|p| format!("drop_path.{p}"))
            .collect();
        assert_eq!(
            &names[14..],
            passes.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(specs[0].1, [4, 3, 8, 8]);
        assert_eq!(specs[7].1, [8, 3, 4, 4]);
        assert!(specs[9].1.is_empty());
        // host_feeds yields one feed per spec, of the spec's size.
        let img = vec![0.0; 4 * 3 * 64];
        let tgt = vec![0.0; 16];
        let loc = vec![0.0; 8 * 3 * 16];
        let dp: Vec<Vec<f32>> = c
            .base_passes()
            .iter()
            .map(|p| vec![1.0; 2 * 2 * c.pass_rows(p)])
            .collect();
        let x = StepInputs {
            images: [&img, &img, &img, &img],
            targets: [&tgt, &tgt, &tgt],
            lr: 0.1,
            wd: 0.2,
            temperature: 0.3,
            momentum: 0.9,
            drop_path: dp.iter().map(Vec::as_slice).collect(),
            local: Some([&loc, &loc]),
        };
        let feeds = host_feeds(&c, &x, 5.0, None).unwrap();
        assert_eq!(feeds.len(), specs.len());
        for ((name, shape), f) in specs.iter().zip(&feeds) {
            let n: usize = shape.iter().product();
            match f {
                Feed::Slice(d) => assert_eq!(d.len(), n, "{name}"),
                Feed::Scalar(_) => assert!(shape.is_empty(), "{name}"),
            }
        }
        assert!(matches!(feeds[11], Feed::Scalar(v) if v == 5.0));
        assert!(matches!(feeds[13], Feed::Scalar(v) if v == 0.9));
        // Without local crops in the batch the step refuses it.
        let e = host_feeds(
            &c,
            &StepInputs {
                local: None,
                ..x.clone()
            },
            1.0,
            None,
        );
        assert!(matches!(e, Err(EngineError::Setup(_))));
        // fp16 steps take the loss scale after the scalars, and insist on it.
        let h = StepConfig {
            precision: crate::step::Precision::Fp16,
            ..c.clone()
        };
        let specs = input_specs(&h);
        let feeds = host_feeds(&h, &x, 5.0, Some(1024.0)).unwrap();
        assert_eq!(feeds.len(), specs.len());
        assert_eq!(specs[14].0, names::LOSS_SCALE);
        assert!(matches!(feeds[14], Feed::Scalar(v) if v == 1024.0));
        assert!(matches!(
            host_feeds(&h, &x, 5.0, None),
            Err(EngineError::Setup(_))
        ));
        assert!(matches!(
            host_feeds(&c, &x, 5.0, Some(1.0)),
            Err(EngineError::Setup(_))
        ));
    }

    #[test]
    fn loss_outputs_map_onto_losses() {
        let plain = cfg(Frame::NoMomentum, 0.0, None);
        assert_eq!(loss_names(&plain), names::LOSSES);
        let l = losses_from(&plain, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            (l.src, l.mix, l.mix2, l.total, l.multi),
            (1.0, 2.0, 3.0, 4.0, 0.0)
        );
        let multi = cfg(
            Frame::NoMomentum,
            0.0,
            Some(LocalCrops { count: 2, img: 4 }),
        );
        assert_eq!(loss_names(&multi).len(), 6);
        let l = losses_from(&multi, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((l.multi, l.multi_mix), (5.0, 6.0));
        assert!(!l.skipped);
        let half = StepConfig {
            precision: crate::step::Precision::Fp16,
            ..multi
        };
        assert_eq!(loss_names(&half)[6], names::GRADS_FINITE);
        assert!(!losses_from(&half, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0]).skipped);
        assert!(losses_from(&half, &[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0, 0.0]).skipped);
    }
}
