//! Matrix products against a float64 reference on random shapes, with every transpose combination:
//! 2-D, batched over one or two leading axes, a 2-D weight shared over a batch, the threaded and the
//! per-batch-parallel paths, the raw gemm kernel (accumulate, k = 0); and their gradient checks.

mod common;

use common::{assert_close, assert_grads, random_shape};
use tensor::gradcheck::check_gradients;
use tensor::kernels::gemm;
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

/// Plain float64 batched `op(a)·op(b)`: `a [..., *, *]`, `b` with the same leading axes or 2-D.
fn batched_reference(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> (Vec<usize>, Vec<f64>) {
    let (ar, br) = (a.rank(), b.rank());
    let (a2, b2) = (&a.shape()[ar - 2..], &b.shape()[br - 2..]);
    let batch: usize = a.shape()[..ar - 2].iter().product();
    let (sa, sb) = (a2[0] * a2[1], b2[0] * b2[1]);
    let shared = br == 2;
    let mut out = Vec::new();
    for i in 0..batch {
        let ai = Tensor::from_vec(a.data()[i * sa..(i + 1) * sa].to_vec(), a2);
        let bi = if shared {
            b.clone()
        } else {
            Tensor::from_vec(b.data()[i * sb..(i + 1) * sb].to_vec(), b2)
        };
        out.extend(reference(&ai, &bi, ta, tb));
    }
    let m = if ta { a2[1] } else { a2[0] };
    let n = if tb { b2[0] } else { b2[1] };
    let mut shape = a.shape()[..ar - 2].to_vec();
    shape.extend([m, n]);
    (shape, out)
}

/// Stored operand shapes for `op(A) [m, k]`, `op(B) [k, n]` behind `lead` batch axes.
fn operand_shapes(
    lead: &[usize],
    (m, k, n): (usize, usize, usize),
    ta: bool,
    tb: bool,
) -> (Vec<usize>, Vec<usize>) {
    let mut sa = lead.to_vec();
    sa.extend(if ta { [k, m] } else { [m, k] });
    let mut sb = lead.to_vec();
    sb.extend(if tb { [n, k] } else { [k, n] });
    (sa, sb)
}

const TRANSPOSES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

#[test]
fn batched_matmul_matches_f64_reference_on_random_shapes() {
    let mut rng = Rng::new(6);
    for _ in 0..12 {
        let lead = random_shape(&mut rng, 1, 2, 4);
        let mkn = (1 + rng.below(20), 1 + rng.below(20), 1 + rng.below(20));
        for (ta, tb) in TRANSPOSES {
            let (sa, sb) = operand_shapes(&lead, mkn, ta, tb);
            let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
            let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
            let (shape, want) = batched_reference(&a, &b, ta, tb);
            let what = format!("batched {sa:?}·{sb:?} ta={ta} tb={tb}");
            assert_close(&what, &matmul_tensors(&a, &b, ta, tb), &shape, &want, 1e-5);
            let v = Var::constant(a).matmul_t(&Var::constant(b), ta, tb);
            assert_close(&what, &v.value(), &shape, &want, 1e-5);
        }
    }
}

#[test]
fn large_products_on_the_threaded_paths_match_f64_reference() {
    // ≥ 2¹⁸ multiply-adds: threaded gemm for a 2-D product, and the per-batch loop (rather than the
    // parallel-over-batch path) for a batched one.
    let mut rng = Rng::new(7);
    for (ta, tb) in TRANSPOSES {
        let (sa, sb) = operand_shapes(&[], (70, 65, 61), ta, tb);
        let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
        let (shape, want) = batched_reference(&a, &b, ta, tb);
        assert_close(
            "large 2-D",
            &matmul_tensors(&a, &b, ta, tb),
            &shape,
            &want,
            1e-4,
        );
        let (sa, sb) = operand_shapes(&[2], (64, 72, 60), ta, tb);
        let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
        let (shape, want) = batched_reference(&a, &b, ta, tb);
        assert_close(
            "large batched",
            &matmul_tensors(&a, &b, ta, tb),
            &shape,
            &want,
            1e-4,
        );
    }
}

#[test]
fn a_shared_2d_weight_matches_f64_reference_with_and_without_transpose() {
    let mut rng = Rng::new(8);
    for _ in 0..6 {
        let lead = random_shape(&mut rng, 1, 2, 4);
        let (m, k, n) = (1 + rng.below(9), 1 + rng.below(9), 1 + rng.below(9));
        for tb in [false, true] {
            let mut sa = lead.clone();
            sa.extend([m, k]);
            let sb = if tb { [n, k] } else { [k, n] };
            let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
            let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
            let (shape, want) = batched_reference(&a, &b, false, tb);
            let what = format!("shared {sa:?}·{sb:?} tb={tb}");
            assert_close(
                &what,
                &matmul_tensors(&a, &b, false, tb),
                &shape,
                &want,
                1e-5,
            );
        }
    }
}

#[test]
fn batched_gradients_pass_finite_differences_for_every_transpose() {
    let mut rng = Rng::new(9);
    for lead in [vec![3], vec![2, 2]] {
        for (ta, tb) in TRANSPOSES {
            let (sa, sb) = operand_shapes(&lead, (3, 4, 2), ta, tb);
            let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
            let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
            assert_grads(
                &format!("batched {sa:?}·{sb:?} ta={ta} tb={tb}"),
                |v| v[0].matmul_t(&v[1], ta, tb),
                &[a, b],
                1e-2,
                2e-3,
            );
        }
    }
    // A shared weight, not transposed (the transposed one is the linear layer above).
    let x = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng);
    assert_grads("shared weight", |v| v[0].matmul(&v[1]), &[x, w], 1e-2, 2e-3);
}

#[test]
fn linear_is_x_times_w_transposed_plus_bias() {
    // PyTorch's layout: W [out, in], b [out]; x [B, T, in] → [B, T, out].
    let mut rng = Rng::new(11);
    let x = Tensor::randn(&[2, 3, 5], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng);
    let b = Tensor::randn(&[4], 0.0, 1.0, &mut rng);
    let mut want = Vec::new();
    for row in x.data().chunks(5) {
        for o in 0..4 {
            let dot: f64 = (0..5)
                .map(|i| row[i] as f64 * w.data()[o * 5 + i] as f64)
                .sum();
            want.push(dot + b.data()[o] as f64);
        }
    }
    let (xv, wv, bv) = (Var::constant(x), Var::constant(w), Var::constant(b));
    assert_close(
        "linear",
        &xv.linear(&wv, Some(&bv)).value(),
        &[2, 3, 4],
        &want,
        1e-5,
    );
    let no_bias: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, y)| y - bv.value().data()[i % 4] as f64)
        .collect();
    assert_close(
        "linear, no bias",
        &xv.linear(&wv, None).value(),
        &[2, 3, 4],
        &no_bias,
        1e-5,
    );
}

#[test]
fn gemm_kernel_accumulates_and_handles_an_empty_inner_axis() {
    let mut rng = Rng::new(10);
    let a = Tensor::randn(&[4, 3], 0.0, 1.0, &mut rng);
    let b = Tensor::randn(&[3, 5], 0.0, 1.0, &mut rng);
    let c0 = Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng);
    let mut c = c0.data().to_vec();
    gemm::matmul(&mut c, a.data(), b.data(), 4, 3, 5, false, false, true);
    let want: Vec<f64> = reference(&a, &b, false, false)
        .iter()
        .zip(c0.data())
        .map(|(p, &c)| p + c as f64)
        .collect();
    assert_close(
        "c += a·b",
        &Tensor::from_vec(c, &[4, 5]),
        &[4, 5],
        &want,
        1e-5,
    );
    // k = 0: the product is zero (overwrite) or leaves c unchanged (accumulate).
    let mut c = c0.data().to_vec();
    gemm::matmul(&mut c, &[], &[], 4, 0, 5, false, false, true);
    assert_eq!(c, c0.data());
    gemm::matmul(&mut c, &[], &[], 4, 0, 5, false, false, false);
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
#[should_panic(expected = "inner sizes differ")]
fn mismatched_inner_sizes_panic() {
    matmul_tensors(
        &Tensor::zeros(&[2, 3]),
        &Tensor::zeros(&[4, 2]),
        false,
        false,
    );
}

#[test]
#[should_panic(expected = "batch axes differ")]
fn mismatched_batch_axes_panic() {
    matmul_tensors(
        &Tensor::zeros(&[2, 2, 3]),
        &Tensor::zeros(&[3, 3, 2]),
        false,
        false,
    );
}
