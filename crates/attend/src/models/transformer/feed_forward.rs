//! The position-wise feed-forward block of a Transformer layer (Vaswani et al. 2017, §3.3), with
//! `torch.nn.TransformerEncoderLayer`'s parameter names.
//!
//! ```text
//! FF(x) = linear2(dropout(act(linear1(x))))      act = relu | gelu (erf form) | swish (x·σ(x))
//! x [B, L, d] → hidden [B, L, ff] → [B, L, d]
//! ```
//!
//! `{prefix}.linear1.{weight [ff, d], bias [ff]}`, `{prefix}.linear2.{weight [d, ff], bias [d]}`,
//! initialised as `nn.Transformer` does (Xavier-uniform matrices, `U(±1/√in)` biases).
//!
//! A decoding step ([`FeedForward::forward_step`]: a few rows, no dropout, no gradient) runs the
//! engine's fused kernel `tensor::kernels::feed_forward`, which keeps the hidden layer transposed
//! between the two products; the composed ops of [`FeedForward::forward`] are its oracle.

use crate::nn::{Dropout, Linear, Params};
use tensor::kernels::feed_forward::feed_forward;
use tensor::ops::unary::{gelu_inplace, relu_inplace, silu_inplace};
use tensor::{Rng, Tensor, Var};

/// The feed-forward activation (`model.transformer.activation`).
pub use crate::config::Activation;

/// The position-wise feed-forward block `linear2(dropout(act(linear1(x))))`.
pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
    pub activation: Activation,
    dropout: Dropout,
}

impl FeedForward {
    /// Registers `{prefix}.linear1.*` (`d → ff`) and `{prefix}.linear2.*` (`ff → d`).
    pub fn new(
        params: &mut Params,
        prefix: &str,
        (d, ff): (usize, usize),
        activation: Activation,
        dropout: Dropout,
        rng: &mut Rng,
    ) -> FeedForward {
        FeedForward {
            linear1: xavier_linear(params, &format!("{prefix}.linear1"), d, ff, rng),
            linear2: xavier_linear(params, &format!("{prefix}.linear2"), ff, d, rng),
            activation,
            dropout,
        }
    }

    /// `x [B, L, d] → [B, L, d]`; `rng`: `Some` while training (dropout on the hidden layer).
    pub fn forward(&self, x: &Var, rng: Option<&mut Rng>) -> Var {
        let h = self.linear1.forward(x); // [B, L, ff]
        let h = match self.activation {
            Activation::Relu => h.relu(),
            Activation::Gelu => h.gelu(),
            Activation::Swish => h.silu(),
        };
        self.linear2.forward(&self.dropout.forward(&h, rng)) // [B, L, d]
    }

    /// The same function for a decoding step (no dropout, no gradient): the fused kernel where it
    /// applies (a few rows of a wide enough layer), the composed ops elsewhere.
    pub fn forward_step(&self, x: &Var) -> Var {
        self.forward_transposed(x)
            .unwrap_or_else(|| self.forward(x, None))
    }

    /// Through [`feed_forward`], the hidden layer kept transposed; `None` where that does not
    /// apply: many rows, narrow layers, no biases.
    fn forward_transposed(&self, x: &Var) -> Option<Var> {
        let (b1, b2) = (self.linear1.bias.as_ref()?, self.linear2.bias.as_ref()?);
        let (d, h, e) = (
            self.linear1.input_size(),
            self.linear1.output_size(),
            self.linear2.output_size(),
        );
        let x = x.value();
        if x.rank() < 2 || x.dim(-1) != d || self.linear2.input_size() != h {
            return None;
        }
        let f = match self.activation {
            Activation::Relu => relu_inplace,
            Activation::Gelu => gelu_inplace,
            Activation::Swish => silu_inplace,
        };
        let y = feed_forward(
            x.data(),
            self.linear1.weight.value().data(),
            b1.value().data(),
            self.linear2.weight.value().data(),
            b2.value().data(),
            (x.numel() / d, d, h, e),
            f,
        )?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut()? = e;
        Some(Var::constant(Tensor::from_vec(y, &shape)))
    }
}

/// A linear layer initialised Xavier-uniform (`nn.Transformer` re-initialises every matrix so) with
/// PyTorch's default `U(±1/√in)` bias.
fn xavier_linear(
    params: &mut Params,
    name: &str,
    input: usize,
    output: usize,
    rng: &mut Rng,
) -> Linear {
    let bound = (6.0 / (input + output) as f32).sqrt();
    let weight = params.uniform(&format!("{name}.weight"), &[output, input], bound, rng);
    let bias = params.uniform(
        &format!("{name}.bias"),
        &[output],
        1.0 / (input as f32).sqrt(),
        rng,
    );
    Linear {
        weight,
        bias: Some(bias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoding step at a few rows runs the fused kernel; it must give the composed ops' values,
    /// for every activation.
    #[test]
    fn the_transposed_feed_forward_equals_the_composed_ops() {
        for activation in [Activation::Relu, Activation::Gelu, Activation::Swish] {
            let mut rng = Rng::new(5);
            let dropout = Dropout::new(0.1).unwrap();
            let ff = FeedForward::new(
                &mut Params::new(),
                "ff",
                (256, 1040),
                activation,
                dropout,
                &mut rng,
            );
            let x = Var::constant(Tensor::from_vec(
                (0..24 * 256).map(|_| rng.normal()).collect(),
                &[24, 1, 256],
            ));
            assert!(ff.forward_transposed(&x).is_some(), "24 rows take it");
            let fused = ff.forward_step(&x);
            let plain = ff.forward(&x, None);
            assert_eq!(fused.shape(), plain.shape());
            let (f, p) = (fused.value(), plain.value());
            for (i, (&a, &b)) in f.data().iter().zip(p.data()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{activation:?} [{i}]: {a} vs {b}"
                );
            }
        }
    }
}
