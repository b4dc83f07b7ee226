//! The block operations of flash attention, each dispatching to its AVX-512 kernel (`avx512`) or
//! to the portable path:
//!
//! - [`product`]: `c (+)= a · b` on one block, `a` read through strides so that a transposed block
//!   needs no copy, the hidden triangle of a causal diagonal block skipped ([`Triangle`]);
//! - [`score_product`]: the forward's `Sᵀ = Kⱼ · Qᵢᵀ` and every query's block maximum of it;
//! - [`exp_rows`]: the block exponential `Pᵀ = exp(Sᵀ · scale − m)` with the online-softmax row
//!   sums.
//!
//! Blocks are at most `BC × BR` (256 × 64) and run on the calling thread: the parallelism is over
//! heads and query blocks, one level up.

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::BR;
use crate::kernels::isa::Isa;
use crate::kernels::math::exp_finite;

/// Which part of a block product the causal mask leaves to compute (row `i` of `c`): all of it; only
/// the contraction terms `p < i + off` or `p ≥ i + off` (the others multiply zeros); or only the
/// columns `j ≥ i + off` (the caller overwrites the others). Honoured per register tile of rows, so
/// a little more than the triangle is computed, never less.
#[derive(Clone, Copy)]
pub(super) enum Triangle {
    Full,
    KBelow(isize),
    KAbove(isize),
    ColsFrom(isize),
}

/// A block operand read with strides: element `(i, p)` is `data[i·rs + p·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `[m, k]` block with `ld` values per row.
    pub(super) fn rows(data: &'a [f32], ld: usize) -> Strided<'a> {
        Strided {
            data,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[k, m]` block with `ld` values per row.
    pub(super) fn cols(data: &'a [f32], ld: usize) -> Strided<'a> {
        Strided {
            data,
            rs: 1,
            cs: ld,
        }
    }
}

/// The score product `c [m, n] = a · b` (`c` row-major with `n` values per row) of the forward,
/// and `col_max[j] = max(col_max[j], max_i c[i·n + j])` over the visible entries: all, or
/// with `visible_from = Some(o)` those with `j ≥ i + o` (the causal mask in the transposed
/// layout). On AVX-512 the maxima are taken from the register tiles as they are stored (no second
/// pass over the block); elsewhere by a pass over `c`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn score_product(
    isa: Isa,
    c: &mut [f32],
    a: Strided,
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    tri: Triangle,
    visible_from: Option<isize>,
    col_max: &mut [f32],
) {
    assert!(
        col_max.len() >= n,
        "flash_attention: column maxima out of bounds"
    );
    let took_max = product(
        isa,
        c,
        n,
        a,
        b,
        n,
        m,
        k,
        n,
        false,
        tri,
        Some(ColMax {
            max: col_max.as_mut_ptr(),
            visible_from: visible_from.unwrap_or(isize::MIN),
            row0: 0,
            col0: 0,
        }),
    );
    if took_max {
        return;
    }
    for (i, row) in c.chunks_exact(n).take(m).enumerate() {
        let first = visible_from.map_or(0, |o| (i as isize + o).clamp(0, n as isize) as usize);
        for (mx, &x) in col_max[first..n].iter_mut().zip(&row[first..n]) {
            *mx = if x > *mx { x } else { *mx };
        }
    }
}

/// Column maxima that the AVX-512 block product takes from its register tiles as it stores them:
/// `max[j]` for the product's columns; `(row0, col0)`: where the current tile starts.
#[derive(Clone, Copy)]
pub(super) struct ColMax {
    pub(super) max: *mut f32,
    /// Entry `(i, j)` counts iff `j ≥ i + visible_from` (`isize::MIN`: all do).
    pub(super) visible_from: isize,
    pub(super) row0: usize,
    pub(super) col0: usize,
}

/// Block product `c[i·ldc + j] (+)= Σ_p a(i, p) · b[p·ldb + j]` for `i < m`, `p < k`, `j < n`, on
/// the calling thread: the AVX-512 kernel ([`avx512::product`]) where the CPU has it, `gemm`
/// elsewhere. With `col_max` (`max` valid for `n` floats) the AVX-512 kernel takes the column
/// maxima as well (see [`score_product`]): returns whether it took them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn product(
    isa: Isa,
    c: &mut [f32],
    ldc: usize,
    a: Strided,
    b: &[f32],
    ldb: usize,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    tri: Triangle,
    col_max: Option<ColMax>,
) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(
        (m - 1) * ldc + n <= c.len(),
        "flash_attention: product output out of bounds"
    );
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return false;
    }
    assert!(
        (m - 1) * a.rs + (k - 1) * a.cs < a.data.len() && (k - 1) * ldb + n <= b.len(),
        "flash_attention: product operand out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        let args = avx512::Product {
            c: c.as_mut_ptr(),
            ldc,
            a: a.data.as_ptr(),
            a_rs: a.rs,
            a_cs: a.cs,
            b: b.as_ptr(),
            ldb,
            k,
            accumulate,
            col_max,
        };
        // SAFETY: every index the kernel reaches is bounded by the asserts above (and `col_max`'s
        // n floats by the caller); `c` is a unique borrow, so it aliases neither operand; `isa`
        // says the CPU has AVX-512F.
        unsafe { avx512::product(args, m, n, tri) };
        return true;
    }
    let _ = (isa, tri, col_max);
    // SAFETY: as above: the asserts bound every index gemm reaches through these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    false
}

/// `Pᵀ = exp(Sᵀ · scale − m)` in place over a transposed score block `st [rows, br]` (`m [br]`: a
/// max per query, i.e. per column), `0` on the hidden entries — `(j, i)` with `i < j + o` for
/// `visible_from = Some(o)`, whatever `st` holds there — and `sum[i] += Σⱼ Pᵀ[j, i]` if asked.
/// On AVX-512 as `2^(s · scale·log₂e − m·log₂e)` in registers ([`avx512::exp_rows`]); elsewhere
/// by [`exp_finite`].
#[inline(always)]
pub(super) fn exp_rows(
    isa: Isa,
    st: &mut [f32],
    br: usize,
    scale: f32,
    m: &[f32],
    visible_from: Option<isize>,
    mut sum: Option<&mut [f32]>,
) {
    assert!(
        br <= BR
            && m.len() >= br
            && sum.as_ref().is_none_or(|s| s.len() >= br)
            && st.len().is_multiple_of(br),
        "flash_attention: probability block out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        let mut sub = [0.0f32; BR];
        for (s, &m) in sub.iter_mut().zip(&m[..br]) {
            *s = m * std::f32::consts::LOG2_E;
        }
        let args = avx512::ExpRows {
            st: st.as_mut_ptr(),
            rows: st.len() / br,
            br,
            c: scale * std::f32::consts::LOG2_E,
            sub: sub.as_ptr(),
            visible_from: visible_from.unwrap_or(isize::MIN),
            sum: sum.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr()),
        };
        // SAFETY: the assert bounds `st`, `sub` and `sum`; `isa` says the CPU has AVX-512F.
        unsafe { avx512::exp_rows(args) };
        return;
    }
    let _ = isa;
    for (j, row) in st.chunks_exact_mut(br).enumerate() {
        let first = visible_from.map_or(0, |o| (j as isize + o).clamp(0, br as isize) as usize);
        row[..first].fill(0.0);
        let (row, m) = (&mut row[first..], &m[first..br]);
        match sum.as_deref_mut() {
            Some(sum) => {
                for ((p, &sub), acc) in row.iter_mut().zip(m).zip(&mut sum[first..br]) {
                    *p = exp_finite(*p * scale - sub);
                    *acc += *p;
                }
            }
            None => {
                for (p, &sub) in row.iter_mut().zip(m) {
                    *p = exp_finite(*p * scale - sub);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::isa;
    use crate::rng::Rng;

    /// `exp_rows` on this CPU's path and on the portable one against f64: within 2 ulp and the
    /// rounding of an f32 argument (+ a float of absolute slack near the underflow), hidden entries
    /// exactly 0 whatever they held, −∞ → 0, NaN kept, the column sums those of the f64 probabilities (and the same probabilities when no
    /// sums are asked for).
    #[test]
    fn block_probabilities_match_f64_exp() {
        let mut rng = Rng::new(7);
        for (rows, br) in [(1, 1), (5, 16), (7, 33), (64, 64), (3, 50), (256, 64)] {
            for visible_from in [None, Some(-3isize), Some(0), Some(5)] {
                let scale = rng.uniform(0.05, 0.5);
                let m: Vec<f32> = (0..br).map(|_| rng.uniform(-2.0, 30.0)).collect();
                let mut st: Vec<f32> = (0..rows * br).map(|_| rng.uniform(-200.0, 50.0)).collect();
                // keep every argument ≤ 0, as the online softmax does
                for (j, x) in st.iter_mut().enumerate() {
                    *x = x.min(m[j % br] / scale);
                }
                st[0] = f32::NEG_INFINITY;
                let hidden = |j: usize, i: usize| {
                    visible_from.is_some_and(|o| (i as isize) < j as isize + o)
                };
                for isa in [isa(), Isa::Baseline] {
                    let mut p = st.clone();
                    for (j, row) in p.chunks_exact_mut(br).enumerate() {
                        for (i, x) in row.iter_mut().enumerate() {
                            if hidden(j, i) {
                                *x = f32::NAN;
                            }
                        }
                    }
                    let mut sum = vec![1.0f32; br];
                    let mut unsummed = p.clone();
                    exp_rows(isa, &mut p, br, scale, &m, visible_from, Some(&mut sum));
                    exp_rows(isa, &mut unsummed, br, scale, &m, visible_from, None);
                    assert!(p
                        .iter()
                        .zip(&unsummed)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                    let mut want_sum = vec![1.0f64; br];
                    for (idx, (&got, &s)) in p.iter().zip(&st).enumerate() {
                        let (j, i) = (idx / br, idx % br);
                        let want = if hidden(j, i) {
                            0.0
                        } else {
                            (s as f64 * scale as f64 - m[i] as f64).exp()
                        };
                        want_sum[i] += want;
                        // the f32 argument's rounding (ε·|terms|) and 2 ulp for the exponential
                        let terms = (s as f64 * scale as f64).abs().min(1e3) + m[i].abs() as f64;
                        let err = (got as f64 - want).abs();
                        assert!(
                            err <= (2.0 + 2.0 * terms) * f32::EPSILON as f64 * want + 1e-37,
                            "{rows}×{br} {visible_from:?}: ({j}, {i}) {got} vs {want}"
                        );
                        if hidden(j, i) {
                            assert_eq!(got.to_bits(), 0, "hidden entry ({j}, {i})");
                        }
                    }
                    for (&got, &want) in sum.iter().zip(&want_sum) {
                        assert!(
                            (got as f64 - want).abs() <= 1e-5 * want,
                            "sum {got} vs {want}"
                        );
                    }
                }
            }
        }
        let mut nan = [f32::NAN, 0.0];
        let mut sum = [0.0; 2];
        exp_rows(isa(), &mut nan, 2, 1.0, &[0.0, 0.0], None, Some(&mut sum));
        assert!(nan[0].is_nan() && sum[0].is_nan() && nan[1] == 1.0);
    }
}
