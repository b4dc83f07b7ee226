//! Helpers shared by the engine's op tests: seeded random shapes and inputs, plain float64 index
//! arithmetic for the references (written here, independent of the engine's `shape` module), and
//! comparison/gradient-check assertions that say what failed.
//!
//! Each test file is its own crate and uses a subset of these helpers.
#![allow(dead_code)]

use tensor::gradcheck::{check_gradients, GradCheck};
use tensor::{Rng, Tensor, Var};

/// A random shape of rank in `min_rank..=max_rank`, each size in `1..=max_dim`.
pub fn random_shape(rng: &mut Rng, min_rank: usize, max_rank: usize, max_dim: usize) -> Vec<usize> {
    let rank = min_rank + rng.below(max_rank - min_rank + 1);
    (0..rank).map(|_| 1 + rng.below(max_dim)).collect()
}

/// Values in `±[lo, hi]` with a random sign: inputs kept away from a kink or a pole at 0.
pub fn away_from_zero(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            let m = rng.uniform(lo, hi);
            if rng.below(2) == 0 {
                m
            } else {
                -m
            }
        })
        .collect();
    Tensor::from_vec(data, shape)
}

/// The tensor's values widened to f64.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&x| x as f64).collect()
}

/// Row-major strides of `shape`.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

/// Flat position of multi-index `idx` in `shape`.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(strides_of(shape)).map(|(i, s)| i * s).sum()
}

/// Asserts `|got − want| ≤ tol · (1 + |want|)` element-wise, and that the shapes agree.
pub fn assert_close(what: &str, got: &Tensor, want_shape: &[usize], want: &[f64], tol: f64) {
    assert_eq!(got.shape(), want_shape, "{what}: shape");
    assert_eq!(got.numel(), want.len(), "{what}: element count");
    for (i, (&g, &w)) in got.data().iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}: element {i} of {want_shape:?}: got {g}, want {w} (error {err:e}, tol {tol:e})"
        );
    }
}

/// Runs the finite-difference check of `f` at `inputs` and asserts its worst relative error.
pub fn assert_grads(
    what: &str,
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    h: f32,
    tol: f64,
) -> GradCheck {
    let r = check_gradients(f, inputs, h, 0x5eed);
    assert!(
        r.max_rel_error < tol,
        "{what}: gradient check failed: {r:?}"
    );
    r
}
