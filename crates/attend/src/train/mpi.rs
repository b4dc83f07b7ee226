//! The ranks of a job started by an MPI launcher (`mpirun`, `srun --mpi=pmix`), over the
//! system's MPI through the `mpi` crate (cargo feature `mpi`). See docs/distributed.md.
//!
//! A rank that dies or hangs must not leave the others waiting forever: every collective call runs
//! under a watchdog, and a rank that has waited [`Mpi::timeout`] for the others ends itself with
//! an error that says so (exit status [`TIMEOUT_EXIT`]). The launcher then ends the whole job; the
//! run directory keeps its last complete checkpoint for `--resume`.

use super::collective::Collective;
use ::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::Threading;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that sets the watchdog's limit, in seconds.
pub const TIMEOUT_VAR: &str = "ATTEND_COMM_TIMEOUT";

/// The watchdog's limit when [`TIMEOUT_VAR`] is not set: longer than rank 0's validation of a
/// large dev set, during which the other ranks wait.
pub const DEFAULT_TIMEOUT_S: u64 = 600;

/// The exit status of a rank ended by the watchdog.
pub const TIMEOUT_EXIT: i32 = 75;

/// Variables that MPI launchers set in the processes they start (Open MPI's `mpirun`, MPICH's and
/// Slurm's PMI, PMIx).
const LAUNCHER_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// Why the ranks could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum MpiError {
    #[error("MPI could not be initialized (was it initialized twice?)")]
    Init,
    #[error("{TIMEOUT_VAR}={0:?}: expected a whole number of seconds > 0")]
    Timeout(String),
}

/// The MPI world communicator, with the watchdog.
pub struct Mpi {
    // Finalizes MPI when dropped, after the communicator.
    world: SimpleCommunicator,
    _universe: Universe,
    rank: usize,
    size: usize,
    /// What the watchdog watches: the collective in progress and when it began.
    waiting: Arc<Mutex<Option<(&'static str, Instant)>>>,
    timeout: Duration,
}

impl Mpi {
    /// Joins the job when this process was started by an MPI launcher; `None` otherwise, so that
    /// the binary run on its own behaves as one process without touching MPI.
    pub fn from_launcher() -> Result<Option<Mpi>, MpiError> {
        if !LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(None);
        }
        let timeout = match std::env::var(TIMEOUT_VAR) {
            Err(_) => DEFAULT_TIMEOUT_S,
            Ok(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return Err(MpiError::Timeout(s)),
            },
        };
        // Only the main thread calls MPI; the kernels' threads never do.
        let (universe, _) =
            ::mpi::initialize_with_threading(Threading::Funneled).ok_or(MpiError::Init)?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let mpi = Mpi {
            world,
            _universe: universe,
            rank,
            size,
            waiting: Arc::new(Mutex::new(None)),
            timeout: Duration::from_secs(timeout),
        };
        mpi.start_watchdog();
        Ok(Some(mpi))
    }

    /// How long a rank waits for the others in one collective call before it gives up.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The communicator, for exchanges beyond [`Collective`] (the NCCL id).
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Ends every rank of the job at once (`MPI_Abort`): for a rank that fails on its own,
    /// which the others would otherwise wait for.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// A thread that ends the process when a collective call has waited past the timeout. It
    /// calls no MPI function (only the main thread may) and leaves by `_exit`, which runs no exit
    /// handlers that could wait on MPI again.
    fn start_watchdog(&self) {
        let (waiting, timeout, rank) = (Arc::clone(&self.waiting), self.timeout, self.rank);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let overdue = match *waiting.lock().unwrap_or_else(|e| e.into_inner()) {
                Some((what, since)) if since.elapsed() > timeout => Some(what),
                _ => None,
            };
            if let Some(what) = overdue {
                eprintln!(
                    "error: rank {rank}: no answer from the other ranks for {} s during {what}: a rank has died or hangs. \
                     The job ends; continue it from its last checkpoint with `--resume` ({TIMEOUT_VAR} sets this limit).",
                    timeout.as_secs()
                );
                // SAFETY: `_exit` ends the process at once; nothing after it runs.
                unsafe { libc::_exit(TIMEOUT_EXIT) };
            }
        });
    }

    /// Runs one collective call under the watchdog.
    fn watched<T>(&self, what: &'static str, call: impl FnOnce() -> T) -> T {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some((what, Instant::now()));
        let out = call();
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = None;
        out
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, x: &mut [f32]) {
        let send = x.to_vec();
        self.watched("the gradient all-reduce", || {
            self.world
                .all_reduce_into(&send[..], x, SystemOperation::sum())
        });
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        self.watched(
            "a broadcast from rank 0 (rank 0 validates or writes)",
            || {
                let mut len = bytes.len() as u64;
                root.broadcast_into(&mut len);
                bytes.resize(len as usize, 0);
                root.broadcast_into(&mut bytes[..]);
            },
        );
    }
}
