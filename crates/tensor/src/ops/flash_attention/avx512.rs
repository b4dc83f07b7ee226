//! The AVX-512 kernels of flash attention.
//!
//! - [`product`]: register-tiled block product: `MR` rows × up to 4 vectors of 16 columns of `c`
//!   are accumulated in 24 registers while `p` runs over `k`, one broadcast of `a(i, p)` and one
//!   row of `b` per step — no packing, which blocks of at most 256 × 64 do not repay.
//! - [`exp_rows`]: the probabilities of a transposed score block, in registers.

use super::block::{ColMax, Triangle};
use std::arch::x86_64::*;

/// Rows of `c` per register tile.
const MR: usize = 6;

/// Pointers and strides of one product (see [`super::block::product`]).
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub c: *mut f32,
    pub ldc: usize,
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub k: usize,
    pub accumulate: bool,
    /// Column maxima to update from the stored tiles (see [`super::block::score_product`]).
    pub col_max: Option<ColMax>,
}

/// # Safety
/// The CPU has AVX-512F; `c[i·ldc + j]`, `a[i·a_rs + p·a_cs]`, `b[p·ldb + j]` are valid for
/// `i < m`, `p < k`, `j < n`, and `c` aliases neither operand.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn product(x: Product, m: usize, n: usize, tri: Triangle) {
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(MR);
        // The contraction range and first column this row tile needs.
        let clamp = |x: isize, hi: usize| x.clamp(0, hi as isize) as usize;
        let (k_lo, k_hi, j_start) = match tri {
            Triangle::Full => (0, x.k, 0),
            Triangle::KBelow(off) => (0, clamp((i0 + rows - 1) as isize + off, x.k), 0),
            Triangle::KAbove(off) => (clamp(i0 as isize + off, x.k), x.k, 0),
            Triangle::ColsFrom(off) => (0, x.k, clamp(i0 as isize + off, n) / 16 * 16),
        };
        let k_lo = k_lo.min(k_hi);
        let mut j0 = j_start;
        while j0 < n {
            let width = (n - j0).min(64);
            let vectors = width.div_ceil(16);
            let mask = first_lanes(width - 16 * (vectors - 1));
            let t = Product {
                c: x.c.add(i0 * x.ldc + j0),
                a: x.a.add(i0 * x.a_rs + k_lo * x.a_cs),
                b: x.b.add(k_lo * x.ldb + j0),
                k: k_hi - k_lo,
                col_max: x.col_max.map(|cm| ColMax {
                    row0: i0,
                    col0: j0,
                    ..cm
                }),
                ..x
            };
            match rows {
                1 => tile_rows::<1>(t, vectors, mask),
                2 => tile_rows::<2>(t, vectors, mask),
                3 => tile_rows::<3>(t, vectors, mask),
                4 => tile_rows::<4>(t, vectors, mask),
                5 => tile_rows::<5>(t, vectors, mask),
                _ => tile_rows::<MR>(t, vectors, mask),
            }
            j0 += width;
        }
        i0 += rows;
    }
}

/// `2ʸ` coefficients on `[−½, ½]`, degree 6 (least-squares minimax on the relative error:
/// 1.9e-9; with f32 Horner steps ≤ 1.4 ulp), constant term first.
const EXP2_POLY: [f32; 7] = [
    1.0,
    std::f32::consts::LN_2,
    0.240_226_46,
    0.055_503_286,
    0.009_618_489,
    0.001_339_993_1,
    0.000_153_458,
];

/// The probabilities of one transposed score block (see [`super::block::exp_rows`]).
#[derive(Clone, Copy)]
pub(super) struct ExpRows {
    pub st: *mut f32,
    pub rows: usize,
    pub br: usize,
    /// `scale · log₂e`
    pub c: f32,
    /// `[br]`: every query's max to subtract, times `log₂e`
    pub sub: *const f32,
    /// Entry `(j, i)` is visible iff `i ≥ j + visible_from` (`isize::MIN`: all are).
    pub visible_from: isize,
    /// `[br]`: every query's sum of probabilities, added to (null: not asked for)
    pub sum: *mut f32,
}

/// # Safety
/// The CPU has AVX-512F; `st` is valid for `rows · br` floats, `sub` and `sum` for `br`;
/// `br ≤ 64`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn exp_rows(x: ExpRows) {
    match x.br.div_ceil(16) {
        0 => {}
        1 => exp_rows_v::<1>(x),
        2 => exp_rows_v::<2>(x),
        3 => exp_rows_v::<3>(x),
        _ => exp_rows_v::<4>(x),
    }
}

/// [`exp_rows`] for rows of `V` vectors: `y = s·c − sub` (one FMA), `2ʸ = 2ⁿ·2ᶠ` with `n` the
/// nearest integer and `f = y − n ∈ [−½, ½]`, `2ᶠ` by [`EXP2_POLY`] and `2ⁿ` by `vscalefps`;
/// `0` below `2⁻¹²⁶` and on hidden entries, NaN kept. Rows without hidden entries (all rows of a
/// block below the causal diagonal) take constant lane masks; rows with no visible entry are
/// zeroed without an exponential.
#[target_feature(enable = "avx512f")]
unsafe fn exp_rows_v<const V: usize>(x: ExpRows) {
    let tail_mask = first_lanes(x.br - 16 * (V - 1));
    let lanes = |v: usize| if v + 1 == V { tail_mask } else { 0xffff };
    let c = _mm512_set1_ps(x.c);
    let lo = _mm512_set1_ps(-126.0);
    let mut sub = [_mm512_setzero_ps(); V];
    let mut sum = [_mm512_setzero_ps(); V];
    for (v, sub) in sub.iter_mut().enumerate() {
        *sub = _mm512_maskz_loadu_ps(lanes(v), x.sub.add(16 * v));
    }
    // Row j's first visible column is j + visible_from: rows j < full_rows have none hidden.
    let full_rows = if x.visible_from == isize::MIN {
        x.rows
    } else {
        (1 - x.visible_from).clamp(0, x.rows as isize) as usize
    };
    let mut row_exp = |row: *mut f32, visible: [__mmask16; V]| {
        for v in 0..V {
            let s = _mm512_maskz_loadu_ps(visible[v], row.add(16 * v));
            let y = _mm512_fmsub_ps(s, c, sub[v]);
            // not(y < −126): NaN stays
            let keep = visible[v] & _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(y, lo);
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            let f = _mm512_sub_ps(y, n);
            let mut p = _mm512_set1_ps(EXP2_POLY[6]);
            for &k in EXP2_POLY[..6].iter().rev() {
                p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(k));
            }
            let p = _mm512_maskz_scalef_ps(keep, p, n);
            _mm512_mask_storeu_ps(row.add(16 * v), lanes(v), p);
            sum[v] = _mm512_add_ps(sum[v], p);
        }
    };
    let all: [__mmask16; V] = std::array::from_fn(lanes);
    for j in 0..full_rows {
        row_exp(x.st.add(j * x.br), all);
    }
    for j in full_rows..x.rows {
        let row = x.st.add(j * x.br);
        let first = j as isize + x.visible_from;
        if first >= x.br as isize {
            for v in 0..V {
                _mm512_mask_storeu_ps(row.add(16 * v), lanes(v), _mm512_setzero_ps());
            }
            continue;
        }
        row_exp(
            row,
            std::array::from_fn(|v| lanes(v) & columns_from(16 * v, first)),
        );
    }
    if x.sum.is_null() {
        return;
    }
    for (v, &s) in sum.iter().enumerate() {
        let dst = x.sum.add(16 * v);
        let old = _mm512_maskz_loadu_ps(lanes(v), dst);
        _mm512_mask_storeu_ps(dst, lanes(v), _mm512_add_ps(old, s));
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_rows<const R: usize>(t: Product, vectors: usize, mask: __mmask16) {
    match vectors {
        1 => tile::<R, 1>(t, mask),
        2 => tile::<R, 2>(t, mask),
        3 => tile::<R, 3>(t, mask),
        _ => tile::<R, 4>(t, mask),
    }
}

/// `R` rows × `V` vectors of `c`; the last vector's columns are limited by `mask`.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const V: usize>(t: Product, mask: __mmask16) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for p in 0..t.k {
        let b = t.b.add(p * t.ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = if v + 1 == V {
                _mm512_maskz_loadu_ps(mask, b.add(16 * v))
            } else {
                _mm512_loadu_ps(b.add(16 * v))
            };
        }
        let a = t.a.add(p * t.a_cs);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(r * t.a_rs));
            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(av, bv, *acc);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let c = t.c.add(r * t.ldc);
        for (v, &x) in acc.iter().enumerate() {
            let mk = if v + 1 == V { mask } else { 0xffff };
            let x = if t.accumulate {
                _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, c.add(16 * v)))
            } else {
                x
            };
            _mm512_mask_storeu_ps(c.add(16 * v), mk, x);
        }
    }
    if let Some(cm) = t.col_max {
        // Every entry of the tile counts if its last row's first visible column is ≤ col0.
        let all_visible = cm.visible_from == isize::MIN
            || (cm.row0 + R - 1) as isize + cm.visible_from <= cm.col0 as isize;
        for v in 0..V {
            let mk = if v + 1 == V { mask } else { 0xffff };
            let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
            for (r, acc) in acc.iter().enumerate() {
                let visible = if all_visible {
                    mk
                } else {
                    mk & columns_from(cm.col0 + 16 * v, (cm.row0 + r) as isize + cm.visible_from)
                };
                // max(x, mx) keeps mx where x is NaN, as the scalar comparison does.
                mx = _mm512_mask_max_ps(mx, visible, acc[v], mx);
            }
            let dst = cm.max.add(cm.col0 + 16 * v);
            let old = _mm512_maskz_loadu_ps(mk, dst);
            _mm512_mask_storeu_ps(dst, mk, _mm512_max_ps(mx, old));
        }
    }
}

/// The first `count` lanes of a vector (`1 ≤ count ≤ 16`).
#[inline(always)]
fn first_lanes(count: usize) -> __mmask16 {
    (0xffff_u32 >> (16 - count)) as __mmask16
}

/// The lanes of a vector of columns `col0..col0 + 16` whose column is `≥ first`.
#[inline(always)]
fn columns_from(col0: usize, first: isize) -> __mmask16 {
    let skip = (first - col0 as isize).clamp(0, 16);
    (0xffff_u32 << skip) as __mmask16
}
