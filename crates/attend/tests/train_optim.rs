//! Adam / AdamW against a float64 hand computation, state save/resume equal to an uninterrupted run,
//! global-norm clipping, and the learning-rate schedules at known steps.

use attend::nn::params::{load_tensors, save_tensors};
use attend::train::optimizer::{clip_grad_norm, Adam, AdamConfig};
use attend::train::schedule::{Mode, Plateau, Schedule};
use tensor::{Rng, Tensor, Var};

/// `L = Σ ½ a ⊙ p² + b ⊙ p`, so `∂L/∂p = a ⊙ p + b` (a gradient that depends on the parameter).
fn quadratic(p: &Var, a: &Tensor, b: &Tensor) -> Var {
    let (a, b) = (Var::constant(a.clone()), Var::constant(b.clone()));
    p.square().mul(&a).scale(0.5).add(&b.mul(p)).sum_all()
}

struct Problem {
    params: Vec<Var>,
    a: Vec<Tensor>,
    b: Vec<Tensor>,
}

fn problem(seed: u64) -> Problem {
    let mut rng = Rng::new(seed);
    let shapes: [&[usize]; 2] = [&[3], &[2, 2]];
    Problem {
        params: shapes
            .iter()
            .map(|s| Var::parameter(Tensor::randn(s, 0.0, 1.0, &mut rng)))
            .collect(),
        a: shapes
            .iter()
            .map(|s| Tensor::uniform(s, 0.5, 2.0, &mut rng))
            .collect(),
        b: shapes
            .iter()
            .map(|s| Tensor::randn(s, 0.0, 1.0, &mut rng))
            .collect(),
    }
}

impl Problem {
    fn backward(&self) {
        for p in &self.params {
            p.zero_grad();
        }
        let loss = quadratic(&self.params[0], &self.a[0], &self.b[0]).add(&quadratic(
            &self.params[1],
            &self.a[1],
            &self.b[1],
        ));
        loss.backward();
    }
}

/// Plain f64 Adam/AdamW on the same problem, written out from the papers' update rules
/// (`√v̂ + ε` with `v̂ = v / (1 − β₂ᵗ)` is PyTorch's `√v / √(1 − β₂ᵗ) + ε`).
fn reference(pr: &Problem, cfg: AdamConfig, lrs: &[f64]) -> Vec<Vec<f64>> {
    let f = |t: &Tensor| -> Vec<f64> { t.data().iter().map(|&x| x as f64).collect() };
    let (b1, b2, eps, wd) = (
        cfg.beta1 as f64,
        cfg.beta2 as f64,
        cfg.eps as f64,
        cfg.weight_decay as f64,
    );
    let mut out = Vec::new();
    for ((p, a), b) in pr.params.iter().zip(&pr.a).zip(&pr.b) {
        let (mut p, a, b) = (f(&p.value()), f(a), f(b));
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (k, &lr) in lrs.iter().enumerate() {
            let t = (k + 1) as i32;
            for i in 0..p.len() {
                let mut g = a[i] * p[i] + b[i];
                if cfg.decoupled_weight_decay {
                    p[i] -= lr * wd * p[i];
                } else {
                    g += wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        }
        out.push(p);
    }
    out
}

const LRS: [f32; 3] = [0.1, 0.05, 0.02];

fn configs() -> [AdamConfig; 3] {
    [
        AdamConfig::default(),
        AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        },
        AdamConfig {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
            decoupled_weight_decay: true,
        },
    ]
}

#[test]
fn adam_and_adamw_match_f64_hand_computation_over_three_steps() {
    for cfg in configs() {
        let pr = problem(1);
        let want = reference(&pr, cfg, &LRS.map(|x| x as f64));
        let mut adam = Adam::new(pr.params.clone(), cfg);
        for lr in LRS {
            pr.backward();
            adam.step(lr);
        }
        for (p, w) in pr.params.iter().zip(&want) {
            for (&got, &w) in p.value().data().iter().zip(w) {
                assert!(
                    (got as f64 - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{cfg:?}: {got} vs {w}"
                );
            }
        }
    }
}

#[test]
fn first_adam_step_moves_each_weight_by_lr_against_the_gradient_sign() {
    // With bias correction, step 1 is lr · g / (|g| + ε·…) ≈ lr · sign(g).
    let pr = problem(2);
    let before: Vec<Tensor> = pr.params.iter().map(|p| p.to_tensor()).collect();
    pr.backward();
    let grads: Vec<Tensor> = pr.params.iter().map(|p| p.grad().unwrap()).collect();
    let mut adam = Adam::new(pr.params.clone(), AdamConfig::default());
    adam.step(0.01);
    for ((p, b), g) in pr.params.iter().zip(&before).zip(&grads) {
        for ((&x, &x0), &g) in p.value().data().iter().zip(b.data()).zip(g.data()) {
            assert!(((x0 - x) - 0.01 * g.signum()).abs() < 1e-6);
        }
    }
}

#[test]
fn parameters_without_gradient_are_left_alone() {
    let used = Var::parameter(Tensor::ones(&[2]));
    let unused = Var::parameter(Tensor::ones(&[3]));
    let mut adam = Adam::new(vec![used.clone(), unused.clone()], AdamConfig::default());
    used.sum_all().backward();
    adam.step(0.1);
    assert_eq!(unused.value().data(), [1.0; 3]);
    assert!(used.value().data().iter().all(|&x| (x - 0.9).abs() < 1e-6));
    let state = adam.state_tensors();
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        ["0.exp_avg", "0.exp_avg_sq", "0.step"]
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    for cfg in configs() {
        let lrs = [0.1, 0.05, 0.02, 0.03, 0.01];
        // Uninterrupted: five steps.
        let full = problem(3);
        let mut adam = Adam::new(full.params.clone(), cfg);
        for lr in lrs {
            full.backward();
            adam.step(lr);
        }
        // Two steps, save parameters and state to disk, a fresh optimizer loads them, three more.
        let first = problem(3);
        let mut adam1 = Adam::new(first.params.clone(), cfg);
        for lr in &lrs[..2] {
            first.backward();
            adam1.step(*lr);
        }
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(env!("CARGO_CRATE_NAME"))
            .join("resume");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optim.safetensors");
        save_tensors(&adam1.state_tensors(), &path).unwrap();
        let second = problem(3);
        for (p, q) in second.params.iter().zip(&first.params) {
            *p.value_mut() = q.to_tensor();
        }
        let mut adam2 = Adam::new(second.params.clone(), cfg);
        adam2.load_state(&load_tensors(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for lr in &lrs[2..] {
            second.backward();
            adam2.step(*lr);
        }
        for (a, b) in full.params.iter().zip(&second.params) {
            assert_eq!(a.value().data(), b.value().data(), "{cfg:?}");
        }
        assert_eq!(adam.state_tensors()["1.step"].data(), [5.0]);
    }
}

#[test]
fn loading_a_state_of_another_model_is_an_error() {
    let pr = problem(4);
    let mut adam = Adam::new(pr.params.clone(), AdamConfig::default());
    pr.backward();
    adam.step(0.1);
    let good = adam.state_tensors();
    let mut other = Adam::new(
        vec![Var::parameter(Tensor::zeros(&[4]))],
        AdamConfig::default(),
    );
    let e = other.load_state(&good).unwrap_err().to_string();
    assert!(e.contains("`0.exp_avg` has shape [3]"), "{e}");
    let mut extra = good.clone();
    extra.insert("7.exp_avg".into(), Tensor::zeros(&[1]));
    let e = adam.load_state(&extra).unwrap_err().to_string();
    assert!(e.contains("unexpected tensor `7.exp_avg`"), "{e}");
    let mut partial = good.clone();
    partial.remove("1.step");
    let e = adam.load_state(&partial).unwrap_err().to_string();
    assert!(e.contains("parameter 1 has an incomplete state"), "{e}");
    // A failed load changes nothing: the state still saves as before.
    assert_eq!(adam.state_tensors(), good);
}

fn global_norm(vars: &[Var]) -> f64 {
    vars.iter()
        .map(|v| {
            v.grad()
                .unwrap()
                .data()
                .iter()
                .map(|&x| x as f64 * x as f64)
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt()
}

#[test]
fn clipping_scales_the_global_norm_down_to_max_norm() {
    let pr = problem(5);
    pr.backward();
    let before = global_norm(&pr.params);
    let grads: Vec<Tensor> = pr.params.iter().map(|p| p.grad().unwrap()).collect();
    // Above the limit: returns the norm before, leaves max_norm, keeps the direction.
    let max = (before / 4.0) as f32;
    let norm = clip_grad_norm(&pr.params, max);
    assert!((norm as f64 - before).abs() < 1e-6 * before);
    let after = global_norm(&pr.params);
    assert!(
        (after - max as f64).abs() < 1e-5 * max as f64,
        "{after} vs {max}"
    );
    for (p, g) in pr.params.iter().zip(&grads) {
        for (&x, &y) in p.grad().unwrap().data().iter().zip(g.data()) {
            assert!((x as f64 - y as f64 * max as f64 / before).abs() < 1e-6);
        }
    }
    // Below the limit: nothing changes.
    let kept: Vec<Tensor> = pr.params.iter().map(|p| p.grad().unwrap()).collect();
    let norm = clip_grad_norm(&pr.params, 10.0 * max);
    assert!((norm - max).abs() < 1e-5 * max);
    for (p, g) in pr.params.iter().zip(&kept) {
        assert_eq!(p.grad().unwrap().data(), g.data());
    }
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-6 * b.abs()
}

#[test]
fn constant_noam_and_inverse_sqrt_values_at_known_steps() {
    let c = Schedule::Constant { lr: 3e-4 };
    assert_eq!((c.lr(1), c.lr(100_000)), (3e-4, 3e-4));
    // Vaswani et al.: d_model 512, 4000 warm-up steps; peak (512·4000)^−½ ≈ 6.988e-4 at step 4000.
    let noam = Schedule::Noam {
        d_model: 512,
        warmup: 4000,
        factor: 1.0,
    };
    let peak = (512.0f64 * 4000.0).powf(-0.5);
    assert!(close(noam.lr(4000), peak) && (peak - 6.9877e-4).abs() < 1e-7);
    assert!(close(noam.lr(1), 512f64.powf(-0.5) * 4000f64.powf(-1.5)));
    assert!(close(noam.lr(2000), peak / 2.0), "linear warm-up");
    assert!(close(noam.lr(16000), peak / 2.0), "inverse square root");
    assert_eq!(noam.lr(0), noam.lr(1));
    let scaled = Schedule::Noam {
        d_model: 512,
        warmup: 4000,
        factor: 2.0,
    };
    assert!(close(scaled.lr(16000), peak));
    let inv = Schedule::InverseSqrt {
        lr: 5e-4,
        warmup: 4000,
    };
    assert!(close(inv.lr(1), 5e-4 / 4000.0));
    assert!(close(inv.lr(2000), 2.5e-4));
    assert!(close(inv.lr(4000), 5e-4));
    assert!(close(inv.lr(16000), 2.5e-4));
    assert!(close(inv.lr(64000), 1.25e-4));
}

#[test]
fn plateau_reduces_after_patience_and_stops_at_min_lr() {
    let mut s = Schedule::Plateau(Plateau::new(1.0, 0.5, 2, 0.3, Mode::Min));
    let mut lrs = Vec::new();
    for loss in [
        1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.8, 0.95, 0.95, 0.95,
    ] {
        let reduced = s.on_validation(loss);
        lrs.push((s.lr(1), reduced));
    }
    let expect = [
        (1.0, false),
        (1.0, false),
        (1.0, false),
        (1.0, false),
        (0.5, true), // third bad validation in a row > patience 2
        (0.5, false),
        (0.5, false),
        (0.3, true),  // 0.25 clamped to min_lr
        (0.3, false), // improvement
        (0.3, false),
        (0.3, false),
        (0.3, false), // at min_lr: no further change
    ];
    assert_eq!(lrs, expect);
    // Max mode (BLEU): higher is better; a tiny rise below the relative threshold is no improvement.
    let mut bleu = Plateau::new(1e-3, 0.1, 0, 1e-6, Mode::Max);
    assert!(!bleu.observe(20.0));
    assert!(!bleu.observe(21.0));
    assert!(bleu.observe(21.0001));
    assert!((bleu.lr - 1e-4).abs() < 1e-10);
}

#[test]
fn schedules_round_trip_through_json_for_checkpoints() {
    let mut s = Schedule::Plateau(Plateau::new(1.0, 0.5, 1, 0.0, Mode::Min));
    s.on_validation(1.0);
    s.on_validation(2.0);
    let json = serde_json::to_string(&s).unwrap();
    let mut back: Schedule = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(back.on_validation(2.0) && s.on_validation(2.0));
    assert_eq!(back, s);
}
