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
//! every [`step`](StepAttention::step) adds `W_q s` to it.
//!
//! Parameters are named as the PyTorch module of `seq2seq_bench.py`: `{prefix}.w_q.weight`,
//! `{prefix}.w_k.weight`, `{prefix}.w_k.bias`, `{prefix}.v.weight`.

use crate::attention::{shape_error, AttentionError, StepAttention};
use crate::nn::{Linear, Params};
use tensor::{Rng, Var};

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
}

impl StepAttention for AdditiveAttention {
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

    /// `e [B, S]`: `vᵀ tanh(W_q s + keys_j)`, raw (no mask applied).
    fn scores(&self, query: &Var, keys: &Var) -> Result<Var, AttentionError> {
        let (qs, ks) = (query.shape(), keys.shape());
        let (dq, a) = (self.w_q.input_size(), self.attn_dim());
        if qs.len() != 2 || qs[1] != dq {
            return Err(shape_error(LAYER, "query s", &qs, format!("[B, {dq}]")));
        }
        let b = qs[0];
        if ks.len() != 3 || ks[0] != b || ks[2] != a {
            return Err(shape_error(
                LAYER,
                "projected keys",
                &ks,
                format!("[{b}, S, {a}] (from project_keys)"),
            ));
        }
        let s = ks[1];
        let q = self.w_q.forward(query).reshape(&[b, 1, a]); // [B, 1, A]
        let hidden = q.add(keys).tanh(); // [B, S, A]
        Ok(self.v.forward(&hidden).reshape(&[b, s])) // [B, S]
    }
}
