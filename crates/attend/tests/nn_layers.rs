//! Embedding, LayerNorm and Dropout: lookups and the padding row, PyTorch golden values for
//! `nn.LayerNorm`, initialisation, finite-difference gradient checks, dropout statistics, errors.

mod nn_support;

use attend::nn::{Dropout, Embedding, LayerNorm, Params};
use nn_support::{assert_close, dot, fd_check, fixture, get, weights_like};
use tensor::{Rng, Tensor, Var};

#[test]
fn embedding_looks_up_rows_in_the_ids_shape() {
    let mut params = Params::new();
    let emb = Embedding::new(&mut params, "src_emb", 7, 3, None, &mut Rng::new(1)).unwrap();
    assert_eq!(params.iter().next().unwrap().0, "src_emb.weight");
    let ids = [4u32, 0, 6, 4, 2, 1];
    let out = emb.forward(&ids, &[2, 3]).unwrap();
    assert_eq!(out.shape(), [2, 3, 3]);
    let w = emb.weight.to_tensor();
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(
            &out.value().data()[i * 3..(i + 1) * 3],
            &w.data()[id as usize * 3..(id as usize + 1) * 3]
        );
    }
    // Gradient: rows of repeated ids add up, unused rows get zero.
    let g = weights_like(&[2, 3, 3], 2);
    dot(&out, &g).backward();
    let grad = emb.weight.grad().unwrap();
    for k in 0..3 {
        assert!((grad.data()[4 * 3 + k] - (g.data()[k] + g.data()[9 + k])).abs() < 1e-6);
        assert_eq!(grad.data()[5 * 3 + k], 0.0);
        assert_eq!(grad.data()[3 * 3 + k], 0.0);
    }
    let err = fd_check(
        std::slice::from_ref(&emb.weight),
        || dot(&emb.forward(&ids, &[6]).unwrap(), &weights_like(&[6, 3], 3)),
        1e-2,
    );
    assert!(err < 1e-3, "embedding: {err}");
}

#[test]
fn embedding_init_is_standard_normal() {
    let mut params = Params::new();
    let emb = Embedding::new(&mut params, "e", 200, 100, None, &mut Rng::new(5)).unwrap();
    let w = emb.weight.to_tensor();
    let n = w.numel() as f64;
    let mean = w.data().iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = w
        .data()
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "variance {var}");
}

#[test]
fn embedding_padding_row_is_zero_and_gets_no_gradient() {
    let mut params = Params::new();
    let emb = Embedding::new(&mut params, "e", 5, 4, Some(0), &mut Rng::new(2)).unwrap();
    assert!(emb.weight.value().data()[..4].iter().all(|&x| x == 0.0));
    assert!(emb.weight.value().data()[4..].iter().all(|&x| x != 0.0));
    let ids = [3u32, 0, 0, 1];
    let out = emb.forward(&ids, &[4]).unwrap();
    assert!(out.value().data()[4..12].iter().all(|&x| x == 0.0));
    dot(&out, &weights_like(&[4, 4], 1)).backward();
    let g = emb.weight.grad().unwrap();
    assert!(g.data()[..4].iter().all(|&x| x == 0.0));
    assert!(g.data()[12..16].iter().all(|&x| x != 0.0));
}

#[test]
fn embedding_errors() {
    let mut params = Params::new();
    assert!(Embedding::new(&mut params, "p", 5, 4, Some(5), &mut Rng::new(0)).is_err());
    let emb = Embedding::new(&mut params, "e", 5, 4, None, &mut Rng::new(0)).unwrap();
    let e = emb.forward(&[1, 5], &[2]).unwrap_err().to_string();
    assert!(e.contains("token id 5"), "{e}");
    let e = emb.forward(&[1, 2, 3], &[2, 2]).unwrap_err().to_string();
    assert!(e.contains("3 ids"), "{e}");
}

#[test]
fn layer_norm_matches_pytorch() {
    let fx = fixture("layernorm");
    let mut params = Params::new();
    let ln = LayerNorm::new(&mut params, "norm", 12, 1e-5);
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["norm.weight", "norm.bias"]);
    *ln.weight.value_mut() = get(&fx, "weight").clone();
    *ln.bias.value_mut() = get(&fx, "bias").clone();
    let x = Var::parameter(get(&fx, "x").clone());
    let y = ln.forward(&x);
    assert_close("y", &y.to_tensor(), get(&fx, "y"), 1e-5);
    dot(&y, get(&fx, "grad_out.y")).backward();
    assert_close("grad.x", &x.grad().unwrap(), get(&fx, "grad.x"), 1e-5);
    assert_close(
        "grad.weight",
        &ln.weight.grad().unwrap(),
        get(&fx, "grad.weight"),
        1e-5,
    );
    assert_close(
        "grad.bias",
        &ln.bias.grad().unwrap(),
        get(&fx, "grad.bias"),
        1e-5,
    );
}

#[test]
fn layer_norm_init_normalises_rows_and_gradients_check() {
    let mut params = Params::new();
    let ln = LayerNorm::new(&mut params, "n", 6, 1e-5);
    let mut rng = Rng::new(4);
    let x = Var::parameter(Tensor::randn(&[3, 2, 6], 3.0, 2.0, &mut rng));
    let y = ln.forward(&x).to_tensor();
    for row in y.rows() {
        let mean = row.iter().sum::<f32>() / 6.0;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 6.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }
    *ln.weight.value_mut() = Tensor::randn(&[6], 1.0, 0.3, &mut rng);
    *ln.bias.value_mut() = Tensor::randn(&[6], 0.0, 0.3, &mut rng);
    let mut vars = params.vars();
    vars.push(x.clone());
    let err = fd_check(
        &vars,
        || dot(&ln.forward(&x), &weights_like(&[3, 2, 6], 1)),
        1e-2,
    );
    assert!(err < 2e-3, "layer norm: {err}");
}

#[test]
fn dropout_is_identity_in_evaluation_and_inverted_in_training() {
    let d = Dropout::new(0.25).unwrap();
    let x = Var::parameter(Tensor::ones(&[100, 100]));
    assert_eq!(d.forward(&x, None).to_tensor().data(), x.to_tensor().data());
    let y = d.forward(&x, Some(&mut Rng::new(3))).to_tensor();
    let kept = y.data().iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
    assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
    assert!(y
        .data()
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let mean = y.data().iter().map(|&v| v as f64).sum::<f64>() / 1e4;
    assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
    let same = d.forward(&x, Some(&mut Rng::new(3))).to_tensor();
    assert_eq!(y.data(), same.data());
    for p in [-0.1, 1.0, f32::NAN] {
        assert!(Dropout::new(p).is_err());
    }
}
