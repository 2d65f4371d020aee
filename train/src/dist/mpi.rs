//! Open MPI through the `mpi` crate (feature `mpi`): the communicator of ranks launched by
//! `mpirun`.
//!
//! MPI is called from one thread only, a service thread that owns the MPI universe
//! (initialised there, finalised there when the [`MpiWorld`] is dropped); the communicator
//! sends it each collective over a channel and waits for the result. This keeps the MPI
//! handles — which are not thread-safe Rust values — on one thread without `unsafe`, and makes
//! the kernels' calls (from whatever thread ONNX Runtime runs the node on) safe. The channel
//! hop costs microseconds against the collective itself.
//!
//! Faults: a rank that returns an error calls [`MpiWorld::abort`] (`MPI_Abort`), and a rank
//! that dies is noticed by `mpirun`; either way `mpirun` ends every rank and names the one
//! that failed.

use super::comm::{CommError, Communicator, check_gather_output};
use mpi::collective::SystemOperation;
use mpi::traits::{Communicator as _, CommunicatorCollectives};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// One collective, sent to the MPI service thread with the channel its result comes back on.
enum Request {
    AllReduceSum(Vec<f32>, Sender<Vec<f32>>),
    AllGather(Vec<f32>, Sender<Vec<f32>>),
    Abort(i32),
}

/// This process's rank in the `MPI_COMM_WORLD` of an `mpirun` launch.
pub struct MpiWorld {
    rank: usize,
    world_size: usize,
    requests: Option<Sender<Request>>,
    service: Mutex<Option<JoinHandle<()>>>,
}

fn transport(message: impl Into<String>) -> CommError {
    CommError::Transport {
        backend: "mpi",
        message: message.into(),
    }
}

impl MpiWorld {
    /// Initialises MPI (once per process) and returns this rank.
    ///
    /// # Errors
    /// [`CommError::Transport`] when MPI cannot be initialised (or already was).
    pub fn init() -> Result<MpiWorld, CommError> {
        let (requests, inbox) = channel();
        let (ready, started) = channel();
        let service = std::thread::Builder::new()
            .name("patchmix-mpi".into())
            .spawn(move || serve(inbox, ready))
            .map_err(|e| transport(format!("cannot start the MPI thread: {e}")))?;
        let (rank, world_size) = started
            .recv()
            .map_err(|_| transport("the MPI thread ended during initialisation"))??;
        Ok(MpiWorld {
            rank,
            world_size,
            requests: Some(requests),
            service: Mutex::new(Some(service)),
        })
    }

    /// Ends every rank of the launch (`MPI_Abort` with `code`); `mpirun` reports which rank
    /// called it. Returns only if the MPI thread is already gone.
    pub fn abort(&self, code: i32) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request::Abort(code));
            // MPI_Abort ends the process; wait for it.
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    fn call(
        &self,
        request: impl FnOnce(Sender<Vec<f32>>) -> Request,
    ) -> Result<Vec<f32>, CommError> {
        let (reply, result) = channel();
        self.requests
            .as_ref()
            .ok_or_else(|| transport("the MPI thread has stopped"))?
            .send(request(reply))
            .map_err(|_| transport("the MPI thread has stopped"))?;
        result
            .recv()
            .map_err(|_| transport("the MPI thread stopped during a collective"))
    }
}

/// The MPI service thread: initialise, report (rank, size), serve collectives until the
/// communicator is dropped, finalise (by dropping the universe).
fn serve(inbox: Receiver<Request>, ready: Sender<Result<(usize, usize), CommError>>) {
    let Some(universe) = mpi::initialize() else {
        let _ = ready.send(Err(transport("MPI is already initialised in this process")));
        return;
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let _ = ready.send(Ok((rank as usize, size as usize)));
    for request in inbox {
        match request {
            Request::AllReduceSum(local, reply) => {
                let mut sum = vec![0.0f32; local.len()];
                world.all_reduce_into(&local[..], &mut sum[..], SystemOperation::sum());
                let _ = reply.send(sum);
            }
            Request::AllGather(local, reply) => {
                let mut all = vec![0.0f32; local.len() * size as usize];
                world.all_gather_into(&local[..], &mut all[..]);
                let _ = reply.send(all);
            }
            Request::Abort(code) => world.abort(code),
        }
    }
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        // Closing the channel ends the service loop, which finalises MPI; wait for it so that
        // the process does not exit before MPI_Finalize.
        self.requests.take();
        let service = self
            .service
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(service) = service {
            let _ = service.join();
        }
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<(), CommError> {
        let local = data.to_vec();
        let sum = self.call(|reply| Request::AllReduceSum(local, reply))?;
        data.copy_from_slice(&sum);
        Ok(())
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<(), CommError> {
        check_gather_output(self.world_size, local, out)?;
        let all = self.call(|reply| Request::AllGather(local.to_vec(), reply))?;
        out.copy_from_slice(&all);
        Ok(())
    }
}
