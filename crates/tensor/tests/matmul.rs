//! Matrix products against a float64 reference on random shapes, with every transpose combination,
//! and their gradient checks.

use tensor::gradcheck::check_gradients;
use tensor::ops::matmul::matmul_tensors;
use tensor::{Rng, Tensor, Var};

/// Plain float64 `op(a)·op(b)` for 2-D operands.
fn reference(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Vec<f64> {
    let (ar, ac) = (a.shape()[0], a.shape()[1]);
    let (br, bc) = (b.shape()[0], b.shape()[1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let at = |i: usize, p: usize| if ta { a.data()[p * ac + i] } else { a.data()[i * ac + p] } as f64;
    let bt = |p: usize, j: usize| if tb { b.data()[j * bc + p] } else { b.data()[p * bc + j] } as f64;
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    out
}

#[test]
fn matmul_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(1);
    for _ in 0..20 {
        let (m, k, n) = (1 + rng.below(70), 1 + rng.below(90), 1 + rng.below(70));
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let sa = if ta { [k, m] } else { [m, k] };
            let sb = if tb { [n, k] } else { [k, n] };
            let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
            let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
            let got = matmul_tensors(&a, &b, ta, tb);
            assert_eq!(got.shape(), &[m, n]);
            for (g, r) in got.data().iter().zip(reference(&a, &b, ta, tb)) {
                assert!(
                    (*g as f64 - r).abs() <= 1e-4 * (1.0 + r.abs()),
                    "{g} vs {r}"
                );
            }
        }
    }
}

#[test]
fn matmul_gradients_pass_finite_differences() {
    let mut rng = Rng::new(2);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa = if ta { [4, 3] } else { [3, 4] };
        let sb = if tb { [5, 4] } else { [4, 5] };
        let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
        let r = check_gradients(|v| v[0].matmul_t(&v[1], ta, tb), &[a, b], 1e-2, 3);
        assert!(r.max_rel_error < 1e-2, "{ta} {tb}: {r:?}");
    }
    // Batched, and a 2-D weight shared across a batch (linear layer).
    let x = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    let y = Tensor::randn(&[2, 5, 4], 0.0, 1.0, &mut rng);
    let r = check_gradients(
        |v| v[0].matmul_t(&v[1], false, true),
        &[x.clone(), y],
        1e-2,
        4,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
    let w = Tensor::randn(&[6, 4], 0.0, 1.0, &mut rng);
    let bias = Tensor::randn(&[6], 0.0, 1.0, &mut rng);
    let r = check_gradients(|v| v[0].linear(&v[1], Some(&v[2])), &[x, w, bias], 1e-2, 5);
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}

#[test]
fn shared_weight_forward_equals_per_batch_products() {
    let mut rng = Rng::new(3);
    let x = Tensor::randn(&[3, 5, 7], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[7, 2], 0.0, 1.0, &mut rng);
    let y = Var::constant(x.clone())
        .matmul(&Var::constant(w.clone()))
        .to_tensor();
    for b in 0..3 {
        let xb = Tensor::from_vec(x.data()[b * 35..(b + 1) * 35].to_vec(), &[5, 7]);
        let r = reference(&xb, &w, false, false);
        for (g, r) in y.data()[b * 10..(b + 1) * 10].iter().zip(r) {
            assert!((*g as f64 - r).abs() < 1e-4);
        }
    }
}
