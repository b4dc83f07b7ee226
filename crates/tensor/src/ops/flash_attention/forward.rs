//! The forward of flash attention: every query block's output rows and log-sum-exps, by an online
//! softmax over the key blocks.
//!
//! Per head and per block of `BR` queries `Qᵢ [br, d]`, over blocks of `BC` keys `Kⱼ, Vⱼ [bc, d]`:
//! `Sᵢⱼ = Qᵢ Kⱼᵀ · scale`, `mᵢ ← max(mᵢ, rowmax Sᵢⱼ)`, `Pᵢⱼ = exp(Sᵢⱼ − mᵢ)`,
//! `lᵢ ← lᵢ·e^{mᵢ_old − mᵢ} + rowsum Pᵢⱼ`, `Oᵢ ← Oᵢ·e^{mᵢ_old − mᵢ} + (M ∘ Pᵢⱼ) Vⱼ` (`M`: the
//! dropout mask, all ones without dropout); at the end `Oᵢ /= lᵢ` and `Lᵢ = mᵢ + ln lᵢ` is kept for
//! the backward. One task per (head, query block), spread over the threads with rayon.

use super::block::{exp_rows, product, score_product, Strided, Triangle};
use super::{compiled_for_isa, dims, zeroed, Dims, Setup, Uninit, BC, BR};
use crate::kernels::math::exp_finite;
use crate::kernels::transpose::transpose;
use crate::tensor::Tensor;
use crate::threads::threads;
use rayon::prelude::*;

/// The forward kernel: the output `[B, H, T, d]` and the log-sum-exp of every query row `[B·H·T]`.
pub(super) fn forward(q: &Tensor, k: &Tensor, v: &Tensor, setup: &Setup) -> (Tensor, Vec<f32>) {
    assert_eq!(
        k.shape(),
        v.shape(),
        "flash_attention: k {:?} and v {:?} must have the same shape",
        k.shape(),
        v.shape()
    );
    let scale = setup.scale;
    assert!(
        scale.is_finite() && scale > 0.0,
        "flash_attention: scale must be finite and positive, got {scale}"
    );
    let Dims { heads, t, s, d } = dims(q, k);
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
        let (qd, kd, vd) = (q.data(), k.data(), v.data());
        let run = |(bh, q0, o_b, l_b): (usize, usize, Uninit, &mut [f32])| {
            let br = l_b.len();
            let o_b = zeroed(o_b);
            let args = BlockArgs {
                q_b: &qd[(bh * t + q0) * d..(bh * t + q0 + br) * d],
                k_h: &kd[bh * s * d..(bh + 1) * s * d],
                v_h: &vd[bh * s * d..(bh + 1) * s * d],
                bh,
                q0,
                d,
                setup,
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

/// The inputs of one query block of head `bh`: queries `q_b [br, d]` starting at `q0`, the head's
/// keys and values `k_h, v_h [S, d]`.
struct BlockArgs<'a> {
    q_b: &'a [f32],
    k_h: &'a [f32],
    v_h: &'a [f32],
    bh: usize,
    q0: usize,
    d: usize,
    setup: &'a Setup,
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
        setup,
    } = *a;
    let (vis, drop, scale, isa) = (&setup.vis, setup.drop, setup.scale, setup.isa);
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
            None,
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

compiled_for_isa! {
    /// [`forward_block`] compiled for the instruction set of the call.
    fn forward_block_for(a: &BlockArgs, o_b: &mut [f32], lse_b: &mut [f32]) = forward_block on a.setup.isa
}

thread_local! {
    /// Block buffers of the forward, kept by each thread from one query block to the next.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch buffer (the buffer and the length in use), taken for one query block and
/// given back when dropped. It holds what earlier blocks left (the block writes before it reads) and
/// only grows, so that a block does not allocate and zero its buffers afresh.
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

/// `row ← a · row`.
#[inline(always)]
fn scale_row(row: &mut [f32], a: f32) {
    for x in row {
        *x *= a;
    }
}
