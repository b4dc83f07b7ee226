//! Masks: padding and causal masks, their combination, and the masked softmax.

mod attention_support;

use attend::attention::mask::{
    causal_mask, causal_mask_after, combine, key_padding_broadcast, masked_softmax, padding_mask,
};
use attend::attention::AttentionError;
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

#[test]
fn padding_mask_marks_positions_at_or_after_the_length() {
    let m = padding_mask(&[3, 1, 0, 4], 4).unwrap();
    assert_eq!(m.shape(), &[4, 4]);
    #[rustfmt::skip]
    let expected = [
        0., 0., 0., 1.,
        0., 1., 1., 1.,
        1., 1., 1., 1.,
        0., 0., 0., 0.,
    ];
    assert_eq!(m.data(), &expected);
}

#[test]
fn padding_mask_rejects_a_length_beyond_the_padded_length() {
    let err = padding_mask(&[2, 5], 4).unwrap_err();
    assert!(matches!(
        err,
        AttentionError::Length {
            length: 5,
            max_len: 4
        }
    ));
    assert!(err.to_string().contains("length 5 exceeds"), "{err}");
}

#[test]
fn causal_mask_blocks_the_future() {
    let m = causal_mask(3);
    assert_eq!(m.shape(), &[3, 3]);
    assert_eq!(m.data(), &[0., 1., 1., 0., 0., 1., 0., 0., 0.]);
    // Two new queries after three cached positions: query i sees keys 0..=3 + i.
    let m = causal_mask_after(2, 3);
    assert_eq!(m.shape(), &[2, 5]);
    assert_eq!(m.data(), &[0., 0., 0., 0., 1., 0., 0., 0., 0., 0.]);
    // The full causal mask's last rows are the incremental one.
    let full = causal_mask(5);
    assert_eq!(&full.data()[15..], m.data());
}

#[test]
fn key_padding_broadcasts_and_combines_with_a_causal_mask() {
    let pad = padding_mask(&[3, 2], 3).unwrap();
    let b4 = key_padding_broadcast(&pad, 4).unwrap();
    assert_eq!(b4.shape(), &[2, 1, 1, 3]);
    assert_eq!(key_padding_broadcast(&pad, 3).unwrap().shape(), &[2, 1, 3]);
    let both = combine(&b4, &causal_mask(3)).unwrap();
    assert_eq!(both.shape(), &[2, 1, 3, 3]);
    for b in 0..2 {
        for i in 0..3 {
            for j in 0..3 {
                let want = j > i || j >= [3, 2][b];
                assert_eq!(
                    both.data()[b * 9 + i * 3 + j] == 1.0,
                    want,
                    "b{b} i{i} j{j}"
                );
            }
        }
    }
    assert!(combine(&pad, &Tensor::zeros(&[4, 4])).is_err());
    assert!(key_padding_broadcast(&b4, 4).is_err());
}

#[test]
fn masked_softmax_matches_the_reference_and_zeroes_masked_weights() {
    let mut rng = Rng::new(11);
    for _ in 0..5 {
        let (b, t, s) = (1 + rng.below(4), 1 + rng.below(5), 1 + rng.below(7));
        let scores = Tensor::randn(&[b, t, s], 0.0, 2.0, &mut rng);
        let (pad, lengths) = random_padding(b, s, &mut rng);
        let mask = key_padding_broadcast(&pad, 3).unwrap();
        let w = masked_softmax(&Var::constant(scores.clone()), Some(&mask)).unwrap();
        let w = w.to_tensor();
        let x = f64s(&scores);
        let mut expected = Vec::new();
        for (r, row) in x.chunks(s).enumerate() {
            let len = lengths[r / t];
            expected.extend(ref_masked_softmax(row, |j| j >= len));
        }
        assert_close(&w, &expected, 1e-6, "masked softmax");
        assert_rows_are_distributions(&w);
        for (r, row) in w.rows().enumerate() {
            assert!(row[lengths[r / t]..].iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn a_fully_masked_row_gets_zero_weights_and_zero_gradient() {
    let scores = Var::parameter(Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 0.5, -1.0, 2.0],
        &[2, 3],
    ));
    let mask = padding_mask(&[0, 2], 3).unwrap();
    let w = masked_softmax(&scores, Some(&mask)).unwrap();
    assert_eq!(&w.value().data()[..3], &[0.0, 0.0, 0.0]);
    assert!(w.value().data().iter().all(|x| x.is_finite()));
    w.backward_with(Tensor::ones(&[2, 3]));
    let g = grad(&scores);
    assert!(g.data().iter().all(|x| x.is_finite()));
    assert_eq!(&g.data()[..3], &[0.0, 0.0, 0.0]);
}

#[test]
fn masked_softmax_rejects_a_mask_that_does_not_fit() {
    let scores = Var::constant(Tensor::zeros(&[2, 3, 4]));
    let err = masked_softmax(&scores, Some(&Tensor::zeros(&[2, 5]))).unwrap_err();
    assert!(
        err.to_string().contains("broadcasts to the scores"),
        "{err}"
    );
    // A mask may broadcast up to the scores, never enlarge them.
    assert!(masked_softmax(&scores, Some(&Tensor::zeros(&[5, 3, 4]))).is_err());
}

#[test]
fn masked_softmax_gradient_check() {
    let mut rng = Rng::new(5);
    let scores = Tensor::randn(&[2, 3, 5], 0.0, 1.0, &mut rng);
    let mask = combine(
        &key_padding_broadcast(&padding_mask(&[5, 3], 5).unwrap(), 3).unwrap(),
        &causal_mask_after(3, 2),
    )
    .unwrap();
    let r = check_gradients(
        |v| masked_softmax(&v[0], Some(&mask)).unwrap(),
        &[scores],
        1e-2,
        7,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}
