//! Additive attention (Bahdanau, Cho & Bengio 2015, *Neural Machine Translation by Jointly Learning to
//! Align and Translate*, §3.1 and appendix A.1.2).
//!
//! For the decoder state `s` and the encoder annotations `h_j`:
//!
//! ```text
//! e_j     = vᵀ tanh(W_q s + W_k h_j + b_k)       alignment score of source position j
//! a       = softmax_j(e)   (e_j = −∞ where j is padding)
//! context = Σ_j a_j h_j
//! ```
//!
//! Shapes: `s [B, Dq]`, `h [B, S, Dk]`, `W_q [A, Dq]` (no bias), `W_k [A, Dk]`, `b_k [A]`, `v [1, A]`
//! (no bias) → `context [B, Dk]`, `weights [B, S]`. `W_k h_j + b_k` does not depend on the decoder
//! step, so [`project_keys`](StepAttention::project_keys) computes it once per batch (`[B, S, A]`) and
//! every step adds `W_q s` to it.
//!
//! Two paths compute the step, side by side below:
//! - [`step`](StepAttention::step), the fast one the decoders run: `W_q s` by a linear, then the
//!   engine's fused op ([`tensor::ops::additive_step`]), which makes one pass over the keys per row
//!   for the scores, the masked softmax and the context, with a hand-written backward. The context
//!   is differentiable; the weights and scores come back as values.
//! - [`step_plain`](StepAttention::step_plain), one engine op per line of the formula: the
//!   layer's [`scores`](StepAttention::scores) (`linear`, `add`, `tanh`, `linear`), then the
//!   masked softmax and the weighted sum that every [`StepAttention`] shares. It is the oracle the
//!   fused step is tested against, and the path for a loss on the weights themselves (the
//!   captioner's doubly stochastic penalty), since every output stays on the tape.
//!
//! Parameters are named as the PyTorch module of `seq2seq_bench.py`: `{prefix}.w_q.weight`,
//! `{prefix}.w_k.weight`, `{prefix}.w_k.bias`, `{prefix}.v.weight`.

use crate::attention::{check_values, shape_error, Attended, AttentionError, StepAttention};
use crate::nn::{Linear, Params};
use tensor::ops::additive_step::additive_step;
use tensor::{Rng, Tensor, Var};

const LAYER: &str = "additive attention";

/// Bahdanau attention: `e_j = vᵀ tanh(W_q s + W_k h_j + b_k)`.
pub struct AdditiveAttention {
    /// `W_q [A, Dq]`, no bias.
    pub w_q: Linear,
    /// `W_k [A, Dk]` with bias `b_k [A]`.
    pub w_k: Linear,
    /// `v [1, A]`, no bias.
    pub v: Linear,
}

impl AdditiveAttention {
    /// Registers the four parameters under `prefix`, initialised as PyTorch's `Linear`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        query_dim: usize,
        key_dim: usize,
        attn_dim: usize,
        rng: &mut Rng,
    ) -> AdditiveAttention {
        AdditiveAttention {
            w_q: Linear::new(
                params,
                &format!("{prefix}.w_q"),
                query_dim,
                attn_dim,
                false,
                rng,
            ),
            w_k: Linear::new(
                params,
                &format!("{prefix}.w_k"),
                key_dim,
                attn_dim,
                true,
                rng,
            ),
            v: Linear::new(params, &format!("{prefix}.v"), attn_dim, 1, false, rng),
        }
    }

    /// The attention dimension `A`.
    pub fn attn_dim(&self) -> usize {
        self.w_q.output_size()
    }

    /// Checks `query [B, Dq]` against `keys [B, S, A]` and returns `(B, S)`.
    fn check_query_keys(&self, query: &Var, keys: &Var) -> Result<(usize, usize), AttentionError> {
        let (qs, ks) = (query.shape(), keys.shape());
        let (dq, a) = (self.w_q.input_size(), self.attn_dim());
        if qs.len() != 2 || qs[1] != dq {
            return Err(shape_error(LAYER, "query s", &qs, format!("[B, {dq}]")));
        }
        let b = qs[0];
        if ks.len() != 3 || ks[0] != b || ks[2] != a {
            let expected = format!("[{b}, S, {a}] (from project_keys)");
            return Err(shape_error(LAYER, "projected keys", &ks, expected));
        }
        Ok((b, ks[1]))
    }
}

impl StepAttention for AdditiveAttention {
    fn name(&self) -> &'static str {
        "additive"
    }

    /// `W_q s [B, A]`.
    fn scored_query(&self, query: &Var) -> Var {
        self.w_q.forward(query)
    }

    /// `v [A]`.
    fn score_vector(&self) -> Option<Tensor> {
        let v = self.v.weight.value();
        Some(Tensor::from_vec(v.data().to_vec(), &[self.attn_dim()]))
    }

    /// `h [B, S, Dk] → W_k h + b_k [B, S, A]`, once per batch.
    fn project_keys(&self, h: &Var) -> Result<Var, AttentionError> {
        let hs = h.shape();
        let dk = self.w_k.input_size();
        if hs.len() != 3 || hs[2] != dk {
            return Err(shape_error(
                LAYER,
                "annotations h",
                &hs,
                format!("[B, S, {dk}]"),
            ));
        }
        Ok(self.w_k.forward(h))
    }

    /// Raw scores `e [B, S]`: `vᵀ tanh(W_q s + keys_j)`, no mask applied. `query [B, Dq]`, `keys`
    /// `[B, S, A]` from [`project_keys`](StepAttention::project_keys).
    fn scores(&self, query: &Var, keys: &Var) -> Result<Var, AttentionError> {
        let (b, s) = self.check_query_keys(query, keys)?;
        let a = self.attn_dim();
        let q = self.w_q.forward(query).reshape(&[b, 1, a]); // [B, 1, A]
        let hidden = q.add(keys).tanh(); // [B, S, A]
        Ok(self.v.forward(&hidden).reshape(&[b, s])) // [B, S]
    }

    /// The fused step: `W_q s` by the layer's linear, then scores, masked softmax and context in
    /// one engine op. The mask, if any, must be exactly `[B, S]`.
    fn step(
        &self,
        query: &Var,
        keys: &Var,
        values: &Var,
        mask: Option<&Tensor>,
    ) -> Result<Attended, AttentionError> {
        let (b, s) = self.check_query_keys(query, keys)?;
        check_values(LAYER, values, b, s)?;
        if let Some(m) = mask.filter(|m| m.shape() != [b, s]) {
            return Err(shape_error(LAYER, "mask", m.shape(), format!("[{b}, {s}]")));
        }
        let q = self.w_q.forward(query); // W_q s: [B, A]
        let out = additive_step(&q, keys, &self.v.weight, values, mask);
        Ok(Attended {
            context: out.context, // [B, Dk]
            weights: out.weights, // [B, S]
            scores: out.scores,   // [B, S]
        })
    }
}
