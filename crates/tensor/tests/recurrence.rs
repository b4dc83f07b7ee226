//! The fused GRU/LSTM recurrence: forward against a plain float64 loop (both directions, ragged
//! lengths), finite-difference gradient checks of every input, and padding invariance.

use tensor::gradcheck::check_gradients;
use tensor::ops::recurrence::CellKind;
use tensor::{Rng, Tensor, Var};

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Plain f64 recurrence: returns the packed `[B, T + k, H]` the op produces.
fn reference(kind: CellKind, ins: &[Tensor], lengths: &[usize], reverse: bool) -> Vec<f64> {
    let (xp, h0, w, bias) = (&ins[0], &ins[1], &ins[2], &ins[3]);
    let (b, t, g) = (xp.shape()[0], xp.shape()[1], xp.shape()[2]);
    let h = w.shape()[1];
    let k = kind.states();
    let f = |x: &Tensor| -> Vec<f64> { x.data().iter().map(|&v| v as f64).collect() };
    let (xp, w, bias) = (f(xp), f(w), f(bias));
    let mut out = vec![0.0; b * (t + k) * h];
    for bi in 0..b {
        let mut hs: Vec<f64> = f(h0)[bi * h..(bi + 1) * h].to_vec();
        let mut cs: Vec<f64> = if k == 2 {
            f(&ins[4])[bi * h..(bi + 1) * h].to_vec()
        } else {
            vec![]
        };
        for s in 0..t {
            let tt = if reverse { t - 1 - s } else { s };
            if tt >= lengths[bi] {
                continue;
            }
            let gh: Vec<f64> = (0..g)
                .map(|r| bias[r] + (0..h).map(|j| w[r * h + j] * hs[j]).sum::<f64>())
                .collect();
            let x = &xp[(bi * t + tt) * g..(bi * t + tt + 1) * g];
            let mut next = vec![0.0; h];
            for j in 0..h {
                match kind {
                    CellKind::Gru => {
                        let r = sig(x[j] + gh[j]);
                        let z = sig(x[h + j] + gh[h + j]);
                        let n = (x[2 * h + j] + r * gh[2 * h + j]).tanh();
                        next[j] = (1.0 - z) * n + z * hs[j];
                    }
                    CellKind::Lstm => {
                        let a = |q: usize| x[q * h + j] + gh[q * h + j];
                        let c = sig(a(1)) * cs[j] + sig(a(0)) * a(2).tanh();
                        next[j] = sig(a(3)) * c.tanh();
                        cs[j] = c;
                    }
                }
            }
            hs = next;
            out[(bi * (t + k) + tt) * h..(bi * (t + k) + tt + 1) * h].copy_from_slice(&hs);
        }
        out[(bi * (t + k) + t) * h..(bi * (t + k) + t + 1) * h].copy_from_slice(&hs);
        if k == 2 {
            out[(bi * (t + k) + t + 1) * h..(bi * (t + k) + t + 2) * h].copy_from_slice(&cs);
        }
    }
    out
}

fn inputs(kind: CellKind, b: usize, t: usize, h: usize, rng: &mut Rng) -> Vec<Tensor> {
    let g = kind.gates() * h;
    let mut v = vec![
        Tensor::randn(&[b, t, g], 0.0, 1.0, rng),
        Tensor::randn(&[b, h], 0.0, 0.5, rng),
        Tensor::randn(&[g, h], 0.0, 0.5, rng),
        Tensor::randn(&[g], 0.0, 0.5, rng),
    ];
    if kind == CellKind::Lstm {
        v.push(Tensor::randn(&[b, h], 0.0, 0.5, rng));
    }
    v
}

fn run(kind: CellKind, v: &[Var], lengths: &[usize], reverse: bool) -> Var {
    Var::recurrence(kind, &v[0], &v[1], v.get(4), &v[2], &v[3], lengths, reverse)
}

const KINDS: [CellKind; 2] = [CellKind::Gru, CellKind::Lstm];

#[test]
fn recurrence_matches_f64_reference() {
    let mut rng = Rng::new(7);
    for kind in KINDS {
        for reverse in [false, true] {
            for _ in 0..4 {
                let (b, t, h) = (1 + rng.below(4), 1 + rng.below(6), 1 + rng.below(9));
                let lengths: Vec<usize> = (0..b).map(|_| 1 + rng.below(t)).collect();
                let ins = inputs(kind, b, t, h, &mut rng);
                let vars: Vec<Var> = ins.iter().cloned().map(Var::constant).collect();
                let got = run(kind, &vars, &lengths, reverse).to_tensor();
                let want = reference(kind, &ins, &lengths, reverse);
                for (i, (&a, &w)) in got.data().iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{kind:?} reverse={reverse} element {i}: {a} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn recurrence_gradients_match_finite_differences() {
    let mut rng = Rng::new(11);
    for kind in KINDS {
        for reverse in [false, true] {
            let (b, t, h) = (3, 4, 3);
            let lengths = [4, 1, 3];
            let ins = inputs(kind, b, t, h, &mut rng);
            let r = check_gradients(|v| run(kind, v, &lengths, reverse), &ins, 1e-2, 5);
            assert!(r.max_rel_error < 2e-3, "{kind:?} reverse={reverse}: {r:?}");
        }
    }
}

#[test]
fn padded_positions_change_nothing() {
    let mut rng = Rng::new(3);
    for kind in KINDS {
        for reverse in [false, true] {
            let lengths = [5, 2, 4];
            let ins = inputs(kind, 3, 5, 4, &mut rng);
            let vars: Vec<Var> = ins.iter().cloned().map(Var::constant).collect();
            let a = run(kind, &vars, &lengths, reverse).to_tensor();
            let mut xp = ins[0].clone();
            let g = xp.shape()[2];
            for (bi, &len) in lengths.iter().enumerate() {
                for tt in len..5 {
                    for x in &mut xp.data_mut()[(bi * 5 + tt) * g..(bi * 5 + tt + 1) * g] {
                        *x = 100.0 * rng.normal();
                    }
                }
            }
            let mut vars2 = vars.clone();
            vars2[0] = Var::constant(xp);
            let b = run(kind, &vars2, &lengths, reverse).to_tensor();
            assert_eq!(a.data(), b.data(), "{kind:?} reverse={reverse}");
        }
    }
}
