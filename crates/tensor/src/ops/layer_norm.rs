//! Layer normalisation over the last axis, fused forward and backward.
//!
//! `y = (x − μ) / √(σ² + ε) · γ + β`, `μ`, `σ²` (biased) over the last axis of `x [..., D]`;
//! `γ, β [D]`. Backward, with `x̂ = (x − μ)·r`, `r = 1/√(σ² + ε)`, `ĝ = dy ⊙ γ`:
//! `dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`, `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy` (sums over rows).
//!
//! Rows are independent: both passes run over blocks of rows on the threads (the backward's `dγ`,
//! `dβ` summed per block, then over blocks), each row a loop compiled for the widest instruction set
//! (`simd_fn!`) with sums over 16 lanes, so that a row's sums are not bound by the latency of one
//! serial chain of additions.

use crate::kernels::isa::simd_fn;
use crate::kernels::math::{dot, sum};
use crate::tensor::Tensor;
use crate::threads::threads;
use crate::var::Var;
use rayon::prelude::*;

/// Rows per block handed to a thread: about 32 K floats.
fn block_rows(d: usize) -> usize {
    (32 * 1024 / d.max(1)).max(1)
}

simd_fn! {
    /// `xhat ← x − μ` for one row; returns `r = 1/√(σ² + ε)` (the two-pass variance: no
    /// cancellation for rows far from 0).
    fn center(x: &[f32], eps: f32, xhat: &mut [f32]) -> f32 {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        for (c, &v) in xhat.iter_mut().zip(x) {
            *c = v - mean;
        }
        1.0 / (dot(xhat, xhat) / n + eps).sqrt()
    }
}

simd_fn! {
    /// `o ← (x − μ)·r·γ + β` for one row.
    fn forward_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, o: &mut [f32]) {
        let r = center(x, eps, o);
        for ((o, &g), &b) in o.iter_mut().zip(gamma).zip(beta) {
            *o = *o * r * g + b;
        }
    }
}

simd_fn! {
    /// One row of the backward: `dx`, and `dγ += dy ⊙ x̂`, `dβ += dy`. `xhat`, `gh`: scratch of the
    /// row's length.
    fn backward_row(
        x: &[f32],
        gy: &[f32],
        gamma: &[f32],
        eps: f32,
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        xhat: &mut [f32],
        gh: &mut [f32],
    ) {
        let d = x.len() as f32;
        let r = center(x, eps, xhat);
        for (((xh, h), &g), &gm) in xhat.iter_mut().zip(gh.iter_mut()).zip(gy).zip(gamma) {
            *xh *= r;
            *h = g * gm;
        }
        let (m1, m2) = (sum(gh) / d, dot(gh, xhat) / d);
        for ((((dx, &h), &xh), &g), (dg, db)) in dx
            .iter_mut()
            .zip(gh.iter())
            .zip(xhat.iter())
            .zip(gy)
            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
        {
            *dx = r * (h - m1 - xh * m2);
            *dg += g * xh;
            *db += g;
        }
    }
}

/// Forward kernel on tensors.
pub fn layer_norm_tensor(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Tensor {
    let d = x.dim(-1);
    assert!(
        gamma.shape() == [d] && beta.shape() == [d],
        "layer_norm: x {:?}, gamma {:?}, beta {:?}",
        x.shape(),
        gamma.shape(),
        beta.shape()
    );
    let mut out = vec![0.0; x.numel()];
    if d == 0 {
        return Tensor::from_vec(out, x.shape());
    }
    let (g, b) = (gamma.data(), beta.data());
    let block = |(o, xs): (&mut [f32], &[f32])| {
        for (o, row) in o.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
            forward_row(row, g, b, eps, o);
        }
    };
    let n = block_rows(d) * d;
    if threads() > 1 && out.len() > n {
        out.par_chunks_mut(n)
            .zip(x.data().par_chunks(n))
            .for_each(block);
    } else {
        block((&mut out, x.data()));
    }
    Tensor::from_vec(out, x.shape())
}

/// Backward kernel: `(dx, dγ, dβ)` for `x [..., D]` and the output gradient `gy`.
fn layer_norm_backward(
    x: &Tensor,
    gy: &Tensor,
    gamma: &Tensor,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = x.dim(-1);
    let mut dx = vec![0.0; x.numel()];
    if d == 0 {
        return (dx, Vec::new(), Vec::new());
    }
    let g = gamma.data();
    // Rows of one block → (dγ, dβ) of the block.
    let block = |(dx, (xs, gys)): (&mut [f32], (&[f32], &[f32]))| {
        let (mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d]);
        let (mut xhat, mut gh) = (vec![0.0; d], vec![0.0; d]);
        for ((dx, row), gy) in dx
            .chunks_exact_mut(d)
            .zip(xs.chunks_exact(d))
            .zip(gys.chunks_exact(d))
        {
            backward_row(
                row,
                gy,
                g,
                eps,
                dx,
                &mut dgamma,
                &mut dbeta,
                &mut xhat,
                &mut gh,
            );
        }
        (dgamma, dbeta)
    };
    let n = block_rows(d) * d;
    let (dgamma, dbeta) = if threads() > 1 && dx.len() > n {
        dx.par_chunks_mut(n)
            .zip(x.data().par_chunks(n).zip(gy.data().par_chunks(n)))
            .map(block)
            .reduce(
                || (vec![0.0; d], vec![0.0; d]),
                |(mut ga, mut ba), (gb, bb)| {
                    for (a, b) in ga.iter_mut().zip(&gb) {
                        *a += b;
                    }
                    for (a, b) in ba.iter_mut().zip(&bb) {
                        *a += b;
                    }
                    (ga, ba)
                },
            )
    } else {
        block((&mut dx, (x.data(), gy.data())))
    };
    (dx, dgamma, dbeta)
}

impl Var {
    /// Layer norm over the last axis with learned `gamma`, `beta` (`[D]` each).
    pub fn layer_norm(&self, gamma: &Var, beta: &Var, eps: f32) -> Var {
        let out = layer_norm_tensor(&self.value(), &gamma.value(), &beta.value(), eps);
        Var::from_op(
            out,
            vec![self.clone(), gamma.clone(), beta.clone()],
            Box::new(move |g, _, p| {
                let (x, gamma) = (p[0].value(), p[1].value());
                let d = x.dim(-1);
                let (dx, dgamma, dbeta) = layer_norm_backward(&x, g, &gamma, eps);
                vec![
                    Some(Tensor::from_vec(dx, x.shape())),
                    Some(Tensor::from_vec(dgamma, &[d])),
                    Some(Tensor::from_vec(dbeta, &[d])),
                ]
            }),
        )
    }
}
