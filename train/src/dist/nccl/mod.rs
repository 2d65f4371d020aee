//! NCCL between GPUs (feature `nccl`): the step graph's collectives as CUDA kernels that
//! enqueue NCCL on ONNX Runtime's compute stream, so the tensors never leave the device.
//!
//! * [`ffi`]: NCCL's C API through cudarc 0.19 (the crate's one `unsafe` module);
//! * [`operators`]: `AllReduceSum` and `AllGather` for the CUDA execution provider;
//! * [`NcclWorld`]: one rank's NCCL world — its host communicator (MPI between processes, or
//!   itself alone), the unique id rank 0 made and sent over it, and the NCCL communicator,
//!   created on the first collective, on the thread and CUDA device ONNX Runtime runs the
//!   session on (ORT sets the session's device on the calling thread at the start of every
//!   run, and `ncclCommInitRank` binds the communicator to the current device).

pub mod ffi;
pub mod operators;

use super::comm::{CommError, Communicator};
use ffi::{Comm, DeviceF32, NcclLib, UniqueId};
use std::sync::{Arc, Mutex};

/// One rank's NCCL world.
pub struct NcclWorld {
    host: Arc<dyn Communicator>,
    lib: Arc<NcclLib>,
    id: UniqueId,
    comm: Mutex<Option<Comm>>,
}

impl std::fmt::Debug for NcclWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NcclWorld(rank {} of {}, {:?})",
            self.host.rank(),
            self.host.world_size(),
            self.lib
        )
    }
}

fn transport(message: String) -> CommError {
    CommError::Transport {
        backend: "nccl",
        message,
    }
}

impl NcclWorld {
    /// Joins the ranks of `host` into one NCCL world: rank 0 makes the unique id and sends it
    /// to the others over `host` (a collective: every rank calls this together). The NCCL
    /// communicator itself is created by the first collective kernel.
    ///
    /// # Errors
    /// NCCL's message when rank 0 cannot make the id, or the host transport's.
    pub fn join(lib: Arc<NcclLib>, host: Arc<dyn Communicator>) -> Result<NcclWorld, CommError> {
        let mine = if host.rank() == 0 {
            lib.unique_id().map_err(transport)?.to_bytes()
        } else {
            [0; 128]
        };
        let mut id = [0u8; 128];
        super::comm::share_from_rank0(host.as_ref(), &mine, &mut id)?;
        Ok(NcclWorld {
            host,
            lib,
            id: UniqueId::from_bytes(id),
            comm: Mutex::new(None),
        })
    }

    /// The unique id of this world's NCCL communicator (the same on every rank).
    pub fn id_bytes(&self) -> [u8; 128] {
        self.id.to_bytes()
    }

    /// The host communicator (start-up checks, configuration agreement).
    pub fn host(&self) -> &Arc<dyn Communicator> {
        &self.host
    }

    /// NCCL's library.
    pub fn lib(&self) -> &Arc<NcclLib> {
        &self.lib
    }

    /// Runs `op` on the NCCL communicator, creating it first if this is the first collective.
    fn with_comm(&self, op: impl FnOnce(&mut Comm) -> Result<(), String>) -> Result<(), CommError> {
        let mut guard = self
            .comm
            .lock()
            .map_err(|_| transport("a collective panicked earlier".into()))?;
        if guard.is_none() {
            let comm = self
                .lib
                .init_rank(self.host.world_size(), self.id, self.host.rank())
                .map_err(|e| transport(format!("rank {}: {e}", self.host.rank())))?;
            *guard = Some(comm);
        }
        let comm = guard
            .as_mut()
            .ok_or_else(|| transport("no communicator".into()))?;
        op(comm).map_err(|e| transport(format!("rank {}: {e}", self.host.rank())))
    }

    /// Enqueues an all-reduce (sum) of device buffers on a stream.
    ///
    /// # Errors
    /// NCCL's message, naming this rank.
    pub fn enqueue_all_reduce_sum(&self, buf: DeviceF32) -> Result<(), CommError> {
        self.with_comm(|c| c.all_reduce_sum(buf))
    }

    /// Enqueues an all-gather (rank order) of device buffers on a stream.
    ///
    /// # Errors
    /// NCCL's message, naming this rank.
    pub fn enqueue_all_gather(&self, buf: DeviceF32) -> Result<(), CommError> {
        self.with_comm(|c| c.all_gather(buf))
    }
}

/// The host side of an NCCL world is its host communicator: start-up agreement and anything
/// else on host memory go through it.
impl Communicator for NcclWorld {
    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn world_size(&self) -> usize {
        self.host.world_size()
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<(), CommError> {
        self.host.all_reduce_sum(data)
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<(), CommError> {
        self.host.all_gather(local, out)
    }
}
