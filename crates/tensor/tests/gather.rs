//! Row gathering (the embedding lookup) against a reference on random tables and ids, the
//! scatter-add of its gradient over repeated ids, and its gradient check.

mod common;

use common::{assert_close, assert_grads};
use tensor::{Rng, Tensor, Var};

#[test]
fn gathered_rows_equal_the_table_rows() {
    let mut rng = Rng::new(61);
    for _ in 0..20 {
        let (v, d) = (1 + rng.below(12), 1 + rng.below(9));
        let n = rng.below(15);
        let table = Tensor::randn(&[v, d], 0.0, 1.0, &mut rng);
        let ids: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
        let want: Vec<f64> = ids
            .iter()
            .flat_map(|&id| (0..d).map(move |j| (id as usize, j)))
            .map(|(r, j)| table.data()[r * d + j] as f64)
            .collect();
        let got = Var::constant(table).gather_rows(&ids);
        assert_close(
            &format!("gather {v}x{d} {ids:?}"),
            &got.value(),
            &[n, d],
            &want,
            0.0,
        );
    }
}

#[test]
fn gradient_scatter_adds_over_repeated_ids() {
    let mut rng = Rng::new(62);
    let (v, d) = (5, 3);
    let table = Var::parameter(Tensor::randn(&[v, d], 0.0, 1.0, &mut rng));
    let ids = [3u32, 0, 3, 3, 1];
    let out = table.gather_rows(&ids);
    let seed = Tensor::randn(&[ids.len(), d], 0.0, 1.0, &mut rng);
    out.backward_with(seed.clone());
    // Reference: row r of the gradient is the sum of the seed rows whose id is r.
    let mut want = vec![0.0f64; v * d];
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..d {
            want[id as usize * d + j] += seed.data()[i * d + j] as f64;
        }
    }
    assert_close("d table", &table.grad().unwrap(), &[v, d], &want, 1e-6);
    // Rows 2 and 4 were never looked up.
    let g = table.grad().unwrap();
    assert!(g.data()[2 * d..3 * d].iter().all(|&x| x == 0.0));
    assert!(g.data()[4 * d..].iter().all(|&x| x == 0.0));
}

#[test]
fn gradients_pass_finite_differences() {
    let mut rng = Rng::new(63);
    let table = Tensor::randn(&[6, 4], 0.0, 1.0, &mut rng);
    let ids = [5u32, 2, 2, 0, 5, 5, 1];
    // Through a non-linearity so that repeated rows see different upstream gradients.
    assert_grads(
        "gather_rows",
        |v| v[0].gather_rows(&ids).tanh(),
        &[table],
        1e-2,
        2e-3,
    );
}

#[test]
fn no_ids_give_an_empty_batch() {
    let table = Var::parameter(Tensor::ones(&[4, 3]));
    let out = table.gather_rows(&[]);
    assert_eq!(out.shape(), vec![0, 3]);
    out.sum_all().backward();
    assert_eq!(table.grad().unwrap(), Tensor::zeros(&[4, 3]));
}

#[test]
#[should_panic(expected = "out of range")]
fn an_id_past_the_table_panics() {
    Var::constant(Tensor::zeros(&[4, 2])).gather_rows(&[1, 4]);
}
