//! [`ThreadWorld`]: the ranks of a world as threads of one process, exchanging buffers through
//! shared memory. Every rank combines the deposited buffers itself, in rank order, so all ranks
//! get bit-identical results (as MPI and NCCL give within one run).

use super::comm::{CommError, Communicator, check_gather_output};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a rank waits for its peers before a collective fails with
/// [`CommError::PeerTimeout`] (the issue's bound for a failed peer: 60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Constructor of the ranks of an in-process world.
pub struct ThreadWorld;

impl ThreadWorld {
    /// The `world_size` ranks of a new world (give one to each thread), with
    /// [`DEFAULT_TIMEOUT`].
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::dist::{Communicator, ThreadWorld};
    /// let ranks = ThreadWorld::ranks(3);
    /// assert_eq!((ranks[2].rank(), ranks[2].world_size()), (2, 3));
    /// ```
    pub fn ranks(world_size: usize) -> Vec<ThreadRank> {
        Self::ranks_with_timeout(world_size, DEFAULT_TIMEOUT)
    }

    /// As [`ThreadWorld::ranks`], waiting at most `timeout` for peers.
    pub fn ranks_with_timeout(world_size: usize, timeout: Duration) -> Vec<ThreadRank> {
        let shared = Arc::new(Shared {
            world_size,
            timeout,
            state: Mutex::new(State {
                slots: vec![None; world_size],
                reading: false,
                readers_left: 0,
            }),
            changed: Condvar::new(),
        });
        (0..world_size)
            .map(|rank| ThreadRank {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }
}

/// One rank of a [`ThreadWorld`]. After a collective failed, the world is not usable again.
pub struct ThreadRank {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    world_size: usize,
    timeout: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

/// One collective at a time: ranks deposit their buffers; once all did, every rank reads them
/// all (`reading`); the last reader clears the slots for the next collective.
struct State {
    slots: Vec<Option<Vec<f32>>>,
    reading: bool,
    readers_left: usize,
}

impl ThreadRank {
    /// Deposits `data`, waits for every rank's, and returns `combine(all buffers in rank order)`.
    fn exchange<T>(
        &self,
        collective: &'static str,
        data: &[f32],
        combine: impl FnOnce(&[Option<Vec<f32>>]) -> Result<T, CommError>,
    ) -> Result<T, CommError> {
        let shared = &*self.shared;
        let deadline = Instant::now() + shared.timeout;
        // Wait for the previous collective's readers to finish.
        let mut state = self.wait(lock(&shared.state), deadline, collective, |s| !s.reading)?;
        state.slots[self.rank] = Some(data.to_vec());
        if state.slots.iter().all(Option::is_some) {
            state.reading = true;
            state.readers_left = shared.world_size;
            shared.changed.notify_all();
        } else {
            state = self.wait(state, deadline, collective, |s| s.reading)?;
        }
        let result = combine(&state.slots);
        state.readers_left -= 1;
        if state.readers_left == 0 {
            state.slots.iter_mut().for_each(|s| *s = None);
            state.reading = false;
            shared.changed.notify_all();
        }
        result
    }

    /// Waits until `ready(state)`, or fails at `deadline` naming the first rank that has not
    /// deposited.
    fn wait<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        deadline: Instant,
        collective: &'static str,
        ready: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>, CommError> {
        while !ready(&state) {
            let now = Instant::now();
            if now >= deadline {
                let rank = state.slots.iter().position(Option::is_none).unwrap_or(0);
                return Err(CommError::PeerTimeout {
                    collective,
                    rank,
                    timeout: self.shared.timeout,
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        Ok(state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fails unless every deposited buffer has rank 0's length.
fn same_lengths(collective: &'static str, slots: &[Option<Vec<f32>>]) -> Result<(), CommError> {
    let expected = slots[0].as_ref().map_or(0, Vec::len);
    for (rank, slot) in slots.iter().enumerate() {
        let actual = slot.as_ref().map_or(0, Vec::len);
        if actual != expected {
            return Err(CommError::LengthMismatch {
                collective,
                rank,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

impl Communicator for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world_size
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<(), CommError> {
        let sum = self.exchange("all-reduce", data, |slots| {
            same_lengths("all-reduce", slots)?;
            let mut sum = vec![0.0f32; data.len()];
            for slot in slots.iter().flatten() {
                sum.iter_mut().zip(slot).for_each(|(s, v)| *s += v);
            }
            Ok(sum)
        })?;
        data.copy_from_slice(&sum);
        Ok(())
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<(), CommError> {
        check_gather_output(self.shared.world_size, local, out)?;
        self.exchange("all-gather", local, |slots| {
            same_lengths("all-gather", slots)?;
            for (chunk, slot) in out
                .chunks_mut(local.len().max(1))
                .zip(slots.iter().flatten())
            {
                chunk.copy_from_slice(slot);
            }
            Ok(())
        })
    }
}
