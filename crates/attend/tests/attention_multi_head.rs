//! Multi-head attention: PyTorch golden values, float64 reference, gradients, the KV cache, and the
//! invariants (padding, causality, permutation equivariance).

mod attention_support;

use attend::attention::mask::{causal_mask, padding_mask};
use attend::attention::{AttentionError, KvCache, Mask, MultiHeadAttention};
use attend::nn::{Linear, Params};
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

/// The layer over `[in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias]`.
fn layer(p: &[Var], heads: usize) -> MultiHeadAttention {
    MultiHeadAttention {
        in_proj_weight: p[0].clone(),
        in_proj_bias: p[1].clone(),
        out_proj: Linear {
            weight: p[2].clone(),
            bias: Some(p[3].clone()),
        },
        heads,
        dropout: 0.0,
    }
}

/// The plain path of [`MultiHeadAttention::forward`] (weights returned): `query` over `memory`
/// (`None`: over itself), batch row `b` seeing keys `j < key_lengths[b]`, causal or not.
fn plain(
    l: &MultiHeadAttention,
    query: &Var,
    memory: Option<&Var>,
    key_lengths: Option<&[usize]>,
    causal: bool,
    rng: Option<&mut Rng>,
) -> Result<(Var, Var), AttentionError> {
    let mask = Mask {
        key_lengths,
        causal,
    };
    let (out, weights) = l.forward(query, memory, mask, true, rng)?;
    Ok((out, weights.expect("weights were asked for")))
}

/// The key lengths of a key padding mask `[B, S]` (1 = pad) that pads the end of every row.
fn lengths_of(pad: &Tensor) -> Vec<usize> {
    let lengths: Vec<usize> = pad
        .rows()
        .map(|row| row.iter().filter(|&&x| x == 0.0).count())
        .collect();
    assert_eq!(
        *pad,
        padding_mask(&lengths, pad.dim(1)).unwrap(),
        "padding at the end"
    );
    lengths
}

const PARAMS: [&str; 4] = [
    "in_proj_weight",
    "in_proj_bias",
    "out_proj.weight",
    "out_proj.bias",
];

fn random_layer(d: usize, heads: usize, rng: &mut Rng) -> MultiHeadAttention {
    let mut params = Params::new();
    let l = MultiHeadAttention::new(&mut params, "mha", d, heads, 0.0, rng).unwrap();
    // Non-zero biases, so that the test sees them.
    for (_, v) in params.iter() {
        let shape = v.shape();
        *v.value_mut() = Tensor::randn(&shape, 0.0, 0.4, rng);
    }
    l
}

/// Mean over heads: `[B, H, T, S] → [B, T, S]` (PyTorch's default `average_attn_weights`).
fn mean_over_heads(w: &Tensor) -> Tensor {
    let (b, h, t, s) = (w.dim(0), w.dim(1), w.dim(2), w.dim(3));
    let mut out = vec![0.0; b * t * s];
    for bi in 0..b {
        for hi in 0..h {
            for k in 0..t * s {
                out[bi * t * s + k] += w.data()[(bi * h + hi) * t * s + k] / h as f32;
            }
        }
    }
    Tensor::from_vec(out, &[b, t, s])
}

#[test]
fn equals_pytorch_multihead_attention_cross_and_self() {
    let f = fixture("mha");
    for case in ["cross", "self"] {
        let t = |n: &str| get(&f, &format!("{case}.{n}"));
        let inputs: &[&str] = if case == "cross" {
            &["query", "memory"]
        } else {
            &["x"]
        };
        for (which, out_index) in [("grad", 0), ("grad_w", 1)] {
            let params: Vec<Var> = PARAMS.iter().map(|n| param(t(n))).collect();
            let l = layer(&params, 4);
            let xs: Vec<Var> = inputs.iter().map(|n| param(t(n))).collect();
            let (out, w) = if case == "cross" {
                let pad = t("key_padding_mask");
                plain(
                    &l,
                    &xs[0],
                    Some(&xs[1]),
                    Some(&lengths_of(&pad)),
                    false,
                    None,
                )
                .unwrap()
            } else {
                let causal = t("attn_mask");
                assert_eq!(
                    causal,
                    causal_mask(5),
                    "the fixture's mask is the causal mask"
                );
                plain(&l, &xs[0], None, None, true, None).unwrap()
            };
            assert_tensors_close(&out.to_tensor(), &t("attn_output"), 1e-5, "output");
            let wt = w.to_tensor();
            assert_tensors_close(&wt, &t("attn_weights_per_head"), 1e-5, "weights");
            let mean = mean_over_heads(&wt);
            assert_tensors_close(&mean, &t("attn_weights"), 1e-5, "mean weights");
            if out_index == 0 {
                out.backward_with(t("grad_out.attn_output"));
            } else {
                w.backward_with(t("grad_out.attn_weights_per_head"));
            }
            for (n, v) in PARAMS.iter().chain(inputs).zip(params.iter().chain(&xs)) {
                let key = format!("{which}.{n}");
                assert_tensors_close(&grad(v), &t(&key), 1e-5, &format!("{case}.{key}"));
            }
        }
    }
}

/// f64 reference: `(output [B, T, d], weights [B, H, T, S])`.
fn reference(
    l: &MultiHeadAttention,
    query: &Tensor,
    memory: &Tensor,
    masked: impl Fn(usize, usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let (b, t, s, d, h) = (
        query.dim(0),
        query.dim(1),
        memory.dim(1),
        query.dim(2),
        l.heads,
    );
    let dh = d / h;
    let w = f64s(&l.in_proj_weight.value());
    let bias = f64s(&l.in_proj_bias.value());
    let proj = |x: &Tensor, part: usize, rows: usize| {
        ref_linear(
            &f64s(x),
            &w[part * d * d..(part + 1) * d * d],
            Some(&bias[part * d..(part + 1) * d]),
            rows,
            d,
            d,
        )
    };
    let (q, k, v) = (
        proj(query, 0, b * t),
        proj(memory, 1, b * s),
        proj(memory, 2, b * s),
    );
    // Head hd of row bi: columns hd·dh..(hd+1)·dh.
    let head = |x: &[f64], bi: usize, hd: usize, len: usize| -> Vec<f64> {
        (0..len)
            .flat_map(|i| {
                let start = (bi * len + i) * d + hd * dh;
                x[start..start + dh].to_vec()
            })
            .collect()
    };
    let mut concat = vec![0.0; b * t * d];
    let mut weights = Vec::new();
    for bi in 0..b {
        for hd in 0..h {
            let e = ref_scores(
                &head(&q, bi, hd, t),
                &head(&k, bi, hd, s),
                t,
                s,
                dh,
                1.0 / (dh as f64).sqrt(),
            );
            let (c, a) =
                ref_softmax_context(&e, &head(&v, bi, hd, s), t, s, dh, |i, j| masked(bi, i, j));
            for i in 0..t {
                let dst = (bi * t + i) * d + hd * dh;
                concat[dst..dst + dh].copy_from_slice(&c[i * dh..(i + 1) * dh]);
            }
            weights.extend(a);
        }
    }
    let out = ref_linear(
        &concat,
        &f64s(&l.out_proj.weight.value()),
        Some(&f64s(&l.out_proj.bias.as_ref().expect("bias").value())),
        b * t,
        d,
        d,
    );
    (out, weights)
}

#[test]
fn matches_a_float64_reference_on_random_shapes() {
    let mut rng = Rng::new(41);
    for round in 0..6 {
        let heads = 1 + rng.below(4);
        let d = heads * (1 + rng.below(4));
        let (b, t) = (1 + rng.below(3), 1 + rng.below(5));
        let is_self = round % 2 == 0;
        let s = if is_self { t } else { 1 + rng.below(6) };
        let l = random_layer(d, heads, &mut rng);
        let query = Tensor::randn(&[b, t, d], 0.0, 1.0, &mut rng);
        let memory = if is_self {
            query.clone()
        } else {
            Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng)
        };
        let (_, lengths) = random_padding(b, s, &mut rng);
        let (out, w) = plain(
            &l,
            &Var::constant(query.clone()),
            Some(&Var::constant(memory.clone())),
            Some(&lengths),
            is_self,
            None,
        )
        .unwrap();
        assert_eq!(out.shape(), [b, t, d]);
        assert_eq!(w.shape(), [b, heads, t, s]);
        let (ro, rw) = reference(&l, &query, &memory, |bi, i, j| {
            j >= lengths[bi] || (is_self && j > i)
        });
        assert_close(&out.to_tensor(), &ro, 1e-5, "output");
        assert_close(&w.to_tensor(), &rw, 1e-5, "weights");
        assert_rows_are_distributions(&w.to_tensor());
    }
}

#[test]
fn gradient_check_of_self_and_cross_attention() {
    let mut rng = Rng::new(42);
    let (d, heads) = (4, 2);
    let params = vec![
        Tensor::randn(&[3 * d, d], 0.0, 0.5, &mut rng),
        Tensor::randn(&[3 * d], 0.0, 0.5, &mut rng),
        Tensor::randn(&[d, d], 0.0, 0.5, &mut rng),
        Tensor::randn(&[d], 0.0, 0.5, &mut rng),
    ];
    let x = Tensor::randn(&[2, 3, d], 0.0, 1.0, &mut rng);
    let mem = Tensor::randn(&[2, 4, d], 0.0, 1.0, &mut rng);
    let inputs = [params.clone(), vec![x.clone()]].concat();
    let r = check_gradients(
        |v| {
            let (o, w) = plain(
                &layer(&v[..4], heads),
                &v[4],
                None,
                Some(&[3, 2]),
                true,
                None,
            )
            .unwrap();
            flat_pair(&o, &w)
        },
        &inputs,
        1e-2,
        8,
    );
    assert!(r.max_rel_error < 1e-2, "self: {r:?}");
    let inputs = [params, vec![x, mem]].concat();
    let r = check_gradients(
        |v| {
            let l = layer(&v[..4], heads);
            let (o, w) = plain(&l, &v[4], Some(&v[5]), Some(&[2, 4]), false, None).unwrap();
            flat_pair(&o, &w)
        },
        &inputs,
        1e-2,
        9,
    );
    assert!(r.max_rel_error < 1e-2, "cross: {r:?}");
}

#[test]
fn cached_incremental_decoding_equals_the_full_causal_forward() {
    let mut rng = Rng::new(43);
    // 37 positions: the cache's room grows twice (16 → 32 → 64).
    let (b, len, d, heads) = (3, 37, 8, 2);
    let l = random_layer(d, heads, &mut rng);
    let x = Var::constant(Tensor::randn(&[b, len, d], 0.0, 1.0, &mut rng));
    let (full, full_w) = plain(&l, &x, None, None, true, None).unwrap();
    let full_w = full_w.to_tensor();
    // One position at a time.
    let mut cache = KvCache::new();
    let mut steps = Vec::new();
    for t in 0..len {
        let (o, w) = l.forward_step(&x.narrow(1, t, 1), &mut cache).unwrap();
        assert_eq!(cache.len(), t + 1);
        assert_eq!(w.shape(), [b, heads, 1, t + 1]);
        // The step's weights are row t of the full weights (whose later columns are 0).
        let w = w.to_tensor();
        for g in 0..b * heads {
            let row = &full_w.data()[(g * len + t) * len..(g * len + t + 1) * len];
            assert_close(
                &Tensor::from_vec(w.data()[g * (t + 1)..(g + 1) * (t + 1)].to_vec(), &[t + 1]),
                &row[..=t].iter().map(|&x| x as f64).collect::<Vec<_>>(),
                1e-5,
                "step weights",
            );
            assert!(row[t + 1..].iter().all(|&x| x == 0.0));
        }
        steps.push(o);
    }
    let stepped = Var::concat(&steps, 1).to_tensor();
    assert_tensors_close(&stepped, &full.to_tensor(), 1e-5, "step by step vs full");
    // A prefix of 4 at once, then one at a time.
    let mut cache = KvCache::new();
    let (first, w) = l.forward_step(&x.narrow(1, 0, 4), &mut cache).unwrap();
    assert_eq!(w.shape(), [b, heads, 4, 4]);
    let mut pieces = vec![first];
    for t in 4..len {
        pieces.push(l.forward_step(&x.narrow(1, t, 1), &mut cache).unwrap().0);
    }
    let chunked = Var::concat(&pieces, 1).to_tensor();
    assert_tensors_close(&chunked, &full.to_tensor(), 1e-5, "chunked vs full");
}

#[test]
fn memory_projected_once_gives_the_full_cross_attention() {
    let mut rng = Rng::new(44);
    let (b, t, s, d, heads) = (2, 5, 6, 8, 4);
    let l = random_layer(d, heads, &mut rng);
    let q = Var::constant(Tensor::randn(&[b, t, d], 0.0, 1.0, &mut rng));
    let mem = Var::constant(Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng));
    let pad = padding_mask(&[6, 4], s).unwrap();
    let lengths = [6, 4];
    let (full, full_w) = plain(&l, &q, Some(&mem), Some(&lengths), false, None).unwrap();
    let mut outs = Vec::new();
    let mut ws = Vec::new();
    for i in 0..t {
        let (o, w) = plain(
            &l,
            &q.narrow(1, i, 1),
            Some(&mem),
            Some(&lengths),
            false,
            None,
        )
        .unwrap();
        outs.push(o);
        ws.push(w);
    }
    let stepped = Var::concat(&outs, 1).to_tensor();
    assert_tensors_close(&stepped, &full.to_tensor(), 1e-5, "cross step by step");
    let stepped_w = Var::concat(&ws, 2).to_tensor();
    assert_tensors_close(&stepped_w, &full_w.to_tensor(), 1e-5, "cross weights");
    // The decoding-step path (memory kept as [B, S, 2d], the step kernel) gives the same, all t
    // queries at once, and on rows selected for beam search.
    let step_memory = l.project_step_memory(&mem).unwrap();
    assert_eq!((step_memory.batch(), step_memory.len()), (b, s));
    let (o, w) = l.attend_step(&q, &step_memory, Some(&pad)).unwrap();
    assert_tensors_close(&o.to_tensor(), &full.to_tensor(), 1e-5, "attend_step");
    assert_tensors_close(
        &w.to_tensor(),
        &full_w.to_tensor(),
        1e-5,
        "attend_step weights",
    );
    let picked = step_memory.select_rows(&[1, 1, 0]).unwrap();
    let q_rows = |rows: &[usize]| {
        let qt = q.to_tensor();
        Var::constant(qt.select_rows(rows))
    };
    let (o, _) = l
        .attend_step(
            &q_rows(&[1, 1, 0]),
            &picked,
            Some(&pad.select_rows(&[1, 1, 0])),
        )
        .unwrap();
    let want = full.to_tensor().select_rows(&[1, 1, 0]);
    assert_tensors_close(&o.to_tensor(), &want, 1e-5, "selected rows");
    assert!(step_memory.select_rows(&[2]).is_err());
    assert!(l.attend_step(&q_rows(&[0]), &step_memory, None).is_err());
}

/// Beam search's selections of a projected memory (runs of one sentence's rows, sentences
/// leaving, then an arbitrary selection) give the cross-attention of the selected memory rows.
#[test]
fn grouped_memory_rows_give_the_selected_rows_cross_attention() {
    let mut rng = Rng::new(46);
    let (s, d, heads, n) = (6, 8, 4, 2);
    let l = random_layer(d, heads, &mut rng);
    let mem = Tensor::randn(&[3, s, d], 0.0, 1.0, &mut rng);
    let lengths = [6, 4, 5];
    let pad = padding_mask(&lengths, s).unwrap();
    let mut memory = l.project_step_memory(&Var::constant(mem.clone())).unwrap();
    // Sentences (rows of `mem`) behind the batch rows after each selection.
    let mut sentences: Vec<usize> = (0..3).collect();
    let selections: [&[u32]; 5] = [
        &[0, 0, 0, 1, 1, 1, 2, 2, 2],
        &[2, 0, 1, 7, 7, 6, 3, 5, 4],
        &[0, 1, 2, 6, 7, 8],
        &[5, 5, 0, 1, 3, 2],
        &[1, 0, 0],
    ];
    for rows in selections {
        memory = memory.select_rows(rows).unwrap();
        sentences = rows.iter().map(|&r| sentences[r as usize]).collect();
        let b = sentences.len();
        assert_eq!(memory.batch(), b);
        let q = Var::constant(Tensor::randn(&[b, n, d], 0.0, 1.0, &mut rng));
        let (o, w) = l
            .attend_step(&q, &memory, Some(&pad.select_rows(&sentences)))
            .unwrap();
        let picked = Var::constant(mem.select_rows(&sentences));
        let lens: Vec<usize> = sentences.iter().map(|&i| lengths[i]).collect();
        let (want, want_w) = plain(&l, &q, Some(&picked), Some(&lens), false, None).unwrap();
        assert_tensors_close(&o.to_tensor(), &want.to_tensor(), 1e-5, "grouped rows");
        assert_tensors_close(&w.to_tensor(), &want_w.to_tensor(), 1e-5, "grouped weights");
    }
    assert!(memory.select_rows(&[3]).is_err());
}

#[test]
fn selecting_cache_rows_equals_decoding_the_selected_rows() {
    let mut rng = Rng::new(45);
    let (b, len, d, heads) = (3, 4, 6, 3);
    let l = random_layer(d, heads, &mut rng);
    let x = Tensor::randn(&[b, len, d], 0.0, 1.0, &mut rng);
    let rows = [2u32, 0, 2, 1];
    let mut cache = KvCache::new();
    l.forward_step(&Var::constant(x.clone()).narrow(1, 0, 3), &mut cache)
        .unwrap();
    cache.select_rows(&rows).unwrap();
    let last: Vec<f32> = rows
        .iter()
        .flat_map(|&r| {
            let start = (r as usize * len + 3) * d;
            x.data()[start..start + d].to_vec()
        })
        .collect();
    let (o, _) = l
        .forward_step(
            &Var::constant(Tensor::from_vec(last, &[rows.len(), 1, d])),
            &mut cache,
        )
        .unwrap();
    let (full, _) = {
        let xv = Var::constant(x.clone());
        plain(&l, &xv, None, None, true, None).unwrap()
    };
    let full = full.to_tensor();
    for (i, &r) in rows.iter().enumerate() {
        let want = &full.data()[(r as usize * len + 3) * d..(r as usize * len + 4) * d];
        assert_close(
            &Tensor::from_vec(o.value().data()[i * d..(i + 1) * d].to_vec(), &[d]),
            &want.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            1e-5,
            "selected row",
        );
    }
    assert!(matches!(
        cache.select_rows(&[7]),
        Err(AttentionError::Row { row: 7, .. })
    ));
    // A step whose batch differs from the cache's is an error, and the cache survives it.
    let wrong = Var::constant(Tensor::zeros(&[2, 1, d]));
    assert!(l.forward_step(&wrong, &mut cache).is_err());
    assert_eq!(cache.len(), 4);
}

#[test]
fn invariants_padding_causality_and_permutation_equivariance() {
    let mut rng = Rng::new(46);
    let (b, len, d, heads) = (2, 6, 8, 2);
    let l = random_layer(d, heads, &mut rng);
    let x = Tensor::randn(&[b, len, d], 0.0, 1.0, &mut rng);
    let run = |x: &Tensor, lengths: Option<&[usize]>, causal: bool| {
        let v = Var::constant(x.clone());
        let (o, w) = plain(&l, &v, None, lengths, causal, None).unwrap();
        (o.to_tensor(), w.to_tensor())
    };
    // Padding: rows of padded positions change freely; the unpadded outputs do not move.
    let lengths = [6, 4];
    let (o0, w0) = run(&x, Some(&lengths), false);
    assert_rows_are_distributions(&w0);
    let mut x1 = x.clone();
    for x in &mut x1.data_mut()[(len + 4) * d..] {
        *x = 30.0 * rng.normal();
    }
    let (o1, _) = run(&x1, Some(&lengths), false);
    for (row, &n) in lengths.iter().enumerate() {
        let r = row * len * d..(row * len + n) * d;
        assert_eq!(&o0.data()[r.clone()], &o1.data()[r]);
    }
    // Causality: output t is independent of inputs after t.
    let (c0, _) = run(&x, None, true);
    for t in 0..len - 1 {
        let mut xt = x.clone();
        for row in 0..b {
            for x in &mut xt.data_mut()[(row * len + t + 1) * d..(row + 1) * len * d] {
                *x += 5.0 * rng.normal();
            }
        }
        let (ct, _) = run(&xt, None, true);
        for row in 0..b {
            let r = row * len * d..(row * len + t + 1) * d;
            assert_eq!(&c0.data()[r.clone()], &ct.data()[r], "t = {t}");
        }
    }
    // Permutation equivariance without positions or masks.
    let perm = [4, 2, 0, 5, 1, 3];
    let permute = |t: &Tensor| {
        let mut out = t.clone();
        for row in 0..b {
            for (i, &p) in perm.iter().enumerate() {
                let (dst, src) = ((row * len + i) * d, (row * len + p) * d);
                out.data_mut()[dst..dst + d].copy_from_slice(&t.data()[src..src + d]);
            }
        }
        out
    };
    let (o, _) = run(&x, None, false);
    let (op, _) = run(&permute(&x), None, false);
    assert_tensors_close(&op, &permute(&o), 1e-5, "f(Px) = P f(x)");
}

#[test]
fn dropout_acts_on_the_weights_only_while_training() {
    let mut rng = Rng::new(47);
    let mut params = Params::new();
    let l = MultiHeadAttention::new(&mut params, "m", 8, 2, 0.5, &mut rng).unwrap();
    let x = Var::constant(Tensor::randn(&[2, 5, 8], 0.0, 1.0, &mut rng));
    let (eval, eval_w) = plain(&l, &x, None, None, false, None).unwrap();
    let (train, train_w) = plain(&l, &x, None, None, false, Some(&mut Rng::new(1))).unwrap();
    let (again, _) = plain(&l, &x, None, None, false, Some(&mut Rng::new(1))).unwrap();
    assert_eq!(
        train_w.to_tensor(),
        eval_w.to_tensor(),
        "weights are the softmax"
    );
    assert_ne!(train.to_tensor(), eval.to_tensor());
    assert_eq!(train.to_tensor(), again.to_tensor(), "seeded");
}

#[test]
fn parameters_have_pytorch_names_and_bad_configurations_are_errors() {
    let mut rng = Rng::new(48);
    let mut params = Params::new();
    let l = MultiHeadAttention::new(&mut params, "dec.self_attn", 12, 3, 0.1, &mut rng).unwrap();
    let named: Vec<(&str, Vec<usize>)> = params.iter().map(|(n, v)| (n, v.shape())).collect();
    assert_eq!(
        named,
        [
            ("dec.self_attn.in_proj_weight", vec![36, 12]),
            ("dec.self_attn.in_proj_bias", vec![36]),
            ("dec.self_attn.out_proj.weight", vec![12, 12]),
            ("dec.self_attn.out_proj.bias", vec![12]),
        ]
    );
    assert_eq!(l.d_model(), 12);
    let err = MultiHeadAttention::new(&mut Params::new(), "m", 10, 4, 0.0, &mut rng)
        .err()
        .expect("10 is not divisible by 4");
    assert!(err.to_string().contains("not divisible"), "{err}");
    let x = Var::constant(Tensor::zeros(&[2, 3, 12]));
    let m = Var::constant(Tensor::zeros(&[2, 4, 12]));
    let e = |r: Result<(Var, Var), AttentionError>| r.expect_err("an error").to_string();
    let wrong_lengths = [4, 4, 4];
    assert!(e(plain(&l, &x, Some(&m), Some(&wrong_lengths), false, None)).contains("[2, 4]"));
    // Causal cross-attention: 3 queries, 4 keys.
    assert!(e(plain(&l, &x, Some(&m), None, true, None)).contains("[3, 4]"));
    let narrow = Var::constant(Tensor::zeros(&[2, 3, 8]));
    assert!(e(plain(&l, &narrow, Some(&m), None, false, None)).contains("[B, L, 12]"));
    let other_batch = Var::constant(Tensor::zeros(&[3, 4, 12]));
    assert!(plain(&l, &x, Some(&other_batch), None, false, None).is_err());
}

/// The fused path (flash kernel, no weights) equals the plain layer ops on random shapes — odd
/// sizes, one position, padded keys, causal self-attention, with and without dropout on the
/// weights (the same seed drops the same weights on both paths) — forward and backward (the
/// gradients of the inputs and of all four parameters).
#[test]
fn fused_path_equals_the_plain_path_forward_and_backward() {
    let mut rng = Rng::new(4242);
    for &(b, t, s, d, heads) in &[
        (3, 7, 5, 12, 3),
        (2, 1, 9, 8, 2),
        (1, 13, 13, 16, 4),
        (4, 6, 1, 6, 1),
    ] {
        let mut l = random_layer(d, heads, &mut rng);
        l.dropout = 0.3;
        let q0 = Tensor::randn(&[b, t, d], 0.0, 1.0, &mut rng);
        let m0 = Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng);
        let (_, lens) = random_padding(b, s, &mut rng);
        let g = Tensor::randn(&[b, t, d], 0.0, 1.0, &mut rng);
        let params: Vec<Var> = vec![
            l.in_proj_weight.clone(),
            l.in_proj_bias.clone(),
            l.out_proj.weight.clone(),
            l.out_proj.bias.clone().unwrap(),
        ];
        // Runs one path and returns its output and the gradients of [query, memory, params…];
        // `dropout`: the seed of the dropout rng (training), or no dropout.
        let run = |fused: bool, cross: bool, dropout: Option<u64>| {
            for p in &params {
                p.zero_grad();
            }
            let mut rng = dropout.map(Rng::new);
            let rng = rng.as_mut();
            let (q, m) = (param(q0.clone()), param(m0.clone()));
            let (memory, mask) = if cross {
                (Some(&m), Mask::padding(&lens))
            } else {
                (None, Mask::CAUSAL)
            };
            // Without weights the flash kernel runs, with them the plain ops.
            let (out, weights) = l.forward(&q, memory, mask, !fused, rng).unwrap();
            assert_eq!(weights.is_some(), !fused);
            out.backward_with(g.clone());
            let mut grads = vec![grad(&q)];
            if cross {
                grads.push(grad(&m));
            }
            grads.extend(params.iter().map(grad));
            (out.to_tensor(), grads)
        };
        for (cross, dropout) in [
            (true, None),
            (false, None),
            (true, Some(7)),
            (false, Some(8)),
        ] {
            let what =
                format!("{b}×{t}×{s}×{d}, {heads} heads, cross {cross}, dropout {dropout:?}");
            let (plain, plain_grads) = run(false, cross, dropout);
            let (fused, fused_grads) = run(true, cross, dropout);
            assert_tensors_close(&fused, &plain, 1e-5, &format!("{what}: output"));
            // Absolute on the scale of the gradient: with one key the query's gradient is 0 up to
            // rounding on both paths.
            for (i, (f, p)) in fused_grads.iter().zip(&plain_grads).enumerate() {
                let scale = p.data().iter().fold(1.0f32, |m, x| m.max(x.abs()));
                let diff = f.max_abs_diff(p);
                assert!(
                    diff <= 1e-4 * scale,
                    "{what}: gradient {i} differs by {diff}"
                );
            }
        }
    }
}
