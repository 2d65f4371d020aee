//! Data-parallel training: the [`Communicator`] through which the ranks of a world exchange
//! tensors, its backends, and the ONNX Runtime custom operators that run the step graph's
//! collectives ([`patchmix_export::graph::CollectiveOp`]) on it.
//!
//! * [`comm`]: the [`Communicator`] trait and [`CommError`];
//! * [`threads`]: [`ThreadWorld`], W ranks as threads of one process (the tests' world, and
//!   any caller that wants ranks without a launcher);
//! * `mpi` (feature `mpi`): Open MPI through the `mpi` crate, for processes launched by `mpirun`;
//! * `nccl` (feature `nccl`): NCCL between GPUs, its CUDA kernels on ONNX Runtime's stream;
//! * [`launch`]: `--dist`: starting a run's world, and the ranks' start-up agreement;
//! * [`operators`]: the CPU kernels of `AllReduceSum` and `AllGather`, registered per session.

pub mod comm;
pub mod launch;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod operators;
pub mod threads;

pub use comm::{CommError, Communicator, share_from_rank0};
pub use launch::{DistMode, DistWorld, LaunchError, agree_on, launcher_world_size, start};
pub use operators::collective_domain;
pub use threads::ThreadWorld;
