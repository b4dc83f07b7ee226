//! 2-D max and average pooling over `k × k` windows with stride `s` (no padding), NCHW.
//!
//! `x [N, C, H, W]` → `y [N, C, OH, OW]`, `OH = (H − k) / s + 1`, `OW = (W − k) / s + 1`:
//!
//! ```text
//! max: y[n, c, i, j] = max_{u, v < k} x[n, c, i·s + u, j·s + v]
//! avg: y[n, c, i, j] = (1/k²) Σ_{u, v < k} x[n, c, i·s + u, j·s + v]
//! ```
//!
//! Backward: max pooling routes each output gradient to the input position that won the window
//! (the first one on ties, as PyTorch); average pooling spreads `dy / k²` over the window.
//! Overlapping windows (`s < k`) accumulate.

use super::conv2d::ConvGeometry;
use crate::tensor::Tensor;
use crate::var::Var;

/// Max pooling on tensors: the pooled values and, per output, the flat input index of the maximum.
pub fn max_pool2d_tensor(x: &Tensor, kernel: usize, stride: usize) -> (Tensor, Vec<usize>) {
    let g = ConvGeometry::with_kernel(x.shape(), kernel, kernel, stride, 0, "max_pool2d");
    let mut out = Vec::with_capacity(g.n * g.c * g.oh * g.ow);
    let mut argmax = Vec::with_capacity(out.capacity());
    for plane in 0..g.n * g.c {
        let base = plane * g.h * g.w;
        for i in 0..g.oh {
            for j in 0..g.ow {
                let mut best = base + i * stride * g.w + j * stride;
                for u in 0..kernel {
                    for v in 0..kernel {
                        let at = base + (i * stride + u) * g.w + j * stride + v;
                        if x.data()[at] > x.data()[best] {
                            best = at;
                        }
                    }
                }
                out.push(x.data()[best]);
                argmax.push(best);
            }
        }
    }
    (Tensor::from_vec(out, &[g.n, g.c, g.oh, g.ow]), argmax)
}

/// Average pooling on tensors.
pub fn avg_pool2d_tensor(x: &Tensor, kernel: usize, stride: usize) -> Tensor {
    let g = ConvGeometry::with_kernel(x.shape(), kernel, kernel, stride, 0, "avg_pool2d");
    let scale = 1.0 / (kernel * kernel) as f32;
    let mut out = Vec::with_capacity(g.n * g.c * g.oh * g.ow);
    for plane in x.data().chunks_exact(g.h * g.w) {
        for i in 0..g.oh {
            for j in 0..g.ow {
                let mut sum = 0.0;
                for u in 0..kernel {
                    let row = &plane[(i * stride + u) * g.w + j * stride..][..kernel];
                    sum += row.iter().sum::<f32>();
                }
                out.push(sum * scale);
            }
        }
    }
    Tensor::from_vec(out, &[g.n, g.c, g.oh, g.ow])
}

impl Var {
    /// Max pooling over `kernel × kernel` windows with `stride` (see the module doc).
    pub fn max_pool2d(&self, kernel: usize, stride: usize) -> Var {
        let (out, argmax) = max_pool2d_tensor(&self.value(), kernel, stride);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |gy, _, p| {
                let mut dx = Tensor::zeros(p[0].value().shape());
                let d = dx.data_mut();
                for (&at, &g) in argmax.iter().zip(gy.data()) {
                    d[at] += g;
                }
                vec![Some(dx)]
            }),
        )
    }

    /// Average pooling over `kernel × kernel` windows with `stride` (see the module doc).
    pub fn avg_pool2d(&self, kernel: usize, stride: usize) -> Var {
        let out = avg_pool2d_tensor(&self.value(), kernel, stride);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |gy, _, p| {
                let shape = p[0].value().shape().to_vec();
                let g = ConvGeometry::with_kernel(&shape, kernel, kernel, stride, 0, "avg_pool2d");
                let scale = 1.0 / (kernel * kernel) as f32;
                let mut dx = Tensor::zeros(&shape);
                let planes = dx.data_mut().chunks_exact_mut(g.h * g.w);
                for (plane, gp) in planes.zip(gy.data().chunks_exact(g.oh * g.ow)) {
                    for i in 0..g.oh {
                        for j in 0..g.ow {
                            let share = gp[i * g.ow + j] * scale;
                            for u in 0..kernel {
                                let row =
                                    &mut plane[(i * stride + u) * g.w + j * stride..][..kernel];
                                row.iter_mut().for_each(|v| *v += share);
                            }
                        }
                    }
                }
                vec![Some(dx)]
            }),
        )
    }
}
