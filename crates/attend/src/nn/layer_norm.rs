//! Layer normalisation (Ba et al. 2016) over the last axis, as PyTorch's `nn.LayerNorm(dim)`.
//!
//! `y = (x − μ) / √(σ² + ε) ⊙ weight + bias`, `μ` and the biased `σ²` over the last axis of
//! `x [..., D]`; `{name}.weight [D]` starts at 1, `{name}.bias [D]` at 0. The engine's fused op does the
//! work ([`Var::layer_norm`]).

use crate::nn::Params;
use tensor::{Tensor, Var};

pub struct LayerNorm {
    pub weight: Var,
    pub bias: Var,
    pub eps: f32,
}

impl LayerNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros), both `[dim]`.
    pub fn new(params: &mut Params, name: &str, dim: usize, eps: f32) -> LayerNorm {
        LayerNorm {
            weight: params.add(&format!("{name}.weight"), Tensor::ones(&[dim])),
            bias: params.add(&format!("{name}.bias"), Tensor::zeros(&[dim])),
            eps,
        }
    }

    /// `x [..., D] → [..., D]`.
    pub fn forward(&self, x: &Var) -> Var {
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
}
