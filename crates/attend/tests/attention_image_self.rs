//! Self-attention over an image grid (SAGAN): the fused and the plain forward against a float64
//! reference on random shapes, every gradient against finite differences, permutation
//! equivariance over the cells, `γ = 0` passes the grid through exactly, shapes that do not fit
//! are errors.

mod attention_support;

use attend::attention::{AttentionError, ImageSelfAttention};
use attend::nn::{Linear, Params};
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

/// A block for cells of `d` features and attention size `c`, with `γ` set to `gamma`.
fn block(d: usize, c: usize, gamma: f32, rng: &mut Rng) -> ImageSelfAttention {
    let b = ImageSelfAttention::new(&mut Params::new(), "sa", d, c, rng);
    *b.gamma.value_mut() = Tensor::from_vec(vec![gamma], &[1]);
    b
}

/// The block's parameters in the order [`block_of`] takes them.
fn parameters(b: &ImageSelfAttention) -> Vec<Tensor> {
    let mut out = vec![];
    for l in [&b.query, &b.key, &b.value, &b.out] {
        out.push(l.weight.to_tensor());
        out.push(l.bias.as_ref().unwrap().to_tensor());
    }
    out.push(b.gamma.to_tensor());
    out
}

/// A block made of the given vars (`W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, γ`).
fn block_of(v: &[Var]) -> ImageSelfAttention {
    let lin = |i: usize| Linear {
        weight: v[i].clone(),
        bias: Some(v[i + 1].clone()),
    };
    ImageSelfAttention {
        query: lin(0),
        key: lin(2),
        value: lin(4),
        out: lin(6),
        gamma: v[8].clone(),
    }
}

/// `(y [N, S, D], β [N, S, S])` of the module doc's formula, in f64.
fn reference(b: &ImageSelfAttention, x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let (n, s, d) = (x.dim(0), x.dim(1), x.dim(2));
    let c = b.size();
    let p: Vec<Vec<f64>> = parameters(b).iter().map(f64s).collect();
    let gamma = p[8][0];
    let x = f64s(x);
    let (mut y, mut beta) = (vec![], vec![]);
    for img in 0..n {
        let xi = &x[img * s * d..(img + 1) * s * d];
        let q = ref_linear(xi, &p[0], Some(&p[1]), s, d, c);
        let k = ref_linear(xi, &p[2], Some(&p[3]), s, d, c);
        let v = ref_linear(xi, &p[4], Some(&p[5]), s, d, c);
        let e = ref_scores(&q, &k, s, s, c, 1.0 / (c as f64).sqrt());
        let (attended, w) = ref_softmax_context(&e, &v, s, s, c, |_, _| false);
        let o = ref_linear(&attended, &p[6], Some(&p[7]), s, c, d);
        y.extend(xi.iter().zip(&o).map(|(a, o)| a + gamma * o));
        beta.extend(w);
    }
    (y, beta)
}

#[test]
fn fused_and_plain_forward_match_a_float64_reference_on_random_shapes() {
    let mut rng = Rng::new(71);
    for round in 0..10 {
        let (n, gh, gw) = (1 + rng.below(3), 1 + rng.below(4), 1 + rng.below(9));
        let (d, c) = (1 + rng.below(12), 1 + rng.below(9));
        // The last round has 320 cells, more than one of the fused kernel's key blocks (256).
        let (gh, gw) = if round == 9 { (4, 80) } else { (gh, gw) };
        let gamma = rng.uniform(-1.5, 1.5);
        let b = block(d, c, gamma, &mut rng);
        let x = Tensor::randn(&[n, gh * gw, d], 0.0, 1.0, &mut rng);
        let (y_ref, beta_ref) = reference(&b, &x);
        let what =
            |path: &str| format!("round {round} (n {n}, S {}, D {d}, C {c}): {path}", gh * gw);
        let fused = b.forward(&Var::constant(x.clone())).unwrap();
        assert_close(&fused.to_tensor(), &y_ref, 1e-5, &what("fused y"));
        let (plain, beta) = b.forward_plain(&Var::constant(x.clone())).unwrap();
        assert_close(&plain.to_tensor(), &y_ref, 1e-5, &what("plain y"));
        assert_close(&beta.to_tensor(), &beta_ref, 1e-5, &what("plain β"));
        let maps = b.maps(&x).unwrap();
        assert_eq!(maps.shape(), [n, gh * gw, gh * gw]);
        assert_close(&maps, &beta_ref, 1e-5, &what("maps"));
        assert_rows_are_distributions(&maps);
    }
}

#[test]
fn every_gradient_matches_finite_differences_on_both_paths() {
    let mut rng = Rng::new(72);
    let (n, s, d, c) = (2, 6, 5, 3);
    let b = block(d, c, 0.9, &mut rng);
    let x = Tensor::randn(&[n, s, d], 0.0, 1.0, &mut rng);
    let mut inputs = vec![x];
    inputs.extend(parameters(&b));
    let fused = check_gradients(
        |v| block_of(&v[1..]).forward(&v[0]).unwrap(),
        &inputs,
        1e-2,
        5,
    );
    assert!(fused.max_rel_error < 2e-2, "fused path: {fused:?}");
    let plain = check_gradients(
        |v| {
            let (y, beta) = block_of(&v[1..]).forward_plain(&v[0]).unwrap();
            flat_pair(&y, &beta)
        },
        &inputs,
        1e-2,
        6,
    );
    assert!(plain.max_rel_error < 2e-2, "plain path: {plain:?}");
}

#[test]
fn fused_gradients_equal_plain_gradients() {
    let mut rng = Rng::new(73);
    let (n, s, d, c) = (3, 80, 16, 8);
    let b = block(d, c, 0.6, &mut rng);
    let x = Tensor::randn(&[n, s, d], 0.0, 1.0, &mut rng);
    let seed = Tensor::randn(&[n, s, d], 0.0, 1.0, &mut rng);
    let grads = |fused: bool| {
        let vars: Vec<Var> = std::iter::once(x.clone())
            .chain(parameters(&b))
            .map(Var::parameter)
            .collect();
        let blk = block_of(&vars[1..]);
        let y = if fused {
            blk.forward(&vars[0]).unwrap()
        } else {
            blk.forward_plain(&vars[0]).unwrap().0
        };
        y.backward_with(seed.clone());
        vars.iter().map(grad).collect::<Vec<_>>()
    };
    for (k, (f, p)) in grads(true).iter().zip(grads(false)).enumerate() {
        if k == 4 {
            // b_k adds q_i·b_k to every score of row i, which the softmax cancels: ∂/∂b_k = 0.
            let largest = f
                .data()
                .iter()
                .chain(p.data())
                .fold(0f32, |m, g| m.max(g.abs()));
            assert!(largest < 1e-4, "gradient of b_k: {largest}, expected 0");
            continue;
        }
        assert_tensors_close(f, &p, 1e-4, &format!("gradient of input {k}"));
    }
}

#[test]
fn permuting_the_cells_permutes_the_output_and_both_axes_of_the_maps() {
    let mut rng = Rng::new(74);
    let (s, d, c) = (12, 6, 4);
    let b = block(d, c, 1.3, &mut rng);
    let x = Tensor::randn(&[1, s, d], 0.0, 1.0, &mut rng);
    let mut perm: Vec<usize> = (0..s).collect();
    for i in (1..s).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    // (P x)_i = x_{perm[i]}
    let permute = |t: &Tensor, width: usize| {
        let mut out = t.clone();
        for (i, &p) in perm.iter().enumerate() {
            out.data_mut()[i * width..(i + 1) * width]
                .copy_from_slice(&t.data()[p * width..(p + 1) * width]);
        }
        out
    };
    let px = permute(&x, d);
    let y = b.forward(&Var::constant(x.clone())).unwrap().to_tensor();
    let y_of_px = b.forward(&Var::constant(px.clone())).unwrap().to_tensor();
    assert_tensors_close(&y_of_px, &permute(&y, d), 1e-5, "f(Px) = P f(x)");
    let (beta, beta_of_px) = (b.maps(&x).unwrap(), b.maps(&px).unwrap());
    for i in 0..s {
        for j in 0..s {
            let (a, e) = (
                beta_of_px.data()[i * s + j],
                beta.data()[perm[i] * s + perm[j]],
            );
            assert!((a - e).abs() < 1e-6, "β(Px)[{i}, {j}] = {a}, β(x) = {e}");
        }
    }
}

#[test]
fn a_fresh_block_passes_the_grid_through_exactly() {
    let mut rng = Rng::new(75);
    let b = ImageSelfAttention::new(&mut Params::new(), "sa", 8, 4, &mut rng);
    assert_eq!(b.gamma(), 0.0, "γ starts at 0");
    let x = Tensor::randn(&[2, 15, 8], 0.0, 3.0, &mut rng);
    let fused = b.forward(&Var::constant(x.clone())).unwrap().to_tensor();
    let (plain, _) = b.forward_plain(&Var::constant(x.clone())).unwrap();
    assert_eq!(fused.data(), x.data(), "fused path");
    assert_eq!(plain.to_tensor().data(), x.data(), "plain path");
    // γ still learns: its gradient is Σ o ⊙ dy, not zero.
    let xv = Var::constant(x);
    b.forward(&xv).unwrap().sum_all().backward();
    assert!(grad(&b.gamma).data()[0] != 0.0, "γ received no gradient");
}

#[test]
fn a_grid_of_the_wrong_shape_is_an_error() {
    let mut rng = Rng::new(76);
    let b = block(6, 4, 0.5, &mut rng);
    for shape in [&[2, 5, 7][..], &[5, 6], &[0, 5, 6], &[2, 0, 6]] {
        let x = Var::constant(Tensor::zeros(shape));
        let Err(e) = b.forward(&x) else {
            panic!("{shape:?}: the fused path accepted it");
        };
        assert!(matches!(e, AttentionError::Shape { .. }), "{shape:?}: {e}");
        let Err(e) = b.forward_plain(&x) else {
            panic!("{shape:?}: the plain path accepted it");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("image self-attention") && msg.contains("6]"),
            "{msg}"
        );
        assert!(b.maps(&x.to_tensor()).is_err());
    }
}
