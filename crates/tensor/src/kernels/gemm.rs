//! Matrix products through the `gemm` crate (runtime SIMD dispatch), threaded with rayon.
//!
//! `C[m, n] (+)= op(A)[m, k] · op(B)[k, n]` where `op(X)` is `X` or `Xᵀ`. Operands are row-major
//! slices; a transposed operand is read through swapped strides, never copied.

use super::fill::repeat_row;
use super::transpose::{transpose, transpose_raw};
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

pub(super) fn parallelism(m: usize, k: usize, n: usize) -> Parallelism {
    if m * n * k >= PARALLEL_MIN_FLOPS && threads() > 1 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
    }
}

/// At most this many rows take [`few_rows_transposed`].
const FEW_ROWS: usize = 128;

/// At least this many columns take [`few_rows_transposed`].
const FEW_ROWS_MIN_COLS: usize = 128;

/// Whether `[m, k] · [n, k]ᵀ` takes [`few_rows_transposed`]: few rows (but whole register
/// tiles' worth: a product with one row is a matrix-vector product, which the gemm crate does
/// without packing), at least as many columns and at least [`FEW_ROWS_MIN_COLS`].
pub(super) fn takes_few_rows_path(m: usize, k: usize, n: usize) -> bool {
    (8..=FEW_ROWS).contains(&m) && n >= m.max(FEW_ROWS_MIN_COLS) && k > 0
}

/// What the destination of [`few_rows_transposed`] starts from before the product is added.
#[derive(Clone, Copy)]
enum Start<'a> {
    /// Nothing: `c = a · bᵀ`.
    Zero,
    /// Its own values: `c += a · bᵀ`.
    Dst,
    /// The bias in every row: `c = a · bᵀ + bias`.
    Bias(&'a [f32]),
}

/// Columns of c computed per block of [`few_rows_transposed`] (a block of cᵀ, `COLS × m`
/// floats, stays in the L1/L2 caches between the product and the transpose back; 2048 was
/// slower in decoding at two threads).
const COLS: usize = 512;

/// `c (+)= a · bᵀ` for few rows `a [m, k]` against `b [n, k]`, `n ≥ m` (every product of a decoder
/// step: `x [rows, 256] · W [8000, 256]ᵀ`, the feed-forward and attention projections). With a
/// row-major destination the gemm crate repacks all of `b` on every call; computed as `cᵀ` (a
/// column-major destination) it does not. `a` is transposed once (`aᵀ [k, m]`, the layout the
/// kernel's left operand is packed into, so that no call packs it again: 5–13 % faster at 64
/// rows). cᵀ is made `COLS` columns of c at a time in a buffer, started from `start`, and
/// transposed into c while it is still in the cache (the whole cᵀ would be 2 MB at 64 × 8000: an
/// extra trip through memory for c and for cᵀ). Measured at 64 rows (`k, n` = 256…1024, 8000):
/// 1.1–1.6× the row-major product's speed on one thread, 1.4–2.5× on two.
///
/// # Safety
/// `c` is writable for `m·n` floats (readable too, and initialised, with [`Start::Dst`]) and not
/// accessed elsewhere meanwhile; `a` and `b` hold `m·k` and `n·k` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn few_rows_transposed(
    c: *mut f32,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    start: Start,
    par: Parallelism,
) {
    let per_thread = columns_per_thread(n, par);
    let c_ptr = SendPtr(c);
    let mut at = vec![0.0f32; k * m];
    transpose(&a[..m * k], k, m, k, &mut at, m);
    let at = &at;
    let thread_block = |t: usize| {
        let (first, end) = (t * per_thread, ((t + 1) * per_thread).min(n));
        let mut ct = vec![0.0f32; COLS.min(end - first) * m];
        for j0 in (first..end).step_by(COLS) {
            let nj = COLS.min(end - j0);
            let ct = &mut ct[..nj * m];
            // SAFETY (the two blocks below): c holds m rows of n (the contract) and this block
            // alone reads and writes its columns j0..j0 + nj.
            match start {
                Start::Zero => {}
                Start::Dst => unsafe {
                    transpose_raw(c_ptr.get().add(j0), n, m, nj, ct.as_mut_ptr(), m)
                },
                Start::Bias(bias) => fill_rows(ct, m, &bias[j0..j0 + nj]),
            }
            transposed_product(
                ct,
                at,
                &b[j0 * k..],
                m,
                k,
                nj,
                !matches!(start, Start::Zero),
            );
            unsafe { transpose_raw(ct.as_ptr(), m, nj, m, c_ptr.get().add(j0), n) };
        }
    };
    let used = n.div_ceil(per_thread);
    if used > 1 {
        (0..used).into_par_iter().for_each(thread_block);
    } else {
        thread_block(0);
    }
}

/// How many columns of c (rows of b) each thread of a few-rows product takes: a whole multiple of
/// 16, the products in each block serial — the gemm crate's own threading packs on the calling
/// thread first (measured: 7 % of a 2-thread Transformer decode on the main thread alone).
pub(super) fn columns_per_thread(n: usize, par: Parallelism) -> usize {
    let threads = match par {
        Parallelism::Rayon(t) => t.max(1),
        _ => 1,
    };
    n.div_ceil(threads).next_multiple_of(16).min(n)
}

/// `ct [values.len(), m]` starts as `values[j]` all along row `j` (a bias, in the transposed
/// layout of the few-rows products).
pub(super) fn fill_rows(ct: &mut [f32], m: usize, values: &[f32]) {
    for (row, &v) in ct.chunks_exact_mut(m).zip(values) {
        row.fill(v);
    }
}

/// `c = a · bᵀ` (`+=` when `accumulate`) for `a [m, k]` and the `nj` rows of `b [nj, k]`, made
/// column-major — `ct [nj, m]`, row `j` of it column `j` of `c` — from `at [k, m] = aᵀ`, on the
/// calling thread: the product of the few-rows path.
pub(super) fn transposed_product(
    ct: &mut [f32],
    at: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    nj: usize,
    accumulate: bool,
) {
    assert!(
        ct.len() >= nj * m && at.len() >= k * m && b.len() >= nj * k,
        "transposed product: [{nj}, {k}] · [{k}, {m}] out of bounds"
    );
    if m == 0 || nj == 0 || k == 0 {
        if !accumulate {
            ct[..nj * m].fill(0.0);
        }
        return;
    }
    // SAFETY: the assert bounds every index these strides reach (dst (i, j) = ct[j·m + i],
    // lhs (i, p) = at[p·m + i], rhs (p, j) = b[j·k + p]); `ct` is a unique borrow.
    unsafe {
        gemm::gemm(
            m,
            nj,
            k,
            ct.as_mut_ptr(),
            m as isize,
            1,
            accumulate,
            at.as_ptr(),
            m as isize,
            1,
            b.as_ptr(),
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
}

/// A pointer to c that the threads of [`few_rows_transposed`] share, each writing its own
/// columns.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `Send + Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the threads write disjoint elements (see few_rows_transposed).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

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
