//! Matrix products through the `gemm` crate (runtime SIMD dispatch), threaded with rayon.
//!
//! `C[m, n] (+)= op(A)[m, k] · op(B)[k, n]` where `op(X)` is `X` or `Xᵀ`. Operands are row-major
//! slices; a transposed operand is read through swapped strides, never copied. Products of few
//! rows against many transposed columns (a decoding step's) go through [`super::few_rows`].

use super::few_rows::{few_rows_transposed, takes_few_rows_path, Start};
use super::fill::repeat_row;
use crate::threads::threads;
use gemm::Parallelism;

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
    let par = parallelism(m, k, n);
    if !trans_a && trans_b && takes_few_rows_path(m, k, n) {
        let start = if accumulate { Start::Dst } else { Start::Zero };
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: c holds m·n floats (asserted), borrowed exclusively; a and b are long enough.
        return unsafe { few_rows_transposed(c.as_mut_ptr(), a, b, m, k, n, start, par) };
    }
    matmul_with(c, a, b, m, k, n, trans_a, trans_b, accumulate, par);
}

/// `x · wᵀ + bias` for `x [rows, k]`, `w [n, k]`, `bias [n]` → `[rows, n]` (a linear layer,
/// PyTorch's `addmm`).
pub fn linear(x: &[f32], w: &[f32], bias: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(
        bias.len() == n && x.len() >= rows * k && w.len() >= n * k,
        "linear: x {} / w {} / bias {} values for [{rows}, {k}] · [{n}, {k}]ᵀ",
        x.len(),
        w.len(),
        bias.len()
    );
    let par = parallelism(rows, k, n);
    if takes_few_rows_path(rows, k, n) {
        let mut y = Vec::with_capacity(rows * n);
        // SAFETY: the capacity holds rows·n floats, every one of which is written (Start::Bias).
        unsafe {
            few_rows_transposed(y.as_mut_ptr(), x, w, rows, k, n, Start::Bias(bias), par);
            y.set_len(rows * n);
        }
        return y;
    }
    let mut y = repeat_row(bias, rows);
    matmul_with(&mut y, x, w, rows, k, n, false, true, true, par);
    y
}

/// How the gemm crate may thread a product of `m·k·n` multiply-adds: over all threads from
/// [`PARALLEL_MIN_FLOPS`] on, else not at all.
pub(super) fn parallelism(m: usize, k: usize, n: usize) -> Parallelism {
    if m * n * k >= PARALLEL_MIN_FLOPS && threads() > 1 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
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

    /// `linear` against an f64 loop on both paths (few rows against many columns, and not), with
    /// one and two threads' worth of column blocks and a partial last block.
    #[test]
    fn linear_matches_f64() {
        for (m, k, n) in [
            (1, 3, 8),
            (4, 9, 600),
            (64, 17, 1030),
            (130, 6, 40),
            (5, 4, 3),
        ] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..n).map(|j| (j % 7) as f32 - 3.0).collect();
            let y = linear(&x, &w, &bias, m, k, n);
            assert_eq!(y.len(), m * n);
            for i in 0..m {
                for j in 0..n {
                    let want = bias[j] as f64
                        + (0..k)
                            .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                            .sum::<f64>();
                    assert!(
                        (y[i * n + j] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                        "{m}x{k}x{n}: [{i},{j}] {} vs {want}",
                        y[i * n + j]
                    );
                }
            }
        }
    }
}
