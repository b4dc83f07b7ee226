//! Layout ops (reshape, permute/transpose, concat, narrow, split, select) against index-arithmetic
//! references on random shapes: every permutation of rank 2–4, concat and narrow on every axis; with
//! gradient checks.

mod common;

use common::{assert_close, assert_grads, f64s, random_shape, ravel, unravel};
use tensor::ops::layout::{concat_tensors, narrow_tensor, permute_tensor};
use tensor::{Rng, Tensor, Var};

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..n {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// Reference permute: `out[i₀, …] = x[j]` with `j[perm[k]] = i[k]`.
fn permute64(x: &Tensor, perm: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let xd = f64s(x);
    let n: usize = shape.iter().product();
    let out = (0..n)
        .map(|i| {
            let idx = unravel(i, &shape);
            let mut src = vec![0; perm.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = idx[k];
            }
            xd[ravel(&src, x.shape())]
        })
        .collect();
    (shape, out)
}

/// Reference concat along `axis`: the output index along `axis` picks the piece and its offset.
fn concat64(xs: &[Tensor], axis: usize) -> (Vec<usize>, Vec<f64>) {
    let mut shape = xs[0].shape().to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    let n: usize = shape.iter().product();
    let out = (0..n)
        .map(|i| {
            let mut idx = unravel(i, &shape);
            let mut piece = 0;
            while idx[axis] >= xs[piece].shape()[axis] {
                idx[axis] -= xs[piece].shape()[axis];
                piece += 1;
            }
            xs[piece].data()[ravel(&idx, xs[piece].shape())] as f64
        })
        .collect();
    (shape, out)
}

/// Reference narrow: output index plus `start` along `axis`.
fn narrow64(x: &Tensor, axis: usize, start: usize, len: usize) -> (Vec<usize>, Vec<f64>) {
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let n: usize = shape.iter().product();
    let out = (0..n)
        .map(|i| {
            let mut idx = unravel(i, &shape);
            idx[axis] += start;
            x.data()[ravel(&idx, x.shape())] as f64
        })
        .collect();
    (shape, out)
}

#[test]
fn every_permutation_of_rank_0_to_4_matches_reference() {
    let mut rng = Rng::new(51);
    for rank in 0..=4 {
        for perm in permutations(rank) {
            // Two draws per permutation; sizes include 1 so that size-1 last axes are covered.
            for _ in 0..2 {
                let shape = random_shape(&mut rng, rank, rank, 5);
                let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
                let (s, want) = permute64(&x, &perm);
                let what = format!("permute {shape:?} by {perm:?}");
                assert_close(&what, &permute_tensor(&x, &perm), &s, &want, 0.0);
                let v = Var::constant(x).permute(&perm);
                assert_close(&what, &v.value(), &s, &want, 0.0);
            }
        }
    }
}

#[test]
fn transpose_swaps_two_axes_counting_from_either_end() {
    let mut rng = Rng::new(52);
    let x = Tensor::randn(&[2, 3, 4, 5], 0.0, 1.0, &mut rng);
    let v = Var::constant(x.clone());
    let (s, want) = permute64(&x, &[0, 3, 2, 1]);
    assert_close(
        "transpose(1, 3)",
        &v.transpose(1, 3).value(),
        &s,
        &want,
        0.0,
    );
    assert_close(
        "transpose(-3, -1)",
        &v.transpose(-3, -1).value(),
        &s,
        &want,
        0.0,
    );
    assert_close(
        "transpose(3, 1)",
        &v.transpose(3, 1).value(),
        &s,
        &want,
        0.0,
    );
    assert_grads(
        "transpose(-1, 0)",
        |v| v[0].transpose(-1, 0).tanh(),
        &[x],
        1e-2,
        2e-3,
    );
}

#[test]
fn permute_then_inverse_is_identity_and_gradients_pass() {
    let mut rng = Rng::new(53);
    for rank in 2..=4 {
        let perms = permutations(rank);
        // Rank 2 and 3: every permutation; rank 4: a random handful.
        let chosen: Vec<&Vec<usize>> = if rank < 4 {
            perms.iter().collect()
        } else {
            (0..5).map(|_| &perms[rng.below(perms.len())]).collect()
        };
        for perm in chosen {
            let shape = random_shape(&mut rng, rank, rank, 4);
            let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
            let mut inv = vec![0; rank];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            let back = permute_tensor(&permute_tensor(&x, perm), &inv);
            assert_eq!(back, x, "{perm:?}");
            assert_grads(
                &format!("permute {shape:?} {perm:?}"),
                |v| v[0].permute(perm),
                &[x],
                1e-2,
                1e-3,
            );
        }
    }
}

#[test]
fn reshape_keeps_the_data_and_its_gradient_flows_back_in_shape() {
    let mut rng = Rng::new(54);
    let x = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    let v = Var::constant(x.clone()).reshape(&[6, 4]);
    assert_close("reshape", &v.value(), &[6, 4], &f64s(&x), 0.0);
    assert_grads(
        "reshape",
        |v| v[0].reshape(&[4, 1, 6]).softmax(),
        &[x],
        1e-2,
        2e-3,
    );
}

#[test]
fn concat_on_every_axis_matches_reference() {
    let mut rng = Rng::new(55);
    for _ in 0..20 {
        let shape = random_shape(&mut rng, 1, 4, 4);
        for axis in 0..shape.len() {
            let pieces = 1 + rng.below(3);
            let xs: Vec<Tensor> = (0..pieces)
                .map(|_| {
                    let mut s = shape.clone();
                    s[axis] = 1 + rng.below(4);
                    Tensor::randn(&s, 0.0, 1.0, &mut rng)
                })
                .collect();
            let (s, want) = concat64(&xs, axis);
            let what = format!(
                "concat {:?} on {axis}",
                xs.iter().map(|x| x.shape()).collect::<Vec<_>>()
            );
            let refs: Vec<&Tensor> = xs.iter().collect();
            assert_close(&what, &concat_tensors(&refs, axis), &s, &want, 0.0);
            let vars: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
            let neg = axis as isize - shape.len() as isize;
            assert_close(&what, &Var::concat(&vars, neg).value(), &s, &want, 0.0);
        }
    }
}

#[test]
fn concat_accepts_an_empty_piece() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let empty = Tensor::zeros(&[2, 0]);
    let out = concat_tensors(&[&empty, &a, &empty], 1);
    assert_eq!(out, a);
}

#[test]
fn concat_gradients_pass_and_constant_pieces_get_none() {
    let mut rng = Rng::new(56);
    for axis in 0..3 {
        let mut sa = vec![2, 3, 2];
        let mut sb = sa.clone();
        sa[axis] = 1;
        sb[axis] = 3;
        let a = Tensor::randn(&sa, 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&sb, 0.0, 1.0, &mut rng);
        assert_grads(
            &format!("concat axis {axis}"),
            |v| Var::concat(&[v[0].clone(), v[1].clone(), v[0].clone()], axis as isize),
            &[a.clone(), b.clone()],
            1e-2,
            1e-3,
        );
        let (pa, cb) = (Var::parameter(a), Var::constant(b));
        Var::concat(&[pa.clone(), cb.clone()], axis as isize)
            .sum_all()
            .backward();
        assert_eq!(pa.grad().unwrap(), Tensor::ones(&sa));
        assert!(cb.grad().is_none());
    }
}

#[test]
fn narrow_on_every_axis_matches_reference() {
    let mut rng = Rng::new(57);
    for _ in 0..25 {
        let shape = random_shape(&mut rng, 1, 4, 6);
        let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        for axis in 0..shape.len() {
            let start = rng.below(shape[axis]);
            let len = rng.below(shape[axis] - start + 1);
            let (s, want) = narrow64(&x, axis, start, len);
            let what = format!("narrow {shape:?} axis {axis} {start}+{len}");
            assert_close(&what, &narrow_tensor(&x, axis, start, len), &s, &want, 0.0);
            let v = Var::constant(x.clone()).narrow(axis as isize, start, len);
            assert_close(&what, &v.value(), &s, &want, 0.0);
        }
    }
}

#[test]
fn narrow_split_and_select_gradients_pass() {
    let mut rng = Rng::new(58);
    let x = Tensor::randn(&[3, 4, 5], 0.0, 1.0, &mut rng);
    for axis in 0..3isize {
        let n = x.shape()[axis as usize];
        assert_grads(
            &format!("narrow axis {axis}"),
            |v| v[0].narrow(axis, 1, n - 2),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        assert_grads(
            &format!("select axis {axis}"),
            |v| v[0].select(axis, n - 1),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        // Pieces used differently, so that each piece's gradient is distinct.
        assert_grads(
            &format!("split axis {axis}"),
            |v| {
                let p = v[0].split(axis, &[1, n - 1]);
                Var::concat(&[p[1].tanh(), p[0].scale(3.0)], axis)
            },
            std::slice::from_ref(&x),
            1e-2,
            2e-3,
        );
    }
}

/// Narrow's backward adds into its slice of the parent's accumulated gradient: every step of a
/// sequence selected one at a time (as an RNN decoder reads its input projection), overlapping
/// slices, and the parent also used whole must all add up (finite differences), with the parent's
/// gradient arriving through the slices first or last.
#[test]
fn many_slices_of_one_parent_accumulate_their_gradients() {
    let mut rng = Rng::new(61);
    let x = Tensor::randn(&[2, 5, 3], 0.0, 1.0, &mut rng);
    assert_grads(
        "select every step, overlapping narrows, whole use",
        |v| {
            let steps: Vec<Var> = (0..5)
                .map(|t| v[0].select(1, t).scale(t as f32 + 1.0).tanh())
                .collect();
            let overlapping = v[0].narrow(1, 1, 3).tanh().reshape(&[2, 9]);
            let whole = v[0].sigmoid().reshape(&[2, 15]);
            Var::concat(
                &[
                    Var::concat(&steps, -1),
                    overlapping,
                    whole,
                    v[0].narrow(1, 2, 2).reshape(&[2, 6]),
                ],
                -1,
            )
        },
        std::slice::from_ref(&x),
        1e-2,
        2e-3,
    );
}

#[test]
fn split_then_concat_is_identity_and_select_drops_the_axis() {
    let mut rng = Rng::new(59);
    let x = Tensor::randn(&[4, 6, 3], 0.0, 1.0, &mut rng);
    let v = Var::constant(x.clone());
    let parts = v.split(1, &[2, 0, 3, 1]);
    assert_eq!(
        parts.iter().map(|p| p.shape()).collect::<Vec<_>>(),
        vec![vec![4, 2, 3], vec![4, 0, 3], vec![4, 3, 3], vec![4, 1, 3]]
    );
    assert_eq!(Var::concat(&parts, 1).to_tensor(), x);
    let s = v.select(-2, 4);
    let (_, want) = narrow64(&x, 1, 4, 1);
    assert_close("select", &s.value(), &[4, 3], &want, 0.0);
}

#[test]
#[should_panic(expected = "beyond")]
fn narrow_past_the_end_panics() {
    Var::constant(Tensor::zeros(&[2, 3])).narrow(1, 2, 2);
}

#[test]
#[should_panic(expected = "not a permutation")]
fn permute_with_a_repeated_axis_panics() {
    Var::constant(Tensor::zeros(&[2, 3])).permute(&[1, 1]);
}
