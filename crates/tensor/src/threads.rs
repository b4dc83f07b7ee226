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

/// Runs `f` on a thread of the kernels' pool (rayon's global pool, sized by [`threads`]), so that
/// the kernels' parallel loops start from inside it. From outside, every parallel loop is handed to
/// the pool and the caller sleeps until it is done: with one thread that is two context switches
/// per loop and nothing gained; inside, a one-thread pool runs the loops inline. Not for callers that block on
/// other threads which themselves use the kernels (a server's accept loop): with one pool thread
/// they would wait on each other.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    threads();
    rayon::scope(|_| f())
}
