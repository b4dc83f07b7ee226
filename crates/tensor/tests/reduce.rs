//! Sum and mean over one axis (every axis, negative axes too) and over everything, against float64
//! references on random shapes, with gradient checks.

mod common;

use common::{assert_close, assert_grads, f64s, random_shape, ravel, unravel};
use tensor::{Rng, Tensor, Var};

/// Plain float64 sum over `axis` (removed from the shape).
fn sum_axis64(x: &Tensor, axis: usize) -> (Vec<usize>, Vec<f64>) {
    let mut out_shape = x.shape().to_vec();
    out_shape.remove(axis);
    let mut out = vec![0.0; out_shape.iter().product()];
    for (i, v) in f64s(x).into_iter().enumerate() {
        let mut idx = unravel(i, x.shape());
        idx.remove(axis);
        out[ravel(&idx, &out_shape)] += v;
    }
    (out_shape, out)
}

#[test]
fn sum_and_mean_over_every_axis_match_f64_reference() {
    let mut rng = Rng::new(41);
    for _ in 0..25 {
        let shape = random_shape(&mut rng, 1, 4, 6);
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        let v = Var::constant(x.clone());
        for axis in 0..shape.len() {
            let (s, want) = sum_axis64(&x, axis);
            let mean: Vec<f64> = want.iter().map(|w| w / shape[axis] as f64).collect();
            let what = format!("{shape:?} axis {axis}");
            assert_close(&what, &v.sum_axis(axis as isize).value(), &s, &want, 1e-6);
            assert_close(&what, &v.mean_axis(axis as isize).value(), &s, &mean, 1e-6);
            // The same axis counted from the end.
            let neg = axis as isize - shape.len() as isize;
            assert_close(&what, &v.sum_axis(neg).value(), &s, &want, 1e-6);
        }
        let total: f64 = f64s(&x).iter().sum();
        assert_close("sum_all", &v.sum_all().value(), &[], &[total], 1e-6);
        let mean = total / x.numel() as f64;
        assert_close("mean_all", &v.mean_all().value(), &[], &[mean], 1e-6);
    }
}

#[test]
fn sum_all_accumulates_in_double_precision() {
    // 2²⁰ values of 0.1: a plain f32 running sum drifts by ~1e-2 relative; the engine should not.
    let n = 1 << 20;
    let x = Var::constant(Tensor::full(&[n], 0.1));
    let want = n as f64 * 0.1f32 as f64;
    let got = x.sum_all().item() as f64;
    assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(42);
    for _ in 0..6 {
        let shape = random_shape(&mut rng, 1, 4, 4);
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        for axis in -(shape.len() as isize)..shape.len() as isize {
            let what = format!("{shape:?} axis {axis}");
            assert_grads(
                &what,
                |v| v[0].sum_axis(axis),
                std::slice::from_ref(&x),
                1e-2,
                1e-3,
            );
            assert_grads(
                &what,
                |v| v[0].mean_axis(axis),
                std::slice::from_ref(&x),
                1e-2,
                1e-3,
            );
        }
        assert_grads(
            "sum_all",
            |v| v[0].sum_all(),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        assert_grads("mean_all", |v| v[0].mean_all(), &[x], 1e-2, 1e-3);
    }
}

#[test]
fn mean_all_gradient_is_one_over_n() {
    let x = Var::parameter(Tensor::zeros(&[3, 4]));
    x.mean_all().backward();
    let want = vec![1.0 / 12.0; 12];
    assert_close("d mean_all", &x.grad().unwrap(), &[3, 4], &want, 1e-7);
}

#[test]
#[should_panic(expected = "out of range")]
fn an_axis_beyond_the_rank_panics() {
    Var::constant(Tensor::zeros(&[2, 3])).sum_axis(2);
}
