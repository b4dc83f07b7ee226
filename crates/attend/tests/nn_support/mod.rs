//! Helpers shared by the `nn_*` tests: PyTorch fixtures, tolerant comparison, and a finite-difference
//! check of any loss over a layer's own parameters.
// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use attend::nn::params::load_tensors;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tensor::{no_grad, Rng, Tensor, Var};

/// Tensors of `tests/fixtures/torch/{name}.safetensors`.
pub fn fixture(name: &str) -> BTreeMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(format!("{name}.safetensors"));
    load_tensors(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// `fx[key]`, with a message naming a missing key.
pub fn get<'a>(fx: &'a BTreeMap<String, Tensor>, key: &str) -> &'a Tensor {
    fx.get(key)
        .unwrap_or_else(|| panic!("fixture has no `{key}`"))
}

/// Asserts equal shapes and `|a − b| ≤ tol · max(1, |b|)` element-wise.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (&a, &b)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: got {a}, want {b} (|diff| {})",
            (a - b).abs()
        );
    }
}

/// `Σ out ⊙ g` for a constant `g`.
pub fn dot(out: &Var, g: &Tensor) -> Var {
    out.mul(&Var::constant(g.clone())).sum_all()
}

/// Compares the tape's gradients of `loss` with central differences `(L(p + h) − L(p − h)) / 2h` for
/// every element of every var in `vars` (evaluated in place). Returns the worst
/// `|a − n| / max(1, |a|, |n|)`.
pub fn fd_check(vars: &[Var], loss: impl Fn() -> Var, h: f32) -> f64 {
    for v in vars {
        v.zero_grad();
    }
    loss().backward();
    let analytic: Vec<Tensor> = vars
        .iter()
        .map(|v| v.grad().unwrap_or_else(|| Tensor::zeros(&v.shape())))
        .collect();
    let eval = || no_grad(|| loss().item()) as f64;
    let mut worst = 0.0f64;
    for (v, a) in vars.iter().zip(&analytic) {
        for j in 0..a.numel() {
            let orig = v.value().data()[j];
            v.value_mut().data_mut()[j] = orig + h;
            let up = eval();
            v.value_mut().data_mut()[j] = orig - h;
            let down = eval();
            v.value_mut().data_mut()[j] = orig;
            let n = (up - down) / (2.0 * h as f64);
            let a = a.data()[j] as f64;
            worst = worst.max((a - n).abs() / 1f64.max(a.abs()).max(n.abs()));
        }
    }
    worst
}

/// A fixed N(0, 1) weighting of an output, for scalar test losses.
pub fn weights_like(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed))
}
