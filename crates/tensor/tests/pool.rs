//! Max and average pooling against plain float64 loops on random shapes (overlapping windows
//! included), and finite-difference gradient checks.

mod common;

use common::{assert_close, assert_grads, f64s};
use tensor::ops::pool::{avg_pool2d_tensor, max_pool2d_tensor};
use tensor::{Rng, Tensor, Var};

/// Plain float64 pooling: `max` or mean over each `k × k` window with stride `s`.
fn pool64(x: &Tensor, k: usize, s: usize, max: bool) -> (Vec<usize>, Vec<f64>) {
    let [n, c, h, w] = x.shape().try_into().unwrap();
    let xs = f64s(x);
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut out = Vec::new();
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let window =
                    (0..k * k).map(|t| xs[plane * h * w + (i * s + t / k) * w + j * s + t % k]);
                out.push(if max {
                    window.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    window.sum::<f64>() / (k * k) as f64
                });
            }
        }
    }
    (vec![n, c, oh, ow], out)
}

/// Values that differ by at least 0.05 from one another, so that a ±h step never changes the max.
fn distinct(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    Tensor::from_vec(
        order.iter().map(|&i| i as f32 * 0.05 - 1.0).collect(),
        shape,
    )
}

#[test]
fn forward_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(41);
    for _ in 0..40 {
        let (k, s) = (1 + rng.below(3), 1 + rng.below(3));
        let shape = [
            1 + rng.below(3),
            1 + rng.below(3),
            k + rng.below(7),
            k + rng.below(7),
        ];
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        for max in [true, false] {
            let (oshape, want) = pool64(&x, k, s, max);
            let what = format!(
                "{} pool {shape:?} k {k} s {s}",
                if max { "max" } else { "avg" }
            );
            let (got, via_var) = if max {
                (
                    max_pool2d_tensor(&x, k, s).0,
                    Var::constant(x.clone()).max_pool2d(k, s),
                )
            } else {
                (
                    avg_pool2d_tensor(&x, k, s),
                    Var::constant(x.clone()).avg_pool2d(k, s),
                )
            };
            assert_close(&what, &got, &oshape, &want, 1e-6);
            assert_close(&what, &via_var.value(), &oshape, &want, 1e-6);
        }
    }
}

#[test]
fn max_pool_gradient_goes_to_the_winner_only() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 5.0, 2.0, 3.0], &[1, 1, 2, 2]));
    x.max_pool2d(2, 2).sum_all().backward();
    assert_eq!(x.grad().unwrap().data(), [0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(42);
    for (shape, k, s) in [
        ([2, 2, 4, 6], 2, 2),
        ([1, 3, 5, 5], 3, 1),
        ([2, 1, 7, 6], 2, 3),
    ] {
        let x = distinct(&shape, &mut rng);
        assert_grads(
            &format!("max_pool2d {shape:?} k {k} s {s}"),
            |v| v[0].max_pool2d(k, s),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        assert_grads(
            &format!("avg_pool2d {shape:?} k {k} s {s}"),
            |v| v[0].avg_pool2d(k, s),
            &[x],
            1e-2,
            1e-3,
        );
    }
}

#[test]
#[should_panic(expected = "max_pool2d")]
fn a_window_larger_than_the_input_panics() {
    Var::constant(Tensor::zeros(&[1, 1, 2, 2])).max_pool2d(3, 1);
}
