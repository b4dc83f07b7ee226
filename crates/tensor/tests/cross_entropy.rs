//! Cross-entropy with label smoothing and an ignored index against float64 references: without
//! smoothing it is the mean NLL; with smoothing ε it is PyTorch's
//! `(1 − ε)·nll + ε·mean_v(−log p_v)` averaged over counted rows; ignored rows contribute nothing.
//! Gradient checks with and without smoothing and ignored rows.

mod common;

use common::{assert_close, assert_grads, f64s};
use tensor::ops::cross_entropy::nll_sum;
use tensor::{Rng, Tensor, Var};

/// Plain float64 log-softmax of one row.
fn log_softmax64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

/// PyTorch's `F.cross_entropy(z, y, ignore_index, label_smoothing=ε, reduction='mean')` in f64:
/// per counted row `(1 − ε)(−log p_y) + ε·mean_v(−log p_v)`, averaged over the counted rows.
fn cross_entropy64(logits: &Tensor, targets: &[u32], ignore: Option<u32>, eps: f64) -> f64 {
    let v = logits.dim(-1);
    let (mut sum, mut count) = (0.0, 0);
    for (row, &y) in f64s(logits).chunks(v).zip(targets) {
        if Some(y) == ignore {
            continue;
        }
        let lp = log_softmax64(row);
        let nll = -lp[y as usize];
        let uniform = -lp.iter().sum::<f64>() / v as f64;
        sum += (1.0 - eps) * nll + eps * uniform;
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// Random logits `[rows, v]` and targets, every third row (on average) set to the ignored index 0.
fn batch(rows: usize, v: usize, rng: &mut Rng) -> (Tensor, Vec<u32>) {
    let logits = Tensor::randn(&[rows, v], 0.0, 2.0, rng);
    let targets = (0..rows)
        .map(|_| {
            if rng.below(3) == 0 {
                0
            } else {
                1 + rng.below(v - 1) as u32
            }
        })
        .collect();
    (logits, targets)
}

#[test]
fn without_smoothing_it_is_the_mean_negative_log_likelihood() {
    let mut rng = Rng::new(101);
    for _ in 0..10 {
        let (rows, v) = (1 + rng.below(12), 2 + rng.below(30));
        let (logits, targets) = batch(rows, v, &mut rng);
        // Plain NLL: −log p_y averaged over all rows (nothing ignored).
        let nll: f64 = f64s(&logits)
            .chunks(v)
            .zip(&targets)
            .map(|(row, &y)| -log_softmax64(row)[y as usize])
            .sum::<f64>()
            / rows as f64;
        let got = Var::constant(logits.clone()).cross_entropy(&targets, None, 0.0);
        assert_close("ce ε=0", &got.value(), &[], &[nll], 1e-6);
        let (sum, n) = nll_sum(&logits, &targets, None);
        assert_eq!(n, rows);
        assert!((sum - nll * rows as f64).abs() < 1e-5 * (1.0 + sum.abs()));
    }
}

#[test]
fn label_smoothing_matches_pytorchs_definition() {
    let mut rng = Rng::new(102);
    for eps in [0.0, 0.1, 0.25, 1.0] {
        for ignore in [None, Some(0)] {
            let (logits, targets) = batch(9, 7, &mut rng);
            let want = cross_entropy64(&logits, &targets, ignore, eps as f64);
            let got = Var::constant(logits).cross_entropy(&targets, ignore, eps);
            assert_close(
                &format!("ε={eps} ignore {ignore:?}"),
                &got.value(),
                &[],
                &[want],
                1e-6,
            );
        }
    }
}

#[test]
fn known_values_from_pytorch() {
    // Printed by torch 2.15 (/opt/peers):
    //   F.cross_entropy(torch.tensor([[1., 2., 3.], [1., 0., -1.]]), torch.tensor([2, 0]),
    //                   label_smoothing=0.1)                                  → 0.5076059103012085
    //   z = torch.tensor([[1., 2., 3., .5], [1., 0., -1., 2.], [.3, .2, .1, 0.]]); y = [3, 0, 1]
    //   F.cross_entropy(z, y, ignore_index=0, label_smoothing=0.2)           → 2.044154405593872
    //   F.cross_entropy(z, y, label_smoothing=0.2)                           → 1.8761663436889648
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 1.0, 0.0, -1.0], &[2, 3]);
    let z = Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 0.5, 1.0, 0.0, -1.0, 2.0, 0.3, 0.2, 0.1, 0.0],
        &[3, 4],
    );
    let y = [3, 0, 1];
    for (got, want) in [
        (
            Var::constant(a).cross_entropy(&[2, 0], None, 0.1),
            0.507_605_910_301_208_5,
        ),
        (
            Var::constant(z.clone()).cross_entropy(&y, Some(0), 0.2),
            2.044_154_405_593_872,
        ),
        (
            Var::constant(z).cross_entropy(&y, None, 0.2),
            1.876_166_343_688_964_8,
        ),
    ] {
        let got = got.item() as f64;
        assert!((got - want).abs() < 1e-6 * want, "{got} vs PyTorch {want}");
    }
}

#[test]
fn ignored_rows_contribute_nothing_to_loss_or_other_gradients() {
    let mut rng = Rng::new(103);
    let (logits, mut targets) = batch(10, 6, &mut rng);
    targets[2] = 0;
    targets[7] = 0;
    targets[4] = 3;
    let run = |logits: &Tensor| {
        let z = Var::parameter(logits.clone());
        let loss = z.cross_entropy(&targets, Some(0), 0.1);
        loss.backward();
        (loss.item(), z.grad().unwrap())
    };
    let (l1, g1) = run(&logits);
    let mut changed = logits.clone();
    for (r, &y) in targets.iter().enumerate() {
        if y == 0 {
            for j in 0..6 {
                changed.data_mut()[r * 6 + j] = 50.0 * rng.normal();
            }
        }
    }
    let (l2, g2) = run(&changed);
    assert_eq!(l1, l2, "the loss changed with ignored rows' logits");
    assert_eq!(g1, g2, "gradients changed with ignored rows' logits");
    for (r, &y) in targets.iter().enumerate() {
        if y == 0 {
            assert!(g1.data()[r * 6..(r + 1) * 6].iter().all(|&g| g == 0.0));
        }
    }
    // The mean is over counted rows only: dropping the ignored rows gives the same loss.
    let kept: Vec<usize> = (0..10).filter(|&r| targets[r] != 0).collect();
    let sub: Vec<f32> = kept
        .iter()
        .flat_map(|&r| logits.data()[r * 6..(r + 1) * 6].to_vec())
        .collect();
    let sub_targets: Vec<u32> = kept.iter().map(|&r| targets[r]).collect();
    let l3 = Var::constant(Tensor::from_vec(sub, &[kept.len(), 6]))
        .cross_entropy(&sub_targets, None, 0.1)
        .item();
    assert!((l1 - l3).abs() < 1e-6, "{l1} vs {l3}");
    let (sum, n) = nll_sum(&logits, &targets, Some(0));
    assert_eq!(n, kept.len());
    let want: f64 = kept
        .iter()
        .map(|&r| -log_softmax64(&f64s(&logits)[r * 6..(r + 1) * 6])[targets[r] as usize])
        .sum();
    assert!((sum - want).abs() < 1e-5 * (1.0 + want), "{sum} vs {want}");
}

#[test]
fn every_row_ignored_gives_zero_loss_and_zero_gradient() {
    let z = Var::parameter(Tensor::ones(&[3, 4]));
    let loss = z.cross_entropy(&[0, 0, 0], Some(0), 0.1);
    assert_eq!(loss.item(), 0.0);
    loss.backward();
    assert_eq!(z.grad().unwrap(), Tensor::zeros(&[3, 4]));
}

#[test]
fn huge_logits_stay_finite() {
    let logits = Tensor::from_vec(vec![1e4, -1e4, 0.0, 3e4, 3e4, -3e4], &[2, 3]);
    let z = Var::parameter(logits.clone());
    let loss = z.cross_entropy(&[1, 0], None, 0.1);
    let want = cross_entropy64(&logits, &[1, 0], None, 0.1);
    assert!(
        (loss.item() as f64 - want).abs() <= 1e-5 * want,
        "{} vs {want}",
        loss.item()
    );
    loss.backward();
    assert!(z.grad().unwrap().data().iter().all(|g| g.is_finite()));
}

#[test]
fn rank_3_logits_are_rows_of_the_last_axis() {
    let mut rng = Rng::new(104);
    let (flat, targets) = batch(6, 5, &mut rng);
    let three = flat.clone().reshape(&[2, 3, 5]);
    let a = Var::constant(flat)
        .cross_entropy(&targets, Some(0), 0.2)
        .item();
    let b = Var::constant(three)
        .cross_entropy(&targets, Some(0), 0.2)
        .item();
    assert_eq!(a, b);
}

#[test]
fn gradient_is_softmax_minus_the_smoothed_target_over_counted_rows() {
    // dz_i = (p_i − q_i) / n with q_i = (1 − ε)·onehot(y_i) + ε/V, zero for ignored rows, compared
    // element by element with the f64 formula (tighter than a finite difference of the mean).
    let mut rng = Rng::new(106);
    for eps in [0.0, 0.1, 0.3] {
        let (v, rows) = (7, 8);
        let (logits, targets) = batch(rows, v, &mut rng);
        let z = Var::parameter(logits.clone());
        z.cross_entropy(&targets, Some(0), eps).backward();
        let n = targets.iter().filter(|&&y| y != 0).count() as f64;
        let mut want = Vec::with_capacity(rows * v);
        for (row, &y) in f64s(&logits).chunks(v).zip(&targets) {
            let lp = log_softmax64(row);
            for (j, l) in lp.iter().enumerate() {
                let onehot = if j == y as usize { 1.0 } else { 0.0 };
                let q = (1.0 - eps as f64) * onehot + eps as f64 / v as f64;
                want.push(if y == 0 { 0.0 } else { (l.exp() - q) / n });
            }
        }
        assert_close(
            &format!("dz ε={eps}"),
            &z.grad().unwrap(),
            &[rows, v],
            &want,
            1e-6,
        );
    }
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(105);
    for eps in [0.0, 0.1] {
        for ignore in [None, Some(0)] {
            let (logits, targets) = batch(6, 5, &mut rng);
            assert_grads(
                &format!("cross_entropy ε={eps} ignore {ignore:?}"),
                |v| v[0].cross_entropy(&targets, ignore, eps),
                &[logits],
                1e-2,
                2e-3,
            );
        }
    }
}

#[test]
#[should_panic(expected = "target")]
fn a_target_past_the_vocabulary_panics() {
    Var::constant(Tensor::zeros(&[2, 3])).cross_entropy(&[1, 3], None, 0.0);
}
