//! Thread count for the kernels. Default: all cores; `ATTEND_THREADS` or [`set_threads`] change it.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads the kernels use (the rayon global pool is sized once, on first use,
/// to the largest count asked for; kernels then use at most `n`).
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    // The global pool can only be built once; later calls keep the first pool.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Threads the kernels may use.
pub fn threads() -> usize {
    let n = THREADS.load(Ordering::Relaxed);
    if n > 0 {
        return n;
    }
    let n = std::env::var("ATTEND_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    set_threads(n);
    n
}
