//! add/sub/mul/div with NumPy broadcasting, and the scalar ops (scale, add_scalar, neg), against a
//! float64 reference on random shapes; gradient checks of every broadcasting pattern.

mod common;

use common::{assert_close, assert_grads, f64s, random_shape, ravel, unravel};
use tensor::{Rng, Tensor, Var};

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

const OPS: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

impl Op {
    fn apply(self, a: &Var, b: &Var) -> Var {
        match self {
            Op::Add => a.add(b),
            Op::Sub => a.sub(b),
            Op::Mul => a.mul(b),
            Op::Div => a.div(b),
        }
    }

    fn f64(self, a: f64, b: f64) -> f64 {
        match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
        }
    }
}

/// The broadcast shape of `a` and `b` (NumPy rules), written independently of the engine.
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (pad(a), pad(b));
    pa.iter()
        .zip(&pb)
        .map(|(&x, &y)| {
            assert!(x == y || x == 1 || y == 1, "test bug: {a:?} vs {b:?}");
            x.max(y)
        })
        .collect()
}

/// Index into an operand of shape `src` for the output multi-index `idx` (broadcast axes read 0).
fn source_index(idx: &[usize], src: &[usize]) -> usize {
    let off = idx.len() - src.len();
    let sidx: Vec<usize> = src
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { idx[off + i] })
        .collect();
    ravel(&sidx, src)
}

/// Plain float64 `op(a, b)` over the broadcast shape.
fn reference(op: Op, a: &Tensor, b: &Tensor) -> (Vec<usize>, Vec<f64>) {
    let shape = broadcast(a.shape(), b.shape());
    let n: usize = shape.iter().product();
    let (ad, bd) = (f64s(a), f64s(b));
    let out = (0..n)
        .map(|i| {
            let idx = unravel(i, &shape);
            op.f64(
                ad[source_index(&idx, a.shape())],
                bd[source_index(&idx, b.shape())],
            )
        })
        .collect();
    (shape, out)
}

/// A shape that broadcasts to `out`: some leading axes dropped, some axes set to 1.
fn operand_shape(out: &[usize], rng: &mut Rng) -> Vec<usize> {
    let drop = rng.below(out.len() + 1);
    out[drop..]
        .iter()
        .map(|&d| if rng.below(3) == 0 { 1 } else { d })
        .collect()
}

/// The broadcasting patterns the models use, plus degenerate ones.
fn named_cases() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![2, 3, 4], vec![4]),          // [B,T,D] + [D] (bias)
        (vec![2, 1, 5], vec![2, 3, 5]),    // [B,1,S] * [B,T,S] (padding mask)
        (vec![2, 3, 5], vec![2, 1, 5]),    // the same, other way round
        (vec![3, 4], vec![]),              // tensor ∘ scalar
        (vec![], vec![3, 4]),              // scalar ∘ tensor
        (vec![1, 3, 4], vec![2, 3, 4]),    // leading 1
        (vec![2, 3, 4], vec![1, 1, 4]),    // leading 1s, both ranks equal
        (vec![3, 1], vec![1, 4]),          // both operands broadcast (outer product)
        (vec![2, 3, 1, 4], vec![3, 5, 1]), // rank 4 against rank 3, mixed
        (vec![2, 3], vec![2, 3]),          // no broadcasting
        (vec![1], vec![2, 3]),             // single element of rank 1
    ]
}

/// Inputs for `op`: divisors kept in ±[0.5, 2] so that the quotient is well conditioned.
fn inputs(op: Op, sa: &[usize], sb: &[usize], rng: &mut Rng) -> (Tensor, Tensor) {
    let a = Tensor::randn(sa, 0.0, 1.0, rng);
    let b = match op {
        Op::Div => common::away_from_zero(sb, 0.5, 2.0, rng),
        _ => Tensor::randn(sb, 0.0, 1.0, rng),
    };
    (a, b)
}

#[test]
fn forward_matches_f64_reference_on_named_broadcasts() {
    let mut rng = Rng::new(11);
    for op in OPS {
        for (sa, sb) in named_cases() {
            let (a, b) = inputs(op, &sa, &sb, &mut rng);
            let got = op.apply(&Var::constant(a.clone()), &Var::constant(b.clone()));
            let (shape, want) = reference(op, &a, &b);
            assert_close(
                &format!("{op:?} {sa:?} {sb:?}"),
                &got.value(),
                &shape,
                &want,
                1e-6,
            );
        }
    }
}

#[test]
fn forward_matches_f64_reference_on_random_broadcasts() {
    let mut rng = Rng::new(12);
    for _ in 0..60 {
        let out = random_shape(&mut rng, 1, 4, 5);
        let (sa, sb) = if rng.below(2) == 0 {
            (out.clone(), operand_shape(&out, &mut rng))
        } else {
            (operand_shape(&out, &mut rng), operand_shape(&out, &mut rng))
        };
        for op in OPS {
            let (a, b) = inputs(op, &sa, &sb, &mut rng);
            let got = op.apply(&Var::constant(a.clone()), &Var::constant(b.clone()));
            let (shape, want) = reference(op, &a, &b);
            assert_close(
                &format!("{op:?} {sa:?} {sb:?}"),
                &got.value(),
                &shape,
                &want,
                1e-6,
            );
        }
    }
}

#[test]
fn gradients_pass_finite_differences_on_every_broadcast() {
    let mut rng = Rng::new(13);
    let mut cases = named_cases();
    for _ in 0..6 {
        let out = random_shape(&mut rng, 1, 3, 4);
        cases.push((operand_shape(&out, &mut rng), out.clone()));
        cases.push((out.clone(), operand_shape(&out, &mut rng)));
    }
    for op in OPS {
        for (sa, sb) in &cases {
            let (a, b) = inputs(op, sa, sb, &mut rng);
            assert_grads(
                &format!("{op:?} {sa:?} {sb:?}"),
                |v| op.apply(&v[0], &v[1]),
                &[a, b],
                1e-2,
                2e-3,
            );
        }
    }
}

#[test]
fn one_constant_operand_gets_no_gradient_and_the_other_does() {
    let mut rng = Rng::new(14);
    for op in OPS {
        let (a, b) = inputs(op, &[2, 3], &[3], &mut rng);
        let x = Var::parameter(a.clone());
        let c = Var::constant(b.clone());
        op.apply(&x, &c).sum_all().backward();
        assert!(c.grad().is_none(), "{op:?}: a constant got a gradient");
        // ∂/∂a of Σ op(a, b): 1 for add/sub, b for mul, 1/b for div.
        let g = x.grad().expect("parameter gradient");
        let want: Vec<f64> = (0..6)
            .map(|i| {
                let bv = b.data()[i % 3] as f64;
                match op {
                    Op::Add | Op::Sub => 1.0,
                    Op::Mul => bv,
                    Op::Div => 1.0 / bv,
                }
            })
            .collect();
        assert_close(&format!("{op:?} grad"), &g, &[2, 3], &want, 1e-6);
    }
}

#[test]
fn scalar_ops_match_f64_and_pass_gradient_checks() {
    let mut rng = Rng::new(15);
    for _ in 0..10 {
        let shape = random_shape(&mut rng, 0, 4, 5);
        let x = Tensor::randn(&shape, 0.0, 2.0, &mut rng);
        let s = rng.uniform(-3.0, 3.0);
        let xv = Var::constant(x.clone());
        let xd = f64s(&x);
        let scaled: Vec<f64> = xd.iter().map(|&v| v * s as f64).collect();
        let shifted: Vec<f64> = xd.iter().map(|&v| v + s as f64).collect();
        let negated: Vec<f64> = xd.iter().map(|&v| -v).collect();
        assert_close("scale", &xv.scale(s).value(), &shape, &scaled, 1e-6);
        assert_close(
            "add_scalar",
            &xv.add_scalar(s).value(),
            &shape,
            &shifted,
            1e-6,
        );
        assert_close("neg", &xv.neg().value(), &shape, &negated, 0.0);
        assert_grads(
            "scale",
            |v| v[0].scale(s),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        assert_grads(
            "add_scalar",
            |v| v[0].add_scalar(s),
            std::slice::from_ref(&x),
            1e-2,
            1e-3,
        );
        assert_grads("neg", |v| v[0].neg(), &[x], 1e-2, 1e-3);
    }
}

#[test]
#[should_panic(expected = "incompatible")]
fn incompatible_shapes_panic_with_both_shapes() {
    let a = Var::constant(Tensor::zeros(&[2, 3]));
    let b = Var::constant(Tensor::zeros(&[4]));
    a.add(&b);
}
