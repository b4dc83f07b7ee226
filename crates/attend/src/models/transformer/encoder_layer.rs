//! `torch.nn.TransformerEncoderLayer` (Vaswani et al. 2017, §3.1): self-attention over the source,
//! then the feed-forward block, each inside a [`Residual`] connection.
//!
//! ```text
//! x ← x + dropout(SelfAttention(LN₁(x)))    keys: the source, padding masked      [B, S, d]
//! x ← x + dropout(FF(LN₂(x)))                                                      [B, S, d]
//! ```
//! (pre-norm as written; post-norm moves each `LN` after the sum, see [`Residual`]).
//!
//! Parameter names under `{prefix}.`: `self_attn.*`, `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`.

use super::feed_forward::FeedForward;
use super::residual::Residual;
use super::LayerSpec;
use crate::attention::{AttentionError, Mask, MultiHeadAttention};
use crate::nn::Params;
use tensor::{Rng, Var};

/// `nn.TransformerEncoderLayer`.
pub struct EncoderLayer {
    pub self_attn: MultiHeadAttention,
    pub ff: FeedForward,
    /// Around the self-attention (`norm1`).
    pub attn_residual: Residual,
    /// Around the feed-forward block (`norm2`).
    pub ff_residual: Residual,
}

impl EncoderLayer {
    /// Registers `{prefix}.self_attn.*`, `linear1/2.*`, `norm1/2.*`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        spec: &LayerSpec,
        rng: &mut Rng,
    ) -> Result<EncoderLayer, AttentionError> {
        let self_attn = spec.attention(params, &format!("{prefix}.self_attn"), rng)?;
        let ff = spec.feed_forward(params, prefix, rng);
        Ok(EncoderLayer {
            self_attn,
            ff,
            attn_residual: spec.residual(params, &format!("{prefix}.norm1")),
            ff_residual: spec.residual(params, &format!("{prefix}.norm2")),
        })
    }

    /// `x [B, S, d]` with the real source lengths `src_len [B]` → `(y [B, S, d], self-attention
    /// weights [B, H, S, S])`; the weights only where `want_weights` (see
    /// [`MultiHeadAttention::forward`]). `rng`: `Some` while training.
    pub fn forward(
        &self,
        x: &Var,
        src_len: &[usize],
        want_weights: bool,
        rng: &mut Option<&mut Rng>,
    ) -> Result<(Var, Option<Var>), AttentionError> {
        let padding = Mask::padding(src_len);
        let h = self.attn_residual.input(x); // [B, S, d]
        let (y, weights) =
            self.self_attn
                .forward(&h, None, padding, want_weights, rng.as_deref_mut())?;
        let x = self.attn_residual.output(x, &y, rng.as_deref_mut()); // [B, S, d]
        let h = self.ff_residual.input(&x);
        let y = self.ff.forward(&h, rng.as_deref_mut());
        let x = self.ff_residual.output(&x, &y, rng.as_deref_mut()); // [B, S, d]
        Ok((x, weights))
    }
}
