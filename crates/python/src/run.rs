//! Running engine work from Python: without the GIL, on the kernels' thread pool, interruptible
//! by Ctrl-C.
//!
//! ```text
//! Python thread (GIL released)             worker thread ──on_pool──► kernels' pool thread
//!   every 50 ms or event: take the GIL,        job(stop, events) ── events ──► on_event(py, e)
//!   on_event, check_signals ── Ctrl-C ──► stop = true; the job ends at its next batch or step
//! ```
//! Python runs signal handlers only on its main thread and only when that thread runs Python, so
//! the calling thread does not compute: it waits for the job, takes the GIL briefly to look for
//! Ctrl-C and to hand the job's events (training progress) to Python, and sets `stop` when asked.

use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// How often the waiting thread looks for Ctrl-C.
const POLL: Duration = Duration::from_millis(50);

/// A value lent to the thread that runs a job. The models are not `Send` (their parameters live on
/// an `Rc` tape); [`run`] blocks the thread that owns them until the job has ended and touches
/// none of them meanwhile, so one thread at a time uses them, as in the command line (whose
/// commands run on the pool too).
pub struct Lent<T>(pub T);

// SAFETY: see the type's documentation: the owner waits, untouched, while the job has the value.
unsafe impl<T> Send for Lent<T> {}

impl<T> Lent<T> {
    /// The value (a method, so that a closure takes the whole `Lent`, not its field).
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Runs `job` on the kernels' pool without the GIL and returns what it returns. The job gets a
/// flag to look at between batches or steps (set on Ctrl-C) and a channel whose events are handed
/// to `on_event` on the calling thread, with the GIL. Ctrl-C (or an error from `on_event`) sets
/// the flag, waits for the job to end, and is raised in place of the job's result; a panic in the
/// engine becomes an `AttendError`.
pub fn run<T: Send, E: Send>(
    py: Python<'_>,
    job: impl FnOnce(&AtomicBool, &Sender<E>) -> T + Send,
    mut on_event: impl FnMut(Python<'_>, E) -> PyResult<()> + Send,
) -> PyResult<T> {
    let stop = AtomicBool::new(false);
    let (events, received) = mpsc::channel::<E>();
    let (result, interrupt) = py.detach(|| {
        // Owned here: a `Receiver` may move to another thread, not be shared with it.
        let received = received;
        std::thread::scope(|s| {
            let stop = &stop;
            let worker = s.spawn(move || {
                let out = tensor::threads::on_pool(|| job(stop, &events));
                drop(events);
                out
            });
            let mut interrupt: Option<PyErr> = None;
            loop {
                let got = received.recv_timeout(POLL);
                let ended = matches!(got, Err(RecvTimeoutError::Disconnected));
                Python::attach(|py| {
                    let answer = match got {
                        Ok(e) if interrupt.is_none() => on_event(py, e),
                        _ => Ok(()),
                    };
                    if let Err(e) = answer.and_then(|()| py.check_signals()) {
                        interrupt.get_or_insert(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                });
                if ended {
                    break;
                }
            }
            (worker.join(), interrupt)
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    result.map_err(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        crate::AttendError::new_err(format!("the engine panicked: {what}"))
    })
}

/// [`run`] for a job without events.
pub fn run_quiet<T: Send>(
    py: Python<'_>,
    job: impl FnOnce(&AtomicBool) -> T + Send,
) -> PyResult<T> {
    run(py, |stop, _: &Sender<()>| job(stop), |_, ()| Ok(()))
}
