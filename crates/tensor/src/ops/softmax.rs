//! Softmax and log-softmax over the last axis.
//!
//! `softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m}` with `m = max_j x_j` (stable); a row that is all −∞
//! (every position masked) gives zeros rather than NaN.
//! Backward: `dx = y ⊙ (dy − Σ(dy ⊙ y))`; for log-softmax `dx = dy − softmax(x) Σ dy`.

use crate::kernels::math;
use crate::tensor::Tensor;
use crate::var::Var;
use rayon::prelude::*;

/// Rows at or above this many elements in total are processed in parallel.
const PARALLEL_MIN: usize = 1 << 15;

/// Softmax of one row in place.
pub fn softmax_row(row: &mut [f32]) {
    let m = math::max(row);
    if m == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let s = math::exp_shifted_sum(row, m);
    let inv = 1.0 / s;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// Log-softmax of one row in place.
pub fn log_softmax_row(row: &mut [f32]) {
    let m = math::max(row);
    let lse = m + math::sum_exp_shifted(row, m).ln();
    for x in row.iter_mut() {
        *x -= lse;
    }
}

fn rowwise(x: &Tensor, f: impl Fn(&mut [f32]) + Sync + Send) -> Tensor {
    let mut out = x.clone();
    let d = x.dim(-1).max(1);
    if out.numel() >= PARALLEL_MIN {
        out.data_mut().par_chunks_mut(d).for_each(f);
    } else {
        out.data_mut().chunks_mut(d).for_each(f);
    }
    out
}

/// Softmax over the last axis (tensor-level).
pub fn softmax_tensor(x: &Tensor) -> Tensor {
    rowwise(x, softmax_row)
}

/// Log-softmax over the last axis (tensor-level).
pub fn log_softmax_tensor(x: &Tensor) -> Tensor {
    rowwise(x, log_softmax_row)
}

impl Var {
    /// Softmax over the last axis.
    pub fn softmax(&self) -> Var {
        let out = softmax_tensor(&self.value());
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(|g, y, _| {
                let d = y.dim(-1).max(1);
                let mut gx = vec![0.0; y.numel()];
                for ((gx, g), y) in gx
                    .chunks_mut(d)
                    .zip(g.data().chunks(d))
                    .zip(y.data().chunks(d))
                {
                    let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                    for ((o, &g), &y) in gx.iter_mut().zip(g).zip(y) {
                        *o = y * (g - dot);
                    }
                }
                vec![Some(Tensor::from_vec(gx, y.shape()))]
            }),
        )
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&self) -> Var {
        let out = log_softmax_tensor(&self.value());
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(|g, y, _| {
                let d = y.dim(-1).max(1);
                let mut gx = vec![0.0; y.numel()];
                for ((gx, g), y) in gx
                    .chunks_mut(d)
                    .zip(g.data().chunks(d))
                    .zip(y.data().chunks(d))
                {
                    let s: f32 = g.iter().sum();
                    for ((o, &g), &y) in gx.iter_mut().zip(g).zip(y) {
                        *o = g - y.exp() * s;
                    }
                }
                vec![Some(Tensor::from_vec(gx, y.shape()))]
            }),
        )
    }
}
