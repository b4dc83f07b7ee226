//! Fused scaled-dot-product attention, flash-style (tiled, online softmax), forward and backward.
//!
//! `O = softmax(Q Kᵀ · scale + mask) V` for `Q [B, H, T, d]`, `K, V [B, H, S, d]` → `O [B, H, T, d]`,
//! computed without ever holding the `T × S` score matrix (Dao et al. 2022, *FlashAttention*; the
//! backward follows *FlashAttention-2*, Dao 2023). Masks:
//! - causal: query `i` sees keys `j ≤ i` (top-left aligned, as PyTorch's `is_causal`);
//! - key padding: batch row `b` sees keys `j < len[b]`.
//!
//! A query row that sees no key at all gives a zero output (and zero gradients), like the plain path's
//! all-masked softmax row.
//!
//! **Forward**, per head and per block of `BR` queries `Qᵢ`, over blocks of `BC` keys `Kⱼ, Vⱼ`:
//! `Sᵢⱼ = Qᵢ Kⱼᵀ · scale`, `mᵢ ← max(mᵢ, rowmax Sᵢⱼ)`, `Pᵢⱼ = exp(Sᵢⱼ − mᵢ)`,
//! `lᵢ ← lᵢ·e^{mᵢ_old − mᵢ} + rowsum Pᵢⱼ`, `Oᵢ ← Oᵢ·e^{mᵢ_old − mᵢ} + Pᵢⱼ Vⱼ`; at the end
//! `Oᵢ /= lᵢ` and the log-sum-exp `Lᵢ = mᵢ + ln lᵢ` is kept for the backward (`[B·H·T]` floats: memory
//! is linear in `T`). Key blocks entirely above the diagonal are skipped when causal, and keys past a
//! row's padding length are never read.
//!
//! **Backward** (given `dO`): `Dᵢ = rowsum(dOᵢ ∘ Oᵢ)`; per key block `j` and query block `i`, the
//! probabilities are recomputed from the log-sum-exp, `Pᵢⱼ = exp(Qᵢ Kⱼᵀ · scale − Lᵢ)`, then
//! `dVⱼ += Pᵢⱼᵀ dOᵢ`, `dPᵢⱼ = dOᵢ Vⱼᵀ`, `dSᵢⱼ = Pᵢⱼ ∘ (dPᵢⱼ − Dᵢ) · scale`,
//! `dQᵢ += dSᵢⱼ Kⱼ`, `dKⱼ += dSᵢⱼᵀ Qᵢ`.
//!
//! Block products go through `gemm` on the calling thread; the work is spread over
//! (batch·head, query block) in the forward and over batch·head in the backward with rayon. The
//! row loops (max, exp, sums) are compiled for AVX-512 / AVX2 and chosen at run time.

use crate::kernels::gemm::matmul_serial;
use crate::tensor::Tensor;
use crate::threads::threads;
use crate::var::Var;
use rayon::prelude::*;

/// Queries per block.
const BR: usize = 64;
/// Keys per block (large: for `S ≤ BC` one pass needs no rescaling at all).
const BC: usize = 256;
/// Width of the partial accumulators in the row loops (one AVX-512 register of f32).
const LANES: usize = 16;

/// Which keys a query may see: the causal flag and the valid key count of every batch row.
#[derive(Clone, Debug)]
struct Visibility {
    causal: bool,
    /// `[B]`: keys `j < valid[b]` are visible to batch row `b`.
    valid: Vec<usize>,
    heads: usize,
}

impl Visibility {
    /// Keys visible to some query of the block `[q0, q0 + br)` of head `bh`: `[0, end)`.
    fn key_end(&self, bh: usize, q0: usize, br: usize) -> usize {
        let valid = self.valid[bh / self.heads];
        if self.causal {
            valid.min(q0 + br)
        } else {
            valid
        }
    }

    /// Columns `[0, lim)` of the key block starting at `k0` (of `bc` keys) visible to query `qi`.
    fn row_limit(&self, qi: usize, k0: usize, bc: usize) -> usize {
        if self.causal {
            bc.min((qi + 1).saturating_sub(k0))
        } else {
            bc
        }
    }
}

/// Shapes of one call: `B·H` heads, `T` queries, `S` keys, head size `d`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    heads: usize,
    t: usize,
    s: usize,
    d: usize,
}

/// Fused attention on the tape: `softmax(Q Kᵀ · scale + mask) V`.
///
/// - `q [B, H, T, d]`, `k, v [B, H, S, d]` → `[B, H, T, d]`;
/// - `causal`: query `i` sees keys `j ≤ i`;
/// - `key_padding`: `Some(len)` with `len.len() == B`, batch row `b` sees keys `j < len[b]`;
/// - `scale`: usually `1/√d`; must be finite and positive.
///
/// Panics on inconsistent shapes (a programming error, as everywhere in the engine).
pub fn flash_attention(
    q: &Var,
    k: &Var,
    v: &Var,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
) -> Var {
    let (out, lse) = flash_attention_forward(
        &q.value(),
        &k.value(),
        &v.value(),
        causal,
        key_padding,
        scale,
    );
    let vis = visibility(&q.value(), &k.value(), causal, key_padding);
    Var::from_op(
        out,
        vec![q.clone(), k.clone(), v.clone()],
        Box::new(move |g, o, p| {
            let (dq, dk, dv) = backward(
                &p[0].value(),
                &p[1].value(),
                &p[2].value(),
                o,
                g,
                &lse,
                &vis,
                scale,
            );
            vec![Some(dq), Some(dk), Some(dv)]
        }),
    )
}

/// Forward kernel on tensors: the output `[B, H, T, d]` and the log-sum-exp of every query row
/// `[B·H·T]` (`+∞` for a row that sees no key). Arguments as [`flash_attention`].
pub fn flash_attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
) -> (Tensor, Vec<f32>) {
    let vis = visibility(q, k, causal, key_padding);
    assert_eq!(
        k.shape(),
        v.shape(),
        "flash_attention: k {:?} and v {:?} must have the same shape",
        k.shape(),
        v.shape()
    );
    assert!(
        scale.is_finite() && scale > 0.0,
        "flash_attention: scale must be finite and positive, got {scale}"
    );
    let dims = dims(q, k);
    let Dims { heads, t, s, d } = dims;
    let mut out = vec![0.0; heads * t * d];
    let mut lse = vec![f32::INFINITY; heads * t];
    if heads * t * d > 0 && s > 0 {
        // One task per (head, query block): its output rows and their log-sum-exps.
        let mut tasks = Vec::new();
        for (bh, (o_h, l_h)) in out.chunks_mut(t * d).zip(lse.chunks_mut(t)).enumerate() {
            for (i, (o_b, l_b)) in o_h.chunks_mut(BR * d).zip(l_h.chunks_mut(BR)).enumerate() {
                tasks.push((bh, i * BR, o_b, l_b));
            }
        }
        let (qd, kd, vd, isa) = (q.data(), k.data(), v.data(), isa());
        let run = |(bh, q0, o_b, l_b): (usize, usize, &mut [f32], &mut [f32])| {
            let br = l_b.len();
            let args = BlockArgs {
                q_b: &qd[(bh * t + q0) * d..(bh * t + q0 + br) * d],
                k_h: &kd[bh * s * d..(bh + 1) * s * d],
                v_h: &vd[bh * s * d..(bh + 1) * s * d],
                bh,
                q0,
                d,
                vis: &vis,
                scale,
            };
            forward_block_for(isa, &args, o_b, l_b);
        };
        if threads() > 1 {
            tasks.into_par_iter().for_each(run);
        } else {
            tasks.into_iter().for_each(run);
        }
    }
    (Tensor::from_vec(out, q.shape()), lse)
}

/// Checks the shapes and the padding lengths; builds the key visibility.
fn visibility(q: &Tensor, k: &Tensor, causal: bool, key_padding: Option<&[usize]>) -> Visibility {
    let Dims { s, .. } = dims(q, k);
    let (b, h) = (q.shape()[0], q.shape()[1]);
    let valid = match key_padding {
        Some(len) => {
            assert_eq!(
                len.len(),
                b,
                "flash_attention: {} key-padding lengths for a batch of {b}",
                len.len()
            );
            assert!(
                len.iter().all(|&l| l <= s),
                "flash_attention: key-padding lengths {len:?} exceed the {s} keys"
            );
            len.to_vec()
        }
        None => vec![s; b],
    };
    Visibility {
        causal,
        valid,
        heads: h,
    }
}

fn dims(q: &Tensor, k: &Tensor) -> Dims {
    assert!(
        q.rank() == 4 && k.rank() == 4,
        "flash_attention: q {:?} and k {:?} must be [B, H, T, d] and [B, H, S, d]",
        q.shape(),
        k.shape()
    );
    let (qs, ks) = (q.shape(), k.shape());
    assert!(
        qs[0] == ks[0] && qs[1] == ks[1] && qs[3] == ks[3],
        "flash_attention: q {qs:?} and k {ks:?} differ in batch, heads or head size"
    );
    Dims {
        heads: qs[0] * qs[1],
        t: qs[2],
        s: ks[2],
        d: qs[3],
    }
}

/// The inputs of one query block of head `bh`: queries `q_b [br, d]` starting at `q0`, the head's
/// keys and values `k_h, v_h [S, d]`.
struct BlockArgs<'a> {
    q_b: &'a [f32],
    k_h: &'a [f32],
    v_h: &'a [f32],
    bh: usize,
    q0: usize,
    d: usize,
    vis: &'a Visibility,
    scale: f32,
}

/// One query block: its output rows `o_b [br, d]` (zero on entry) and log-sum-exps `lse_b [br]`.
#[inline(always)]
fn forward_block(a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) {
    let BlockArgs {
        q_b,
        k_h,
        v_h,
        bh,
        q0,
        d,
        vis,
        scale,
    } = *a;
    let br = lse_b.len();
    let kend = vis.key_end(bh, q0, br);
    // Running max `m` (scaled scores) and running sum `l` of every row.
    let mut m = [f32::NEG_INFINITY; BR];
    let mut l = [0.0f32; BR];
    // s: [br, bc] scores, then probabilities.
    let mut s = vec![0.0f32; br * BC.min(kend.max(1))];
    for k0 in (0..kend).step_by(BC) {
        let bc = BC.min(kend - k0);
        let s = &mut s[..br * bc];
        matmul_serial(
            s,
            q_b,
            &k_h[k0 * d..(k0 + bc) * d],
            br,
            d,
            bc,
            false,
            true,
            false,
        );
        for r in 0..br {
            let row = &mut s[r * bc..(r + 1) * bc];
            let lim = vis.row_limit(q0 + r, k0, bc);
            if lim == 0 {
                row.fill(0.0);
                continue;
            }
            let m_new = m[r].max(row_max(&row[..lim]) * scale);
            let sum = exp_row(&mut row[..lim], scale, m_new);
            row[lim..].fill(0.0);
            if m[r] != f32::NEG_INFINITY {
                let alpha = (m[r] - m_new).exp();
                if alpha != 1.0 {
                    scale_row(&mut o_b[r * d..(r + 1) * d], alpha);
                }
                l[r] = l[r] * alpha + sum;
            } else {
                l[r] = sum;
            }
            m[r] = m_new;
        }
        // o_b [br, d] += p [br, bc] · v_j [bc, d]
        matmul_serial(
            o_b,
            s,
            &v_h[k0 * d..(k0 + bc) * d],
            br,
            bc,
            d,
            false,
            false,
            true,
        );
    }
    for r in 0..br {
        if l[r] > 0.0 {
            scale_row(&mut o_b[r * d..(r + 1) * d], 1.0 / l[r]);
            lse_b[r] = m[r] + l[r].ln();
        } else {
            lse_b[r] = f32::INFINITY;
        }
    }
}

/// Backward kernel: `(dQ, dK, dV)` from the inputs, the output `o`, its gradient `g` and the saved
/// log-sum-exps.
#[allow(clippy::too_many_arguments)]
fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    g: &Tensor,
    lse: &[f32],
    vis: &Visibility,
    scale: f32,
) -> (Tensor, Tensor, Tensor) {
    let Dims { heads, t, s, d } = dims(q, k);
    let mut dq = vec![0.0; heads * t * d];
    let mut dk = vec![0.0; heads * s * d];
    let mut dv = vec![0.0; heads * s * d];
    if heads * t * s * d > 0 {
        let tasks: Vec<_> = dq
            .chunks_mut(t * d)
            .zip(dk.chunks_mut(s * d).zip(dv.chunks_mut(s * d)))
            .enumerate()
            .collect();
        let isa = isa();
        let run = |(bh, (dq_h, (dk_h, dv_h))): HeadGrads| {
            let (qh, kh) = (bh * t * d..(bh + 1) * t * d, bh * s * d..(bh + 1) * s * d);
            let head = Head {
                q: &q.data()[qh.clone()],
                k: &k.data()[kh.clone()],
                v: &v.data()[kh],
                o: &o.data()[qh.clone()],
                g: &g.data()[qh],
                lse: &lse[bh * t..(bh + 1) * t],
                bh,
                d,
                vis,
                scale,
            };
            backward_head_for(isa, &head, dq_h, dk_h, dv_h);
        };
        if threads() > 1 {
            tasks.into_par_iter().for_each(run);
        } else {
            tasks.into_iter().for_each(run);
        }
    }
    (
        Tensor::from_vec(dq, q.shape()),
        Tensor::from_vec(dk, k.shape()),
        Tensor::from_vec(dv, v.shape()),
    )
}

/// A backward task: the head index and its `dq [T, d]`, `dk [S, d]`, `dv [S, d]`.
type HeadGrads<'a> = (usize, (&'a mut [f32], (&'a mut [f32], &'a mut [f32])));

/// The inputs of one head in the backward: `q, o, g (= dO) [T, d]`, `k, v [S, d]`, `lse [T]`.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a [f32],
    g: &'a [f32],
    lse: &'a [f32],
    bh: usize,
    d: usize,
    vis: &'a Visibility,
    scale: f32,
}

/// Gradients of one head: `dq [T, d]`, `dk, dv [S, d]` (zero on entry).
#[inline(always)]
fn backward_head(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let (d, vis, scale) = (h.d, h.vis, h.scale);
    let t = h.lse.len();
    // D_i = rowsum(dO_i ∘ O_i): [T]
    let dsum: Vec<f32> =
        h.g.chunks_exact(d)
            .zip(h.o.chunks_exact(d))
            .map(|(g, o)| dot(g, o))
            .collect();
    // Keys past the padding length have zero gradients; no query sees them.
    let kend = vis.key_end(h.bh, 0, t);
    let block = BR.min(t) * BC.min(kend);
    let (mut p, mut dp) = (vec![0.0f32; block], vec![0.0f32; block]);
    for k0 in (0..kend).step_by(BC) {
        let bc = BC.min(kend - k0);
        let kj = &h.k[k0 * d..(k0 + bc) * d];
        let vj = &h.v[k0 * d..(k0 + bc) * d];
        let (dkj, dvj) = (
            &mut dk[k0 * d..(k0 + bc) * d],
            &mut dv[k0 * d..(k0 + bc) * d],
        );
        // Causal: query blocks wholly before this key block see none of it.
        let q_start = if vis.causal { (k0 / BR) * BR } else { 0 };
        for q0 in (q_start..t).step_by(BR) {
            let br = BR.min(t - q0);
            let qi = &h.q[q0 * d..(q0 + br) * d];
            let gi = &h.g[q0 * d..(q0 + br) * d];
            let (p, dp) = (&mut p[..br * bc], &mut dp[..br * bc]);
            // P = exp(Q_i K_jᵀ · scale − L_i): [br, bc]
            matmul_serial(p, qi, kj, br, d, bc, false, true, false);
            for r in 0..br {
                let row = &mut p[r * bc..(r + 1) * bc];
                let lse = h.lse[q0 + r];
                let lim = if lse == f32::INFINITY {
                    0
                } else {
                    vis.row_limit(q0 + r, k0, bc)
                };
                exp_row(&mut row[..lim], scale, lse);
                row[lim..].fill(0.0);
            }
            // dV_j [bc, d] += Pᵀ · dO_i
            matmul_serial(dvj, p, gi, bc, br, d, true, false, true);
            // dP = dO_i · V_jᵀ: [br, bc]
            matmul_serial(dp, gi, vj, br, d, bc, false, true, false);
            // dS = P ∘ (dP − D_i) · scale, in place of dP
            for r in 0..br {
                let range = r * bc..(r + 1) * bc;
                ds_row(&mut dp[range.clone()], &p[range], dsum[q0 + r], scale);
            }
            // dQ_i [br, d] += dS · K_j;  dK_j [bc, d] += dSᵀ · Q_i
            matmul_serial(
                &mut dq[q0 * d..(q0 + br) * d],
                dp,
                kj,
                br,
                bc,
                d,
                false,
                false,
                true,
            );
            matmul_serial(dkj, dp, qi, bc, br, d, true, false, true);
        }
    }
}

/// The widest vector instructions of this CPU that the row loops are compiled for.
#[derive(Clone, Copy, PartialEq)]
enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// [`forward_block`] compiled for `isa`: the row loops are plain Rust that the compiler vectorizes
/// once AVX-512 (or AVX2 + FMA) may be used.
fn forward_block_for(isa: Isa, a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn avx512(a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) {
            forward_block(a, o_b, lse_b)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) {
            forward_block(a, o_b, lse_b)
        }
        match isa {
            // SAFETY: `isa()` found every feature these functions are compiled for.
            Isa::Avx512 => return unsafe { avx512(a, o_b, lse_b) },
            Isa::Avx2 => return unsafe { avx2(a, o_b, lse_b) },
            Isa::Baseline => {}
        }
    }
    let _ = isa;
    forward_block(a, o_b, lse_b)
}

/// [`backward_head`] compiled for `isa` (see [`forward_block_for`]).
fn backward_head_for(isa: Isa, h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn avx512(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
            backward_head(h, dq, dk, dv)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
            backward_head(h, dq, dk, dv)
        }
        match isa {
            // SAFETY: `isa()` found every feature these functions are compiled for.
            Isa::Avx512 => return unsafe { avx512(h, dq, dk, dv) },
            Isa::Avx2 => return unsafe { avx2(h, dq, dk, dv) },
            Isa::Baseline => {}
        }
    }
    let _ = isa;
    backward_head(h, dq, dk, dv)
}

/// `max_j row[j]` with `LANES` partial maxima (a plain fold would not vectorize).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    acc.iter().copied().fold(tail, f32::max)
}

/// `row[j] = exp(row[j] · scale − sub)`; returns `Σ_j row[j]`.
#[inline(always)]
fn exp_row(row: &mut [f32], scale: f32, sub: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *x = exp(*x * scale - sub);
            *a += *x;
        }
    }
    let mut tail = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x * scale - sub);
        tail += *x;
    }
    tail + acc.iter().sum::<f32>()
}

/// `ds[j] = p[j] · (dp[j] − dsum) · scale` (in place of `dp`).
#[inline(always)]
fn ds_row(dp: &mut [f32], p: &[f32], dsum: f32, scale: f32) {
    for (x, &p) in dp.iter_mut().zip(p) {
        *x = p * (*x - dsum) * scale;
    }
}

#[inline(always)]
fn scale_row(row: &mut [f32], a: f32) {
    for x in row {
        *x *= a;
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((a, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    tail + acc.iter().sum::<f32>()
}

/// `eˣ` to ~2 ulp, branch-free so that loops over it vectorize; `0` below `ln(f32::MIN_POSITIVE)`
/// (including `−∞`). Cody–Waite reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, then the Cephes
/// `expf` polynomial for `eʳ`, scaled by `2ⁿ` through the exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LO: f32 = -87.336_54;
    const HI: f32 = 88.0;
    let xc = x.clamp(LO, HI);
    let n = (xc * std::f32::consts::LOG2_E).round_ties_even();
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n ∈ [−126, 127] here, so 2ⁿ is a normal float with biased exponent n + 127. Adding 2²³ puts
    // the integer n + 127 in the low mantissa bits; shifting by 23 moves it into the exponent field
    // (a float-to-int conversion would not vectorize).
    let two_n = f32::from_bits((n + (8_388_608.0 + 127.0)).to_bits() << 23);
    if x < LO {
        0.0
    } else {
        er * two_n
    }
}
