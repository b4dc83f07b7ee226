//! Linear layer: `y = x Wᵀ + b` with PyTorch's layout.
//!
//! `x [..., in] → y [..., out]`, `weight [out, in]`, `bias [out]`; initialised as PyTorch does,
//! `U(±1/√in)` for both.

use crate::nn::Params;
use tensor::{Rng, Var};

pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
}

impl Linear {
    /// Registers `{name}.weight` and (if `bias`) `{name}.bias`.
    pub fn new(
        params: &mut Params,
        name: &str,
        input: usize,
        output: usize,
        bias: bool,
        rng: &mut Rng,
    ) -> Linear {
        let bound = 1.0 / (input as f32).sqrt();
        let weight = params.uniform(&format!("{name}.weight"), &[output, input], bound, rng);
        let bias = bias.then(|| params.uniform(&format!("{name}.bias"), &[output], bound, rng));
        Linear { weight, bias }
    }

    /// `x [..., in] → [..., out]`.
    pub fn forward(&self, x: &Var) -> Var {
        x.linear(&self.weight, self.bias.as_ref())
    }

    pub fn input_size(&self) -> usize {
        self.weight.dim(1)
    }

    pub fn output_size(&self) -> usize {
        self.weight.dim(0)
    }
}
