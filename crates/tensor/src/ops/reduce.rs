//! Sum and mean over one axis or over everything.
//!
//! `sum(x, axis)` removes `axis` (`[A, B, C]` summed over 1 → `[A, C]`); backward broadcasts the
//! gradient back along it.

use crate::shape::axis_index;
use crate::tensor::Tensor;
use crate::var::Var;

/// Sum over `axis` (tensor-level); the axis is removed.
pub fn sum_axis(x: &Tensor, axis: usize) -> Tensor {
    let shape = x.shape();
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; outer * inner];
    let data = x.data();
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        for j in 0..n {
            let src = &data[(o * n + j) * inner..(o * n + j + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    let mut out_shape = shape.to_vec();
    out_shape.remove(axis);
    Tensor::from_vec(out, &out_shape)
}

/// Repeats `g` (shape without `axis`) `n` times along `axis` of `shape`.
fn expand_axis(g: &Tensor, shape: &[usize], axis: usize, scale: f32) -> Tensor {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; outer * n * inner];
    let gd = g.data();
    for o in 0..outer {
        for j in 0..n {
            let dst = &mut out[(o * n + j) * inner..(o * n + j + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(&gd[o * inner..(o + 1) * inner]) {
                *d = s * scale;
            }
        }
    }
    Tensor::from_vec(out, shape)
}

impl Var {
    /// Sum over `axis` (negative counts from the end); the axis is removed.
    pub fn sum_axis(&self, axis: isize) -> Var {
        let ax = axis_index(axis, self.value().rank());
        let out = sum_axis(&self.value(), ax);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, p| vec![Some(expand_axis(g, p[0].value().shape(), ax, 1.0))]),
        )
    }

    /// Mean over `axis`; the axis is removed.
    pub fn mean_axis(&self, axis: isize) -> Var {
        let ax = axis_index(axis, self.value().rank());
        let n = self.value().shape()[ax] as f32;
        self.sum_axis(axis).scale(1.0 / n)
    }

    /// Sum of every element, as a scalar (shape `[]`).
    pub fn sum_all(&self) -> Var {
        let s: f64 = self.value().data().iter().map(|&x| x as f64).sum();
        Var::from_op(
            Tensor::scalar(s as f32),
            vec![self.clone()],
            Box::new(|g, _, p| vec![Some(Tensor::full(p[0].value().shape(), g.item()))]),
        )
    }

    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Var {
        let n = self.value().numel().max(1) as f32;
        self.sum_all().scale(1.0 / n)
    }
}
