//! The differentiation tape: gradients accumulate over every use of a var, `no_grad` records nothing,
//! `detach` cuts the graph, constants get no gradient, and a long recurrence (deep graph) runs
//! backward and is freed without overflowing the stack.

mod common;

use common::{assert_close, f64s};
use tensor::gradcheck::check_gradients;
use tensor::{is_grad_enabled, no_grad, Rng, Tensor, Var};

#[test]
fn a_var_used_twice_gets_both_contributions() {
    let mut rng = Rng::new(111);
    let t = Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng);
    let x = Var::parameter(t.clone());
    x.mul(&x).sum_all().backward();
    let want: Vec<f64> = f64s(&t).iter().map(|v| 2.0 * v).collect();
    assert_close("d(x·x)", &x.grad().unwrap(), &[3, 4], &want, 1e-6);

    // Through two different branches: d/dx Σ(eˣ + tanh x) = eˣ + 1 − tanh² x.
    let x = Var::parameter(t.clone());
    x.exp().add(&x.tanh()).sum_all().backward();
    let want: Vec<f64> = f64s(&t)
        .iter()
        .map(|v| v.exp() + 1.0 - v.tanh().powi(2))
        .collect();
    assert_close("d(eˣ + tanh x)", &x.grad().unwrap(), &[3, 4], &want, 1e-6);
}

#[test]
fn a_shared_intermediate_sums_its_gradients_before_flowing_on() {
    // y = 2x used three times: L = Σ y + Σ y² + Σ y³ → dL/dx = 2(1 + 2y + 3y²).
    let t = Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]);
    let x = Var::parameter(t.clone());
    let y = x.scale(2.0);
    y.sum_all()
        .add(&y.square().sum_all())
        .add(&y.mul(&y).mul(&y).sum_all())
        .backward();
    let want: Vec<f64> = f64s(&t)
        .iter()
        .map(|v| {
            let y = 2.0 * v;
            2.0 * (1.0 + 2.0 * y + 3.0 * y * y)
        })
        .collect();
    assert_close("shared intermediate", &x.grad().unwrap(), &[3], &want, 1e-6);
}

#[test]
fn gradients_accumulate_across_backward_calls_until_zero_grad() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    x.scale(3.0).sum_all().backward();
    x.scale(3.0).sum_all().backward();
    assert_eq!(x.grad().unwrap().data(), &[6.0, 6.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    x.scale(3.0).sum_all().backward();
    assert_eq!(x.grad().unwrap().data(), &[3.0, 3.0]);
}

#[test]
fn no_grad_records_nothing_and_restores_recording() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    assert!(is_grad_enabled());
    let y = no_grad(|| {
        assert!(!is_grad_enabled());
        // Nested: still off inside, still off after the inner call returns.
        let z = no_grad(|| x.exp());
        assert!(!is_grad_enabled());
        z.mul(&x).sum_all()
    });
    assert!(is_grad_enabled());
    assert!(
        !y.requires_grad(),
        "a result computed under no_grad is on the tape"
    );
    y.backward();
    assert!(x.grad().is_none());
    // The value is still computed: Σ eˣ·x.
    let want = 1f64.exp() + 2.0 * 2f64.exp();
    assert!((y.item() as f64 - want).abs() < 1e-5);
}

#[test]
fn recording_is_restored_after_a_panic_inside_no_grad() {
    let caught = std::panic::catch_unwind(|| no_grad(|| panic!("inside no_grad")));
    assert!(caught.is_err());
    assert!(
        is_grad_enabled(),
        "a panic inside no_grad left recording off"
    );
}

#[test]
fn detach_stops_gradients() {
    let t = Tensor::from_vec(vec![0.5, -1.5, 2.0], &[3]);
    let x = Var::parameter(t.clone());
    // L = Σ detach(x)·x: only the second factor is differentiated → dL/dx = x.
    x.detach().mul(&x).sum_all().backward();
    assert_close("d(detach(x)·x)", &x.grad().unwrap(), &[3], &f64s(&t), 0.0);
    let d = x.detach();
    assert!(!d.requires_grad());
    assert_eq!(d.to_tensor(), t);
    // Detached values do not follow later in-place changes of the original.
    x.value_mut().data_mut()[0] = 9.0;
    assert_eq!(d.value().data()[0], 0.5);
}

#[test]
fn constants_get_no_gradient_and_a_constant_graph_is_not_recorded() {
    let c = Var::constant(Tensor::ones(&[2]));
    let p = Var::parameter(Tensor::ones(&[2]));
    let only_constants = c.exp().mul(&c);
    assert!(!only_constants.requires_grad());
    c.mul(&p).sum_all().backward();
    assert!(c.grad().is_none());
    assert_eq!(p.grad().unwrap().data(), &[1.0, 1.0]);
}

#[test]
fn backward_with_a_seed_weights_the_outputs() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    let y = x.square();
    y.backward_with(Tensor::from_vec(vec![1.0, 0.0, -2.0], &[3]));
    // dx = seed · 2x
    assert_eq!(x.grad().unwrap().data(), &[2.0, 0.0, -12.0]);
}

#[test]
#[should_panic(expected = "seed shape")]
fn a_seed_of_the_wrong_shape_panics() {
    let x = Var::parameter(Tensor::ones(&[3]));
    x.square().backward_with(Tensor::ones(&[2]));
}

/// Forward-mode f64 reference of `h_{t+1} = tanh(w·h_t + u)`, `h_0 = 0`: returns `(h_T, ∂h_T/∂w,
/// ∂h_T/∂u)`.
fn recurrence64(w: f64, u: f64, steps: usize) -> (f64, f64, f64) {
    let (mut h, mut dw, mut du) = (0.0f64, 0.0f64, 0.0f64);
    for _ in 0..steps {
        let next = (w * h + u).tanh();
        let d = 1.0 - next * next;
        // d/dw (w·h + u) = h + w·dh/dw; d/du (w·h + u) = w·dh/du + 1.
        dw = d * (h + w * dw);
        du = d * (w * du + 1.0);
        h = next;
    }
    (h, dw, du)
}

#[test]
fn a_5000_step_recurrence_runs_backward_and_is_freed_without_stack_overflow() {
    let steps = 5000;
    let (w0, u0) = (0.9f32, 0.05f32);
    let w = Var::parameter(Tensor::scalar(w0));
    let u = Var::parameter(Tensor::scalar(u0));
    let mut h = Var::constant(Tensor::scalar(0.0));
    for _ in 0..steps {
        h = h.mul(&w).add(&u).tanh();
    }
    h.backward();
    let (hw, dw, du) = recurrence64(w0 as f64, u0 as f64, steps);
    assert!((h.item() as f64 - hw).abs() < 1e-4, "{} vs {hw}", h.item());
    let (gw, gu) = (
        w.grad().unwrap().item() as f64,
        u.grad().unwrap().item() as f64,
    );
    assert!((gw - dw).abs() < 1e-3 * (1.0 + dw.abs()), "dw {gw} vs {dw}");
    assert!((gu - du).abs() < 1e-3 * (1.0 + du.abs()), "du {gu} vs {du}");
    // Dropping the last node frees a 15 000-node chain.
    drop(h);
}

#[test]
fn a_100k_node_chain_is_built_differentiated_and_dropped() {
    // h_{t+1} = h_t + x: 100 000 nodes deep; dh/dx = number of steps.
    let steps = 100_000;
    let x = Var::parameter(Tensor::scalar(0.0));
    let mut h = Var::constant(Tensor::scalar(0.0));
    for _ in 0..steps {
        h = h.add(&x);
    }
    h.backward();
    assert_eq!(x.grad().unwrap().item(), steps as f32);
    drop(h);
}

#[test]
fn the_gradient_check_catches_a_wrong_backward() {
    // y = x² recorded with the backward of x³ (3x²) instead of 2x: the check must report it, while
    // the same op with the right backward passes.
    let square_with = |k: f32| {
        move |v: &[Var]| {
            let out = v[0].value().map(|x| x * x);
            Var::from_op(
                out,
                vec![v[0].clone()],
                Box::new(move |g, _, p| vec![Some(g.zip(&p[0].value(), |g, x| g * k * x))]),
            )
        }
    };
    let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 1.5], &[4]);
    let wrong = check_gradients(square_with(3.0), std::slice::from_ref(&x), 1e-2, 1);
    assert!(wrong.max_rel_error > 0.3, "{wrong:?}");
    let right = check_gradients(square_with(2.0), &[x], 1e-2, 1);
    assert!(right.max_rel_error < 1e-3, "{right:?}");
}

#[test]
fn into_tensor_moves_a_sole_value_and_copies_a_shared_one() {
    let t = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    let y = no_grad(|| Var::constant(t.clone()).scale(2.0));
    assert_eq!(y.into_tensor().data(), &[2.0, 4.0, 6.0]);
    // Another handle keeps the node alive: the value is copied and stays readable there.
    let x = Var::parameter(t.clone());
    let other = x.clone();
    assert_eq!(x.into_tensor(), t);
    assert_eq!(other.to_tensor(), t);
}
