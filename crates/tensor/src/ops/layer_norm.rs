//! Layer normalisation over the last axis, fused forward and backward.
//!
//! `y = (x − μ) / √(σ² + ε) · γ + β`, `μ`, `σ²` (biased) over the last axis of `x [..., D]`;
//! `γ, β [D]`. Backward, with `x̂ = (x − μ)·r`, `r = 1/√(σ² + ε)`, `ĝ = dy ⊙ γ`:
//! `dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`, `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy` (sums over rows).

use crate::tensor::Tensor;
use crate::var::Var;

/// Mean and reciprocal standard deviation of one row.
fn stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&x| (x - mean) * (x - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
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
    for (o, row) in out.chunks_exact_mut(d).zip(x.data().chunks_exact(d)) {
        let (mean, r) = stats(row, eps);
        for (((o, &x), &g), &b) in o.iter_mut().zip(row).zip(gamma.data()).zip(beta.data()) {
            *o = (x - mean) * r * g + b;
        }
    }
    Tensor::from_vec(out, x.shape())
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
                let mut dx = vec![0.0; x.numel()];
                let mut dgamma = vec![0.0; d];
                let mut dbeta = vec![0.0; d];
                let mut xhat = vec![0.0; d];
                let mut gh = vec![0.0; d];
                for ((dx, row), gy) in dx
                    .chunks_exact_mut(d)
                    .zip(x.data().chunks_exact(d))
                    .zip(g.data().chunks_exact(d))
                {
                    let (mean, r) = stats(row, eps);
                    let (mut m1, mut m2) = (0.0, 0.0);
                    for i in 0..d {
                        xhat[i] = (row[i] - mean) * r;
                        gh[i] = gy[i] * gamma.data()[i];
                        m1 += gh[i];
                        m2 += gh[i] * xhat[i];
                        dgamma[i] += gy[i] * xhat[i];
                        dbeta[i] += gy[i];
                    }
                    let (m1, m2) = (m1 / d as f32, m2 / d as f32);
                    for i in 0..d {
                        dx[i] = r * (gh[i] - m1 - xhat[i] * m2);
                    }
                }
                vec![
                    Some(Tensor::from_vec(dx, x.shape())),
                    Some(Tensor::from_vec(dgamma, &[d])),
                    Some(Tensor::from_vec(dbeta, &[d])),
                ]
            }),
        )
    }
}
