//! Multiplicative (Luong dot / general) attention: float64 reference, PyTorch golden values,
//! gradients, invariants.

mod attention_support;

use attend::attention::mask::padding_mask;
use attend::attention::{MultiplicativeAttention, Score, StepAttention};
use attend::nn::{Linear, Params};
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

fn general(w: &Var) -> MultiplicativeAttention {
    MultiplicativeAttention {
        score: Score::General(Linear {
            weight: w.clone(),
            bias: None,
        }),
    }
}

/// f64 reference: `(scores [B, S], context [B, Dk], weights [B, S])`; `w [Dk, Dq]` for `general`.
fn reference(
    s: &Tensor,
    h: &Tensor,
    w: Option<&Tensor>,
    lengths: &[usize],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b, len, dk) = (h.dim(0), h.dim(1), h.dim(2));
    let q = match w {
        None => f64s(s),
        Some(w) => ref_linear(&f64s(s), &f64s(w), None, b, s.dim(1), dk),
    };
    let hh = f64s(h);
    let (mut scores, mut ctx, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..b {
        let hi = &hh[i * len * dk..(i + 1) * len * dk];
        let e = ref_scores(&q[i * dk..(i + 1) * dk], hi, 1, len, dk, 1.0);
        let (c, a) = ref_softmax_context(&e, hi, 1, len, dk, |_, j| j >= lengths[i]);
        scores.extend(e);
        ctx.extend(c);
        weights.extend(a);
    }
    (scores, ctx, weights)
}

#[test]
fn dot_and_general_match_a_float64_reference_on_random_shapes() {
    let mut rng = Rng::new(21);
    for round in 0..8 {
        let (b, len, dq, dk) = (
            1 + rng.below(4),
            1 + rng.below(7),
            1 + rng.below(9),
            1 + rng.below(9),
        );
        let is_general = round % 2 == 1;
        let mut params = Params::new();
        let (l, w, dq) = if is_general {
            let l = MultiplicativeAttention::general(&mut params, "attn", dq, dk, &mut rng);
            let w = params.get("attn.w.weight").expect("registered").to_tensor();
            assert_eq!(w.shape(), &[dk, dq]);
            (l, Some(w), dq)
        } else {
            (MultiplicativeAttention::dot(), None, dk)
        };
        let s = Tensor::randn(&[b, dq], 0.0, 1.0, &mut rng);
        let h = Tensor::randn(&[b, len, dk], 0.0, 1.0, &mut rng);
        let (mask, lengths) = random_padding(b, len, &mut rng);
        let (sv, hv) = (Var::constant(s.clone()), Var::constant(h.clone()));
        let keys = l.project_keys(&hv).unwrap();
        let scores = l.scores(&sv, &keys).unwrap();
        let (ctx, a, _) = l.step_plain(&sv, &keys, &hv, Some(&mask)).unwrap();
        let (rs, rc, ra) = reference(&s, &h, w.as_ref(), &lengths);
        assert_close(&scores.to_tensor(), &rs, 1e-5, "scores");
        assert_eq!(ctx.shape(), [b, dk]);
        assert_close(&ctx.to_tensor(), &rc, 1e-5, "context");
        assert_close(&a.to_tensor(), &ra, 1e-5, "weights");
        assert_rows_are_distributions(&a.to_tensor());
        // The decoders' step: the same values, weights and scores off the tape.
        let out = l.step(&sv, &keys, &hv, Some(&mask)).unwrap();
        assert_close(&out.scores, &rs, 1e-5, "step scores");
        assert_close(&out.context.to_tensor(), &rc, 1e-5, "step context");
        assert_close(&out.weights, &ra, 1e-5, "step weights");
    }
}

#[test]
fn equals_pytorch_forward_and_gradients() {
    let f = fixture("luong");
    for case in ["dot", "general"] {
        let t = |n: &str| get(&f, &format!("{case}.{n}"));
        let mask = t("mask");
        for (which, out_index) in [("grad", 0), ("grad_w", 1)] {
            let (query, keys) = (param(t("query")), param(t("keys")));
            let w = (case == "general").then(|| param(t("w.weight")));
            let l = w
                .as_ref()
                .map_or_else(MultiplicativeAttention::dot, general);
            let (ctx, a) = plain_step(&l, &query, &keys, Some(&mask));
            assert_tensors_close(&ctx.to_tensor(), &t("context"), 1e-5, "context");
            assert_tensors_close(&a.to_tensor(), &t("weights"), 1e-5, "weights");
            if out_index == 0 {
                ctx.backward_with(t("grad_out.context"));
            } else {
                a.backward_with(t("grad_out.weights"));
            }
            let mut checks = vec![("query", query), ("keys", keys)];
            checks.extend(w.map(|w| ("w.weight", w)));
            for (n, v) in checks {
                let key = format!("{which}.{n}");
                assert_tensors_close(&grad(&v), &t(&key), 1e-5, &format!("{case}.{key}"));
            }
        }
    }
}

#[test]
fn gradient_checks_of_dot_and_general() {
    let mut rng = Rng::new(22);
    let mask = padding_mask(&[4, 1, 3], 4).unwrap();
    let s = Tensor::randn(&[3, 5], 0.0, 1.0, &mut rng);
    let h = Tensor::randn(&[3, 4, 5], 0.0, 1.0, &mut rng);
    let r = check_gradients(
        |v| {
            let (c, a) = plain_step(&MultiplicativeAttention::dot(), &v[0], &v[1], Some(&mask));
            flat_pair(&c, &a)
        },
        &[s, h.clone()],
        1e-2,
        1,
    );
    assert!(r.max_rel_error < 1e-2, "dot: {r:?}");
    let s = Tensor::randn(&[3, 2], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[5, 2], 0.0, 0.5, &mut rng);
    let r = check_gradients(
        |v| {
            let (c, a) = plain_step(&general(&v[2]), &v[0], &v[1], Some(&mask));
            flat_pair(&c, &a)
        },
        &[s, h, w],
        1e-2,
        2,
    );
    assert!(r.max_rel_error < 1e-2, "general: {r:?}");
}

#[test]
fn changing_a_padded_key_changes_nothing() {
    let mut rng = Rng::new(23);
    let mut params = Params::new();
    let l = MultiplicativeAttention::general(&mut params, "a", 3, 4, &mut rng);
    let s = Var::constant(Tensor::randn(&[2, 3], 0.0, 1.0, &mut rng));
    let mut h = Tensor::randn(&[2, 5, 4], 0.0, 1.0, &mut rng);
    let mask = padding_mask(&[5, 2], 5).unwrap();
    let (c0, a0) = plain_step(&l, &s, &Var::constant(h.clone()), Some(&mask));
    for x in &mut h.data_mut()[(5 + 2) * 4..] {
        *x = 50.0 * rng.normal();
    }
    let (c1, a1) = plain_step(&l, &s, &Var::constant(h), Some(&mask));
    assert_eq!(c0.to_tensor(), c1.to_tensor());
    assert_eq!(a0.to_tensor(), a1.to_tensor());
}

#[test]
fn bad_shapes_are_errors() {
    let h = Var::constant(Tensor::zeros(&[2, 4, 5]));
    let dot = MultiplicativeAttention::dot();
    let err = dot
        .scores(&Var::constant(Tensor::zeros(&[2, 6])), &h)
        .unwrap_err();
    assert!(err.to_string().contains("[2, S, 6]"), "{err}");
    assert!(dot
        .project_keys(&Var::constant(Tensor::zeros(&[2, 5])))
        .is_err());
    let mut rng = Rng::new(24);
    let mut params = Params::new();
    let g = MultiplicativeAttention::general(&mut params, "g", 3, 5, &mut rng);
    assert!(g
        .scores(&Var::constant(Tensor::zeros(&[2, 5])), &h)
        .is_err());
    assert!(g.scores(&Var::constant(Tensor::zeros(&[2, 3])), &h).is_ok());
}
