//! Matrix product and batched matrix product, with optionally transposed operands.
//!
//! `C = op(A) · op(B)` over the last two axes. Shapes:
//! - `A [..., m, k]` (or `[..., k, m]` when `trans_a`), `B [..., k, n]` (or `[..., n, k]`) with the
//!   same leading (batch) axes: a batched product, one per batch index;
//! - `A [..., m, k]`, `B [k, n]` (2-D): `B` is shared by every row of `A` (a linear layer).
//!
//! Backward: `dA = dC · op(B)ᵀ`, `dB = op(A)ᵀ · dC` (transposed back where the operand was).

use crate::kernels::{fill, gemm};
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
        let mut out = fill::zeroed(rows * n);
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
    let mut out = fill::zeroed(batch * m * n);
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
                        let mut gb = fill::zeroed(k * n);
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
    ///
    /// With a bias this is one op (PyTorch's `addmm`): the output rows start as `b` and the product
    /// accumulates into them; backward `dx = dy · W`, `dW = dyᵀ · x`, `db = Σ_rows dy` — no separate
    /// broadcast add and no copy of `dy` for it.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Var {
        let Some(bias) = bias else {
            return self.matmul_t(weight, false, true);
        };
        let (x, w, b) = (self.value(), weight.value(), bias.value());
        let (out_dim, in_dim) = (w.dim(0), w.dim(-1));
        assert!(
            x.rank() >= 2 && w.rank() == 2 && x.dim(-1) == in_dim && b.shape() == [out_dim],
            "linear: x {:?}, weight {:?}, bias {:?}",
            x.shape(),
            w.shape(),
            b.shape()
        );
        let rows = x.numel() / in_dim.max(1);
        let y = gemm::linear(x.data(), w.data(), b.data(), rows, in_dim, out_dim);
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank ≥ 2") = out_dim;
        drop((x, w, b));
        Var::from_op(
            Tensor::from_vec(y, &shape),
            vec![self.clone(), weight.clone(), bias.clone()],
            Box::new(move |g, _, p| {
                let (x, w) = (p[0].value(), p[1].value());
                let gx = p[0].requires_grad().then(|| {
                    let mut gx = fill::zeroed(rows * in_dim);
                    gemm::matmul(
                        &mut gx,
                        g.data(),
                        w.data(),
                        rows,
                        out_dim,
                        in_dim,
                        false,
                        false,
                        false,
                    );
                    Tensor::from_vec(gx, x.shape())
                });
                let gw = p[1].requires_grad().then(|| {
                    let mut gw = fill::zeroed(out_dim * in_dim);
                    gemm::matmul(
                        &mut gw,
                        g.data(),
                        x.data(),
                        out_dim,
                        rows,
                        in_dim,
                        true,
                        false,
                        false,
                    );
                    Tensor::from_vec(gw, w.shape())
                });
                let gb = p[2].requires_grad().then(|| {
                    // Column blocks over the threads, each summing its columns down all rows.
                    const COLUMNS: usize = 512;
                    let mut gb = vec![0.0; out_dim];
                    gb.par_chunks_mut(COLUMNS).enumerate().for_each(|(j, acc)| {
                        let start = j * COLUMNS;
                        for row in g.data().chunks_exact(out_dim) {
                            for (a, &v) in acc.iter_mut().zip(&row[start..]) {
                                *a += v;
                            }
                        }
                    });
                    Tensor::from_vec(gb, &[out_dim])
                });
                vec![gx, gw, gb]
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::check_gradients;
    use crate::{Rng, Tensor, Var};

    /// The one-op linear with bias equals the product plus a broadcast add, values and gradients.
    #[test]
    fn linear_with_bias_equals_product_plus_add() {
        let mut rng = Rng::new(1);
        let x = Tensor::randn(&[2, 3, 5], 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&[4], 0.0, 1.0, &mut rng);
        let g = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
        let run = |fused: bool| {
            let (xv, wv, bv) = (
                Var::parameter(x.clone()),
                Var::parameter(w.clone()),
                Var::parameter(b.clone()),
            );
            let y = if fused {
                xv.linear(&wv, Some(&bv))
            } else {
                xv.matmul_t(&wv, false, true).add(&bv)
            };
            y.backward_with(g.clone());
            let grads = [&xv, &wv, &bv].map(|v| v.grad().expect("grad"));
            (y.to_tensor(), grads)
        };
        let ((yf, gf), (yp, gp)) = (run(true), run(false));
        assert!(yf.max_abs_diff(&yp) < 1e-5);
        for (a, c) in gf.iter().zip(&gp) {
            assert!(a.max_abs_diff(c) < 1e-5);
        }
        let check = check_gradients(
            |v: &[Var]| v[0].linear(&v[1], Some(&v[2])),
            &[x, w, b],
            1e-2,
            2,
        );
        assert!(check.max_rel_error < 1e-2, "{}", check.max_rel_error);
    }
}
