//! Shared by the `attention_*` tests: float64 references, the PyTorch fixtures, comparisons.
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use attend::attention::StepAttention;
use attend::nn::params::load_tensors;
use std::collections::BTreeMap;
use tensor::{Rng, Tensor, Var};

/// Tensors of `crates/attend/tests/fixtures/torch/{name}.safetensors` (found from either crate).
pub fn fixture(name: &str) -> BTreeMap<String, Tensor> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attend/tests/fixtures/torch")
        .join(format!("{name}.safetensors"));
    load_tensors(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// `map[key]`, with a clear message when it is missing.
pub fn get(map: &BTreeMap<String, Tensor>, key: &str) -> Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("fixture tensor `{key}` missing"))
        .clone()
}

pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&x| x as f64).collect()
}

/// `max |a − e| / max |e|` (absolute where `e` is all zeros).
pub fn rel_error(actual: &[f32], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "sizes differ");
    let scale = expected.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-6);
    let err = actual
        .iter()
        .zip(expected)
        .fold(0f64, |m, (&a, &e)| m.max((a as f64 - e).abs()));
    err / scale
}

/// Asserts `actual` equals `expected` within `tol` relative to the largest expected magnitude.
pub fn assert_close(actual: &Tensor, expected: &[f64], tol: f64, what: &str) {
    let r = rel_error(actual.data(), expected);
    assert!(r <= tol, "{what}: relative error {r:e} > {tol:e}");
}

/// Asserts two tensors have the same shape and agree within `tol` (relative).
pub fn assert_tensors_close(actual: &Tensor, expected: &Tensor, tol: f64, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes differ");
    assert_close(actual, &f64s(expected), tol, what);
}

/// The gradient of a leaf after backward (zeros where none flowed).
pub fn grad(v: &Var) -> Tensor {
    v.grad().unwrap_or_else(|| Tensor::zeros(&v.shape()))
}

pub fn param(t: Tensor) -> Var {
    Var::parameter(t)
}

/// `x [n, i] · wᵀ [o, i] + b [o]` in f64.
pub fn ref_linear(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    n: usize,
    i: usize,
    o: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; n * o];
    for r in 0..n {
        for c in 0..o {
            let mut acc = b.map_or(0.0, |b| b[c]);
            for k in 0..i {
                acc += x[r * i + k] * w[c * i + k];
            }
            y[r * o + c] = acc;
        }
    }
    y
}

/// One row of a masked softmax in f64: masked positions get 0, a fully masked row all zeros.
pub fn ref_masked_softmax(scores: &[f64], masked: impl Fn(usize) -> bool) -> Vec<f64> {
    let m = (0..scores.len())
        .filter(|&j| !masked(j))
        .map(|j| scores[j])
        .fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let e: Vec<f64> = (0..scores.len())
        .map(|j| {
            if masked(j) {
                0.0
            } else {
                (scores[j] - m).exp()
            }
        })
        .collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Attention of one group (one batch row, one head) in f64: `scores [T, S]` (already scaled),
/// `v [S, dv]`, `masked(i, j)` → `(context [T, dv], weights [T, S])`.
pub fn ref_softmax_context(
    scores: &[f64],
    v: &[f64],
    t: usize,
    s: usize,
    dv: usize,
    masked: impl Fn(usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut ctx = vec![0.0; t * dv];
    let mut weights = vec![0.0; t * s];
    for i in 0..t {
        let w = ref_masked_softmax(&scores[i * s..(i + 1) * s], |j| masked(i, j));
        for j in 0..s {
            for c in 0..dv {
                ctx[i * dv + c] += w[j] * v[j * dv + c];
            }
        }
        weights[i * s..(i + 1) * s].copy_from_slice(&w);
    }
    (ctx, weights)
}

/// `scale · q [T, d] · kᵀ [S, d]` in f64.
pub fn ref_scores(q: &[f64], k: &[f64], t: usize, s: usize, d: usize, scale: f64) -> Vec<f64> {
    let mut out = vec![0.0; t * s];
    for i in 0..t {
        for j in 0..s {
            out[i * s + j] = scale * (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>();
        }
    }
    out
}

/// A random 0/1 padding mask `[b, s]` from random lengths in `1..=s` (the first row full), and the
/// lengths.
pub fn random_padding(b: usize, s: usize, rng: &mut Rng) -> (Tensor, Vec<usize>) {
    let lengths: Vec<usize> = (0..b)
        .map(|i| if i == 0 { s } else { 1 + rng.below(s) })
        .collect();
    let mask = attend::attention::mask::padding_mask(&lengths, s).expect("lengths fit");
    (mask, lengths)
}

/// Asserts every row of `weights` (last axis) is ≥ 0 and sums to 1.
pub fn assert_rows_are_distributions(weights: &Tensor) {
    for (r, row) in weights.rows().enumerate() {
        assert!(
            row.iter().all(|&w| w >= 0.0),
            "row {r} has a negative weight"
        );
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
    }
}

/// `[a.flatten(); b.flatten()]`: one output for a gradient check of two.
pub fn flat_pair(a: &Var, b: &Var) -> Var {
    Var::concat(
        &[
            a.reshape(&[a.value().numel()]),
            b.reshape(&[b.value().numel()]),
        ],
        0,
    )
}

/// One attention step over the annotations `h` through the plain path (weights on the tape):
/// `(context, weights)`.
pub fn plain_step(
    layer: &dyn StepAttention,
    query: &Var,
    h: &Var,
    mask: Option<&Tensor>,
) -> (Var, Var) {
    let keys = layer.project_keys(h).unwrap();
    let (context, weights, _) = layer.step_plain(query, &keys, h, mask).unwrap();
    (context, weights)
}
