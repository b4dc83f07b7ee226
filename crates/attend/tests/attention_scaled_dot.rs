//! Scaled dot-product attention and the single-head Q/K/V layer: float64 reference, gradients,
//! invariants (padding, causality, permutation equivariance).

mod attention_support;

use attend::attention::mask::{causal_mask, combine, key_padding_broadcast, padding_mask};
use attend::attention::scaled_dot::scaled_dot_product;
use attend::attention::ScaledDotProductAttention;
use attend::nn::{Linear, Params};
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

/// f64 reference over `groups` independent `(q [T, d], k [S, d], v [S, dv])` blocks;
/// `masked(g, i, j)`.
#[allow(clippy::too_many_arguments)]
fn reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    groups: usize,
    t: usize,
    s: usize,
    masked: impl Fn(usize, usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let (d, dv) = (q.dim(-1), v.dim(-1));
    let (q, k, v) = (f64s(q), f64s(k), f64s(v));
    let (mut ctx, mut weights) = (Vec::new(), Vec::new());
    for g in 0..groups {
        let e = ref_scores(
            &q[g * t * d..(g + 1) * t * d],
            &k[g * s * d..(g + 1) * s * d],
            t,
            s,
            d,
            1.0 / (d as f64).sqrt(),
        );
        let (c, w) = ref_softmax_context(&e, &v[g * s * dv..(g + 1) * s * dv], t, s, dv, |i, j| {
            masked(g, i, j)
        });
        ctx.extend(c);
        weights.extend(w);
    }
    (ctx, weights)
}

#[test]
fn many_queries_match_a_float64_reference_with_and_without_heads() {
    let mut rng = Rng::new(31);
    for round in 0..8 {
        let heads = if round % 2 == 0 { 1 } else { 1 + rng.below(3) };
        let (b, t, s, d, dv) = (
            1 + rng.below(3),
            1 + rng.below(6),
            1 + rng.below(7),
            1 + rng.below(8),
            1 + rng.below(8),
        );
        let causal = round % 3 == 0;
        let s = if causal { t } else { s };
        // Rank 3 [B, T, d] on even rounds, rank 4 [B, H, T, d] on odd ones.
        let lead: Vec<usize> = if round % 2 == 0 {
            vec![b]
        } else {
            vec![b, heads]
        };
        let shape = |a: usize, c: usize| [lead.clone(), vec![a, c]].concat();
        let q = Tensor::randn(&shape(t, d), 0.0, 1.0, &mut rng);
        let k = Tensor::randn(&shape(s, d), 0.0, 1.0, &mut rng);
        let v = Tensor::randn(&shape(s, dv), 0.0, 1.0, &mut rng);
        let (pad, lengths) = random_padding(b, s, &mut rng);
        let mut mask = key_padding_broadcast(&pad, lead.len() + 2).unwrap();
        if causal {
            mask = combine(&mask, &causal_mask(t)).unwrap();
        }
        let (ctx, w) = scaled_dot_product(
            &Var::constant(q.clone()),
            &Var::constant(k.clone()),
            &Var::constant(v.clone()),
            Some(&mask),
        )
        .unwrap();
        assert_eq!(w.shape(), shape(t, s));
        assert_eq!(ctx.shape(), shape(t, dv));
        let per_batch = lead.iter().skip(1).product::<usize>();
        let (rc, rw) = reference(&q, &k, &v, b * per_batch, t, s, |g, i, j| {
            j >= lengths[g / per_batch] || (causal && j > i)
        });
        assert_close(&ctx.to_tensor(), &rc, 1e-5, "context");
        assert_close(&w.to_tensor(), &rw, 1e-5, "weights");
        assert_rows_are_distributions(&w.to_tensor());
    }
}

#[test]
fn gradient_check_of_q_k_v() {
    let mut rng = Rng::new(32);
    let q = Tensor::randn(&[2, 2, 3, 4], 0.0, 1.0, &mut rng);
    let k = Tensor::randn(&[2, 2, 5, 4], 0.0, 1.0, &mut rng);
    let v = Tensor::randn(&[2, 2, 5, 3], 0.0, 1.0, &mut rng);
    let mask = key_padding_broadcast(&padding_mask(&[5, 3], 5).unwrap(), 4).unwrap();
    let r = check_gradients(
        |x| {
            let (c, w) = scaled_dot_product(&x[0], &x[1], &x[2], Some(&mask)).unwrap();
            flat_pair(&c, &w)
        },
        &[q, k, v],
        1e-2,
        4,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}

fn layer(p: &[Var]) -> ScaledDotProductAttention {
    let lin = |w: &Var| Linear {
        weight: w.clone(),
        bias: None,
    };
    ScaledDotProductAttention {
        w_q: lin(&p[0]),
        w_k: lin(&p[1]),
        w_v: lin(&p[2]),
    }
}

#[test]
fn layer_projects_separately_and_matches_the_reference() {
    let mut rng = Rng::new(33);
    let (b, t, s, dq, dkv, dk, dv) = (2, 3, 5, 6, 4, 5, 3);
    let mut params = Params::new();
    let l = ScaledDotProductAttention::new(&mut params, "sdpa", dq, dkv, dk, dv, &mut rng);
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["sdpa.w_q.weight", "sdpa.w_k.weight", "sdpa.w_v.weight"]
    );
    let xq = Tensor::randn(&[b, t, dq], 0.0, 1.0, &mut rng);
    let xkv = Tensor::randn(&[b, s, dkv], 0.0, 1.0, &mut rng);
    let (pad, lengths) = random_padding(b, s, &mut rng);
    let mask = key_padding_broadcast(&pad, 3).unwrap();
    let (ctx, w) = l
        .forward(
            &Var::constant(xq.clone()),
            &Var::constant(xkv.clone()),
            Some(&mask),
        )
        .unwrap();
    let pv: Vec<Vec<f64>> = params.vars().iter().map(|v| f64s(&v.value())).collect();
    let q = ref_linear(&f64s(&xq), &pv[0], None, b * t, dq, dk);
    let k = ref_linear(&f64s(&xkv), &pv[1], None, b * s, dkv, dk);
    let v = ref_linear(&f64s(&xkv), &pv[2], None, b * s, dkv, dv);
    let as_t = |x: Vec<f64>, shape: &[usize]| {
        Tensor::from_vec(x.into_iter().map(|x| x as f32).collect(), shape)
    };
    // The f32-rounded projections feed the f64 attention reference (the projections are tested
    // by the linear layer's own tests).
    let (rc, rw) = reference(
        &as_t(q, &[b, t, dk]),
        &as_t(k, &[b, s, dk]),
        &as_t(v, &[b, s, dv]),
        b,
        t,
        s,
        |g, _, j| j >= lengths[g],
    );
    assert_close(&ctx.to_tensor(), &rc, 1e-5, "context");
    assert_close(&w.to_tensor(), &rw, 1e-5, "weights");
    // Shapes that do not fit are errors.
    let bad = Var::constant(Tensor::zeros(&[b, t, dq + 1]));
    assert!(l.forward(&bad, &Var::constant(xkv.clone()), None).is_err());
    let other_batch = Var::constant(Tensor::zeros(&[b + 1, s, dkv]));
    assert!(l.forward(&Var::constant(xq), &other_batch, None).is_err());
}

#[test]
fn layer_gradient_check_of_inputs_and_parameters() {
    let mut rng = Rng::new(34);
    let mask = combine(
        &key_padding_broadcast(&padding_mask(&[4, 3], 4).unwrap(), 3).unwrap(),
        &causal_mask(4),
    )
    .unwrap();
    let inputs = vec![
        Tensor::randn(&[2, 4, 3], 0.0, 1.0, &mut rng),
        Tensor::randn(&[4, 3], 0.0, 0.6, &mut rng),
        Tensor::randn(&[4, 3], 0.0, 0.6, &mut rng),
        Tensor::randn(&[2, 3], 0.0, 0.6, &mut rng),
    ];
    let r = check_gradients(
        |v| {
            // Self-attention: Q, K and V from the same x.
            let (c, w) = layer(&v[1..]).forward(&v[0], &v[0], Some(&mask)).unwrap();
            flat_pair(&c, &w)
        },
        &inputs,
        1e-2,
        6,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}

fn self_attention(l: &ScaledDotProductAttention, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
    let x = Var::constant(x.clone());
    l.forward(&x, &x, mask).unwrap().0.to_tensor()
}

#[test]
fn with_a_causal_mask_output_t_ignores_inputs_after_t() {
    let mut rng = Rng::new(35);
    let mut params = Params::new();
    let l = ScaledDotProductAttention::new(&mut params, "a", 4, 4, 4, 4, &mut rng);
    let (b, len, d) = (2, 6, 4);
    let x = Tensor::randn(&[b, len, d], 0.0, 1.0, &mut rng);
    let mask = causal_mask(len);
    let base = self_attention(&l, &x, Some(&mask));
    for t in 0..len - 1 {
        let mut changed = x.clone();
        for row in 0..b {
            for x in &mut changed.data_mut()[(row * len + t + 1) * d..(row + 1) * len * d] {
                *x = 10.0 * rng.normal();
            }
        }
        let out = self_attention(&l, &changed, Some(&mask));
        for row in 0..b {
            let r = (row * len) * d..(row * len + t + 1) * d;
            assert_eq!(&out.data()[r.clone()], &base.data()[r], "t = {t}");
            let later = (row * len + t + 1) * d..(row + 1) * len * d;
            assert_ne!(&out.data()[later.clone()], &base.data()[later]);
        }
    }
}

#[test]
fn changing_a_padded_key_changes_no_output() {
    let mut rng = Rng::new(36);
    let mut params = Params::new();
    let l = ScaledDotProductAttention::new(&mut params, "a", 3, 5, 4, 6, &mut rng);
    let xq = Var::constant(Tensor::randn(&[2, 3, 3], 0.0, 1.0, &mut rng));
    let mut mem = Tensor::randn(&[2, 5, 5], 0.0, 1.0, &mut rng);
    let mask = key_padding_broadcast(&padding_mask(&[5, 2], 5).unwrap(), 3).unwrap();
    let (c0, w0) = l
        .forward(&xq, &Var::constant(mem.clone()), Some(&mask))
        .unwrap();
    for x in &mut mem.data_mut()[(5 + 2) * 5..] {
        *x = 100.0 * rng.normal();
    }
    let (c1, w1) = l.forward(&xq, &Var::constant(mem), Some(&mask)).unwrap();
    assert_eq!(c0.to_tensor(), c1.to_tensor());
    assert_eq!(w0.to_tensor(), w1.to_tensor());
}

#[test]
fn self_attention_without_positions_is_permutation_equivariant() {
    let mut rng = Rng::new(37);
    let mut params = Params::new();
    let l = ScaledDotProductAttention::new(&mut params, "a", 5, 5, 4, 5, &mut rng);
    let (len, d) = (7, 5);
    let x = Tensor::randn(&[1, len, d], 0.0, 1.0, &mut rng);
    let perm = [3, 0, 6, 1, 5, 2, 4];
    let permute = |t: &Tensor| {
        let mut out = t.clone();
        for (i, &p) in perm.iter().enumerate() {
            out.data_mut()[i * d..(i + 1) * d].copy_from_slice(&t.data()[p * d..(p + 1) * d]);
        }
        out
    };
    let out = self_attention(&l, &x, None);
    let out_of_permuted = self_attention(&l, &permute(&x), None);
    assert_tensors_close(&out_of_permuted, &permute(&out), 1e-5, "f(Px) = P f(x)");
}

#[test]
fn mismatched_q_k_v_are_errors() {
    let z = |s: &[usize]| Var::constant(Tensor::zeros(s));
    assert!(scaled_dot_product(&z(&[2, 3, 4]), &z(&[2, 5, 3]), &z(&[2, 5, 4]), None).is_err());
    assert!(scaled_dot_product(&z(&[2, 3, 4]), &z(&[3, 5, 4]), &z(&[3, 5, 4]), None).is_err());
    assert!(scaled_dot_product(&z(&[2, 3, 4]), &z(&[2, 5, 4]), &z(&[2, 6, 4]), None).is_err());
    assert!(scaled_dot_product(&z(&[4]), &z(&[4]), &z(&[4]), None).is_err());
    let wrong_mask = Tensor::zeros(&[3, 3]);
    let e = scaled_dot_product(
        &z(&[2, 3, 4]),
        &z(&[2, 5, 4]),
        &z(&[2, 5, 4]),
        Some(&wrong_mask),
    );
    assert!(e.is_err());
}
