//! Element-wise add, sub, mul, div with NumPy broadcasting, and scalar variants.
//!
//! Shapes broadcast from the last axis (`[B, T, D] + [D]`, `[B, 1, S] * [B, T, S]`). Backward sums the
//! output gradient over the axes an operand was broadcast along ([`sum_to_shape`]).

use crate::shape::{broadcast_shape, broadcast_strides, numel};
use crate::tensor::Tensor;
use crate::var::Var;

/// Applies `f` element-wise over the broadcast of `a` and `b`.
pub fn broadcast_zip(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Tensor {
    if a.shape() == b.shape() {
        return a.zip(b, f);
    }
    let shape = broadcast_shape(a.shape(), b.shape()).unwrap_or_else(|| {
        panic!(
            "broadcast: shapes {:?} and {:?} are incompatible",
            a.shape(),
            b.shape()
        )
    });
    let n = numel(&shape);
    let mut out = vec![0.0; n];
    // Fast path: b repeats along the leading axes of a (a bias, a row vector).
    if shape == a.shape() && is_suffix(b.shape(), a.shape()) && b.numel() > 0 {
        let bd = b.data();
        for (o, ra) in out
            .chunks_exact_mut(bd.len())
            .zip(a.data().chunks_exact(bd.len()))
        {
            for ((o, &x), &y) in o.iter_mut().zip(ra).zip(bd) {
                *o = f(x, y);
            }
        }
        return Tensor::from_vec(out, &shape);
    }
    let (sa, sb) = (
        broadcast_strides(a.shape(), &shape),
        broadcast_strides(b.shape(), &shape),
    );
    let (ad, bd) = (a.data(), b.data());
    let last = shape.last().copied().unwrap_or(1);
    let (la, lb) = (
        sa.last().copied().unwrap_or(0),
        sb.last().copied().unwrap_or(0),
    );
    for_each_row(&shape, &sa, &sb, |o, ia, ib| {
        for (j, out) in out[o..o + last].iter_mut().enumerate() {
            *out = f(ad[ia + j * la], bd[ib + j * lb]);
        }
    });
    Tensor::from_vec(out, &shape)
}

/// Whether `small` equals the trailing axes of `big` (ignoring leading ones of `small`).
fn is_suffix(small: &[usize], big: &[usize]) -> bool {
    let s: Vec<usize> = small.iter().copied().skip_while(|&d| d == 1).collect();
    s.len() <= big.len() && big[big.len() - s.len()..] == s[..]
}

/// Walks the rows (last axis) of `shape` in row-major order, calling `f(out_offset, a_offset,
/// b_offset)` with the offsets of each row's first element in the output and in two operands read
/// with strides `sa`, `sb` (0 along broadcast axes).
fn for_each_row(
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = shape.len();
    if rank == 0 {
        f(0, 0, 0);
        return;
    }
    let last = shape[rank - 1];
    let rows = numel(shape).checked_div(last).unwrap_or(0);
    let mut idx = vec![0; rank - 1];
    let (mut ia, mut ib) = (0, 0);
    for r in 0..rows {
        f(r * last, ia, ib);
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            ia -= sa[d] * shape[d];
            ib -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// Sums `t` down to `shape` (the inverse of broadcasting `shape` up to `t.shape()`).
pub fn sum_to_shape(t: &Tensor, shape: &[usize]) -> Tensor {
    if t.shape() == shape {
        return t.clone();
    }
    let mut out = vec![0.0; numel(shape)];
    if is_suffix(shape, t.shape()) && !out.is_empty() {
        let len = out.len();
        for row in t.data().chunks_exact(len) {
            for (o, &x) in out.iter_mut().zip(row) {
                *o += x;
            }
        }
        return Tensor::from_vec(out, shape);
    }
    let st = broadcast_strides(shape, t.shape());
    let data = t.data();
    let last = t.shape().last().copied().unwrap_or(1);
    let ls = st.last().copied().unwrap_or(0);
    for_each_row(t.shape(), &st, &st, |i, j, _| {
        for (k, &x) in data[i..i + last].iter().enumerate() {
            out[j + k * ls] += x;
        }
    });
    Tensor::from_vec(out, shape)
}

impl Var {
    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Var) -> Var {
        let out = broadcast_zip(&self.value(), &other.value(), |a, b| a + b);
        Var::from_op(
            out,
            vec![self.clone(), other.clone()],
            Box::new(|g, _, p| {
                vec![
                    p[0].requires_grad()
                        .then(|| sum_to_shape(g, p[0].value().shape())),
                    p[1].requires_grad()
                        .then(|| sum_to_shape(g, p[1].value().shape())),
                ]
            }),
        )
    }

    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &Var) -> Var {
        let out = broadcast_zip(&self.value(), &other.value(), |a, b| a - b);
        Var::from_op(
            out,
            vec![self.clone(), other.clone()],
            Box::new(|g, _, p| {
                vec![
                    p[0].requires_grad()
                        .then(|| sum_to_shape(g, p[0].value().shape())),
                    p[1].requires_grad()
                        .then(|| sum_to_shape(&g.map(|x| -x), p[1].value().shape())),
                ]
            }),
        )
    }

    /// `self * other` element-wise (broadcasting).
    pub fn mul(&self, other: &Var) -> Var {
        let out = broadcast_zip(&self.value(), &other.value(), |a, b| a * b);
        Var::from_op(
            out,
            vec![self.clone(), other.clone()],
            Box::new(|g, _, p| {
                let (a, b) = (p[0].value(), p[1].value());
                vec![
                    p[0].requires_grad()
                        .then(|| sum_to_shape(&broadcast_zip(g, &b, |g, b| g * b), a.shape())),
                    p[1].requires_grad()
                        .then(|| sum_to_shape(&broadcast_zip(g, &a, |g, a| g * a), b.shape())),
                ]
            }),
        )
    }

    /// `self / other` element-wise (broadcasting).
    pub fn div(&self, other: &Var) -> Var {
        let out = broadcast_zip(&self.value(), &other.value(), |a, b| a / b);
        Var::from_op(
            out,
            vec![self.clone(), other.clone()],
            Box::new(|g, y, p| {
                let (a, b) = (p[0].value(), p[1].value());
                vec![
                    p[0].requires_grad()
                        .then(|| sum_to_shape(&broadcast_zip(g, &b, |g, b| g / b), a.shape())),
                    p[1].requires_grad().then(|| {
                        // d(a/b)/db = -(a/b)/b = -y/b
                        let gy = g.zip(y, |g, y| -g * y);
                        sum_to_shape(&broadcast_zip(&gy, &b, |t, b| t / b), b.shape())
                    }),
                ]
            }),
        )
    }

    /// `self * s` for a constant scalar.
    pub fn scale(&self, s: f32) -> Var {
        let out = self.value().map(|x| x * s);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, _| vec![Some(g.map(|x| x * s))]),
        )
    }

    /// `self + s` for a constant scalar.
    pub fn add_scalar(&self, s: f32) -> Var {
        let out = self.value().map(|x| x + s);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(|g, _, _| vec![Some(g.clone())]),
        )
    }

    /// `-self`.
    pub fn neg(&self) -> Var {
        self.scale(-1.0)
    }
}
