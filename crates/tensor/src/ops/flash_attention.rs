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
//! Dropout on the probabilities (training, [`AttentionDropout`]): `O = (M ∘ P) V` with `P` the
//! softmax and `M` the inverted-dropout mask (`1/(1−p)` or 0), drawn from the same counter-based
//! stream as [`Var::dropout`](crate::var::Var::dropout) over the `[B, H, T, S]` probabilities, so
//! the fused and the plain path drop the same weights. The forward applies `M` to each probability
//! block after its row sums are taken; the backward regenerates it: `dVⱼ += (M ∘ P)ᵀ dO`,
//! `dS = (M ∘ P ∘ dP̃ − P ∘ D) · scale` with `dP̃ = dO Vᵀ`, and `D = rowsum(dO ∘ O)` unchanged
//! (`Σⱼ Pᵢⱼ Mᵢⱼ dP̃ᵢⱼ = dOᵢ · Oᵢ`; Dao et al. 2022, appendix B).
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
//! Scores and probabilities are kept transposed (`Sᵀ [keys, queries]`), so that the softmax
//! statistics are vector operations across queries and every block product reads its right operand
//! row by row. Block products run on the calling thread: a register-tiled AVX-512 kernel without
//! packing where the CPU has AVX-512 (`gemm` spent a third of its time packing these 64-wide blocks,
//! per `perf`), `gemm` elsewhere; with a causal mask they skip the hidden triangle of diagonal
//! blocks. The forward's score product also takes every query's block maximum from its register
//! tiles as they are stored (hidden entries left out), instead of a separate pass over the block,
//! and its probabilities are taken in registers as `2^(s·scale·log₂e − m·log₂e)` (one FMA for the
//! argument, a degree-6 polynomial, `vscalefps`; hidden entries masked, not filled with `−∞`).
//! The work is spread over (batch·head, query block) in the forward and over batch·head in the
//! backward with rayon. The element-wise loops are compiled for AVX-512 / AVX2 and chosen at run
//! time (`ATTEND_SIMD=avx2|baseline` caps the choice).

use crate::kernels::isa::{isa, Isa};
use crate::kernels::math::exp_finite;
use crate::kernels::transpose::transpose;
use crate::ops::dropout::mask_value;
use crate::tensor::Tensor;
use crate::threads::threads;
use crate::var::Var;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Queries per block.
const BR: usize = 64;
/// Keys per block (large: for `S ≤ BC` one pass needs no rescaling at all).
const BC: usize = 256;
/// Width of the partial sums in [`dot`] (one AVX-512 register of f32).
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
}

/// Dropout on the attention probabilities: probability `p` and the key of the mask's stream (one
/// draw from the training [`Rng`](crate::rng::Rng), as [`Var::dropout`] takes). `p ∈ [0, 1)`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDropout {
    pub p: f32,
    pub key: u64,
}

/// The dropout mask of one call, addressed as the `[B·H, T, S]` probabilities it drops from.
#[derive(Clone, Copy, Debug)]
struct DropMask {
    key: u64,
    p: f32,
    scale: f32,
    t: usize,
    s: usize,
}

impl DropMask {
    fn new(dropout: Option<AttentionDropout>, dims: Dims) -> Option<DropMask> {
        let AttentionDropout { p, key } = dropout?;
        assert!(
            (0.0..1.0).contains(&p),
            "flash_attention: dropout p = {p} must be in [0, 1)"
        );
        (p > 0.0).then_some(DropMask {
            key,
            p,
            scale: 1.0 / (1.0 - p),
            t: dims.t,
            s: dims.s,
        })
    }

    /// Multiplies `row`, the probabilities of key `key` for the queries `q0, q0 + 1, …` of head
    /// `bh` (a row of a transposed block), by their mask values.
    #[inline(always)]
    fn apply(&self, bh: usize, q0: usize, key: usize, row: &mut [f32]) {
        let first = ((bh * self.t + q0) * self.s + key) as u64;
        for (i, x) in row.iter_mut().enumerate() {
            *x *= mask_value(self.key, first + (i * self.s) as u64, self.p, self.scale);
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
/// - `scale`: usually `1/√d`; must be finite and positive;
/// - `dropout`: `Some` while training with dropout on the probabilities (see the module doc).
///
/// Panics on inconsistent shapes (a programming error, as everywhere in the engine).
pub fn flash_attention(
    q: &Var,
    k: &Var,
    v: &Var,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
    dropout: Option<AttentionDropout>,
) -> Var {
    let (qv, kv) = (q.value(), k.value());
    let vis = visibility(&qv, &kv, causal, key_padding);
    let drop = DropMask::new(dropout, dims(&qv, &kv));
    let (out, lse) = forward(&qv, &kv, &v.value(), &vis, drop, scale);
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
                drop,
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
    forward(q, k, v, &visibility(q, k, causal, key_padding), None, scale)
}

/// The forward kernel with the masks checked and built.
fn forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis: &Visibility,
    drop: Option<DropMask>,
    scale: f32,
) -> (Tensor, Vec<f32>) {
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
    let n = heads * t * d;
    let mut out = Vec::with_capacity(n);
    let mut lse = vec![f32::INFINITY; heads * t];
    if n > 0 && s > 0 {
        // One task per (head, query block): its output rows and their log-sum-exps.
        let mut tasks = Vec::new();
        let spare = &mut out.spare_capacity_mut()[..n];
        for (bh, (o_h, l_h)) in spare.chunks_mut(t * d).zip(lse.chunks_mut(t)).enumerate() {
            for (i, (o_b, l_b)) in o_h.chunks_mut(BR * d).zip(l_h.chunks_mut(BR)).enumerate() {
                tasks.push((bh, i * BR, o_b, l_b));
            }
        }
        let (qd, kd, vd, isa) = (q.data(), k.data(), v.data(), isa());
        let run = |(bh, q0, o_b, l_b): (usize, usize, &mut [MaybeUninit<f32>], &mut [f32])| {
            let br = l_b.len();
            let o_b = zeroed(o_b);
            let args = BlockArgs {
                q_b: &qd[(bh * t + q0) * d..(bh * t + q0 + br) * d],
                k_h: &kd[bh * s * d..(bh + 1) * s * d],
                v_h: &vd[bh * s * d..(bh + 1) * s * d],
                bh,
                q0,
                d,
                vis,
                drop,
                scale,
                isa,
            };
            forward_block_for(&args, o_b, l_b);
        };
        if threads() > 1 {
            tasks.into_par_iter().for_each(run);
        } else {
            tasks.into_iter().for_each(run);
        }
        // SAFETY: the chunks handed to the tasks cover all n values, and each task initialized
        // its chunk (`zeroed`) before anything else.
        unsafe { out.set_len(n) };
    } else {
        out.resize(n, 0.0);
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
    drop: Option<DropMask>,
    scale: f32,
    isa: Isa,
}

/// One query block: its output rows `o_b [br, d]` (zero on entry) and log-sum-exps `lse_b [br]`.
///
/// Scores are kept transposed, `Sᵀ [bc, br]` (a row per key, a column per query), so that the
/// online-softmax statistics of the `br` queries are updated a whole row of keys at a time (vector
/// operations across queries), and every block product reads its right operand row by row.
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
        drop,
        scale,
        isa,
    } = *a;
    let br = lse_b.len();
    let kend = vis.key_end(bh, q0, br);
    if kend == 0 {
        lse_b.fill(f32::INFINITY);
        return;
    }
    // Running max `m` of the scaled scores and running sum `l` of every query; per block: the new
    // max, the max to subtract (0 while a query has seen no key), the rescaling factor, the block sum.
    let mut stats = [[0.0f32; BR]; 6];
    let [m, l, m_new, m_sub, alpha, l_blk] = &mut stats;
    let (m, l, m_new, m_sub, alpha, l_blk) = (
        &mut m[..br],
        &mut l[..br],
        &mut m_new[..br],
        &mut m_sub[..br],
        &mut alpha[..br],
        &mut l_blk[..br],
    );
    m.fill(f32::NEG_INFINITY);
    // Max of every query's visible raw scores in the current key block.
    let mut block_max = [f32::NEG_INFINITY; BR];
    let block_max = &mut block_max[..br];
    let mut scratch = Scratch::take(d * br + BC.min(kend) * br);
    // qt: Q_iᵀ [d, br]; st: Sᵀ [bc, br]
    let (qt, st) = scratch.buf().split_at_mut(d * br);
    transpose(q_b, d, br, d, qt, br);
    for k0 in (0..kend).step_by(BC) {
        let bc = BC.min(kend - k0);
        let st = &mut st[..bc * br];
        // Causal: key k0 + j is visible to query q0 + i iff j − i ≤ q0 − k0; the products skip the
        // hidden triangle (the block exponential writes 0 over what the score product leaves).
        let (tri_cols, tri_keys) = if vis.causal {
            let off = q0 as isize - k0 as isize;
            (Triangle::ColsFrom(-off), Triangle::KBelow(off + 1))
        } else {
            (Triangle::Full, Triangle::Full)
        };
        // Sᵀ [bc, br] = K_j · Q_iᵀ, and the max of each column's visible scores
        let k_j = Strided::rows(&k_h[k0 * d..(k0 + bc) * d], d);
        let visible_from = vis.causal.then_some(k0 as isize - q0 as isize);
        block_max.fill(f32::NEG_INFINITY);
        score_product(
            isa,
            st,
            k_j,
            qt,
            bc,
            d,
            br,
            tri_cols,
            visible_from,
            block_max,
        );
        // max(s · scale) = scale · max(s) exactly: scale > 0 and rounding is monotonic.
        for ((mx, &old), &bm) in m_new.iter_mut().zip(m.iter()).zip(block_max.iter()) {
            let s = bm * scale;
            *mx = if s > old { s } else { old };
        }
        for i in 0..br {
            m_sub[i] = if m_new[i] == f32::NEG_INFINITY {
                0.0
            } else {
                m_new[i]
            };
            alpha[i] = exp_finite(m[i] - m_sub[i]);
        }
        l_blk.fill(0.0);
        exp_rows(isa, st, br, scale, m_sub, visible_from, Some(l_blk));
        for i in 0..br {
            l[i] = l[i] * alpha[i] + l_blk[i];
            m[i] = m_new[i];
        }
        if let Some(drop) = drop {
            for (j, row) in st.chunks_exact_mut(br).enumerate() {
                drop.apply(bh, q0, k0 + j, row);
            }
        }
        if k0 > 0 {
            for (o, &a) in o_b.chunks_exact_mut(d).zip(alpha.iter()) {
                if a != 1.0 {
                    scale_row(o, a);
                }
            }
        }
        // O_i [br, d] (+)= P · V_j, P = (Sᵀ)ᵀ
        product(
            isa,
            o_b,
            d,
            Strided::cols(st, br),
            &v_h[k0 * d..(k0 + bc) * d],
            d,
            br,
            bc,
            d,
            k0 > 0,
            tri_keys,
        );
    }
    for ((o, lse), (&m, &l)) in o_b
        .chunks_exact_mut(d)
        .zip(lse_b.iter_mut())
        .zip(m.iter().zip(l.iter()))
    {
        if l > 0.0 {
            scale_row(o, 1.0 / l);
            *lse = m + l.ln();
        } else {
            o.fill(0.0);
            *lse = f32::INFINITY;
        }
    }
}

/// `Pᵀ = exp(Sᵀ · scale − m)` in place over a transposed score block `st [rows, br]` (`m [br]`: a
/// max per query, i.e. per column), `0` on the hidden entries — `(j, i)` with `i < j + o` for
/// `visible_from = Some(o)`, whatever `st` holds there — and `sum[i] += Σⱼ Pᵀ[j, i]` if asked.
/// On AVX-512 as `2^(s · scale·log₂e − m·log₂e)` in registers ([`avx512::exp_rows`]); elsewhere
/// by [`exp_finite`].
#[inline(always)]
fn exp_rows(
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
    drop: Option<DropMask>,
    scale: f32,
) -> (Tensor, Tensor, Tensor) {
    let Dims { heads, t, s, d } = dims(q, k);
    let (nq, nk) = (heads * t * d, heads * s * d);
    let (mut dq, mut dk, mut dv) = (
        Vec::with_capacity(nq),
        Vec::with_capacity(nk),
        Vec::with_capacity(nk),
    );
    if nq > 0 && nk > 0 {
        let tasks: Vec<_> = dq.spare_capacity_mut()[..nq]
            .chunks_mut(t * d)
            .zip(
                dk.spare_capacity_mut()[..nk]
                    .chunks_mut(s * d)
                    .zip(dv.spare_capacity_mut()[..nk].chunks_mut(s * d)),
            )
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
                drop,
                scale,
                isa,
            };
            backward_head_for(&head, zeroed(dq_h), zeroed(dk_h), zeroed(dv_h));
        };
        if threads() > 1 {
            tasks.into_par_iter().for_each(run);
        } else {
            tasks.into_iter().for_each(run);
        }
        // SAFETY: the tasks' chunks cover all values, and each task zeroed its chunks first.
        unsafe {
            dq.set_len(nq);
            dk.set_len(nk);
            dv.set_len(nk);
        }
    } else {
        dq.resize(nq, 0.0);
        dk.resize(nk, 0.0);
        dv.resize(nk, 0.0);
    }
    (
        Tensor::from_vec(dq, q.shape()),
        Tensor::from_vec(dk, k.shape()),
        Tensor::from_vec(dv, v.shape()),
    )
}

/// A backward task: the head index and its `dq [T, d]`, `dk [S, d]`, `dv [S, d]`.
type HeadGrads<'a> = (usize, (Uninit<'a>, (Uninit<'a>, Uninit<'a>)));

/// A task's chunk of an output buffer, not yet initialized.
type Uninit<'a> = &'a mut [MaybeUninit<f32>];

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
    drop: Option<DropMask>,
    scale: f32,
    isa: Isa,
}

/// Gradients of one head: `dq [T, d]`, `dk, dv [S, d]` (zero on entry). Probabilities and score
/// gradients are kept transposed (`Pᵀ, dSᵀ [bc, br]`), as in the forward.
#[inline(always)]
fn backward_head(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let (d, vis, scale, isa) = (h.d, h.vis, h.scale, h.isa);
    let t = h.lse.len();
    // Keys past the padding length have zero gradients; no query sees them.
    let kend = vis.key_end(h.bh, 0, t);
    if kend == 0 {
        return;
    }
    // Qᵀ, dOᵀ: [d, T]
    let (mut qt, mut gt) = (vec![0.0f32; d * t], vec![0.0f32; d * t]);
    transpose(h.q, d, t, d, &mut qt, t);
    transpose(h.g, d, t, d, &mut gt, t);
    // D_i = rowsum(dO_i ∘ O_i): [T]
    let mut dsum = vec![0.0f32; t];
    for ((x, g), o) in dsum
        .iter_mut()
        .zip(h.g.chunks_exact(d))
        .zip(h.o.chunks_exact(d))
    {
        *x = dot(g, o);
    }
    let block = BR.min(t) * BC.min(kend);
    let (mut pt, mut dst) = (vec![0.0f32; block], vec![0.0f32; block]);
    // (M ∘ P)ᵀ where dropout applies
    let mut kept = vec![0.0f32; if h.drop.is_some() { block } else { 0 }];
    for k0 in (0..kend).step_by(BC) {
        let bc = BC.min(kend - k0);
        let (k_j, v_j) = (&h.k[k0 * d..(k0 + bc) * d], &h.v[k0 * d..(k0 + bc) * d]);
        let (dk_j, dv_j) = (
            &mut dk[k0 * d..(k0 + bc) * d],
            &mut dv[k0 * d..(k0 + bc) * d],
        );
        // Causal: query blocks wholly before this key block see none of it.
        let q_start = if vis.causal { (k0 / BR) * BR } else { 0 };
        for q0 in (q_start..t).step_by(BR) {
            let br = BR.min(t - q0);
            // Causal: the keys this query block sees end at q0 + br; the triangle inside the block
            // is skipped by the products (offsets: key k0 + j is visible to query q0 + i iff
            // j − i ≤ q0 − k0).
            let (bc, tri_cols, tri_keys, tri_queries) = if vis.causal {
                let off = q0 as isize - k0 as isize;
                let bc = bc.min(q0 + br - k0);
                (
                    bc,
                    Triangle::ColsFrom(-off),
                    Triangle::KBelow(off + 1),
                    Triangle::KAbove(-off),
                )
            } else {
                (bc, Triangle::Full, Triangle::Full, Triangle::Full)
            };
            let (k_j, dk_j) = (&k_j[..bc * d], &mut dk_j[..bc * d]);
            let (v_j, dv_j) = (&v_j[..bc * d], &mut dv_j[..bc * d]);
            let (pt, dst) = (&mut pt[..bc * br], &mut dst[..bc * br]);
            let (lse, dsum) = (&h.lse[q0..q0 + br], &dsum[q0..q0 + br]);
            let (q_i, g_i) = (&h.q[q0 * d..(q0 + br) * d], &h.g[q0 * d..(q0 + br) * d]);
            let k_rows = Strided::rows(k_j, d);
            // Pᵀ [bc, br] = exp(K_j · Q_iᵀ · scale − L_i); a query with L = +∞ sees nothing (P = 0).
            product(
                isa,
                pt,
                br,
                k_rows,
                &qt[q0..],
                t,
                bc,
                d,
                br,
                false,
                tri_cols,
            );
            let visible_from = vis.causal.then_some(k0 as isize - q0 as isize);
            exp_rows(isa, pt, br, scale, lse, visible_from, None);
            let hidden = |j: usize| {
                if vis.causal {
                    (k0 + j).saturating_sub(q0).min(br)
                } else {
                    0
                }
            };
            let pt: &[f32] = pt;
            let kept: &[f32] = match h.drop {
                Some(drop) => {
                    let kept = &mut kept[..bc * br];
                    kept.copy_from_slice(pt);
                    for (j, row) in kept.chunks_exact_mut(br).enumerate() {
                        drop.apply(h.bh, q0, k0 + j, row);
                    }
                    kept
                }
                None => pt,
            };
            // dV_j [bc, d] += (M ∘ P)ᵀ · dO_i
            let p_rows = Strided::rows(kept, br);
            product(isa, dv_j, d, p_rows, g_i, d, bc, br, d, true, tri_queries);
            // dPᵀ [bc, br] = V_j · dO_iᵀ
            let v_rows = Strided::rows(v_j, d);
            product(
                isa,
                dst,
                br,
                v_rows,
                &gt[q0..],
                t,
                bc,
                d,
                br,
                false,
                tri_cols,
            );
            // dSᵀ = ((M ∘ P)ᵀ ∘ dP̃ᵀ − Pᵀ ∘ D_i) · scale (zero where hidden: dP̃ᵀ was not computed
            // there); without dropout Pᵀ ∘ (dPᵀ − D_i) · scale
            for (j, ((ds_row, p_row), kept_row)) in dst
                .chunks_exact_mut(br)
                .zip(pt.chunks_exact(br))
                .zip(kept.chunks_exact(br))
                .enumerate()
            {
                let hide = hidden(j);
                ds_row[..hide].fill(0.0);
                if h.drop.is_some() {
                    for (((ds, &p), &pk), &di) in ds_row[hide..]
                        .iter_mut()
                        .zip(&p_row[hide..])
                        .zip(&kept_row[hide..])
                        .zip(&dsum[hide..])
                    {
                        *ds = (pk * *ds - p * di) * scale;
                    }
                } else {
                    for ((ds, &p), &di) in ds_row[hide..]
                        .iter_mut()
                        .zip(&p_row[hide..])
                        .zip(&dsum[hide..])
                    {
                        *ds = p * (*ds - di) * scale;
                    }
                }
            }
            // dQ_i [br, d] += dS · K_j;  dK_j [bc, d] += dSᵀ · Q_i
            let dq_i = &mut dq[q0 * d..(q0 + br) * d];
            let (ds_cols, ds_rows) = (Strided::cols(dst, br), Strided::rows(dst, br));
            product(isa, dq_i, d, ds_cols, k_j, d, br, bc, d, true, tri_keys);
            product(isa, dk_j, d, ds_rows, q_i, d, bc, br, d, true, tri_queries);
        }
    }
}

/// Which part of a block product the causal mask leaves to compute (row `i` of `c`): all of it; only
/// the contraction terms `p < i + off` or `p ≥ i + off` (the others multiply zeros); or only the
/// columns `j ≥ i + off` (the caller overwrites the others). Honoured per register tile of rows, so
/// a little more than the triangle is computed, never less.
#[derive(Clone, Copy)]
enum Triangle {
    Full,
    KBelow(isize),
    KAbove(isize),
    ColsFrom(isize),
}

/// A block operand read with strides: element `(i, p)` is `data[i·rs + p·cs]`.
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `[m, k]` block with `ld` values per row.
    fn rows(data: &'a [f32], ld: usize) -> Strided<'a> {
        Strided {
            data,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[k, m]` block with `ld` values per row.
    fn cols(data: &'a [f32], ld: usize) -> Strided<'a> {
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
/// layout). On AVX-512 the maxima are taken from the register tiles as they are stored (a pass
/// over the 64 KB block less, which streamed from L2); elsewhere by a pass over `c`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn score_product(
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
    let took_max = product_taking_max(
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

/// Block product `c[i·ldc + j] (+)= Σ_p a(i, p) · b[p·ldb + j]` for `i < m`, `p < k`, `j < n`, on
/// the calling thread: the AVX-512 kernel below where the CPU has it, `gemm` elsewhere.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product(
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
) {
    product_taking_max(isa, c, ldc, a, b, ldb, m, k, n, accumulate, tri, None);
}

/// Column maxima that the AVX-512 block product takes from its register tiles as it stores them:
/// `max[j]` for the product's columns; `(row0, col0)`: where the current tile starts.
#[derive(Clone, Copy)]
struct ColMax {
    max: *mut f32,
    /// Entry `(i, j)` counts iff `j ≥ i + visible_from` (`isize::MIN`: all do).
    visible_from: isize,
    row0: usize,
    col0: usize,
}

/// [`product`], and with `col_max` (`max` valid for `n` floats) the column maxima as well where the
/// AVX-512 kernel runs: returns whether it took them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product_taking_max(
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

#[cfg(target_arch = "x86_64")]
mod avx512;

/// [`forward_block`] compiled for `isa`: the row loops are plain Rust that the compiler vectorizes
/// once AVX-512 (or AVX2 + FMA) may be used.
fn forward_block_for(a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) {
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
        match a.isa {
            // SAFETY: `isa()` found every feature these functions are compiled for.
            Isa::Avx512 => return unsafe { avx512(a, o_b, lse_b) },
            Isa::Avx2 => return unsafe { avx2(a, o_b, lse_b) },
            Isa::Baseline => {}
        }
    }
    forward_block(a, o_b, lse_b)
}

/// [`backward_head`] compiled for `isa` (see [`forward_block_for`]).
fn backward_head_for(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
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
        match h.isa {
            // SAFETY: `isa()` found every feature these functions are compiled for.
            Isa::Avx512 => return unsafe { avx512(h, dq, dk, dv) },
            Isa::Avx2 => return unsafe { avx2(h, dq, dk, dv) },
            Isa::Baseline => {}
        }
    }
    backward_head(h, dq, dk, dv)
}

thread_local! {
    /// Block buffers of the forward, kept by each thread from one query block to the next.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch buffer, taken for one query block and given back when dropped. It holds
/// what earlier blocks left (the block writes before it reads) and only grows: a fresh
/// `vec![0.0; len]` per block cost a 64 KB `memset` each.
/// The buffer and the length in use.
struct Scratch(Vec<f32>, usize);

impl Scratch {
    #[inline(always)]
    fn take(len: usize) -> Scratch {
        let mut buf = SCRATCH.take();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Scratch(buf, len)
    }

    fn buf(&mut self) -> &mut [f32] {
        &mut self.0[..self.1]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        SCRATCH.set(std::mem::take(&mut self.0));
    }
}

/// Zeroes a task's chunk of an output buffer and hands it out initialized. Each task zeroes its own
/// chunk, in its cache and in parallel, instead of one `memset` of the whole output up front (which
/// cost 8% of fwd+bwd at 32×8×64×64).
fn zeroed(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    chunk.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just initialized, and `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `exp_rows` on this CPU's path and on the portable one against f64: within 2 ulp and the
    /// rounding of an f32 argument (+ a float of absolute slack near the underflow), hidden entries exactly 0 whatever they held, −∞ → 0,
    /// NaN kept, the column sums those of the f64 probabilities (and the same probabilities when no
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
