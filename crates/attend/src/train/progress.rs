//! Where a training run reports what it is doing. The library only says it; the application
//! decides how it looks (a progress bar on a terminal, plain lines in a log, nothing at all), so a
//! program that embeds the library draws no bars it did not ask for.

/// The receiver of a run's progress: lines for the person running it, and the step it is at.
pub trait Progress {
    /// A line worth reading: data sizes, every validation, early stopping, a resume.
    fn say(&self, line: &str);

    /// The loop starts at step `done` of `total`.
    fn start(&self, _done: usize, _total: usize) {}

    /// A step finished; `status` is e.g. `loss 3.198 · 9666 tok/s`.
    fn advance(&self, _step: usize, _status: &str) {}

    /// The loop ended.
    fn finish(&self) {}

    /// Asked after every step: `true` stops the run there, with a checkpoint of that step, so that
    /// a resume continues it (an embedding program's interrupt, e.g. Ctrl-C in Python).
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn say(&self, _line: &str) {}
}
