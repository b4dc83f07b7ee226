//! `attend train`'s progress on a terminal: a bar with the step, the loss, the throughput and the
//! time left, with the run's lines printed above it (plain lines when stderr is not a terminal).

use attend::train::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over the training steps.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps · {msg} · ETA {eta}")
                .expect("valid template"),
        );
        Bar(bar)
    }
}

impl Progress for Bar {
    fn say(&self, line: &str) {
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }

    fn start(&self, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
    }

    fn advance(&self, step: usize, status: &str) {
        self.0.set_position(step as u64);
        self.0.set_message(status.to_string());
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
