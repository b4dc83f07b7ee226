//! The backward of flash attention: `dQ, dK, dV` of one head at a time, recomputing the
//! probabilities block by block from the saved log-sum-exps (FlashAttention-2, Dao 2023).
//!
//! Given `dO [T, d]`: `Dᵢ = rowsum(dOᵢ ∘ Oᵢ)`; per key block `j` and query block `i`,
//! `Pᵢⱼ = exp(Qᵢ Kⱼᵀ · scale − Lᵢ)`, `dVⱼ += (M ∘ Pᵢⱼ)ᵀ dOᵢ`, `dP̃ᵢⱼ = dOᵢ Vⱼᵀ`,
//! `dSᵢⱼ = (M ∘ Pᵢⱼ ∘ dP̃ᵢⱼ − Pᵢⱼ ∘ Dᵢ) · scale` (`= Pᵢⱼ ∘ (dP̃ᵢⱼ − Dᵢ) · scale` without dropout),
//! `dQᵢ += dSᵢⱼ Kⱼ`, `dKⱼ += dSᵢⱼᵀ Qᵢ`. Each head owns its `dK, dV` rows, so the heads run in
//! parallel with rayon and nothing is reduced across threads.

use super::block::{exp_rows, product, Strided, Triangle};
use super::{compiled_for_isa, dims, zeroed, Dims, Setup, Uninit, BC, BR};
use crate::kernels::math::dot;
use crate::kernels::transpose::transpose;
use crate::tensor::Tensor;
use crate::threads::threads;
use rayon::prelude::*;

/// Backward kernel: `(dQ, dK, dV)` from the inputs, the output `o`, its gradient `g` and the saved
/// log-sum-exps.
pub(super) fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    g: &Tensor,
    lse: &[f32],
    setup: &Setup,
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
                setup,
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
    setup: &'a Setup,
}

/// Gradients of one head: `dq [T, d]`, `dk, dv [S, d]` (zero on entry). Probabilities and score
/// gradients are kept transposed (`Pᵀ, dSᵀ [bc, br]`), as in the forward.
#[inline(always)]
fn backward_head(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let (d, vis, drop, scale, isa) = (h.d, &h.setup.vis, h.setup.drop, h.setup.scale, h.setup.isa);
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
    let mut kept = vec![0.0f32; if drop.is_some() { block } else { 0 }];
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
                None,
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
            let kept: &[f32] = match drop {
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
            product(
                isa,
                dv_j,
                d,
                p_rows,
                g_i,
                d,
                bc,
                br,
                d,
                true,
                tri_queries,
                None,
            );
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
                None,
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
                if drop.is_some() {
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
            product(
                isa, dq_i, d, ds_cols, k_j, d, br, bc, d, true, tri_keys, None,
            );
            product(
                isa,
                dk_j,
                d,
                ds_rows,
                q_i,
                d,
                bc,
                br,
                d,
                true,
                tri_queries,
                None,
            );
        }
    }
}

compiled_for_isa! {
    /// [`backward_head`] compiled for the instruction set of the call.
    fn backward_head_for(h: &Head, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) = backward_head on h.setup.isa
}
