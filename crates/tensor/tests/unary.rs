//! Element-wise functions (exp, log, tanh, sigmoid, relu, gelu, silu, sqrt, square) against float64
//! references on random shapes, and their gradient checks on well-conditioned inputs.

mod common;

use common::{assert_close, assert_grads, away_from_zero, f64s, random_shape};
use std::f64::consts::PI;
use tensor::{Rng, Tensor, Var};

/// erf in float64 from the everywhere-positive series
/// `erf(x) = 2/√π · e^{−x²} · Σₙ 2ⁿ x^{2n+1} / (1·3·…·(2n+1))` (Abramowitz & Stegun 7.1.6), which has no
/// cancellation; beyond |x| = 6, `1 − |erf(x)| < 1e−17` and ±1 is exact in f64.
fn erf64(x: f64) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > 1e-18 * sum.abs() {
        term *= 2.0 * x * x / (2.0 * n + 3.0);
        sum += term;
        n += 1.0;
    }
    2.0 / PI.sqrt() * (-x * x).exp() * sum
}

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf64(x / 2f64.sqrt()))
}

#[derive(Clone, Copy, Debug)]
enum Fun {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Gelu,
    Silu,
    Sqrt,
    Square,
}

const FUNS: [Fun; 9] = [
    Fun::Exp,
    Fun::Log,
    Fun::Tanh,
    Fun::Sigmoid,
    Fun::Relu,
    Fun::Gelu,
    Fun::Silu,
    Fun::Sqrt,
    Fun::Square,
];

impl Fun {
    fn apply(self, x: &Var) -> Var {
        match self {
            Fun::Exp => x.exp(),
            Fun::Log => x.log(),
            Fun::Tanh => x.tanh(),
            Fun::Sigmoid => x.sigmoid(),
            Fun::Relu => x.relu(),
            Fun::Gelu => x.gelu(),
            Fun::Silu => x.silu(),
            Fun::Sqrt => x.sqrt(),
            Fun::Square => x.square(),
        }
    }

    fn f64(self, x: f64) -> f64 {
        match self {
            Fun::Exp => x.exp(),
            Fun::Log => x.ln(),
            Fun::Tanh => x.tanh(),
            Fun::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Fun::Relu => x.max(0.0),
            Fun::Gelu => gelu64(x),
            Fun::Silu => x / (1.0 + (-x).exp()),
            Fun::Sqrt => x.sqrt(),
            Fun::Square => x * x,
        }
    }

    /// Inputs where the function and its derivative are well conditioned: log and sqrt on [0.5, 4],
    /// relu and gelu away from the kink at 0 (|x| ≥ 0.1), exp on N(0, 1), others on N(0, 2²).
    fn inputs(self, shape: &[usize], rng: &mut Rng) -> Tensor {
        match self {
            Fun::Log | Fun::Sqrt => Tensor::uniform(shape, 0.5, 4.0, rng),
            Fun::Relu | Fun::Gelu => away_from_zero(shape, 0.1, 3.0, rng),
            Fun::Exp => Tensor::randn(shape, 0.0, 1.0, rng),
            _ => Tensor::randn(shape, 0.0, 2.0, rng),
        }
    }
}

#[test]
fn reference_erf_matches_published_values() {
    // erf values from Abramowitz & Stegun table 7.1 / DLMF to 16 digits.
    for (x, want) in [
        (0.0, 0.0),
        (0.1, 0.112_462_916_018_284_9),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (3.0, 0.999_977_909_503_001_4),
        (-1.5, -0.966_105_146_475_310_7),
    ] {
        assert!((erf64(x) - want).abs() < 1e-15, "erf({x}) = {}", erf64(x));
    }
}

#[test]
fn forward_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(21);
    for _ in 0..12 {
        let shape = random_shape(&mut rng, 0, 4, 6);
        for f in FUNS {
            let x = f.inputs(&shape, &mut rng);
            let want: Vec<f64> = f64s(&x).into_iter().map(|v| f.f64(v)).collect();
            let got = f.apply(&Var::constant(x));
            assert_close(
                &format!("{f:?} {shape:?}"),
                &got.value(),
                &shape,
                &want,
                1e-6,
            );
        }
    }
}

/// Tensors large enough to be split over the threads (≥ 65 536 elements, not a multiple of the
/// chunk) give the f64 reference too, forward and backward (the gradient against the derivative).
#[test]
fn large_tensors_split_over_the_threads_match_the_reference() {
    let mut rng = Rng::new(22);
    let shape = [3, 40_001];
    for f in FUNS {
        let x = f.inputs(&shape, &mut rng);
        let xs = f64s(&x);
        let want: Vec<f64> = xs.iter().map(|&v| f.f64(v)).collect();
        let v = Var::parameter(x);
        let y = f.apply(&v);
        assert_close(&format!("{f:?} large"), &y.value(), &shape, &want, 1e-6);
        y.sum_all().backward();
        let h = 1e-4;
        let slope: Vec<f64> = xs
            .iter()
            .map(|&v| (f.f64(v + h) - f.f64(v - h)) / (2.0 * h))
            .collect();
        assert_close(
            &format!("{f:?} large, gradient"),
            &v.grad().unwrap(),
            &shape,
            &slope,
            1e-4,
        );
    }
}

#[test]
fn gelu_is_the_exact_erf_form_over_a_wide_range() {
    // Known values of x·Φ(x): gelu(1) = Φ(1), gelu(−1) = −Φ(−1).
    let known = [
        (1.0, 0.841_344_746_068_542_9),
        (-1.0, -0.158_655_253_931_457_05),
    ];
    for (x, want) in known {
        let got = Var::constant(Tensor::scalar(x as f32)).gelu().item() as f64;
        assert!((got - want).abs() < 1e-6, "gelu({x}) = {got}, want {want}");
        assert!((gelu64(x) - want).abs() < 1e-15);
    }
    // A dense grid over [−8, 8], where the tanh approximation would be off by up to ~5e−4.
    let xs: Vec<f32> = (0..=1600).map(|i| -8.0 + i as f32 * 0.01).collect();
    let want: Vec<f64> = xs.iter().map(|&x| gelu64(x as f64)).collect();
    let x = Tensor::from_vec(xs, &[1601]);
    let got = Var::constant(x).gelu();
    assert_close("gelu grid", &got.value(), &[1601], &want, 1e-6);
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(22);
    for _ in 0..4 {
        let shape = random_shape(&mut rng, 1, 3, 5);
        for f in FUNS {
            let x = f.inputs(&shape, &mut rng);
            assert_grads(
                &format!("{f:?} {shape:?}"),
                |v| f.apply(&v[0]),
                &[x],
                1e-3,
                2e-3,
            );
        }
    }
}

#[test]
fn gelu_gradient_matches_f64_derivative() {
    // d/dx x·Φ(x) = Φ(x) + x·φ(x), compared directly (no finite difference) on a grid.
    let xs: Vec<f32> = (0..=160).map(|i| -8.0 + i as f32 * 0.1).collect();
    let want: Vec<f64> = xs
        .iter()
        .map(|&x| {
            let x = x as f64;
            0.5 * (1.0 + erf64(x / 2f64.sqrt())) + x * (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
        })
        .collect();
    let x = Var::parameter(Tensor::from_vec(xs, &[161]));
    x.gelu().sum_all().backward();
    assert_close("gelu'", &x.grad().unwrap(), &[161], &want, 1e-6);
}

#[test]
fn sigmoid_and_tanh_saturate_without_nan() {
    let x = Tensor::from_vec(vec![-200.0, -90.0, 0.0, 90.0, 200.0], &[5]);
    let v = Var::parameter(x.clone());
    let s = v.sigmoid();
    let t = v.tanh();
    let want_s: Vec<f64> = f64s(&x).iter().map(|&x| Fun::Sigmoid.f64(x)).collect();
    let want_t: Vec<f64> = f64s(&x).iter().map(|&x| x.tanh()).collect();
    assert_close("sigmoid saturated", &s.value(), &[5], &want_s, 1e-7);
    assert_close("tanh saturated", &t.value(), &[5], &want_t, 1e-7);
    s.add(&t).sum_all().backward();
    let g = v.grad().unwrap();
    assert!(g.data().iter().all(|d| d.is_finite()), "{g:?}");
    // At 0: σ'(0) + tanh'(0) = 1/4 + 1.
    assert!((g.data()[2] - 1.25).abs() < 1e-6);
}

#[test]
fn relu_gradient_is_zero_for_negative_inputs_and_one_for_positive() {
    let x = Var::parameter(Tensor::from_vec(vec![-2.0, -0.5, 0.5, 3.0], &[4]));
    x.relu().sum_all().backward();
    assert_eq!(x.grad().unwrap().data(), &[0.0, 0.0, 1.0, 1.0]);
}
