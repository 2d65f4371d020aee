//! Building the ORT session of a step: the session settings, and the session on the device
//! that [`crate::device::prepare`] chose (with `auto`'s fall back to the CPU).

use super::error::EngineError;
use crate::device::{self, CudaOptions, Device, DeviceError, DeviceOptions, Placement};
use crate::dist::{Communicator, collective_domain};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use std::path::PathBuf;
use std::sync::Arc;

/// Session settings.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Intra-op threads (`None`: one per available core, set explicitly; ORT's own default
    /// pins its pool threads and runs slower).
    pub threads: Option<usize>,
    /// ORT graph optimisation level 0–3 (Disable, Basic, Extended, All). The default is 3,
    /// the fastest on the step (`patchmix bench step --opt-levels 0,1,2,3`); all four give the
    /// same step (`ort_optimisation_levels_agree_on_the_step`).
    pub opt_level: u8,
    /// Write an ORT profile with this path prefix.
    pub profile: Option<PathBuf>,
    /// The rank's communicator, for step graphs with collectives (data-parallel training):
    /// registers their kernels ([`collective_domain`]) and fixes the node order.
    pub collectives: Option<Collectives>,
}

/// The communicator a session's collective kernels run on, and which kernels run them.
#[derive(Clone)]
pub struct Collectives {
    comm: Arc<dyn Communicator>,
    kernels: Kernels,
}

/// Where the collective kernels of a session run.
#[derive(Clone)]
enum Kernels {
    /// CPU kernels on the communicator's host buffers (MPI, threads); on a CUDA session ONNX
    /// Runtime stages their tensors through host memory.
    Host,
    /// CUDA kernels enqueueing NCCL on ORT's stream.
    #[cfg(feature = "nccl")]
    Nccl(Arc<crate::dist::nccl::NcclWorld>),
}

impl Collectives {
    /// Collectives through `comm`'s host buffers (CPU kernels).
    pub fn host(comm: Arc<dyn Communicator>) -> Collectives {
        Collectives {
            comm,
            kernels: Kernels::Host,
        }
    }

    /// Collectives through NCCL on the device (CUDA kernels); host-side exchanges (the
    /// start-up agreement) go through the world's host communicator.
    #[cfg(feature = "nccl")]
    pub fn nccl(world: Arc<crate::dist::nccl::NcclWorld>) -> Collectives {
        Collectives {
            comm: world.clone(),
            kernels: Kernels::Nccl(world),
        }
    }

    /// The rank's communicator.
    pub fn comm(&self) -> &Arc<dyn Communicator> {
        &self.comm
    }

    /// Whether the kernels run on the GPU (NCCL), so the session must be on CUDA.
    pub fn on_device(&self) -> bool {
        !matches!(self.kernels, Kernels::Host)
    }

    /// The CUDA device of this rank: under NCCL with several ranks on a node, `cuda:N` means
    /// GPU N + the rank's index on its node (the launcher's local rank), one GPU per rank as
    /// NCCL requires; otherwise `device` itself.
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::{device::Device, dist::ThreadWorld, session::Collectives};
    /// use std::sync::Arc;
    /// let host = Collectives::host(Arc::new(ThreadWorld::ranks(2).remove(1)));
    /// assert_eq!(host.rank_device(Device::Cuda(0)), Device::Cuda(0)); // host collectives: as given
    /// ```
    pub fn rank_device(&self, device: crate::device::Device) -> crate::device::Device {
        use crate::device::Device;
        match device {
            Device::Cuda(n) if self.on_device() && self.comm.world_size() > 1 => {
                let local = crate::dist::launch::local_rank().unwrap_or(0);
                Device::Cuda(n + u32::try_from(local).unwrap_or(0))
            }
            other => other,
        }
    }

    /// The custom-operator domain with this world's kernels.
    fn domain(&self) -> ort::Result<ort::operator::OperatorDomain> {
        match &self.kernels {
            Kernels::Host => collective_domain(self.comm.clone()),
            #[cfg(feature = "nccl")]
            Kernels::Nccl(world) => {
                crate::dist::nccl::operators::nccl_collective_domain(world.clone())
            }
        }
    }
}

impl std::fmt::Debug for Collectives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Collectives(rank {} of {}, {})",
            self.comm.rank(),
            self.comm.world_size(),
            if self.on_device() { "nccl" } else { "host" }
        )
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: None,
            opt_level: 3,
            profile: None,
            collectives: None,
        }
    }
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
) -> Result<SessionBuilder, EngineError> {
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
    if let Some(collectives) = &opts.collectives {
        // Every rank must reach the collectives in the same order, or two ranks would wait in
        // different ones forever: sequential execution with one inter-op thread runs the nodes
        // one at a time in the execution plan's order, a deterministic topological order that
        // is the same on every rank because every rank compiles and optimises the same graph
        // with the same ONNX Runtime. (Intra-op threads stay: they work inside one node.)
        b = b
            .with_parallel_execution(false)?
            .with_inter_threads(1)?
            .with_operators(collectives.domain()?)?;
    }
    Ok(b)
}

/// Builds an ORT session for the model `bytes` with ONNX Runtime already prepared for
/// `dev.device`, and returns where it runs. `cuda[:N]` registers the CUDA provider and fails
/// with a message that names what is missing rather than falling back; `auto` falls back to
/// the CPU, saying so (`log::info!`), when the session cannot be built on CUDA.
pub(super) fn build_on_device(
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
            log::info!(
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
