//! GRU and LSTM cells: PyTorch golden values (`nn.GRUCell`, `nn.LSTMCell`: output and every
//! gradient), a float64 reference of one step on random sizes, and finite-difference gradient checks.

mod nn_support;

use attend::nn::rnn::RnnWeights;
use attend::nn::{GruCell, LstmCell, Params};
use nn_support::{assert_close, dot, fd_check, fixture, get, weights_like};
use std::collections::BTreeMap;
use tensor::{Rng, Tensor, Var};

fn load(w: &RnnWeights, fx: &BTreeMap<String, Tensor>) {
    *w.weight_ih.value_mut() = get(fx, "weight_ih").clone();
    *w.weight_hh.value_mut() = get(fx, "weight_hh").clone();
    *w.bias_ih.value_mut() = get(fx, "bias_ih").clone();
    *w.bias_hh.value_mut() = get(fx, "bias_hh").clone();
}

fn check_param_grads(w: &RnnWeights, fx: &BTreeMap<String, Tensor>, what: &str) {
    for (name, v) in [
        ("weight_ih", &w.weight_ih),
        ("weight_hh", &w.weight_hh),
        ("bias_ih", &w.bias_ih),
        ("bias_hh", &w.bias_hh),
    ] {
        assert_close(
            &format!("{what} grad.{name}"),
            &v.grad().unwrap(),
            get(fx, &format!("grad.{name}")),
            1e-5,
        );
    }
}

#[test]
fn gru_cell_matches_pytorch() {
    let fx = fixture("grucell");
    let mut params = Params::new();
    let cell = GruCell::new(&mut params, "cell", 5, 8, &mut Rng::new(0));
    load(&cell.weights, &fx);
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "cell.weight_ih",
            "cell.weight_hh",
            "cell.bias_ih",
            "cell.bias_hh"
        ]
    );
    let x = Var::parameter(get(&fx, "x").clone());
    let h = Var::parameter(get(&fx, "h").clone());
    let out = cell.step(&x, &h);
    assert_close("h_out", &out.to_tensor(), get(&fx, "h_out"), 1e-5);
    dot(&out, get(&fx, "grad_out.h_out")).backward();
    assert_close("grad.x", &x.grad().unwrap(), get(&fx, "grad.x"), 1e-5);
    assert_close("grad.h", &h.grad().unwrap(), get(&fx, "grad.h"), 1e-5);
    check_param_grads(&cell.weights, &fx, "GRUCell");
}

#[test]
fn lstm_cell_matches_pytorch() {
    let fx = fixture("lstmcell");
    let mut params = Params::new();
    let cell = LstmCell::new(&mut params, "cell", 5, 8, &mut Rng::new(0));
    load(&cell.weights, &fx);
    let x = Var::parameter(get(&fx, "x").clone());
    let h = Var::parameter(get(&fx, "h").clone());
    let c = Var::parameter(get(&fx, "c").clone());
    let (h_out, c_out) = cell.step(&x, &h, &c);
    assert_close("h_out", &h_out.to_tensor(), get(&fx, "h_out"), 1e-5);
    assert_close("c_out", &c_out.to_tensor(), get(&fx, "c_out"), 1e-5);
    dot(&h_out, get(&fx, "grad_out.h_out"))
        .add(&dot(&c_out, get(&fx, "grad_out.c_out")))
        .backward();
    assert_close("grad.x", &x.grad().unwrap(), get(&fx, "grad.x"), 1e-5);
    assert_close("grad.h", &h.grad().unwrap(), get(&fx, "grad.h"), 1e-5);
    assert_close("grad.c", &c.grad().unwrap(), get(&fx, "grad.c"), 1e-5);
    check_param_grads(&cell.weights, &fx, "LSTMCell");
}

fn f64s(v: &Var) -> Vec<f64> {
    v.value().data().iter().map(|&x| x as f64).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `W v + b` for `W [rows, cols]` (row-major), in f64.
fn affine(w: &[f64], v: &[f64], b: &[f64]) -> Vec<f64> {
    let cols = v.len();
    b.iter()
        .enumerate()
        .map(|(r, &bias)| bias + (0..cols).map(|j| w[r * cols + j] * v[j]).sum::<f64>())
        .collect()
}

/// `(a_i, a_h)` = the input and hidden projections of batch row `row`, in f64.
fn projections(w: &RnnWeights, x: &Var, h: &Var, row: usize) -> (Vec<f64>, Vec<f64>) {
    let (xi, hi) = (x.dim(1), h.dim(1));
    let xr = &f64s(x)[row * xi..(row + 1) * xi];
    let hr = &f64s(h)[row * hi..(row + 1) * hi];
    (
        affine(&f64s(&w.weight_ih), xr, &f64s(&w.bias_ih)),
        affine(&f64s(&w.weight_hh), hr, &f64s(&w.bias_hh)),
    )
}

#[test]
fn gru_step_matches_f64_reference() {
    let mut rng = Rng::new(31);
    for _ in 0..5 {
        let (b, input, hidden) = (1 + rng.below(4), 1 + rng.below(12), 1 + rng.below(12));
        let mut params = Params::new();
        let cell = GruCell::new(&mut params, "g", input, hidden, &mut rng);
        let x = Var::constant(Tensor::randn(&[b, input], 0.0, 1.0, &mut rng));
        let h = Var::constant(Tensor::randn(&[b, hidden], 0.0, 1.0, &mut rng));
        let got = cell.step(&x, &h).to_tensor();
        let mut want = Vec::new();
        for row in 0..b {
            let (ai, ah) = projections(&cell.weights, &x, &h, row);
            let hp = &f64s(&h)[row * hidden..(row + 1) * hidden];
            for j in 0..hidden {
                let r = sigmoid(ai[j] + ah[j]);
                let z = sigmoid(ai[hidden + j] + ah[hidden + j]);
                let n = (ai[2 * hidden + j] + r * ah[2 * hidden + j]).tanh();
                want.push(((1.0 - z) * n + z * hp[j]) as f32);
            }
        }
        assert_close(
            "GRU step",
            &got,
            &Tensor::from_vec(want, &[b, hidden]),
            1e-5,
        );
    }
}

#[test]
fn lstm_step_matches_f64_reference() {
    let mut rng = Rng::new(32);
    for _ in 0..5 {
        let (b, input, hidden) = (1 + rng.below(4), 1 + rng.below(12), 1 + rng.below(12));
        let mut params = Params::new();
        let cell = LstmCell::new(&mut params, "l", input, hidden, &mut rng);
        let x = Var::constant(Tensor::randn(&[b, input], 0.0, 1.0, &mut rng));
        let h = Var::constant(Tensor::randn(&[b, hidden], 0.0, 1.0, &mut rng));
        let c = Var::constant(Tensor::randn(&[b, hidden], 0.0, 1.0, &mut rng));
        let (gh, gc) = cell.step(&x, &h, &c);
        let (mut wh, mut wc) = (Vec::new(), Vec::new());
        for row in 0..b {
            let (ai, ah) = projections(&cell.weights, &x, &h, row);
            let a = |q: usize, j: usize| ai[q * hidden + j] + ah[q * hidden + j];
            let cp = &f64s(&c)[row * hidden..(row + 1) * hidden];
            for (j, &c_prev) in cp.iter().enumerate() {
                let cn = sigmoid(a(1, j)) * c_prev + sigmoid(a(0, j)) * a(2, j).tanh();
                wc.push(cn as f32);
                wh.push((sigmoid(a(3, j)) * cn.tanh()) as f32);
            }
        }
        assert_close(
            "LSTM h'",
            &gh.to_tensor(),
            &Tensor::from_vec(wh, &[b, hidden]),
            1e-5,
        );
        assert_close(
            "LSTM c'",
            &gc.to_tensor(),
            &Tensor::from_vec(wc, &[b, hidden]),
            1e-5,
        );
    }
}

#[test]
fn cell_gradients_match_finite_differences() {
    let mut rng = Rng::new(33);
    let mut params = Params::new();
    let gru = GruCell::new(&mut params, "g", 3, 4, &mut rng);
    let lstm = LstmCell::new(&mut params, "l", 3, 4, &mut rng);
    let x = Var::parameter(Tensor::randn(&[2, 3], 0.0, 1.0, &mut rng));
    let h = Var::parameter(Tensor::randn(&[2, 4], 0.0, 1.0, &mut rng));
    let c = Var::parameter(Tensor::randn(&[2, 4], 0.0, 1.0, &mut rng));
    let g = weights_like(&[2, 4], 1);
    let g2 = weights_like(&[2, 4], 2);
    let mut vars = params.vars();
    vars.extend([x.clone(), h.clone(), c.clone()]);
    let err = fd_check(
        &vars,
        || {
            let (hl, cl) = lstm.step(&x, &h, &c);
            dot(&gru.step(&x, &h), &g)
                .add(&dot(&hl, &g2))
                .add(&dot(&cl, &g))
        },
        1e-2,
    );
    assert!(err < 2e-3, "cells: {err}");
}
