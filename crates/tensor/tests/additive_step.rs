//! The fused additive-attention step against the plain engine path (`v · tanh(q + K)`, masked
//! softmax, weighted sum): values and gradients at odd sizes, with fully masked rows and sizes past
//! the stack buffers; finite differences; the same results without the tape and at one and two
//! threads.

use tensor::gradcheck::check_gradients;
use tensor::ops::additive_step::additive_step;
use tensor::{Rng, Tensor, Var};

/// The plain engine path: `v · tanh(q + K)`, masked softmax, weighted sum.
fn plain(q: &Var, k: &Var, v: &Var, h: &Var, mask: Option<&Tensor>) -> (Var, Var, Var) {
    let (b, s, a) = (k.dim(0), k.dim(1), k.dim(2));
    let hidden = q.reshape(&[b, 1, a]).add(k).tanh(); // [B, S, A]
    let e = hidden.linear(&v.reshape(&[1, a]), None).reshape(&[b, s]); // [B, S]
    let w = match mask {
        Some(m) => e.masked_fill(m, f32::NEG_INFINITY).softmax(),
        None => e.softmax(),
    };
    let c = w.reshape(&[b, 1, s]).matmul(h).reshape(&[b, h.dim(-1)]);
    (c, w, e)
}

fn inputs(b: usize, s: usize, a: usize, d: usize, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    vec![
        Tensor::randn(&[b, a], 0.0, 1.0, &mut rng),
        Tensor::randn(&[b, s, a], 0.0, 1.0, &mut rng),
        Tensor::randn(&[1, a], 0.0, 0.5, &mut rng),
        Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng),
    ]
}

/// Rows masked from `len[b]` on (0 masks the whole row).
fn mask(lens: &[usize], s: usize) -> Tensor {
    let mut m = vec![0.0; lens.len() * s];
    for (r, &l) in lens.iter().enumerate() {
        m[r * s + l..(r + 1) * s].fill(1.0);
    }
    Tensor::from_vec(m, &[lens.len(), s])
}

/// `(B, S, A, D, valid lengths)` of one test case.
type Case = (usize, usize, usize, usize, Option<Vec<usize>>);

#[test]
fn forward_and_backward_equal_the_plain_path() {
    // Odd sizes, S = 1, a fully masked row, and sizes above the stack buffers (A > 512, S > 64).
    let cases: [Case; 6] = [
        (3, 5, 7, 4, None),
        (4, 6, 9, 5, Some(vec![6, 3, 1, 0])),
        (2, 1, 3, 2, None),
        (1, 1, 1, 1, Some(vec![1])),
        (2, 70, 5, 3, Some(vec![70, 33])),
        (2, 3, 600, 4, Some(vec![2, 3])),
    ];
    for (i, (b, s, a, d, lens)) in cases.into_iter().enumerate() {
        let m = lens.as_ref().map(|l| mask(l, s));
        let xs = inputs(b, s, a, d, i as u64);
        let vars: Vec<Var> = xs.iter().cloned().map(Var::parameter).collect();
        let fused = additive_step(&vars[0], &vars[1], &vars[2], &vars[3], m.as_ref());
        let pvars: Vec<Var> = xs.iter().cloned().map(Var::parameter).collect();
        let (c, w, e) = plain(&pvars[0], &pvars[1], &pvars[2], &pvars[3], m.as_ref());
        assert!(
            fused.context.value().max_abs_diff(&c.value()) < 1e-5,
            "case {i}: context"
        );
        assert!(
            fused.weights.max_abs_diff(&w.value()) < 1e-6,
            "case {i}: weights"
        );
        assert!(
            fused.scores.max_abs_diff(&e.value()) < 1e-5,
            "case {i}: scores"
        );
        let mut rng = Rng::new(99);
        let seed = Tensor::randn(&[b, d], 0.0, 1.0, &mut rng);
        fused.context.backward_with(seed.clone());
        c.backward_with(seed);
        for (j, (f, p)) in vars.iter().zip(&pvars).enumerate() {
            let (gf, gp) = (f.grad().expect("fused grad"), p.grad().expect("plain grad"));
            let scale = gp.data().iter().fold(1.0f32, |m, x| m.max(x.abs()));
            assert!(
                gf.max_abs_diff(&gp) < 1e-5 * scale,
                "case {i}: gradient of input {j}: {}",
                gf.max_abs_diff(&gp)
            );
        }
        // A fully masked row: zero weights, zero context.
        if let Some(l) = &lens {
            for (r, &len) in l.iter().enumerate() {
                if len == 0 {
                    assert!(fused.weights.data()[r * s..(r + 1) * s]
                        .iter()
                        .all(|&x| x == 0.0));
                    assert!(fused.context.value().data()[r * d..(r + 1) * d]
                        .iter()
                        .all(|&x| x == 0.0));
                }
            }
        }
    }
}

#[test]
fn gradients_pass_finite_differences() {
    for (b, s, a, d, lens) in [(2, 4, 3, 5, Some(vec![4, 2])), (3, 2, 4, 2, None)] {
        let m = lens.map(|l| mask(&l, s));
        let xs = inputs(b, s, a, d, 7);
        let check = check_gradients(
            |v: &[Var]| additive_step(&v[0], &v[1], &v[2], &v[3], m.as_ref()).context,
            &xs,
            1e-2,
            3,
        );
        assert!(
            check.max_rel_error < 1e-2,
            "relative error {}",
            check.max_rel_error
        );
    }
}

#[test]
fn without_the_tape_the_results_are_the_same() {
    let xs = inputs(5, 7, 33, 6, 4);
    let m = mask(&[7, 1, 4, 0, 6], 7);
    let vars: Vec<Var> = xs.iter().cloned().map(Var::parameter).collect();
    let taped = additive_step(&vars[0], &vars[1], &vars[2], &vars[3], Some(&m));
    let bare = tensor::no_grad(|| additive_step(&vars[0], &vars[1], &vars[2], &vars[3], Some(&m)));
    assert!(!bare.context.requires_grad());
    assert_eq!(taped.context.to_tensor(), bare.context.to_tensor());
    assert_eq!(taped.weights, bare.weights);
    assert_eq!(taped.scores, bare.scores);
}

#[test]
fn threaded_rows_equal_serial_rows() {
    // Large enough for the parallel path.
    let xs = inputs(16, 24, 128, 8, 5);
    let vars: Vec<Var> = xs.iter().cloned().map(Var::parameter).collect();
    let run = |n: usize| {
        tensor::threads::set_threads(n);
        let out = additive_step(&vars[0], &vars[1], &vars[2], &vars[3], None);
        for v in &vars {
            v.zero_grad();
        }
        out.context.backward_with(Tensor::ones(&[16, 8]));
        (out.context.to_tensor(), vars[1].grad().expect("grad"))
    };
    let (c1, g1) = run(1);
    let (c2, g2) = run(2);
    assert_eq!(c1, c2);
    assert_eq!(g1, g2);
}
