//! Positional encodings: the sinusoidal table against the formula and PyTorch's buffer, learned
//! positions, ranges past `max_len`, and positions breaking permutation equivariance.

mod attention_support;

use attend::attention::position::sinusoidal_table;
use attend::attention::{
    AttentionError, LearnedPositions, Positions, ScaledDotProductAttention, SinusoidalPositions,
};
use attend::nn::Params;
use attention_support::*;
use tensor::gradcheck::check_gradients;
use tensor::{Rng, Tensor, Var};

#[test]
fn sinusoidal_table_follows_the_formula() {
    for (max_len, d) in [(50, 16), (7, 6), (3, 5)] {
        let table = sinusoidal_table(max_len, d);
        assert_eq!(table.shape(), &[max_len, d]);
        let mut expected = Vec::new();
        for p in 0..max_len {
            for j in 0..d {
                let i2 = (2 * (j / 2)) as f64;
                let angle = p as f64 / 10000f64.powf(i2 / d as f64);
                expected.push(if j % 2 == 0 { angle.sin() } else { angle.cos() });
            }
        }
        assert_close(&table, &expected, 1e-7, "sinusoidal table");
        // Position 0 is [0, 1, 0, 1, …].
        assert!(table.data()[..d]
            .iter()
            .enumerate()
            .all(|(j, &x)| x == if j % 2 == 0 { 0.0 } else { 1.0 }));
    }
}

#[test]
fn sinusoidal_table_equals_the_pytorch_model_buffer() {
    let f = fixture("transformer");
    let pos_enc = get(&f, "pos_enc");
    let table = sinusoidal_table(pos_enc.dim(0), pos_enc.dim(1));
    assert_tensors_close(&table, &pos_enc, 1e-7, "pos_enc");
}

#[test]
fn encodings_cover_a_range_and_refuse_to_run_past_max_len() {
    let sin = SinusoidalPositions::new(10, 4);
    let e = sin.encoding(3, 5).unwrap();
    assert_eq!(e.shape(), [5, 4]);
    assert_eq!(e.value().data(), &sin.table().data()[12..32]);
    assert!(!e.requires_grad());
    assert!(sin.encoding(5, 5).is_ok());
    let err = sin.encoding(6, 5).unwrap_err();
    assert!(matches!(
        err,
        AttentionError::TooLong {
            needed: 11,
            max_len: 10
        }
    ));
    assert!(err.to_string().contains("raise max_len"), "{err}");

    let mut rng = Rng::new(51);
    let mut params = Params::new();
    let learned = LearnedPositions::new(&mut params, "dec.pos", 8, 3, &mut rng);
    assert_eq!(params.iter().next().map(|(n, _)| n), Some("dec.pos.weight"));
    assert_eq!(learned.weight.shape(), [8, 3]);
    let e = learned.encoding(2, 4).unwrap();
    assert_eq!(e.value().data(), &learned.weight.value().data()[6..18]);
    assert!(learned.encoding(5, 4).is_err());

    let positions = Positions::Learned(learned);
    assert_eq!((positions.max_len(), positions.d_model()), (8, 3));
    let too_long = Var::constant(Tensor::zeros(&[2, 9, 3]));
    assert!(positions.add(&too_long, 0).is_err());
    let wrong_width = Var::constant(Tensor::zeros(&[2, 4, 5]));
    assert!(positions.add(&wrong_width, 0).is_err());
}

#[test]
fn add_puts_position_start_plus_t_on_row_t_of_every_sequence() {
    let mut rng = Rng::new(52);
    let positions = Positions::Sinusoidal(SinusoidalPositions::new(12, 6));
    let x = Tensor::randn(&[2, 4, 6], 0.0, 1.0, &mut rng);
    let y = positions
        .add(&Var::constant(x.clone()), 3)
        .unwrap()
        .to_tensor();
    let table = sinusoidal_table(12, 6);
    let mut expected = Vec::new();
    for b in 0..2 {
        for t in 0..4 {
            for j in 0..6 {
                expected.push(
                    x.data()[(b * 4 + t) * 6 + j] as f64 + table.data()[(3 + t) * 6 + j] as f64,
                );
            }
        }
    }
    assert_close(&y, &expected, 1e-7, "x + pe");
}

#[test]
fn learned_positions_gradient_check() {
    let mut rng = Rng::new(53);
    let x = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    let table = Tensor::randn(&[6, 4], 0.0, 1.0, &mut rng);
    let r = check_gradients(
        |v| {
            let p = Positions::Learned(LearnedPositions {
                weight: v[1].clone(),
            });
            p.add(&v[0], 2).unwrap().tanh()
        },
        &[x, table],
        1e-2,
        3,
    );
    assert!(r.max_rel_error < 1e-2, "{r:?}");
}

#[test]
fn positions_break_the_permutation_equivariance_of_self_attention() {
    let mut rng = Rng::new(54);
    let mut params = Params::new();
    let l = ScaledDotProductAttention::new(&mut params, "a", 8, 8, 8, 8, &mut rng);
    let positions = Positions::Sinusoidal(SinusoidalPositions::new(16, 8));
    let (len, d) = (5, 8);
    let x = Tensor::randn(&[1, len, d], 0.0, 1.0, &mut rng);
    let swap = |t: &Tensor| {
        let mut out = t.clone();
        out.data_mut()[..d].copy_from_slice(&t.data()[d..2 * d]);
        out.data_mut()[d..2 * d].copy_from_slice(&t.data()[..d]);
        out
    };
    let run = |x: &Tensor| {
        let x = positions.add(&Var::constant(x.clone()), 0).unwrap();
        l.forward(&x, &x, None).unwrap().0.to_tensor()
    };
    // With positions, swapping two inputs no longer just swaps the outputs.
    let diff = run(&swap(&x)).max_abs_diff(&swap(&run(&x)));
    assert!(diff > 1e-3, "positions changed nothing: {diff}");
}
