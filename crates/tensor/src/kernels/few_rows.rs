//! The product of few rows against many transposed columns, `c (+)= a · bᵀ` for `a [m, k]`,
//! `b [n, k]`, `8 ≤ m ≤ 128 ≤ n`: every product of a decoder step (`x [rows, 256] · W [8000, 256]ᵀ`,
//! the feed-forward and attention projections), computed as `cᵀ`.
//!
//! With a row-major destination the gemm crate repacks all of `b` on every call; computed as `cᵀ`
//! (a column-major destination) it does not. `a` is transposed once into `aᵀ [k, m]`, the layout
//! the kernel packs its left operand into. `cᵀ` is made a block of columns of `c` at a time and
//! transposed back while it is still in the cache, and the blocks are split over the threads, each
//! product serial.

use super::transpose::{transpose, transpose_raw};
use gemm::Parallelism;
use rayon::prelude::*;

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
pub(super) enum Start<'a> {
    /// Nothing: `c = a · bᵀ`.
    Zero,
    /// Its own values: `c += a · bᵀ`.
    Dst,
    /// The bias in every row: `c = a · bᵀ + bias`.
    Bias(&'a [f32]),
}

/// Columns of c computed per block of [`few_rows_transposed`]: a block of cᵀ, `COLS × m` floats,
/// stays in the L1/L2 caches between the product and the transpose back.
const COLS: usize = 512;

/// `c (+)= a · bᵀ` for few rows `a [m, k]` against `b [n, k]`, `n ≥ m` (see the module doc). `a` is
/// transposed once (`aᵀ [k, m]`, the layout the kernel's left operand is packed into, so that no
/// call packs it again). cᵀ is made `COLS` columns of c at a time in a buffer, started from
/// `start`, and transposed into c while it is still in the cache (the whole cᵀ, 2 MB at
/// 64 × 8000, would make an extra trip through memory for c and for cᵀ).
///
/// # Safety
/// `c` is writable for `m·n` floats (readable too, and initialised, with [`Start::Dst`]) and not
/// accessed elsewhere meanwhile; `a` and `b` hold `m·k` and `n·k` floats.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn few_rows_transposed(
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
/// 16, the products in each block serial: the gemm crate's own threading would pack on the
/// calling thread first, serially.
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
