//! Large buffers written over the threads: zeros, a copy, and one row repeated (a bias broadcast).
//!
//! A training step allocates a few buffers of millions of floats (the logits `[B·T, V]` start as the
//! bias repeated; their gradient, the output projection's weight gradient and the embedding
//! gradients start as zeros). These writes are memory-bound; filled by the calling thread alone,
//! they would be serial time in a step that is otherwise parallel. Buffers below two chunks are
//! filled by the calling thread.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Floats per parallel chunk (256 KB).
const CHUNK: usize = 1 << 16;

/// `n` zeros.
pub fn zeroed(n: usize) -> Vec<f32> {
    if n < 2 * CHUNK {
        return vec![0.0; n];
    }
    build(n, CHUNK, |_, chunk| {
        for x in chunk {
            x.write(0.0);
        }
    })
}

/// A copy of `src`.
pub fn copied(src: &[f32]) -> Vec<f32> {
    if src.len() < 2 * CHUNK {
        return src.to_vec();
    }
    build(src.len(), CHUNK, |offset, chunk| {
        chunk.write_copy_of_slice(&src[offset..offset + chunk.len()]);
    })
}

/// `row` repeated `rows` times, `[rows, row.len()]` row-major.
pub fn repeat_row(row: &[f32], rows: usize) -> Vec<f32> {
    let width = row.len();
    let n = rows * width;
    if n < 2 * CHUNK || width == 0 {
        let mut out = Vec::with_capacity(n);
        for _ in 0..rows {
            out.extend_from_slice(row);
        }
        return out;
    }
    // Chunks of whole rows.
    let chunk = width * (CHUNK / width).max(1);
    build(n, chunk, |_, chunk| {
        for dst in chunk.chunks_mut(width) {
            dst.write_copy_of_slice(row);
        }
    })
}

/// `n` floats computed element-wise in chunks over the threads (from `n = 2·CHUNK` on):
/// `f(offset, chunk)` must write every element of its chunk, which starts at `offset`.
pub fn generate(n: usize, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    if n < 2 * CHUNK {
        return build_serial(n, f);
    }
    build(n, CHUNK, f)
}

/// As [`build`], in one chunk on the calling thread.
fn build_serial(n: usize, f: impl Fn(usize, &mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    f(0, &mut out.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and `f` wrote all of `0..n`.
    unsafe { out.set_len(n) };
    out
}

/// A vector of `n` floats whose chunks of `chunk` elements `fill(offset, chunk)` writes, in parallel;
/// `fill` must write every element of its chunk.
fn build(n: usize, chunk: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| fill(i * chunk, c));
    // SAFETY: the capacity is at least `n`, and the chunks above cover `0..n`, each written in full.
    unsafe { out.set_len(n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_all_zeros_at_every_size() {
        for n in [0, 1, 2 * CHUNK - 1, 2 * CHUNK, 5 * CHUNK + 3] {
            let v = zeroed(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0), "n = {n}");
        }
    }

    #[test]
    fn generate_writes_every_chunk_at_its_offset() {
        for n in [0, 3, 2 * CHUNK, 4 * CHUNK + 7] {
            let v = generate(n, |offset, chunk| {
                for (i, x) in chunk.iter_mut().enumerate() {
                    x.write((offset + i) as f32);
                }
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32), "n = {n}");
        }
    }

    #[test]
    fn copied_equals_the_source() {
        for n in [0, 5, 2 * CHUNK + 1, 3 * CHUNK] {
            let src: Vec<f32> = (0..n).map(|i| (i % 977) as f32 - 3.0).collect();
            assert_eq!(copied(&src), src, "n = {n}");
        }
    }

    #[test]
    fn repeat_row_equals_the_serial_repeat() {
        for (width, rows) in [
            (0, 5),
            (3, 0),
            (7, 2),
            (8000, 40),
            (CHUNK + 5, 3),
            (13, CHUNK / 4),
        ] {
            let row: Vec<f32> = (0..width).map(|i| i as f32 * 0.5 - 1.0).collect();
            let v = repeat_row(&row, rows);
            assert_eq!(v.len(), width * rows, "{width} × {rows}");
            for r in v.chunks(width.max(1)) {
                assert_eq!(r, &row[..], "{width} × {rows}");
            }
        }
    }
}
