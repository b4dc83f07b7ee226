//! Inverted dropout: seeded reproducibility, the keep rate on a large tensor, survivors scaled by
//! 1/(1−p), p = 0 is the identity, and the backward applies the forward's mask.

mod common;

use common::assert_grads;
use tensor::{Rng, Tensor, Var};

#[test]
fn the_same_seed_gives_the_same_mask_and_another_seed_another() {
    let x = Var::constant(Tensor::ones(&[64, 64]));
    let a = x.dropout(0.3, &mut Rng::new(7)).to_tensor();
    let b = x.dropout(0.3, &mut Rng::new(7)).to_tensor();
    let c = x.dropout(0.3, &mut Rng::new(8)).to_tensor();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Two draws from one generator differ too.
    let mut rng = Rng::new(7);
    let d = x.dropout(0.3, &mut rng).to_tensor();
    let e = x.dropout(0.3, &mut rng).to_tensor();
    assert_eq!(a, d);
    assert_ne!(d, e);
}

#[test]
fn keep_rate_and_scale_match_p_on_a_large_tensor() {
    let n = 400_000;
    let mut rng = Rng::new(81);
    let x = Tensor::uniform(&[n], 0.5, 1.5, &mut rng);
    for p in [0.1f32, 0.3, 0.5, 0.9] {
        let y = Var::constant(x.clone()).dropout(p, &mut rng).to_tensor();
        let scale = 1.0 / (1.0 - p);
        let mut kept = 0usize;
        for (&yi, &xi) in y.data().iter().zip(x.data()) {
            if yi != 0.0 {
                kept += 1;
                assert!(
                    (yi - xi * scale).abs() <= 1e-6 * yi.abs(),
                    "{yi} vs {xi}·{scale}"
                );
            }
        }
        // Binomial(n, 1 − p): standard deviation of the rate ≤ 0.5/√n ≈ 8e−4; allow 5σ.
        let rate = kept as f64 / n as f64;
        assert!(
            (rate - (1.0 - p as f64)).abs() < 4e-3,
            "p = {p}: kept {rate}"
        );
        // The expectation is preserved: mean(y) ≈ mean(x).
        let (my, mx) = (
            y.data().iter().map(|&v| v as f64).sum::<f64>() / n as f64,
            x.data().iter().map(|&v| v as f64).sum::<f64>() / n as f64,
        );
        assert!((my - mx).abs() < 0.02 * mx, "p = {p}: mean {my} vs {mx}");
    }
}

#[test]
fn p_zero_is_the_identity_forward_and_backward() {
    let mut rng = Rng::new(82);
    let t = Tensor::randn(&[5, 7], 0.0, 1.0, &mut rng);
    let x = Var::parameter(t.clone());
    let y = x.dropout(0.0, &mut rng);
    assert_eq!(y.to_tensor(), t);
    let seed = Tensor::randn(&[5, 7], 0.0, 1.0, &mut rng);
    y.backward_with(seed.clone());
    assert_eq!(x.grad().unwrap(), seed);
}

#[test]
fn backward_applies_the_forward_mask() {
    let mut rng = Rng::new(83);
    let t = Tensor::uniform(&[40, 30], 0.5, 1.5, &mut rng);
    let x = Var::parameter(t.clone());
    let p = 0.4;
    let y = x.dropout(p, &mut rng);
    let seed = Tensor::randn(&[40, 30], 0.0, 1.0, &mut rng);
    y.backward_with(seed.clone());
    let g = x.grad().unwrap();
    let yt = y.to_tensor();
    // The mask is y / x (x ≠ 0): dx = seed · y / x.
    for i in 0..t.numel() {
        let m = yt.data()[i] / t.data()[i];
        let want = seed.data()[i] * m;
        assert!(
            (g.data()[i] - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{i}"
        );
        if yt.data()[i] == 0.0 {
            assert_eq!(g.data()[i], 0.0, "a dropped element got gradient");
        }
    }
}

#[test]
fn gradients_pass_finite_differences_with_a_fixed_seed() {
    let mut rng = Rng::new(84);
    let x = Tensor::randn(&[6, 5], 0.0, 1.0, &mut rng);
    // A fresh generator with the same seed on every evaluation: the same mask each time.
    assert_grads(
        "dropout",
        |v| v[0].dropout(0.5, &mut Rng::new(9)).tanh(),
        &[x],
        1e-2,
        2e-3,
    );
}

#[test]
#[should_panic(expected = "must be in [0, 1)")]
fn p_one_panics() {
    Var::constant(Tensor::ones(&[3])).dropout(1.0, &mut Rng::new(0));
}

/// The mask is a function of (key, element) alone: made in one piece or over the threads' chunks,
/// and any stretch of it from its own offset, it is the same.
#[test]
fn the_mask_does_not_depend_on_how_it_is_split() {
    use tensor::ops::dropout::dropout_mask;
    let n = 300_001; // several parallel chunks and a partial one
    let whole = dropout_mask(42, n, 0.25);
    // Below two chunks (2 · 65 536) the mask is made in one piece on the calling thread.
    let head = dropout_mask(42, 131_071, 0.25);
    assert_eq!(&whole[..head.len()], &head[..]);
    let kept = whole.iter().filter(|&&m| m != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.75).abs() < 4e-3, "kept {kept}");
    assert!(whole.iter().all(|&m| m == 0.0 || m == 1.0 / 0.75));
    assert_ne!(dropout_mask(43, 1000, 0.25), head[..1000]);
}
