//! The sizes and choices that fix a Transformer's shape: [`TransformerSpec`] for the model (read from
//! the `[model.transformer]` table of a config), [`LayerSpec`] for every layer of its stacks.

use super::feed_forward::{Activation, FeedForward};
use super::residual::{NormPlacement, Residual};
use super::TransformerError;
use crate::attention::{AttentionError, MultiHeadAttention};
use crate::config::{Config, ModelConfig};
use crate::nn::{Dropout, Params};
use tensor::Rng;

/// Positional encodings of a Transformer (`model.transformer.positions`): fixed sin/cos
/// `[max_positions, d]`, or a trained table `pos_emb.weight [max_positions, d]`.
pub use crate::config::PositionKind;

/// Everything that fixes a Transformer's shape (read from `[model.transformer]` by [`TransformerSpec::from_config`]).
#[derive(Clone, Debug)]
pub struct TransformerSpec {
    pub src_vocab: usize,
    pub tgt_vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub ff_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub activation: Activation,
    pub norm: NormPlacement,
    pub positions: PositionKind,
    /// Positions the table holds: the longest source, and the longest target plus `<s>`.
    pub max_positions: usize,
    pub scale_embeddings: bool,
    pub shared_embeddings: bool,
    pub tie_output: bool,
    /// A layer norm after each stack (`transformer.encoder.norm`, `transformer.decoder.norm`).
    pub final_norm: bool,
    /// The encoder reads every source after `<s>`.
    pub source_bos: bool,
    /// The encoder reads every source followed by `</s>`.
    pub source_eos: bool,
    pub dropout: f32,
    pub attention_dropout: f32,
}

impl TransformerSpec {
    /// The spec of `config.model` for the given vocabulary sizes.
    pub fn from_config(
        config: &Config,
        src_vocab: usize,
        tgt_vocab: usize,
    ) -> Result<TransformerSpec, TransformerError> {
        let ModelConfig::Transformer(m) = &config.model else {
            return Err(TransformerError::Config(format!(
                "model.kind = {:?} is not a Transformer",
                config.model.kind().name()
            )));
        };
        Ok(TransformerSpec {
            src_vocab,
            tgt_vocab,
            d_model: m.d_model,
            heads: m.heads,
            ff_size: m.ff_size,
            encoder_layers: m.encoder_layers,
            decoder_layers: m.decoder_layers,
            activation: m.activation,
            norm: m.norm,
            positions: m.positions,
            max_positions: m.max_positions,
            scale_embeddings: m.scale_embeddings,
            shared_embeddings: m.shared_embeddings,
            tie_output: m.tie_output,
            final_norm: m.final_norm,
            source_bos: m.source_bos,
            source_eos: m.source_eos,
            dropout: m.dropout,
            attention_dropout: m.attention_dropout(),
        })
    }

    pub(super) fn layer_spec(&self) -> Result<LayerSpec, TransformerError> {
        Ok(LayerSpec {
            d_model: self.d_model,
            heads: self.heads,
            ff_size: self.ff_size,
            activation: self.activation,
            norm: self.norm,
            dropout: Dropout::new(self.dropout)?,
            attention_dropout: self.attention_dropout,
        })
    }
}

/// Sizes and options shared by every layer of a stack.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec {
    pub d_model: usize,
    pub heads: usize,
    pub ff_size: usize,
    pub activation: Activation,
    pub norm: NormPlacement,
    /// After each sublayer and inside the feed-forward block.
    pub dropout: Dropout,
    /// Probability of dropping an attention weight.
    pub attention_dropout: f32,
}

impl LayerSpec {
    /// A multi-head attention sublayer registered as `name` (`{prefix}.self_attn`, …).
    pub fn attention(
        &self,
        params: &mut Params,
        name: &str,
        rng: &mut Rng,
    ) -> Result<MultiHeadAttention, AttentionError> {
        let (d, heads, p) = (self.d_model, self.heads, self.attention_dropout);
        MultiHeadAttention::new(params, name, d, heads, p, rng)
    }

    /// The feed-forward block `{prefix}.linear1/2`.
    pub fn feed_forward(&self, params: &mut Params, prefix: &str, rng: &mut Rng) -> FeedForward {
        let sizes = (self.d_model, self.ff_size);
        FeedForward::new(params, prefix, sizes, self.activation, self.dropout, rng)
    }

    /// The residual connection whose layer norm is `name` (`{prefix}.norm{n}`).
    pub fn residual(&self, params: &mut Params, name: &str) -> Residual {
        Residual::new(params, name, self.d_model, self.norm, self.dropout)
    }
}
