//! Matrix product and batched matrix product, with optionally transposed operands.
//!
//! `C = op(A) · op(B)` over the last two axes. Shapes:
//! - `A [..., m, k]` (or `[..., k, m]` when `trans_a`), `B [..., k, n]` (or `[..., n, k]`) with the
//!   same leading (batch) axes: a batched product, one per batch index;
//! - `A [..., m, k]`, `B [k, n]` (2-D): `B` is shared by every row of `A` (a linear layer).
//!
//! Backward: `dA = dC · op(B)ᵀ`, `dB = op(A)ᵀ · dC` (transposed back where the operand was).

use crate::kernels::gemm;
use crate::tensor::Tensor;
use crate::var::Var;
use rayon::prelude::*;

/// Forward kernel on tensors.
pub fn matmul_tensors(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Tensor {
    let (ar, br) = (a.rank(), b.rank());
    assert!(ar >= 2 && br >= 2, "matmul: ranks {ar} and {br}, need ≥ 2");
    let (am, ak) = (a.shape()[ar - 2], a.shape()[ar - 1]);
    let (m, k) = if trans_a { (ak, am) } else { (am, ak) };
    let (bk, bn) = (b.shape()[br - 2], b.shape()[br - 1]);
    let (k2, n) = if trans_b { (bn, bk) } else { (bk, bn) };
    assert_eq!(
        k,
        k2,
        "matmul: inner sizes differ: {:?} · {:?}",
        a.shape(),
        b.shape()
    );
    if br == 2 && ar > 2 {
        assert!(
            !trans_a,
            "matmul: a batched, transposed lhs needs a batched rhs"
        );
        let rows = a.numel() / k;
        let mut out = vec![0.0; rows * n];
        gemm::matmul(
            &mut out,
            a.data(),
            b.data(),
            rows,
            k,
            n,
            false,
            trans_b,
            false,
        );
        let mut shape = a.shape()[..ar - 1].to_vec();
        shape.push(n);
        return Tensor::from_vec(out, &shape);
    }
    assert_eq!(
        &a.shape()[..ar - 2],
        &b.shape()[..br - 2],
        "matmul: batch axes differ: {:?} · {:?}",
        a.shape(),
        b.shape()
    );
    let batch: usize = a.shape()[..ar - 2].iter().product();
    let mut out = vec![0.0; batch * m * n];
    batched(
        &mut out,
        a.data(),
        b.data(),
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        false,
    );
    let mut shape = a.shape()[..ar - 2].to_vec();
    shape.extend([m, n]);
    Tensor::from_vec(out, &shape)
}

/// `batch` independent products; parallel over the batch when each product is small.
#[allow(clippy::too_many_arguments)]
pub fn batched(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    if batch == 0 || m * n == 0 {
        return;
    }
    let (sa, sb, sc) = (m * k, k * n, m * n);
    if batch > 1 && m * n * k < (1 << 18) {
        out.par_chunks_mut(sc).enumerate().for_each(|(i, c)| {
            gemm::matmul_serial(
                c,
                &a[i * sa..(i + 1) * sa],
                &b[i * sb..(i + 1) * sb],
                m,
                k,
                n,
                trans_a,
                trans_b,
                accumulate,
            )
        });
    } else {
        for i in 0..batch {
            gemm::matmul(
                &mut out[i * sc..(i + 1) * sc],
                &a[i * sa..(i + 1) * sa],
                &b[i * sb..(i + 1) * sb],
                m,
                k,
                n,
                trans_a,
                trans_b,
                accumulate,
            );
        }
    }
}

impl Var {
    /// `self · other` over the last two axes (see the module doc for the accepted shapes).
    pub fn matmul(&self, other: &Var) -> Var {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)` with optional transposes of the last two axes.
    pub fn matmul_t(&self, other: &Var, trans_a: bool, trans_b: bool) -> Var {
        let out = matmul_tensors(&self.value(), &other.value(), trans_a, trans_b);
        Var::from_op(
            out,
            vec![self.clone(), other.clone()],
            Box::new(move |g, _, p| {
                let (a, b) = (p[0].value(), p[1].value());
                let shared_b = b.rank() == 2 && a.rank() > 2;
                let ga = p[0].requires_grad().then(|| {
                    if trans_a {
                        matmul_tensors(&b, g, trans_b, true)
                    } else {
                        matmul_tensors(g, &b, false, !trans_b)
                    }
                });
                let gb = p[1].requires_grad().then(|| {
                    if shared_b {
                        // Flatten the batch of A and dC into rows: dB sums over all of them.
                        let (k, n) = (a.dim(-1), g.dim(-1));
                        let rows = a.numel() / k;
                        let mut gb = vec![0.0; k * n];
                        if trans_b {
                            // B [n, k]: dB = dCᵀ · A
                            gemm::matmul(
                                &mut gb,
                                g.data(),
                                a.data(),
                                n,
                                rows,
                                k,
                                true,
                                false,
                                false,
                            );
                        } else {
                            // B [k, n]: dB = Aᵀ · dC
                            gemm::matmul(
                                &mut gb,
                                a.data(),
                                g.data(),
                                k,
                                rows,
                                n,
                                true,
                                false,
                                false,
                            );
                        }
                        Tensor::from_vec(gb, b.shape())
                    } else if trans_b {
                        matmul_tensors(g, &a, true, trans_a)
                    } else {
                        matmul_tensors(&a, g, !trans_a, false)
                    }
                });
                vec![ga, gb]
            }),
        )
    }

    /// A linear layer's product: `x · Wᵀ + b` with PyTorch's layout `W [out, in]`, `b [out]`.
    /// `x [..., in] → [..., out]`.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Var {
        let y = self.matmul_t(weight, false, true);
        match bias {
            Some(b) => y.add(b),
            None => y,
        }
    }
}
