//! Element-wise functions: exp, log, tanh, sigmoid, relu, gelu, silu, sqrt, square (and the
//! in-place forwards of relu, gelu and silu, for fused callers).
//!
//! exp, tanh and sigmoid run the vectorized kernels of [`crate::kernels::math`] (≤ 3 ulp).
//!
//! Backward uses the saved output where the derivative is a function of it
//! (`exp' = y`, `tanh' = 1 − y²`, `σ' = y(1 − y)`), the input otherwise.

use crate::kernels::math;
use crate::tensor::Tensor;
use crate::var::Var;
use rayon::prelude::*;

/// Logistic sigmoid `σ(x) = 1 / (1 + e⁻ˣ)`, stable for large |x|.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// GELU, exact form (PyTorch's default): `x · Φ(x)`, `Φ(x) = ½(1 + erf(x/√2))`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `d gelu / dx = Φ(x) + x φ(x)`, `φ(x) = e^{−x²/2} / √(2π)`.
pub fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
    cdf + x * pdf
}

/// `max(x, 0)`.
pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// SiLU, also called swish (Marian's and OPUS-MT's feed-forward activation): `x · σ(x)`.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `d silu / dx = σ(x) · (1 + x · (1 − σ(x)))`.
pub fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// `x ← relu(x)` element-wise (for fused callers: the values of [`Var::relu`]).
pub fn relu_inplace(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = relu(*x));
}

/// `x ← gelu(x)` element-wise (for fused callers: the values of [`Var::gelu`]).
pub fn gelu_inplace(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = gelu(*x));
}

/// `x ← silu(x)` element-wise (for fused callers: the values of [`Var::silu`]).
pub fn silu_inplace(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = silu(*x));
}

fn unary(x: &Var, f: impl Fn(f32) -> f32 + Sync, backward: crate::var::BackwardFn) -> Var {
    let out = x.value().map(f);
    Var::from_op(out, vec![x.clone()], backward)
}

/// As [`unary`], with a vectorized in-place kernel from [`crate::kernels::math`].
fn unary_inplace(x: &Var, f: fn(&mut [f32]), backward: crate::var::BackwardFn) -> Var {
    let mut out = x.to_tensor();
    // Element-wise: large tensors in chunks over the threads.
    const CHUNK: usize = 1 << 15;
    if out.numel() >= 2 * CHUNK {
        out.data_mut().par_chunks_mut(CHUNK).for_each(f);
    } else {
        f(out.data_mut());
    }
    Var::from_op(out, vec![x.clone()], backward)
}

fn from_output(g: &Tensor, y: &Tensor, d: impl Fn(f32) -> f32 + Sync) -> Vec<Option<Tensor>> {
    vec![Some(g.zip(y, |g, y| g * d(y)))]
}

fn from_input(g: &Tensor, p: &[Var], d: impl Fn(f32) -> f32 + Sync) -> Vec<Option<Tensor>> {
    vec![Some(g.zip(&p[0].value(), |g, x| g * d(x)))]
}

impl Var {
    pub fn exp(&self) -> Var {
        unary_inplace(
            self,
            math::exp_inplace,
            Box::new(|g, y, _| from_output(g, y, |y| y)),
        )
    }

    /// Natural logarithm.
    pub fn log(&self) -> Var {
        unary(
            self,
            f32::ln,
            Box::new(|g, _, p| from_input(g, p, |x| 1.0 / x)),
        )
    }

    pub fn tanh(&self) -> Var {
        unary_inplace(
            self,
            math::tanh_inplace,
            Box::new(|g, y, _| from_output(g, y, |y| 1.0 - y * y)),
        )
    }

    pub fn sigmoid(&self) -> Var {
        unary_inplace(
            self,
            math::sigmoid_inplace,
            Box::new(|g, y, _| from_output(g, y, |y| y * (1.0 - y))),
        )
    }

    pub fn relu(&self) -> Var {
        unary(
            self,
            relu,
            Box::new(|g, _, p| from_input(g, p, |x| if x > 0.0 { 1.0 } else { 0.0 })),
        )
    }

    /// GELU (exact, erf form).
    pub fn gelu(&self) -> Var {
        unary(self, gelu, Box::new(|g, _, p| from_input(g, p, gelu_grad)))
    }

    /// SiLU (swish): `x · σ(x)`.
    pub fn silu(&self) -> Var {
        unary(self, silu, Box::new(|g, _, p| from_input(g, p, silu_grad)))
    }

    pub fn sqrt(&self) -> Var {
        unary(
            self,
            f32::sqrt,
            Box::new(|g, y, _| from_output(g, y, |y| 0.5 / y)),
        )
    }

    pub fn square(&self) -> Var {
        unary(
            self,
            |x| x * x,
            Box::new(|g, _, p| from_input(g, p, |x| 2.0 * x)),
        )
    }
}
