//! Shape and layout ops: reshape, permute/transpose, concat, narrow (slice), split.
//!
//! All produce contiguous tensors. Backward: reshape back; permute by the inverse permutation;
//! concat → narrow the gradient into pieces; narrow → add the gradient into its slice of the parent's
//! accumulated gradient (no zero-padded copy per slice).

use crate::shape::{axis_index, numel, strides};
use crate::tensor::Tensor;
use crate::var::Var;

/// Permutes axes (tensor-level): `out.shape[i] = x.shape[perm[i]]`.
pub fn permute_tensor(x: &Tensor, perm: &[usize]) -> Tensor {
    let rank = x.rank();
    assert_eq!(perm.len(), rank, "permute: {perm:?} for rank {rank}");
    let mut seen = vec![false; rank];
    for &p in perm {
        assert!(
            p < rank && !seen[p],
            "permute: {perm:?} is not a permutation"
        );
        seen[p] = true;
    }
    let in_strides = strides(x.shape());
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let n = numel(&out_shape);
    let mut out = Vec::with_capacity(n);
    let data = x.data();
    if n == 0 || rank == 0 {
        // Empty, or a scalar (the empty permutation): nothing to reorder.
        out.extend_from_slice(data);
        return Tensor::from_vec(out, &out_shape);
    }
    // Copy whole rows when the last axis stays last.
    let block = if perm[rank - 1] == rank - 1 {
        out_shape[rank - 1]
    } else {
        1
    };
    let outer_rank = if block > 1 { rank - 1 } else { rank };
    let mut idx = vec![0usize; outer_rank];
    for _ in 0..n / block {
        let off: usize = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[off..off + block]);
        for d in (0..outer_rank).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Tensor::from_vec(out, &out_shape)
}

/// Concatenates tensors along `axis` (tensor-level); all other axes must agree.
pub fn concat_tensors(xs: &[&Tensor], axis: usize) -> Tensor {
    assert!(!xs.is_empty(), "concat: nothing to concatenate");
    let first = xs[0].shape();
    for x in xs {
        assert!(
            x.rank() == first.len()
                && x.shape()
                    .iter()
                    .enumerate()
                    .all(|(i, &d)| i == axis || d == first[i]),
            "concat along {axis}: {:?} vs {:?}",
            x.shape(),
            first
        );
    }
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let total: usize = xs.iter().map(|x| x.shape()[axis]).sum();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for x in xs {
            let len = x.shape()[axis] * inner;
            out.extend_from_slice(&x.data()[o * len..(o + 1) * len]);
        }
    }
    let mut shape = first.to_vec();
    shape[axis] = total;
    Tensor::from_vec(out, &shape)
}

/// `x[.., start..start+len, ..]` along `axis` (tensor-level).
pub fn narrow_tensor(x: &Tensor, axis: usize, start: usize, len: usize) -> Tensor {
    let shape = x.shape();
    assert!(
        start + len <= shape[axis],
        "narrow: {start}+{len} beyond {:?} axis {axis}",
        shape
    );
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        out.extend_from_slice(&x.data()[(o * n + start) * inner..(o * n + start + len) * inner]);
    }
    let mut s = shape.to_vec();
    s[axis] = len;
    Tensor::from_vec(out, &s)
}

/// Adds `g` (the narrowed shape) into `dst` at `start` along `axis`.
fn scatter_narrow(dst: &mut Tensor, g: &Tensor, axis: usize, start: usize) {
    let shape = dst.shape().to_vec();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let (n, len) = (shape[axis], g.shape()[axis]);
    let d = dst.data_mut();
    for o in 0..outer {
        let src = &g.data()[o * len * inner..(o + 1) * len * inner];
        for (a, &b) in d[(o * n + start) * inner..(o * n + start + len) * inner]
            .iter_mut()
            .zip(src)
        {
            *a += b;
        }
    }
}

impl Var {
    /// The same values under a new shape (same element count).
    pub fn reshape(&self, shape: &[usize]) -> Var {
        let out = self.to_tensor().reshape(shape);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(|g, _, p| vec![Some(g.clone().reshape(p[0].value().shape()))]),
        )
    }

    /// Reorders axes: `out.shape[i] = self.shape[perm[i]]`.
    pub fn permute(&self, perm: &[usize]) -> Var {
        let out = permute_tensor(&self.value(), perm);
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, _| vec![Some(permute_tensor(g, &inverse))]),
        )
    }

    /// Swaps two axes (negative counts from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Var {
        let rank = self.value().rank();
        let (a, b) = (axis_index(a, rank), axis_index(b, rank));
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Concatenates along `axis`.
    pub fn concat(xs: &[Var], axis: isize) -> Var {
        assert!(!xs.is_empty(), "concat: nothing to concatenate");
        let ax = axis_index(axis, xs[0].value().rank());
        let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
        let refs: Vec<&Tensor> = values.iter().map(|v| &**v).collect();
        let out = concat_tensors(&refs, ax);
        let sizes: Vec<usize> = refs.iter().map(|t| t.shape()[ax]).collect();
        drop(values);
        Var::from_op(
            out,
            xs.to_vec(),
            Box::new(move |g, _, p| {
                let mut start = 0;
                sizes
                    .iter()
                    .zip(p)
                    .map(|(&len, pv)| {
                        let piece = pv.requires_grad().then(|| narrow_tensor(g, ax, start, len));
                        start += len;
                        piece
                    })
                    .collect()
            }),
        )
    }

    /// `self[.., start..start+len, ..]` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Var {
        let ax = axis_index(axis, self.value().rank());
        let out = narrow_tensor(&self.value(), ax, start, len);
        Var::from_op_into(
            out,
            self,
            Box::new(move |g, acc| scatter_narrow(acc, g, ax, start)),
        )
    }

    /// Splits along `axis` into pieces of the given sizes.
    pub fn split(&self, axis: isize, sizes: &[usize]) -> Vec<Var> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let v = self.narrow(axis, start, len);
                start += len;
                v
            })
            .collect()
    }

    /// Index `i` along `axis`, removing the axis (`[B, T, D]`, axis 1 → `[B, D]`).
    pub fn select(&self, axis: isize, i: usize) -> Var {
        let ax = axis_index(axis, self.value().rank());
        let mut shape = self.shape();
        shape.remove(ax);
        self.narrow(axis, i, 1).reshape(&shape)
    }
}
