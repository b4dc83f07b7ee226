//! Self-attention over an image's feature grid: every grid cell looks at every other cell
//! (Zhang et al. 2019, *Self-Attention GANs*; the "CNN with self-attention" of the seed notes'
//! lecture 17).
//!
//! ```text
//! x [N, S, D]                    the CNN's grid, cells in row-major order (S = H'·W')
//! q = x W_qᵀ + b_q    [N, S, C]  queries ┐
//! k = x W_kᵀ + b_k    [N, S, C]  keys    ├ 1×1 convolutions: the same linear map at every cell
//! v = x W_vᵀ + b_v    [N, S, C]  values  ┘
//! β = softmax_j(q_i · k_j / √C)  [N, S, S]   row i: where cell i looks, over all S cells
//! o = (β v) W_oᵀ + b_o [N, S, D]  the attended values, mapped back to D channels (a 1×1 conv)
//! y = x + γ·o          [N, S, D]  γ a learned scalar, initialised to 0
//! ```
//!
//! With `γ = 0` the block passes the CNN's grid through unchanged (`y = x` exactly), so a network
//! starts as the plain CNN and learns how much of the non-local evidence to mix in. No positions are
//! added: the block is permutation equivariant over the cells (permuting the cells of `x` permutes
//! `y` and both axes of `β` the same way). Queries and keys are scaled by `1/√C`, as in scaled
//! dot-product attention; SAGAN leaves the scale out.
//!
//! [`forward`](ImageSelfAttention::forward) runs the engine's flash-attention kernel (one head, no
//! mask), which never holds `β`; [`forward_plain`](ImageSelfAttention::forward_plain) computes the
//! same function one engine op per line of the formula and returns `β` (the oracle of the fused
//! path); [`maps`](ImageSelfAttention::maps) returns `β` alone, off the tape, for the pictures.
//!
//! Parameters (`C` = the attention size): `{prefix}.query`, `{prefix}.key`, `{prefix}.value`
//! (weight `[C, D]`, bias `[C]`), `{prefix}.out` (weight `[D, C]`, bias `[D]`), all initialised
//! as PyTorch's `Linear`, and `{prefix}.gamma [1]` (0).

use crate::attention::scaled_dot::scaled_dot_product;
use crate::attention::{shape_error, AttentionError};
use crate::nn::{Linear, Params};
use tensor::ops::flash_attention::flash_attention;
use tensor::{Rng, Tensor, Var};

const LAYER: &str = "image self-attention";

/// The block (see the module doc).
pub struct ImageSelfAttention {
    /// `W_q [C, D]`, `b_q [C]`.
    pub query: Linear,
    /// `W_k [C, D]`, `b_k [C]`.
    pub key: Linear,
    /// `W_v [C, D]`, `b_v [C]`.
    pub value: Linear,
    /// `W_o [D, C]`, `b_o [D]`.
    pub out: Linear,
    /// `γ [1]`: the weight of the attended values in the residual sum.
    pub gamma: Var,
}

impl ImageSelfAttention {
    /// Registers the block's parameters under `prefix` for cells of `channels` (D) features and
    /// queries, keys and values of `size` (C) features; `γ` starts at 0.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        channels: usize,
        size: usize,
        rng: &mut Rng,
    ) -> ImageSelfAttention {
        let mut conv1x1 = |name: &str, input, output| {
            Linear::new(
                params,
                &format!("{prefix}.{name}"),
                input,
                output,
                true,
                rng,
            )
        };
        let (query, key, value) = (
            conv1x1("query", channels, size),
            conv1x1("key", channels, size),
            conv1x1("value", channels, size),
        );
        let out = conv1x1("out", size, channels);
        let gamma = params.add(&format!("{prefix}.gamma"), Tensor::zeros(&[1]));
        ImageSelfAttention {
            query,
            key,
            value,
            out,
            gamma,
        }
    }

    /// Feature size `D` of a cell.
    pub fn channels(&self) -> usize {
        self.query.input_size()
    }

    /// Size `C` of the queries, keys and values.
    pub fn size(&self) -> usize {
        self.query.output_size()
    }

    /// The current `γ`.
    pub fn gamma(&self) -> f32 {
        self.gamma.value().data()[0]
    }

    /// `x [N, S, D] → y [N, S, D]` through the flash-attention kernel (no `β`).
    pub fn forward(&self, x: &Var) -> Result<Var, AttentionError> {
        let (n, s) = self.check(x)?;
        let c = self.size();
        let heads = |p: &Linear| p.forward(x).reshape(&[n, 1, s, c]); // one head: [N, 1, S, C]
        let (q, k, v) = (heads(&self.query), heads(&self.key), heads(&self.value));
        let scale = 1.0 / (c as f32).sqrt();
        let attended = flash_attention(&q, &k, &v, false, None, scale, None).reshape(&[n, s, c]);
        Ok(self.residual(x, &attended))
    }

    /// The same function as [`forward`](ImageSelfAttention::forward) through the plain ops, with
    /// the weights on the tape: `(y [N, S, D], β [N, S, S])`.
    pub fn forward_plain(&self, x: &Var) -> Result<(Var, Var), AttentionError> {
        self.check(x)?;
        let (q, k, v) = (
            self.query.forward(x),
            self.key.forward(x),
            self.value.forward(x),
        ); // [N, S, C] each
        let (attended, beta) = scaled_dot_product(&q, &k, &v, None)?; // [N, S, C], [N, S, S]
        Ok((self.residual(x, &attended), beta))
    }

    /// The attention maps `β [N, S, S]` of `x [N, S, D]`, off the tape: `β[n, i, j]` is how much
    /// cell `i` of image `n` looks at cell `j` (cells row-major on the grid; each row sums to 1).
    pub fn maps(&self, x: &Tensor) -> Result<Tensor, AttentionError> {
        tensor::no_grad(|| {
            let (_, beta) = self.forward_plain(&Var::constant(x.clone()))?;
            Ok(beta.into_tensor())
        })
    }

    /// `x + γ · (attended W_oᵀ + b_o)`.
    fn residual(&self, x: &Var, attended: &Var) -> Var {
        x.add(&self.out.forward(attended).mul(&self.gamma))
    }

    /// Checks that `x` is `[N, S, D]` with the block's `D` and `N, S ≥ 1`; returns `(N, S)`.
    fn check(&self, x: &Var) -> Result<(usize, usize), AttentionError> {
        let xs = x.shape();
        let d = self.channels();
        if xs.len() != 3 || xs[2] != d || xs[0] == 0 || xs[1] == 0 {
            return Err(shape_error(
                LAYER,
                "grid",
                &xs,
                format!("[N ≥ 1, S ≥ 1, {d}]"),
            ));
        }
        Ok((xs[0], xs[1]))
    }
}
