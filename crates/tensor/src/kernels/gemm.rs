//! Matrix products through the `gemm` crate (runtime SIMD dispatch), threaded with rayon.
//!
//! `C[m, n] (+)= op(A)[m, k] · op(B)[k, n]` where `op(X)` is `X` or `Xᵀ`. Operands are row-major
//! slices; a transposed operand is read through swapped strides, never copied.

use crate::threads::threads;
use gemm::Parallelism;
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on one thread (threading costs more than it saves).
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// `c = op(a) · op(b)` (or `c += …` when `accumulate`).
///
/// - `a`: `[m, k]` row-major, or `[k, m]` when `trans_a`;
/// - `b`: `[k, n]` row-major, or `[n, k]` when `trans_b`;
/// - `c`: `[m, n]` row-major.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    let par = if m * n * k >= PARALLEL_MIN_FLOPS && threads() > 1 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
    };
    if !trans_a && trans_b && m <= FEW_ROWS && n >= 8 * m && k > 0 {
        return few_rows_wide_transposed(c, a, b, m, k, n, accumulate, par);
    }
    matmul_with(c, a, b, m, k, n, trans_a, trans_b, accumulate, par);
}

/// At most this many rows take [`few_rows_wide_transposed`].
const FEW_ROWS: usize = 128;

/// `c (+)= a · bᵀ` for few rows `a [m, k]` against a wide `b [n, k]` (a decoder step's output
/// projection, `x [rows, 768] · W [8000, 768]ᵀ`). With a row-major destination the gemm crate
/// repacks all of `b` on every call; computed as `cᵀ [n, m]` (column-major destination) it does not,
/// which measured ~2× faster at 64 × 768 × 8000. The transpose back touches only `m·n` floats.
#[allow(clippy::too_many_arguments)]
fn few_rows_wide_transposed(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    par: Parallelism,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // cᵀ: element (i, j) at j·m + i.
    let mut ct = vec![0.0f32; m * n];
    // Columns of c (rows of b) split over the threads, each block one serial product: the gemm
    // crate's own threading packs on the calling thread first (measured: 7 % of a 2-thread
    // Transformer decode on the main thread alone).
    let blocks = match par {
        Parallelism::Rayon(t) => t.max(1),
        _ => 1,
    };
    let cols = n.div_ceil(blocks).next_multiple_of(16).min(n);
    let block = |(j, ct_j): (usize, &mut [f32])| {
        let nj = ct_j.len() / m;
        let b_j = &b[j * cols * k..(j * cols + nj) * k];
        // SAFETY: the assert above bounds every index the strides reach (`b_j` holds the `nj` rows
        // of b this block reads, `ct_j` the `nj` columns of cᵀ it writes); `ct_j` is a fresh buffer.
        unsafe {
            gemm::gemm(
                m,
                nj,
                k,
                ct_j.as_mut_ptr(),
                m as isize,
                1,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b_j.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    };
    if blocks > 1 {
        ct.par_chunks_mut(cols * m).enumerate().for_each(block);
    } else {
        ct.chunks_mut(cols * m).enumerate().for_each(block);
    }
    // Transpose back 16 rows at a time (16 consecutive floats of each row of cᵀ: one cache line per
    // read), the row groups spread over the threads the product used.
    const ROWS: usize = 16;
    let ct = &ct;
    let back = |(g, rows): (usize, &mut [f32])| {
        let i0 = g * ROWS;
        let r = rows.len() / n;
        for j in 0..n {
            let src = &ct[j * m + i0..j * m + i0 + r];
            for (ii, &v) in src.iter().enumerate() {
                let x = &mut rows[ii * n + j];
                *x = if accumulate { *x + v } else { v };
            }
        }
    };
    let c = &mut c[..m * n];
    match par {
        Parallelism::Rayon(_) => c.par_chunks_mut(ROWS * n).enumerate().for_each(back),
        _ => c.chunks_mut(ROWS * n).enumerate().for_each(back),
    }
}

/// As [`matmul`], always on the calling thread (for callers that parallelise over a batch).
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    matmul_with(
        c,
        a,
        b,
        m,
        k,
        n,
        trans_a,
        trans_b,
        accumulate,
        Parallelism::None,
    );
}

#[allow(clippy::too_many_arguments)]
fn matmul_with(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    par: Parallelism,
) {
    assert!(
        a.len() >= m * k,
        "matmul: lhs has {} values, needs {}",
        a.len(),
        m * k
    );
    assert!(
        b.len() >= k * n,
        "matmul: rhs has {} values, needs {}",
        b.len(),
        k * n
    );
    assert!(
        c.len() >= m * n,
        "matmul: dst has {} values, needs {}",
        c.len(),
        m * n
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // op(A)(i, p) = a[i*k + p] (rs = k, cs = 1), or a[p*m + i] when transposed (rs = 1, cs = m).
    let (a_rs, a_cs) = if trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the asserts above bound every index the strides reach; `c` does not alias `a` or `b`
    // (it is a unique `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The few-rows path against an f64 loop, plain and accumulating, at odd sizes.
    #[test]
    fn few_rows_against_a_wide_transposed_rhs_match_f64() {
        for (m, k, n) in [(1, 3, 8), (3, 5, 70), (16, 33, 300), (128, 7, 1100)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.0)
                .collect();
            for accumulate in [false, true] {
                let mut c: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
                let before = c.clone();
                matmul(&mut c, &a, &b, m, k, n, false, true, accumulate);
                for i in 0..m {
                    for j in 0..n {
                        let mut want: f64 = (0..k)
                            .map(|p| a[i * k + p] as f64 * b[j * k + p] as f64)
                            .sum();
                        if accumulate {
                            want += before[i * n + j] as f64;
                        }
                        assert!(
                            (c[i * n + j] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                            "{m}x{k}x{n} ({accumulate}): [{i},{j}] {} vs {want}",
                            c[i * n + j]
                        );
                    }
                }
            }
        }
    }
}
