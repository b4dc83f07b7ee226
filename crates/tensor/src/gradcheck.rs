//! Finite-difference gradient checks, used by the tests of every op and layer.
//!
//! For `f(inputs) → out`, the checked scalar is `L = Σ out ⊙ G` with a fixed random `G`, so every
//! output element contributes. Analytic `∂L/∂x` from the tape is compared with the central difference
//! `(L(x + h) − L(x − h)) / 2h`, evaluated element by element in f64 accumulation.

use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::var::Var;

/// Result of a check: the worst relative error and where it was.
#[derive(Debug)]
pub struct GradCheck {
    pub max_rel_error: f64,
    pub worst_input: usize,
    pub worst_index: usize,
}

/// Checks `f`'s gradients with respect to every input. `h` is the step (1e-2 to 1e-3 suits f32).
/// The relative error of an element is `|a − n| / max(1, |a|, |n|)` (absolute near zero).
pub fn check_gradients(
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    h: f32,
    seed: u64,
) -> GradCheck {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&vars);
    let mut rng = Rng::new(seed);
    let weights = Tensor::randn(out.value().shape(), 0.0, 1.0, &mut rng);
    out.backward_with(weights.clone());
    let analytic: Vec<Tensor> = vars
        .iter()
        .map(|v| v.grad().unwrap_or_else(|| Tensor::zeros(v.value().shape())))
        .collect();
    let loss = |xs: &[Tensor]| -> f64 {
        let vs: Vec<Var> = xs.iter().map(|t| Var::constant(t.clone())).collect();
        let o = crate::var::no_grad(|| f(&vs));
        let o = o.value();
        o.data()
            .iter()
            .zip(weights.data())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let mut result = GradCheck {
        max_rel_error: 0.0,
        worst_input: 0,
        worst_index: 0,
    };
    let mut xs: Vec<Tensor> = inputs.to_vec();
    for i in 0..xs.len() {
        for j in 0..xs[i].numel() {
            let orig = xs[i].data()[j];
            xs[i].data_mut()[j] = orig + h;
            let up = loss(&xs);
            xs[i].data_mut()[j] = orig - h;
            let down = loss(&xs);
            xs[i].data_mut()[j] = orig;
            let numeric = (up - down) / (2.0 * h as f64);
            let a = analytic[i].data()[j] as f64;
            let rel = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
            if rel > result.max_rel_error {
                result = GradCheck {
                    max_rel_error: rel,
                    worst_input: i,
                    worst_index: j,
                };
            }
        }
    }
    result
}
