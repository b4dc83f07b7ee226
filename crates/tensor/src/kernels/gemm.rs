//! Matrix products through the `gemm` crate (runtime SIMD dispatch), threaded with rayon.
//!
//! `C[m, n] (+)= op(A)[m, k] · op(B)[k, n]` where `op(X)` is `X` or `Xᵀ`. Operands are row-major
//! slices; a transposed operand is read through swapped strides, never copied.

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
    let par = if m * n * k >= PARALLEL_MIN_FLOPS && threads() > 1 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
    };
    matmul_with(c, a, b, m, k, n, trans_a, trans_b, accumulate, par);
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
