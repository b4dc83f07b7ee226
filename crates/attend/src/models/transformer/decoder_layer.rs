//! `torch.nn.TransformerDecoderLayer` (Vaswani et al. 2017, §3.1): causal self-attention over the
//! target, cross-attention over the encoder memory, then the feed-forward block, each inside a
//! [`Residual`] connection.
//!
//! ```text
//! x ← x + dropout(SelfAttention(LN₁(x)))          causal: position t sees ≤ t        [B, T, d]
//! x ← x + dropout(CrossAttention(LN₂(x), memory))  memory [B, S, d], padding masked   [B, T, d]
//! x ← x + dropout(FF(LN₃(x)))                                                         [B, T, d]
//! ```
//! (pre-norm as written; post-norm moves each `LN` after the sum, see [`Residual`]). Target padding
//! needs no mask: the causal mask already keeps real positions from seeing the padding after them.
//!
//! [`DecoderLayer::forward`] runs a whole teacher-forced target; [`DecoderLayer::forward_step`] runs
//! the newest position of a decode over the cached keys and values
//! ([`kv_cache`](crate::attention::kv_cache)), the same function step by step.
//!
//! Parameter names under `{prefix}.`: `self_attn.*`, `multihead_attn.*`, `linear1.*`, `linear2.*`,
//! `norm1.*`, `norm2.*`, `norm3.*`.

use super::feed_forward::FeedForward;
use super::residual::Residual;
use super::LayerSpec;
use crate::attention::{AttentionError, KvCache, Mask, MultiHeadAttention, StepMemory};
use crate::nn::Params;
use tensor::{Rng, Tensor, Var};

/// What a decoder layer returns.
pub struct DecoderOutput {
    /// `[B, T, d]`
    pub x: Var,
    /// Self-attention weights `[B, H, T, t]` (`t` = positions seen so far); `None` where they were
    /// not wanted.
    pub self_weights: Option<Var>,
    /// Cross-attention weights `[B, H, T, S]`; `None` where they were not wanted.
    pub cross_weights: Option<Var>,
    /// The cross-attention's input `[B, n, d]` (before its query projection) at a decoding step,
    /// from which [`MultiHeadAttention::step_scores`] recomputes the scores; `None` in the
    /// teacher-forced pass.
    pub cross_query: Option<Var>,
}

/// `nn.TransformerDecoderLayer`.
pub struct DecoderLayer {
    pub self_attn: MultiHeadAttention,
    pub multihead_attn: MultiHeadAttention,
    pub ff: FeedForward,
    /// Around the self-attention (`norm1`).
    pub self_residual: Residual,
    /// Around the cross-attention (`norm2`).
    pub cross_residual: Residual,
    /// Around the feed-forward block (`norm3`).
    pub ff_residual: Residual,
}

impl DecoderLayer {
    /// Registers `{prefix}.self_attn.*`, `multihead_attn.*`, `linear1/2.*`, `norm1/2/3.*`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        spec: &LayerSpec,
        rng: &mut Rng,
    ) -> Result<DecoderLayer, AttentionError> {
        let self_attn = spec.attention(params, &format!("{prefix}.self_attn"), rng)?;
        let multihead_attn = spec.attention(params, &format!("{prefix}.multihead_attn"), rng)?;
        let ff = spec.feed_forward(params, prefix, rng);
        Ok(DecoderLayer {
            self_attn,
            multihead_attn,
            ff,
            self_residual: spec.residual(params, &format!("{prefix}.norm1")),
            cross_residual: spec.residual(params, &format!("{prefix}.norm2")),
            ff_residual: spec.residual(params, &format!("{prefix}.norm3")),
        })
    }

    /// `x [B, T, d]` (teacher forcing) over the encoder `memory [B, S, d]` with the real source
    /// lengths `src_len [B]`; the weights only where `want_weights`. `rng`: `Some` while training.
    pub fn forward(
        &self,
        x: &Var,
        memory: &Var,
        src_len: &[usize],
        want_weights: bool,
        rng: &mut Option<&mut Rng>,
    ) -> Result<DecoderOutput, AttentionError> {
        let (causal, padding) = (Mask::CAUSAL, Mask::padding(src_len));
        let h = self.self_residual.input(x); // [B, T, d]
        let (y, self_weights) =
            self.self_attn
                .forward(&h, None, causal, want_weights, rng.as_deref_mut())?;
        let x = self.self_residual.output(x, &y, rng.as_deref_mut()); // [B, T, d]
        let h = self.cross_residual.input(&x);
        let (y, cross_weights) = self.multihead_attn.forward(
            &h,
            Some(memory),
            padding,
            want_weights,
            rng.as_deref_mut(),
        )?;
        let x = self.cross_residual.output(&x, &y, rng.as_deref_mut()); // [B, T, d]
        let h = self.ff_residual.input(&x);
        let y = self.ff.forward(&h, rng.as_deref_mut());
        let x = self.ff_residual.output(&x, &y, rng.as_deref_mut()); // [B, T, d]
        Ok(DecoderOutput {
            x,
            self_weights,
            cross_weights,
            cross_query: None,
        })
    }

    /// The encoder memory `[B, S, d]` projected for this layer's decoding steps
    /// ([`forward_step`](Self::forward_step)), once per decode.
    pub fn project_step_memory(&self, memory: &Var) -> Result<StepMemory, AttentionError> {
        self.multihead_attn.project_step_memory(memory)
    }

    /// The newest position(s) `x [B, n, d]` of a decode (no dropout): earlier keys and values come
    /// from (and are added to) `cache`; `memory` from
    /// [`project_step_memory`](Self::project_step_memory), `padding [B, S]` its padding mask (1 =
    /// pad).
    pub fn forward_step(
        &self,
        x: &Var,
        cache: &mut KvCache,
        memory: &StepMemory,
        padding: &Tensor,
    ) -> Result<DecoderOutput, AttentionError> {
        let h = self.self_residual.input(x); // [B, n, d]
        let (y, self_weights) = self.self_attn.forward_step(&h, cache)?;
        let x = self.self_residual.output(x, &y, None); // [B, n, d]
        let query = self.cross_residual.input(&x);
        let (y, cross_weights) = self
            .multihead_attn
            .attend_step(&query, memory, Some(padding))?;
        let x = self.cross_residual.output(&x, &y, None); // [B, n, d]
        let h = self.ff_residual.input(&x);
        let y = self.ff.forward_step(&h);
        let x = self.ff_residual.output(&x, &y, None); // [B, n, d]
        Ok(DecoderOutput {
            x,
            self_weights: Some(self_weights),
            cross_weights: Some(cross_weights),
            cross_query: Some(query),
        })
    }
}
