//! 2-D convolution against a plain float64 loop over every output element, on random shapes with
//! stride and padding; the im2col/col2im adjoint identity; finite-difference gradient checks for
//! the input, the weight and the bias.

mod common;

use common::{assert_close, assert_grads, f64s};
use tensor::ops::conv2d::{col2im, conv2d_tensor, im2col, ConvGeometry};
use tensor::{Rng, Tensor, Var};

/// Plain float64 `y[n,o,i,j] = b[o] + Σ_{c,u,v} w[o,c,u,v] · x[n,c,i·s+u−p, j·s+v−p]` (0 outside).
fn conv2d64(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    s: usize,
    p: usize,
) -> (Vec<usize>, Vec<f64>) {
    let [n, c, h, wd] = x.shape().try_into().unwrap();
    let [o, _, kh, kw] = w.shape().try_into().unwrap();
    let (xs, ws) = (f64s(x), f64s(w));
    let oh = (h + 2 * p - kh) / s + 1;
    let ow = (wd + 2 * p - kw) / s + 1;
    let mut out = Vec::new();
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.data()[oi] as f64);
                    for ci in 0..c {
                        for u in 0..kh {
                            for v in 0..kw {
                                let (y, xx) =
                                    ((i * s + u) as i64 - p as i64, (j * s + v) as i64 - p as i64);
                                if y < 0 || xx < 0 || y >= h as i64 || xx >= wd as i64 {
                                    continue;
                                }
                                acc += ws[((oi * c + ci) * kh + u) * kw + v]
                                    * xs[((ni * c + ci) * h + y as usize) * wd + xx as usize];
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    (vec![n, o, oh, ow], out)
}

#[test]
fn forward_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(31);
    for _ in 0..40 {
        let (n, c, o) = (1 + rng.below(3), 1 + rng.below(4), 1 + rng.below(5));
        let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
        let (s, p) = (1 + rng.below(3), rng.below(3));
        let h = (kh.max(1) + rng.below(8)).saturating_sub(2 * p).max(1);
        let w = (kw + rng.below(9)).saturating_sub(2 * p).max(1);
        if h + 2 * p < kh || w + 2 * p < kw {
            continue;
        }
        let x = Tensor::randn(&[n, c, h, w], 0.0, 1.0, &mut rng);
        let wt = Tensor::randn(&[o, c, kh, kw], 0.0, 0.5, &mut rng);
        let b = Tensor::randn(&[o], 0.0, 0.5, &mut rng);
        let bias = (rng.below(2) == 0).then_some(&b);
        let (shape, want) = conv2d64(&x, &wt, bias, s, p);
        let what = format!("conv2d x {:?} w {:?} s {s} p {p}", x.shape(), wt.shape());
        assert_close(
            &what,
            &conv2d_tensor(&x, &wt, bias, s, p),
            &shape,
            &want,
            1e-5,
        );
        let bv = bias.map(|b| Var::constant(b.clone()));
        let y = Var::constant(x).conv2d(&Var::constant(wt), bv.as_ref(), s, p);
        assert_close(&what, &y.value(), &shape, &want, 1e-5);
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    // ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for every x, c: the backward of the unrolling is exact.
    let mut rng = Rng::new(32);
    let g = ConvGeometry::new(&[2, 3, 7, 6], &[4, 3, 3, 2], 2, 1, "test");
    let x = Tensor::randn(&[2, 3, 7, 6], 0.0, 1.0, &mut rng);
    let c = Tensor::randn(&[g.patch() * g.columns()], 0.0, 1.0, &mut rng);
    let lhs: f64 = im2col(x.data(), &g)
        .iter()
        .zip(c.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    let rhs: f64 = col2im(c.data(), &g)
        .iter()
        .zip(x.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    assert!(
        (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
        "{lhs} vs {rhs}"
    );
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(33);
    for (xs, ws, s, p) in [
        ([2, 2, 5, 6], [3, 2, 3, 3], 1, 1),
        ([1, 3, 6, 7], [2, 3, 2, 3], 2, 0),
        ([2, 1, 4, 4], [2, 1, 1, 1], 1, 0),
        ([1, 2, 7, 5], [2, 2, 3, 2], 3, 2),
    ] {
        let x = Tensor::randn(&xs, 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 0.0, 0.5, &mut rng);
        let b = Tensor::randn(&[ws[0]], 0.0, 0.5, &mut rng);
        assert_grads(
            &format!("conv2d {xs:?} {ws:?} s {s} p {p}"),
            |v| v[0].conv2d(&v[1], Some(&v[2]), s, p),
            &[x.clone(), w.clone(), b],
            1e-2,
            5e-3,
        );
        assert_grads(
            &format!("conv2d without bias {xs:?}"),
            |v| v[0].conv2d(&v[1], None, s, p),
            &[x, w],
            1e-2,
            5e-3,
        );
    }
}

#[test]
fn a_constant_input_needs_no_input_gradient() {
    let mut rng = Rng::new(34);
    let x = Var::constant(Tensor::randn(&[1, 2, 4, 4], 0.0, 1.0, &mut rng));
    let w = Var::parameter(Tensor::randn(&[3, 2, 3, 3], 0.0, 1.0, &mut rng));
    x.conv2d(&w, None, 1, 1).sum_all().backward();
    assert_eq!(w.grad().unwrap().shape(), [3, 2, 3, 3]);
    assert!(x.grad().is_none());
}

#[test]
#[should_panic(expected = "conv2d")]
fn mismatched_channels_panic() {
    let x = Var::constant(Tensor::zeros(&[1, 2, 4, 4]));
    let w = Var::constant(Tensor::zeros(&[1, 3, 3, 3]));
    x.conv2d(&w, None, 1, 0);
}
