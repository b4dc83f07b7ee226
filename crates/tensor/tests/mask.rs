//! Masked fill against a reference with broadcast masks, its gradient check, and the invariant that
//! values at masked positions change nothing downstream (output or gradients).

mod common;

use common::{assert_close, assert_grads, f64s, ravel, unravel};
use tensor::{Rng, Tensor, Var};

/// A 0/1 mask of `shape`, each position masked with probability ~1/3.
fn random_mask(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| if rng.below(3) == 0 { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(data, shape)
}

/// Reference: `mask[broadcast idx] != 0 ? value : x[idx]`.
fn masked_fill64(x: &Tensor, mask: &Tensor, value: f32) -> Vec<f64> {
    let off = x.rank() - mask.rank();
    (0..x.numel())
        .map(|i| {
            let idx = unravel(i, x.shape());
            let midx: Vec<usize> = mask
                .shape()
                .iter()
                .enumerate()
                .map(|(k, &d)| if d == 1 { 0 } else { idx[off + k] })
                .collect();
            if mask.data()[ravel(&midx, mask.shape())] != 0.0 {
                value as f64
            } else {
                x.data()[i] as f64
            }
        })
        .collect()
}

/// `(x shape, mask shape)`: same shape, a `[B, 1, S]` padding mask over `[B, T, S]` scores, a `[T, S]`
/// causal-style mask shared over the batch, a `[S]` mask, a scalar mask.
fn cases() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![3, 4], vec![3, 4]),
        (vec![2, 3, 5], vec![2, 1, 5]),
        (vec![2, 3, 4], vec![3, 4]),
        (vec![2, 2, 3, 4], vec![2, 1, 1, 4]),
        (vec![4, 6], vec![6]),
        (vec![2, 3], vec![]),
    ]
}

#[test]
fn forward_matches_reference_with_broadcast_masks() {
    let mut rng = Rng::new(71);
    for (sx, sm) in cases() {
        for value in [f32::NEG_INFINITY, -1e9, 0.0, 2.5] {
            let x = Tensor::randn(&sx, 0.0, 1.0, &mut rng);
            let mask = random_mask(&sm, &mut rng);
            let got = Var::constant(x.clone()).masked_fill(&mask, value);
            let want = masked_fill64(&x, &mask, value);
            assert_eq!(got.shape(), sx);
            // Exact (−∞ included): a masked position holds `value`, an unmasked one `x`.
            for (i, (&g, &w)) in got.value().data().iter().zip(&want).enumerate() {
                assert!(g as f64 == w, "{sx:?} {sm:?} at {i}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn gradients_pass_finite_differences_and_are_zero_where_masked() {
    let mut rng = Rng::new(72);
    for (sx, sm) in cases() {
        let x = Tensor::randn(&sx, 0.0, 1.0, &mut rng);
        let mask = random_mask(&sm, &mut rng);
        assert_grads(
            &format!("masked_fill {sx:?} {sm:?}"),
            |v| v[0].masked_fill(&mask, -3.0),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        let v = Var::parameter(x.clone());
        v.masked_fill(&mask, 7.0).sum_all().backward();
        let masked = masked_fill64(&Tensor::zeros(&sx), &mask, 1.0);
        let want: Vec<f64> = masked.iter().map(|&m| 1.0 - m).collect();
        assert_close("d masked_fill", &v.grad().unwrap(), &sx, &want, 0.0);
    }
}

#[test]
fn masked_values_change_nothing_downstream() {
    // scores [B, T, S] with a padding mask [B, 1, S] → softmax → weights · V: changing the scores at
    // padded keys changes neither the output nor any gradient outside those positions.
    let mut rng = Rng::new(73);
    let (b, t, s, d) = (2, 3, 5, 4);
    let mut mask = Tensor::zeros(&[b, 1, s]);
    for (batch, valid) in [(0, 3), (1, 5)] {
        for j in valid..s {
            mask.data_mut()[batch * s + j] = 1.0;
        }
    }
    // Keys at padded positions are masked for batch 0 only; batch 1 is full length.
    let scores = Tensor::randn(&[b, t, s], 0.0, 1.0, &mut rng);
    let values = Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng);
    let upstream = Tensor::randn(&[b, t, d], 0.0, 1.0, &mut rng);
    let run = |scores: &Tensor| {
        let sc = Var::parameter(scores.clone());
        let vv = Var::parameter(values.clone());
        let out = sc
            .masked_fill(&mask, f32::NEG_INFINITY)
            .softmax()
            .matmul(&vv);
        out.backward_with(upstream.clone());
        (out.to_tensor(), sc.grad().unwrap(), vv.grad().unwrap())
    };
    let (out1, gs1, gv1) = run(&scores);
    let mut changed = scores.clone();
    for i in 0..changed.numel() {
        let idx = unravel(i, &[b, t, s]);
        if mask.data()[idx[0] * s + idx[2]] != 0.0 {
            changed.data_mut()[i] = 100.0 * rng.normal();
        }
    }
    assert_ne!(changed, scores, "the test must change something");
    let (out2, gs2, gv2) = run(&changed);
    assert_eq!(out1, out2);
    assert_eq!(gs1, gs2);
    assert_eq!(gv1, gv2);
    // Padded keys get no attention, so their value rows get no gradient.
    for j in 3..s {
        assert!(gv1.data()[j * d..(j + 1) * d].iter().all(|&g| g == 0.0));
    }
    assert!(f64s(&out1).iter().all(|x| x.is_finite()));
}

#[test]
#[should_panic(expected = "mask must broadcast to x")]
fn a_mask_larger_than_x_panics() {
    Var::constant(Tensor::zeros(&[3])).masked_fill(&Tensor::zeros(&[2, 3]), 0.0);
}
