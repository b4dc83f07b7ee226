//! Layer norm over the last axis against a float64 reference on random shapes, its invariants
//! (normalised rows have mean 0 and variance 1 before γ, β), stability under a large offset, and
//! gradient checks for x, γ and β.

mod common;

use common::{assert_close, assert_grads, f64s, random_shape};
use tensor::ops::layer_norm::layer_norm_tensor;
use tensor::{Rng, Tensor, Var};

/// Plain float64 `(x − μ)/√(σ² + ε)·γ + β` per last-axis row, σ² biased (divided by D).
fn layer_norm64(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Vec<f64> {
    let d = x.dim(-1);
    let (g, b) = (f64s(gamma), f64s(beta));
    let mut out = Vec::with_capacity(x.numel());
    for row in f64s(x).chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let r = 1.0 / (var + eps).sqrt();
        out.extend((0..d).map(|i| (row[i] - mean) * r * g[i] + b[i]));
    }
    out
}

#[test]
fn forward_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(91);
    for _ in 0..30 {
        let shape = random_shape(&mut rng, 1, 4, 9);
        let d = *shape.last().unwrap();
        let x = Tensor::randn(&shape, 0.5, 2.0, &mut rng);
        let gamma = Tensor::randn(&[d], 1.0, 0.5, &mut rng);
        let beta = Tensor::randn(&[d], 0.0, 0.5, &mut rng);
        let want = layer_norm64(&x, &gamma, &beta, 1e-5);
        let what = format!("layer_norm {shape:?}");
        assert_close(
            &what,
            &layer_norm_tensor(&x, &gamma, &beta, 1e-5),
            &shape,
            &want,
            1e-5,
        );
        let (xv, gv, bv) = (Var::constant(x), Var::constant(gamma), Var::constant(beta));
        assert_close(
            &what,
            &xv.layer_norm(&gv, &bv, 1e-5).value(),
            &shape,
            &want,
            1e-5,
        );
    }
}

#[test]
fn normalised_rows_have_zero_mean_and_unit_variance() {
    let mut rng = Rng::new(92);
    let x = Tensor::randn(&[8, 64], 3.0, 5.0, &mut rng);
    let y = layer_norm_tensor(&x, &Tensor::ones(&[64]), &Tensor::zeros(&[64]), 1e-6);
    for row in y.rows() {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 64.0;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 64.0;
        assert!(mean.abs() < 1e-6, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-5, "variance {var}");
    }
}

#[test]
fn a_large_common_offset_does_not_destroy_precision() {
    // Rows around 1000 with unit spread: a one-pass E[x²] − E[x]² in f32 would lose every digit.
    let mut rng = Rng::new(93);
    let x = Tensor::randn(&[4, 32], 1000.0, 1.0, &mut rng);
    let (g, b) = (Tensor::ones(&[32]), Tensor::zeros(&[32]));
    let want = layer_norm64(&x, &g, &b, 1e-5);
    assert_close(
        "offset rows",
        &layer_norm_tensor(&x, &g, &b, 1e-5),
        &[4, 32],
        &want,
        2e-4,
    );
}

#[test]
fn a_constant_row_gives_beta() {
    // σ² = 0: the output is β exactly (no NaN; ε keeps the reciprocal finite).
    let x = Var::parameter(Tensor::full(&[2, 5], 4.0));
    let gamma = Var::parameter(Tensor::full(&[5], 2.0));
    let beta_t = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4, 0.5], &[5]);
    let beta = Var::parameter(beta_t.clone());
    let y = x.layer_norm(&gamma, &beta, 1e-5);
    for row in y.value().rows() {
        assert_eq!(row, beta_t.data());
    }
    y.sum_all().backward();
    assert!(x.grad().unwrap().data().iter().all(|g| g.is_finite()));
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(94);
    for shape in [vec![7], vec![3, 5], vec![2, 3, 4], vec![4, 1]] {
        let d = *shape.last().unwrap();
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        let gamma = Tensor::randn(&[d], 1.0, 0.3, &mut rng);
        let beta = Tensor::randn(&[d], 0.0, 0.3, &mut rng);
        assert_grads(
            &format!("layer_norm {shape:?}"),
            |v| v[0].layer_norm(&v[1], &v[2], 1e-5),
            &[x, gamma, beta],
            1e-2,
            5e-3,
        );
    }
}

/// Rows enough for several blocks over the threads (and a partial last block): forward and all
/// three gradients against float64, `dγ`, `dβ` summed over every block.
#[test]
fn many_rows_match_f64_forward_and_backward() {
    let mut rng = Rng::new(95);
    let (rows, d) = (1000, 96);
    let x = Tensor::randn(&[rows, d], 0.3, 1.5, &mut rng);
    let gamma = Tensor::randn(&[d], 1.0, 0.3, &mut rng);
    let beta = Tensor::randn(&[d], 0.0, 0.3, &mut rng);
    let gy = Tensor::randn(&[rows, d], 0.0, 1.0, &mut rng);
    let (xs, g, dy) = (f64s(&x), f64s(&gamma), f64s(&gy));
    let (mut dx, mut dgamma, mut dbeta) = (Vec::new(), vec![0.0; d], vec![0.0; d]);
    for (row, gy) in xs.chunks(d).zip(dy.chunks(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let r = 1.0 / (var + 1e-5).sqrt();
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * r).collect();
        let gh: Vec<f64> = (0..d).map(|i| gy[i] * g[i]).collect();
        let m1 = gh.iter().sum::<f64>() / d as f64;
        let m2 = (0..d).map(|i| gh[i] * xhat[i]).sum::<f64>() / d as f64;
        dx.extend((0..d).map(|i| r * (gh[i] - m1 - xhat[i] * m2)));
        for i in 0..d {
            dgamma[i] += gy[i] * xhat[i];
            dbeta[i] += gy[i];
        }
    }
    let (xv, gv, bv) = (
        Var::parameter(x.clone()),
        Var::parameter(gamma.clone()),
        Var::parameter(beta.clone()),
    );
    let y = xv.layer_norm(&gv, &bv, 1e-5);
    assert_close(
        "forward",
        &y.value(),
        &[rows, d],
        &layer_norm64(&x, &gamma, &beta, 1e-5),
        1e-5,
    );
    y.backward_with(gy);
    assert_close("dx", &xv.grad().unwrap(), &[rows, d], &dx, 1e-4);
    assert_close("dgamma", &gv.grad().unwrap(), &[d], &dgamma, 1e-4);
    assert_close("dbeta", &bv.grad().unwrap(), &[d], &dbeta, 1e-4);
}

#[test]
#[should_panic(expected = "layer_norm")]
fn gamma_of_the_wrong_size_panics() {
    let x = Var::constant(Tensor::zeros(&[2, 4]));
    let g = Var::constant(Tensor::ones(&[3]));
    let b = Var::constant(Tensor::zeros(&[4]));
    x.layer_norm(&g, &b, 1e-5);
}
