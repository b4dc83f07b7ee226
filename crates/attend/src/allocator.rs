//! Allocator settings for the engine's allocation pattern (glibc `mallopt`): every op returns a
//! fresh tensor, so the same block sizes are freed and allocated again at every step. Applied once
//! per process, before the work (`attend` applies [`retain_freed_memory`] to every command; the
//! model benchmarks also [`serve_large_blocks_from_the_heap`]). No effect on other C libraries.

/// Keeps freed memory in the process instead of returning it to the kernel after every step.
///
/// Every engine op returns freshly allocated tensors; with glibc's defaults a freed block of a few
/// MB at the top of the heap is given back to the kernel (trimmed) and the next step's allocation
/// page-faults it in again, which costs more than the attention arithmetic at small shapes (measured:
/// fwd+bwd at 32×8×64×64 took 2–3× longer). Raising the mmap and trim thresholds makes glibc reuse
/// the blocks, as a caching allocator would.
///
/// One arena for all threads: the commands run on the kernels' thread pool
/// (`tensor::threads::on_pool`), and glibc gives each thread but the first its own arena, made of
/// 64 MB heaps that it shrinks with `MADV_DONTNEED` whenever their top is free — the next step then
/// faults the pages in again (a one-thread Transformer training step: 33 000 page faults in a
/// secondary arena, 9 000 in the main one; 5 % faster). The kernels allocate few, large blocks, so
/// the threads hardly contend for the one arena's lock. No effect on other C libraries.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the measured work.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// Makes glibc serve even the largest blocks from the heap instead of fresh `mmap`s.
///
/// The logits and their gradient (`[B·T, V]` = 1536 × 8000 floats, 49 MB each) exceed glibc's
/// largest mmap threshold (32 MB), so [`retain_freed_memory`] cannot keep them: every training step
/// would map, page-fault (zeroing 4 KB at a time) and unmap them. With mmap disabled they come from
/// the heap and are reused, since the trim threshold keeps freed heap memory in the process
/// (measured: ~750 page faults per training step remain).
pub fn serve_large_blocks_from_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the measured work.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
