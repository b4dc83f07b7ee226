//! One fused step of additive (Bahdanau) attention, forward and backward written by hand.
//!
//! For every batch row `b`, with the projected query `q_b = W_q s_b` `[A]`, the projected keys
//! `K_bj = W_k h_bj + b_k` `[S, A]`, the score vector `v` `[A]` and the values (annotations)
//! `h_bj` `[S, D]`:
//!
//! ```text
//! t_bj = tanh(q_b + K_bj)                  [A]   (kept for the backward pass)
//! e_bj = v · t_bj                          raw score (returned as `scores`)
//! a_b  = softmax_j(e_bj, −∞ where masked)  [S]   (a fully masked row gives zeros)
//! c_b  = Σ_j a_bj h_bj                     [D]   the context, the op's differentiable output
//! ```
//!
//! Backward, from `dc_b`: `da_bj = dc_b · h_bj`, `dh_bj = a_bj dc_b`,
//! `de_bj = a_bj (da_bj − Σ_k a_bk da_bk)`, `dpre_bj = de_bj · v ⊙ (1 − t_bj²)`;
//! then `dK_bj = dpre_bj`, `dq_b = Σ_j dpre_bj`, `dv = Σ_bj de_bj t_bj`.
//!
//! The plain path (`linear`, `add`, `tanh`, `linear`, `masked_fill`, `softmax`, `matmul`) computes
//! the same thing in six ops and seven intermediate tensors; this one makes one pass over the keys
//! per row with vectorized `tanh`, and when no gradient is recorded (decoding) keeps nothing.

use crate::kernels::isa::simd_fn;
use crate::kernels::math::{dot, exp, tanh};
use crate::tensor::Tensor;
use crate::var::{is_grad_enabled, Var};
use rayon::prelude::*;

/// Rows are spread over threads when a step touches at least this many key elements.
const PARALLEL_MIN: usize = 1 << 15;

/// What one fused step returns.
pub struct AdditiveStep {
    /// `c [B, D]`, on the tape (gradients reach the query, keys, `v` and values).
    pub context: Var,
    /// `a [B, S]` (not differentiable).
    pub weights: Tensor,
    /// Raw scores `e [B, S]`, before masking (not differentiable).
    pub scores: Tensor,
}

/// One batch row's forward outputs: scores, weights, context, saved tanh (empty when not kept).
struct RowOut<'a> {
    bi: usize,
    e: &'a mut [f32],
    w: &'a mut [f32],
    c: &'a mut [f32],
    t: &'a mut [f32],
}

/// One batch row's gradients (`dv` is the row's share of `dv`; `dk`, `dh` empty when not wanted).
struct RowGrads<'a> {
    bi: usize,
    dq: &'a mut [f32],
    dv: &'a mut [f32],
    dk: &'a mut [f32],
    dh: &'a mut [f32],
}

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    a: usize,
    d: usize,
}

/// The fused step (see the module doc). `query [B, A]`, `keys [B, S, A]`, `v` with `A` elements
/// (a `[1, A]` linear weight), `values [B, S, D]`, `mask [B, S]` (non-zero = masked).
pub fn additive_step(
    query: &Var,
    keys: &Var,
    v: &Var,
    values: &Var,
    mask: Option<&Tensor>,
) -> AdditiveStep {
    let (qv, kv, vv, hv) = (query.value(), keys.value(), v.value(), values.value());
    let (qs, ks, hs) = (qv.shape(), kv.shape(), hv.shape());
    assert!(
        qs.len() == 2 && ks.len() == 3 && hs.len() == 3,
        "additive_step: query {qs:?} must be [B, A], keys {ks:?} [B, S, A], values {hs:?} [B, S, D]"
    );
    let d = Dims {
        b: qs[0],
        s: ks[1],
        a: qs[1],
        d: hs[2],
    };
    assert!(
        ks[0] == d.b && ks[2] == d.a && hs[0] == d.b && hs[1] == d.s && vv.numel() == d.a,
        "additive_step: query {qs:?}, keys {ks:?}, v {:?}, values {hs:?} do not fit",
        vv.shape()
    );
    if let Some(m) = mask {
        assert_eq!(m.shape(), [d.b, d.s], "additive_step: mask shape");
    }
    let record = is_grad_enabled() && [query, keys, v, values].iter().any(|p| p.requires_grad());
    let (sa, sd) = (d.s * d.a, d.s * d.d);
    let mut t = vec![0.0; if record { d.b * sa } else { 0 }];
    let mut scores = vec![0.0; d.b * d.s];
    let mut weights = vec![0.0; d.b * d.s];
    let mut context = vec![0.0; d.b * d.d];
    {
        let (q, k, vw, h) = (qv.data(), kv.data(), vv.data(), hv.data());
        let m = mask.map(|m| m.data());
        // Without recording, every row gets an empty `t` (nothing is kept).
        let ts: Vec<&mut [f32]> = if record {
            t.chunks_mut(sa).collect()
        } else {
            (0..d.b).map(|_| <&mut [f32]>::default()).collect()
        };
        let rows: Vec<RowOut> = scores
            .chunks_mut(d.s)
            .zip(weights.chunks_mut(d.s))
            .zip(context.chunks_mut(d.d))
            .zip(ts)
            .enumerate()
            .map(|(bi, (((e, w), c), t))| RowOut { bi, e, w, c, t })
            .collect();
        let row = |o: RowOut| {
            let bi = o.bi;
            forward_row(
                &q[bi * d.a..(bi + 1) * d.a],
                &k[bi * sa..(bi + 1) * sa],
                vw,
                &h[bi * sd..(bi + 1) * sd],
                m.map(|m| &m[bi * d.s..(bi + 1) * d.s]),
                o.t,
                o.e,
                o.w,
                o.c,
            )
        };
        if d.b * sa >= PARALLEL_MIN && crate::threads::threads() > 1 {
            rows.into_par_iter().for_each(row);
        } else {
            rows.into_iter().for_each(row);
        }
    }
    drop((qv, kv, vv, hv));
    let weights = Tensor::from_vec(weights, &[d.b, d.s]);
    let scores = Tensor::from_vec(scores, &[d.b, d.s]);
    let saved_a = weights.clone();
    let context = Var::from_op(
        Tensor::from_vec(context, &[d.b, d.d]),
        vec![query.clone(), keys.clone(), v.clone(), values.clone()],
        Box::new(move |g, _, p| backward(g.data(), &saved_a, &t, p, d)),
    );
    AdditiveStep {
        context,
        weights,
        scores,
    }
}

simd_fn! {
    /// One row forward: scores `e [S]`, weights `w [S]`, context `c [D]`; `t [S·A]` receives
    /// `tanh(q + K_j)` when it is not empty.
    fn forward_row(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        h: &[f32],
        mask: Option<&[f32]>,
        t: &mut [f32],
        e: &mut [f32],
        w: &mut [f32],
        c: &mut [f32],
    ) {
        let a = q.len();
        let keep = !t.is_empty();
        let mut tmp = [0.0f32; 512];
        for (j, ej) in e.iter_mut().enumerate() {
            let kj = &k[j * a..(j + 1) * a];
            // tanh(q + K_j) into a slice (the saved one, or a stack buffer in blocks of 512).
            let mut score = 0.0;
            if keep {
                let tj = &mut t[j * a..(j + 1) * a];
                for ((x, &qi), &ki) in tj.iter_mut().zip(q).zip(kj) {
                    *x = tanh(qi + ki);
                }
                score = dot(tj, v);
            } else {
                for start in (0..a).step_by(tmp.len()) {
                    let n = tmp.len().min(a - start);
                    let buf = &mut tmp[..n];
                    for ((x, &qi), &ki) in buf.iter_mut().zip(&q[start..]).zip(&kj[start..]) {
                        *x = tanh(qi + ki);
                    }
                    score += dot(buf, &v[start..start + n]);
                }
            }
            *ej = score;
        }
        // Masked softmax over the row.
        let masked = |j: usize| mask.is_some_and(|m| m[j] != 0.0);
        let mut mx = f32::NEG_INFINITY;
        for (j, &ej) in e.iter().enumerate() {
            if !masked(j) {
                mx = mx.max(ej);
            }
        }
        c.fill(0.0);
        if mx == f32::NEG_INFINITY {
            w.fill(0.0);
            return;
        }
        let mut sum = 0.0;
        for (j, (wj, &ej)) in w.iter_mut().zip(e.iter()).enumerate() {
            *wj = if masked(j) { 0.0 } else { exp(ej - mx) };
            sum += *wj;
        }
        let inv = 1.0 / sum;
        let dv = c.len();
        for (j, wj) in w.iter_mut().enumerate() {
            *wj *= inv;
            let hj = &h[j * dv..(j + 1) * dv];
            for (ci, &hi) in c.iter_mut().zip(hj) {
                *ci += *wj * hi;
            }
        }
    }
}

/// Gradients for `[query, keys, v, values]` from `dc [B, D]`.
fn backward(g: &[f32], a: &Tensor, t: &[f32], p: &[Var], d: Dims) -> Vec<Option<Tensor>> {
    let (sa, sd) = (d.s * d.a, d.s * d.d);
    let want_q = p[0].requires_grad();
    let want_k = p[1].requires_grad();
    let want_v = p[2].requires_grad();
    let want_h = p[3].requires_grad();
    let mut dq = vec![0.0; d.b * d.a];
    let mut dk = vec![0.0; if want_k { d.b * sa } else { 0 }];
    let mut dvr = vec![0.0; d.b * d.a]; // per-row parts of dv, summed below
    let mut dh = vec![0.0; if want_h { d.b * sd } else { 0 }];
    {
        let (hv, vv) = (p[3].value(), p[2].value());
        let (h, vw) = (hv.data(), vv.data());
        let dks: Vec<&mut [f32]> = if want_k {
            dk.chunks_mut(sa).collect()
        } else {
            (0..d.b).map(|_| <&mut [f32]>::default()).collect()
        };
        let dhs: Vec<&mut [f32]> = if want_h {
            dh.chunks_mut(sd).collect()
        } else {
            (0..d.b).map(|_| <&mut [f32]>::default()).collect()
        };
        let rows: Vec<RowGrads> = dq
            .chunks_mut(d.a)
            .zip(dvr.chunks_mut(d.a))
            .zip(dks.into_iter().zip(dhs))
            .enumerate()
            .map(|(bi, ((dq, dv), (dk, dh)))| RowGrads { bi, dq, dv, dk, dh })
            .collect();
        let row = |o: RowGrads| {
            let bi = o.bi;
            backward_row(
                &g[bi * d.d..(bi + 1) * d.d],
                &a.data()[bi * d.s..(bi + 1) * d.s],
                &t[bi * sa..(bi + 1) * sa],
                &h[bi * sd..(bi + 1) * sd],
                vw,
                o.dq,
                o.dv,
                o.dk,
                o.dh,
            )
        };
        if d.b * sa >= PARALLEL_MIN && crate::threads::threads() > 1 {
            rows.into_par_iter().for_each(row);
        } else {
            rows.into_iter().for_each(row);
        }
    }
    let dv = want_v.then(|| {
        let mut dv = vec![0.0; d.a];
        for r in dvr.chunks_exact(d.a) {
            for (x, &y) in dv.iter_mut().zip(r) {
                *x += y;
            }
        }
        Tensor::from_vec(dv, p[2].value().shape())
    });
    vec![
        want_q.then(|| Tensor::from_vec(dq, &[d.b, d.a])),
        want_k.then(|| Tensor::from_vec(dk, &[d.b, d.s, d.a])),
        dv,
        want_h.then(|| Tensor::from_vec(dh, &[d.b, d.s, d.d])),
    ]
}

simd_fn! {
    /// One row backward (see the module doc). `dk`, `dh` may be empty (not wanted).
    fn backward_row(
        g: &[f32],
        w: &[f32],
        t: &[f32],
        h: &[f32],
        v: &[f32],
        dq: &mut [f32],
        dv: &mut [f32],
        dk: &mut [f32],
        dh: &mut [f32],
    ) {
        let (s, a, dd) = (w.len(), dq.len(), g.len());
        // da_j = dc · h_j, and Σ_j a_j da_j.
        let mut da = [0.0f32; 64];
        let mut da_heap = Vec::new();
        let da: &mut [f32] = if s <= da.len() {
            &mut da[..s]
        } else {
            da_heap.resize(s, 0.0);
            &mut da_heap
        };
        let mut mean = 0.0;
        for (j, x) in da.iter_mut().enumerate() {
            *x = dot(g, &h[j * dd..(j + 1) * dd]);
            mean += w[j] * *x;
        }
        for j in 0..s {
            let wj = w[j];
            if !dh.is_empty() {
                for (o, &gi) in dh[j * dd..(j + 1) * dd].iter_mut().zip(g) {
                    *o = wj * gi;
                }
            }
            let de = wj * (da[j] - mean);
            if de == 0.0 {
                continue; // masked position (or an exactly zero gradient): nothing flows
            }
            let tj = &t[j * a..(j + 1) * a];
            for i in 0..a {
                let ti = tj[i];
                let pre = de * v[i] * (1.0 - ti * ti);
                dq[i] += pre;
                dv[i] += de * ti;
                if !dk.is_empty() {
                    dk[j * a + i] = pre;
                }
            }
        }
    }
}
