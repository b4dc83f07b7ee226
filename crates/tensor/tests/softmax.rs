//! Softmax and log-softmax over the last axis: float64 reference on random shapes (serial and
//! parallel paths), invariants (rows ≥ 0 summing to 1, all-masked rows give zeros, log_softmax =
//! log(softmax), shift invariance) and gradient checks.

mod common;

use common::{assert_close, assert_grads, f64s, random_shape};
use tensor::ops::softmax::{log_softmax_tensor, softmax_row, softmax_tensor};
use tensor::{Rng, Tensor, Var};

/// Plain float64 softmax of every last-axis row (max-shifted; an all −∞ row gives zeros).
fn softmax64(x: &Tensor) -> Vec<f64> {
    let d = x.dim(-1);
    let mut out = Vec::with_capacity(x.numel());
    for row in f64s(x).chunks(d) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            out.extend(std::iter::repeat_n(0.0, d));
            continue;
        }
        let s: f64 = row.iter().map(|&v| (v - m).exp()).sum();
        out.extend(row.iter().map(|&v| (v - m).exp() / s));
    }
    out
}

/// Plain float64 log-softmax: `x − m − ln Σ e^{x−m}`. (In f32, `x − lse` carries an absolute error
/// of about ulp(|lse|), hence the looser tolerance for log-softmax below.)
fn log_softmax64(x: &Tensor) -> Vec<f64> {
    let d = x.dim(-1);
    let mut out = Vec::with_capacity(x.numel());
    for row in f64s(x).chunks(d) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
        out.extend(row.iter().map(|&v| v - lse));
    }
    out
}

#[test]
fn forward_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(31);
    for _ in 0..30 {
        let shape = random_shape(&mut rng, 1, 4, 7);
        let x = Tensor::randn(&shape, 0.0, 3.0, &mut rng);
        let v = Var::constant(x.clone());
        assert_close(
            "softmax",
            &v.softmax().value(),
            &shape,
            &softmax64(&x),
            1e-6,
        );
        assert_close(
            "log_softmax",
            &v.log_softmax().value(),
            &shape,
            &log_softmax64(&x),
            1e-5,
        );
    }
}

#[test]
fn parallel_path_matches_f64_reference_on_large_tensors() {
    // 96 × 512 = 49 152 elements: above the engine's threshold for processing rows in parallel.
    let mut rng = Rng::new(32);
    let x = Tensor::randn(&[96, 512], 0.0, 4.0, &mut rng);
    assert_close(
        "softmax large",
        &softmax_tensor(&x),
        &[96, 512],
        &softmax64(&x),
        1e-6,
    );
    assert_close(
        "log_softmax large",
        &log_softmax_tensor(&x),
        &[96, 512],
        &log_softmax64(&x),
        1e-5,
    );
}

#[test]
fn rows_are_nonnegative_and_sum_to_one_even_for_huge_logits() {
    let mut rng = Rng::new(33);
    for scale in [1.0, 30.0, 1e4] {
        let x = Tensor::randn(&[7, 13], 500.0, scale, &mut rng);
        let y = Var::constant(x).softmax().to_tensor();
        for row in y.rows() {
            assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)), "{row:?}");
            let s: f64 = row.iter().map(|&p| p as f64).sum();
            assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
        }
    }
}

#[test]
fn softmax_is_invariant_to_adding_a_constant_to_a_row() {
    let mut rng = Rng::new(34);
    let x = Tensor::randn(&[4, 9], 0.0, 2.0, &mut rng);
    let shifted = x.map(|v| v + 1000.0);
    let a = softmax_tensor(&x);
    let b = softmax_tensor(&shifted);
    assert!(a.max_abs_diff(&b) < 1e-4, "{}", a.max_abs_diff(&b));
}

#[test]
fn fully_masked_rows_give_zeros_and_zero_gradient_not_nan() {
    let inf = f32::NEG_INFINITY;
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, inf, inf, inf, 0.5, inf, -0.5], &[3, 3]);
    let v = Var::parameter(x.clone());
    let y = v.softmax();
    let yt = y.to_tensor();
    assert_close("masked softmax", &yt, &[3, 3], &softmax64(&x), 1e-6);
    assert_eq!(&yt.data()[3..6], &[0.0, 0.0, 0.0]);
    assert_eq!(yt.data()[7], 0.0, "a masked position got probability");
    // Any upstream gradient: nothing flows into the masked row, nothing is NaN.
    let mut rng = Rng::new(35);
    y.backward_with(Tensor::randn(&[3, 3], 0.0, 1.0, &mut rng));
    let g = v.grad().unwrap();
    assert!(g.data().iter().all(|d| d.is_finite()), "{g:?}");
    assert_eq!(&g.data()[3..6], &[0.0, 0.0, 0.0]);
    assert_eq!(g.data()[7], 0.0);
    // The row kernel itself.
    let mut row = [inf, inf];
    softmax_row(&mut row);
    assert_eq!(row, [0.0, 0.0]);
}

#[test]
fn log_softmax_equals_log_of_softmax() {
    let mut rng = Rng::new(36);
    for _ in 0..10 {
        let shape = random_shape(&mut rng, 1, 3, 8);
        let x = Tensor::randn(&shape, 0.0, 2.0, &mut rng);
        let v = Var::constant(x);
        let log_of_softmax: Vec<f64> = f64s(&v.softmax().to_tensor())
            .into_iter()
            .map(f64::ln)
            .collect();
        assert_close(
            "log_softmax vs ln softmax",
            &v.log_softmax().value(),
            &shape,
            &log_of_softmax,
            1e-5,
        );
    }
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(37);
    for _ in 0..6 {
        let shape = random_shape(&mut rng, 1, 3, 5);
        let x = Tensor::randn(&shape, 0.0, 1.5, &mut rng);
        assert_grads(
            &format!("softmax {shape:?}"),
            |v| v[0].softmax(),
            std::slice::from_ref(&x),
            1e-2,
            2e-3,
        );
        assert_grads(
            &format!("log_softmax {shape:?}"),
            |v| v[0].log_softmax(),
            &[x],
            1e-2,
            2e-3,
        );
    }
}

#[test]
fn gradients_pass_finite_differences_with_partially_masked_rows() {
    // Masked positions (−1e9 here, so that finite differences stay finite) get zero gradient.
    let mut rng = Rng::new(38);
    let mut x = Tensor::randn(&[3, 5], 0.0, 1.0, &mut rng);
    for i in [1, 4, 7, 13] {
        x.data_mut()[i] = -1e9;
    }
    assert_grads("masked softmax", |v| v[0].softmax(), &[x], 1e-2, 2e-3);
}
