//! Additive (Bahdanau) attention: float64 reference, PyTorch golden values, gradients, invariants.

mod attention_support;

use attend::attention::{AdditiveAttention, StepAttention};
use attend::nn::{Linear, Params};
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

/// The layer over given parameter vars `[w_q, w_k, b_k, v]`.
fn layer(p: &[Var]) -> AdditiveAttention {
    AdditiveAttention {
        w_q: Linear {
            weight: p[0].clone(),
            bias: None,
        },
        w_k: Linear {
            weight: p[1].clone(),
            bias: Some(p[2].clone()),
        },
        v: Linear {
            weight: p[3].clone(),
            bias: None,
        },
    }
}

/// f64 reference: raw scores `[B, S]`, context `[B, Dk]`, weights `[B, S]`.
fn reference(
    s: &Tensor,
    h: &Tensor,
    params: &[Tensor],
    lengths: &[usize],
    (b, len, dq, dk, a): (usize, usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (sq, hh) = (f64s(s), f64s(h));
    let (wq, wk, bk, v) = (
        f64s(&params[0]),
        f64s(&params[1]),
        f64s(&params[2]),
        f64s(&params[3]),
    );
    let q = ref_linear(&sq, &wq, None, b, dq, a); // [B, A]
    let k = ref_linear(&hh, &wk, Some(&bk), b * len, dk, a); // [B·S, A]
    let mut scores = vec![0.0; b * len];
    for i in 0..b {
        for j in 0..len {
            scores[i * len + j] = (0..a)
                .map(|c| v[c] * (q[i * a + c] + k[(i * len + j) * a + c]).tanh())
                .sum();
        }
    }
    let (mut ctx, mut weights) = (Vec::new(), Vec::new());
    for i in 0..b {
        let (c, w) = ref_softmax_context(
            &scores[i * len..(i + 1) * len],
            &hh[i * len * dk..(i + 1) * len * dk],
            1,
            len,
            dk,
            |_, j| j >= lengths[i],
        );
        ctx.extend(c);
        weights.extend(w);
    }
    (scores, ctx, weights)
}

#[test]
fn matches_a_float64_reference_on_random_shapes() {
    let mut rng = Rng::new(1);
    for _ in 0..6 {
        let dims @ (b, len, dq, dk, a) = (
            1 + rng.below(4),
            1 + rng.below(7),
            1 + rng.below(9),
            1 + rng.below(9),
            1 + rng.below(9),
        );
        let mut params = Params::new();
        let l = AdditiveAttention::new(&mut params, "attn", dq, dk, a, &mut rng);
        let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "attn.w_q.weight",
                "attn.w_k.weight",
                "attn.w_k.bias",
                "attn.v.weight"
            ]
        );
        let pt: Vec<Tensor> = params.vars().iter().map(Var::to_tensor).collect();
        let s = Tensor::randn(&[b, dq], 0.0, 1.0, &mut rng);
        let h = Tensor::randn(&[b, len, dk], 0.0, 1.0, &mut rng);
        let (mask, lengths) = random_padding(b, len, &mut rng);
        let (sv, hv) = (Var::constant(s.clone()), Var::constant(h.clone()));
        let keys = l.project_keys(&hv).unwrap();
        assert_eq!(keys.shape(), [b, len, a]);
        let scores = l.scores(&sv, &keys).unwrap();
        let (ctx, w, _) = l.step_plain(&sv, &keys, &hv, Some(&mask)).unwrap();
        let (rs, rc, rw) = reference(&s, &h, &pt, &lengths, dims);
        assert_close(&scores.to_tensor(), &rs, 1e-5, "scores");
        assert_eq!(ctx.shape(), [b, dk]);
        assert_close(&ctx.to_tensor(), &rc, 1e-5, "context");
        assert_close(&w.to_tensor(), &rw, 1e-5, "weights");
        assert_rows_are_distributions(&w.to_tensor());
        // The fused step against the same reference.
        let fused = l.step(&sv, &keys, &hv, Some(&mask)).unwrap();
        assert_close(&fused.scores, &rs, 1e-5, "fused scores");
        assert_eq!(fused.context.shape(), [b, dk]);
        assert_close(&fused.context.to_tensor(), &rc, 1e-5, "fused context");
        assert_close(&fused.weights, &rw, 1e-5, "fused weights");
        assert_rows_are_distributions(&fused.weights);
    }
}

#[test]
fn equals_pytorch_forward_and_gradients() {
    let f = fixture("additive_step");
    let names = ["w_q.weight", "w_k.weight", "w_k.bias", "v.weight"];
    let mask = get(&f, "mask");
    // Two passes: L = Σ context ⊙ G_c (grad.*) and L_w = Σ weights ⊙ G_w (grad_w.*).
    for (which, out_index) in [("grad", 0), ("grad_w", 1)] {
        let params: Vec<Var> = names.iter().map(|n| param(get(&f, n))).collect();
        let (query, keys) = (param(get(&f, "query")), param(get(&f, "keys")));
        let (ctx, w) = plain_step(&layer(&params), &query, &keys, Some(&mask));
        assert_tensors_close(&ctx.to_tensor(), &get(&f, "context"), 1e-5, "context");
        assert_tensors_close(&w.to_tensor(), &get(&f, "weights"), 1e-5, "weights");
        if out_index == 0 {
            ctx.backward_with(get(&f, "grad_out.context"));
        } else {
            w.backward_with(get(&f, "grad_out.weights"));
        }
        assert_pytorch_gradients(&f, which, &params, &query, &keys);
    }
}

/// The gradients of the parameters `[w_q, w_k, b_k, v]`, the query and the annotations ("keys"
/// in the fixture) against the fixture's `{which}.*`.
fn assert_pytorch_gradients(
    f: &std::collections::BTreeMap<String, Tensor>,
    which: &str,
    params: &[Var],
    query: &Var,
    keys: &Var,
) {
    let names = ["w_q.weight", "w_k.weight", "w_k.bias", "v.weight"];
    let inputs = [("query", query), ("keys", keys)];
    for (n, v) in names.iter().copied().zip(params).chain(inputs) {
        let key = format!("{which}.{n}");
        assert_tensors_close(&grad(v), &get(f, &key), 1e-5, &key);
    }
}

#[test]
fn the_fused_step_equals_pytorch_context_and_its_gradients() {
    let f = fixture("additive_step");
    let names = ["w_q.weight", "w_k.weight", "w_k.bias", "v.weight"];
    let mask = get(&f, "mask");
    let params: Vec<Var> = names.iter().map(|n| param(get(&f, n))).collect();
    let (query, keys) = (param(get(&f, "query")), param(get(&f, "keys")));
    let l = layer(&params);
    let projected = l.project_keys(&keys).unwrap();
    let out = l.step(&query, &projected, &keys, Some(&mask)).unwrap();
    assert_tensors_close(
        &out.context.to_tensor(),
        &get(&f, "context"),
        1e-5,
        "context",
    );
    assert_tensors_close(&out.weights, &get(&f, "weights"), 1e-5, "weights");
    out.context.backward_with(get(&f, "grad_out.context"));
    assert_pytorch_gradients(&f, "grad", &params, &query, &keys);
}

#[test]
fn gradient_check_of_every_input_and_parameter() {
    let mut rng = Rng::new(2);
    let (b, len, dq, dk, a) = (2, 4, 3, 5, 4);
    let mask = attend::attention::mask::padding_mask(&[4, 2], len).unwrap();
    let inputs = vec![
        Tensor::randn(&[b, dq], 0.0, 1.0, &mut rng),
        Tensor::randn(&[b, len, dk], 0.0, 1.0, &mut rng),
        Tensor::randn(&[a, dq], 0.0, 0.5, &mut rng),
        Tensor::randn(&[a, dk], 0.0, 0.5, &mut rng),
        Tensor::randn(&[a], 0.0, 0.5, &mut rng),
        Tensor::randn(&[1, a], 0.0, 0.5, &mut rng),
    ];
    let r = check_gradients(
        |v| {
            let (ctx, w) = plain_step(&layer(&v[2..]), &v[0], &v[1], Some(&mask));
            flat_pair(&ctx, &w)
        },
        &inputs,
        1e-2,
        3,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}

#[test]
fn changing_a_padded_key_changes_nothing() {
    let mut rng = Rng::new(3);
    let mut params = Params::new();
    let l = AdditiveAttention::new(&mut params, "a", 6, 5, 7, &mut rng);
    let s = Var::constant(Tensor::randn(&[3, 6], 0.0, 1.0, &mut rng));
    let mut h = Tensor::randn(&[3, 8, 5], 0.0, 1.0, &mut rng);
    let lengths = [8, 3, 5];
    let mask = attend::attention::mask::padding_mask(&lengths, 8).unwrap();
    let (c0, w0) = plain_step(&l, &s, &Var::constant(h.clone()), Some(&mask));
    for (row, &len) in lengths.iter().enumerate() {
        for x in &mut h.data_mut()[(row * 8 + len) * 5..(row + 1) * 8 * 5] {
            *x = 100.0 * rng.normal();
        }
    }
    let (c1, w1) = plain_step(&l, &s, &Var::constant(h.clone()), Some(&mask));
    assert_eq!(c0.to_tensor(), c1.to_tensor());
    assert_eq!(w0.to_tensor(), w1.to_tensor());
    // The fused step: the same invariance, and the plain path's values.
    let hv = Var::constant(h);
    let fused = l
        .step(&s, &l.project_keys(&hv).unwrap(), &hv, Some(&mask))
        .unwrap();
    assert!(fused.context.to_tensor().max_abs_diff(&c0.to_tensor()) < 1e-5);
    assert!(fused.weights.max_abs_diff(&w0.to_tensor()) < 1e-6);
}

#[test]
fn bad_shapes_are_errors() {
    let mut rng = Rng::new(4);
    let mut params = Params::new();
    let l = AdditiveAttention::new(&mut params, "a", 6, 5, 7, &mut rng);
    let h = Var::constant(Tensor::zeros(&[2, 4, 5]));
    let keys = l.project_keys(&h).unwrap();
    let e = l.project_keys(&Var::constant(Tensor::zeros(&[2, 4, 6])));
    assert!(e.unwrap_err().to_string().contains("[B, S, 5]"));
    let bad_query = Var::constant(Tensor::zeros(&[2, 5]));
    assert!(l.scores(&bad_query, &keys).is_err());
    let s = Var::constant(Tensor::zeros(&[3, 6]));
    assert!(l.scores(&s, &keys).is_err(), "batch of 3 against keys of 2");
    let s = Var::constant(Tensor::zeros(&[2, 6]));
    let short_values = Var::constant(Tensor::zeros(&[2, 3, 5]));
    assert!(l.step(&s, &keys, &short_values, None).is_err());
    let wrong_mask = Tensor::zeros(&[2, 5]);
    assert!(l.step(&s, &keys, &h, Some(&wrong_mask)).is_err());
    assert!(l.step_plain(&s, &keys, &short_values, None).is_err());
    assert!(l.step_plain(&s, &keys, &h, Some(&wrong_mask)).is_err());
}
