//! The encoder-decoder Transformer (Vaswani et al. 2017, *Attention Is All You Need*), equal to
//! `torch.nn.Transformer(batch_first=True)` with source/target `nn.Embedding`s and an output
//! `nn.Linear` — the model of `transformer_bench.py` among the PyTorch peers.
//!
//! ```text
//! x_src  = dropout(src_emb(src) · √d + pe[0:S])                                   [B, S, d]
//! memory = encoder.norm(EncoderLayer_N(… EncoderLayer_1(x_src)))  source padding masked  [B, S, d]
//! x_tgt  = dropout(tgt_emb(tgt_in) · √d + pe[0:T])                  tgt_in = <s> y₁ … y_{T−1}
//! h      = decoder.norm(DecoderLayer_M(… DecoderLayer_1(x_tgt, memory)))   causal mask    [B, T, d]
//! logits = out_proj(h)                                                                 [B, T, V]
//! pe[p, 2i] = sin(p / 10000^(2i/d)),  pe[p, 2i+1] = cos(p / 10000^(2i/d)),  p from 0   (or learned)
//! ```
//!
//! Marian's Transformer (OPUS-MT, Hugging Face `MarianMTModel`) is the same network with other
//! choices, each a key of `[model.transformer]`: post-norm layers and no final `encoder.norm` /
//! `decoder.norm` (`final_norm = false`), the swish activation, sines-then-cosines positions
//! (`positions = "sinusoidal-halves"`), `</s>` appended to every source (`source_eos`), and the
//! output bias `final_logits_bias` as `out_proj.bias` beside a tied output matrix.
//!
//! One file per part: the input layer in [`embedding`], the layers in [`encoder_layer`] and
//! [`decoder_layer`] (pre- or post-norm [`residual`] connections, a [`feed_forward`] block;
//! `nn.Transformer` always adds the final `encoder.norm` and `decoder.norm`), the sizes in [`spec`],
//! incremental decoding in [`decoding`]. The output projection may reuse the target table
//! (`tie_output`, then only `out_proj.bias` exists).
//!
//! Parameter names are PyTorch's state_dict names: `src_emb.weight [Vs, d]`, `tgt_emb.weight
//! [Vt, d]`, `transformer.encoder.layers.{l}.…`, `transformer.encoder.norm.*`,
//! `transformer.decoder.layers.{l}.…`, `transformer.decoder.norm.*`, `out_proj.{weight [Vt, d],
//! bias}`, and for learned positions `pos_emb.weight [max_positions, d]`.
//!
//! [`Transformer::attention_maps`] returns every layer's and head's attention weights.

pub mod decoder_layer;
pub mod decoding;
pub mod embedding;
pub mod encoder_layer;
pub mod feed_forward;
pub mod residual;
pub mod spec;

pub use self::decoder_layer::{DecoderLayer, DecoderOutput};
pub use self::encoder_layer::EncoderLayer;
pub use self::feed_forward::{Activation, FeedForward};
pub use self::residual::{NormPlacement, Residual, LAYER_NORM_EPS};
pub use self::spec::{LayerSpec, PositionKind, TransformerSpec};

use self::decoding::TransformerDecoding;
use self::embedding::InputEmbedding;
use super::source_wrap::SourceWrap;
use super::{Decoding, Seq2Seq};
use crate::attention::mask::padding_mask;
use crate::attention::{AttentionError, Positions};
use crate::config::Config;
use crate::data::batcher::Batch;
use crate::nn::dropout::DropoutError;
use crate::nn::embedding::EmbeddingError;
use crate::nn::{LayerNorm, Linear, Params};
use tensor::{Rng, Tensor, Var};

/// Why a Transformer cannot be built or run on some input.
#[derive(Debug, thiserror::Error)]
pub enum TransformerError {
    #[error(transparent)]
    Attention(#[from] AttentionError),
    #[error("{0}")]
    Config(String),
    #[error("shared embeddings need equal source and target vocabularies, got {src} and {tgt}; set data.joint_vocab = true")]
    SharedVocab { src: usize, tgt: usize },
    #[error("model.transformer.dropout: {0}")]
    Dropout(#[from] DropoutError),
    #[error("{what}: {source}")]
    Ids {
        what: &'static str,
        source: EmbeddingError,
    },
    #[error("the {what} needs {needed} positions but the model's positional table holds {max_positions} (model.max_positions); shorten the input, or train a model with a larger max_positions")]
    TooLong {
        what: &'static str,
        needed: usize,
        max_positions: usize,
    },
    #[error("transformer input: {0}")]
    Input(String),
}

/// Attention weights of every layer and head for one teacher-forced pass (see
/// [`Transformer::attention_maps`]). Weights at masked keys (source padding, future target
/// positions) are exactly 0; rows of padded source queries are computed but mean nothing.
pub struct AttentionMaps {
    /// Encoder self-attention, one `[B, H, S, S]` per encoder layer.
    pub encoder_self: Vec<Tensor>,
    /// Decoder (causal) self-attention, one `[B, H, T, T]` per decoder layer.
    pub decoder_self: Vec<Tensor>,
    /// Cross-attention (decoder queries over the source), one `[B, H, T, S]` per decoder layer.
    pub cross: Vec<Tensor>,
}

/// The encoder's output for a batch.
pub struct Encoded {
    /// `[B, S, d]`, after the final encoder norm.
    pub memory: Var,
    /// Source padding mask `[B, S]`, 1 = pad.
    pub padding: Tensor,
    /// Real source lengths as the encoder read them (`</s>` included where `source_eos`).
    pub src_len: Vec<usize>,
    /// Self-attention weights `[B, H, S, S]`, one per layer (none where they were not wanted).
    pub weights: Vec<Var>,
}

/// A teacher-forced pass.
pub struct Forward {
    /// `[B, T, V]`
    pub logits: Var,
    pub encoder_self: Vec<Var>,
    pub decoder_self: Vec<Var>,
    pub cross: Vec<Var>,
}

/// The encoder-decoder Transformer (see the module doc).
pub struct Transformer {
    params: Params,
    spec: TransformerSpec,
    embedding: InputEmbedding,
    encoder: Vec<EncoderLayer>,
    /// `None` where `final_norm = false`.
    encoder_norm: Option<LayerNorm>,
    decoder: Vec<DecoderLayer>,
    /// `None` where `final_norm = false`.
    decoder_norm: Option<LayerNorm>,
    out_proj: Linear,
}

impl Transformer {
    /// Builds the model a config describes, initialised from `seed`.
    pub fn from_config(
        config: &Config,
        src_vocab: usize,
        tgt_vocab: usize,
        seed: u64,
    ) -> Result<Transformer, TransformerError> {
        Transformer::new(
            TransformerSpec::from_config(config, src_vocab, tgt_vocab)?,
            seed,
        )
    }

    /// Builds a Transformer initialised as `transformer_bench.py` does: embeddings `N(0, 1/d)`,
    /// every matrix inside the stacks Xavier-uniform, layer norms 1 and 0.
    pub fn new(spec: TransformerSpec, seed: u64) -> Result<Transformer, TransformerError> {
        let d = spec.d_model;
        if spec.shared_embeddings && spec.src_vocab != spec.tgt_vocab {
            return Err(TransformerError::SharedVocab {
                src: spec.src_vocab,
                tgt: spec.tgt_vocab,
            });
        }
        if d == 0 || spec.heads == 0 || spec.ff_size == 0 || spec.max_positions == 0 {
            return Err(TransformerError::Input(
                "d_model, heads, ff_size and max_positions must be positive".into(),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut params = Params::new();
        let embedding = InputEmbedding::new(&mut params, &spec, &mut rng)?;
        let ls = spec.layer_spec()?;
        let encoder = stack(
            spec.encoder_layers,
            "transformer.encoder.layers",
            |prefix| EncoderLayer::new(&mut params, prefix, &ls, &mut rng),
        )?;
        let encoder_norm = spec
            .final_norm
            .then(|| LayerNorm::new(&mut params, "transformer.encoder.norm", d, LAYER_NORM_EPS));
        let decoder = stack(
            spec.decoder_layers,
            "transformer.decoder.layers",
            |prefix| DecoderLayer::new(&mut params, prefix, &ls, &mut rng),
        )?;
        let decoder_norm = spec
            .final_norm
            .then(|| LayerNorm::new(&mut params, "transformer.decoder.norm", d, LAYER_NORM_EPS));
        let out_proj = if spec.tie_output {
            let bound = 1.0 / (d as f32).sqrt();
            Linear {
                weight: embedding.tgt.weight.clone(),
                bias: Some(params.uniform("out_proj.bias", &[spec.tgt_vocab], bound, &mut rng)),
            }
        } else {
            Linear::new(&mut params, "out_proj", d, spec.tgt_vocab, true, &mut rng)
        };
        Ok(Transformer {
            params,
            spec,
            embedding,
            encoder,
            encoder_norm,
            decoder,
            decoder_norm,
            out_proj,
        })
    }

    pub fn spec(&self) -> &TransformerSpec {
        &self.spec
    }

    /// The positional encodings added to the embeddings (sinusoidal or learned).
    pub fn positions(&self) -> &Positions {
        &self.embedding.positions
    }

    /// A source of `len` tokens fits the positional table (`max_positions`), or
    /// [`TransformerError::TooLong`] naming both lengths. A decode emits at most `max_positions`
    /// tokens (step `t` reads position `t`).
    pub fn check_source_len(&self, len: usize) -> Result<(), TransformerError> {
        self.embedding
            .check_fits("source", len + self.wrap().extra())
    }

    /// The longest source the positional table holds (`<s>` / `</s>` where the model adds them).
    pub fn max_source_len(&self) -> usize {
        self.spec.max_positions.saturating_sub(self.wrap().extra())
    }

    /// Encodes `src [B, src_max]` (padded, real lengths `src_len`). `rng`: `Some` while training.
    /// `want_weights`: return every self-attention weight (plain path); `false` takes the fused
    /// kernel.
    pub fn encode(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
        mut rng: Option<&mut Rng>,
        want_weights: bool,
    ) -> Result<Encoded, TransformerError> {
        let b = src_len.len();
        let (src, src_len, src_max) = self.source(src, src_len, src_max);
        let padding = padding_mask(&src_len, src_max)?; // [B, S]
        let (src_emb, dims) = (&self.embedding.src, (b, src_max));
        let mut x = self
            .embedding
            .forward(src_emb, "source", &src, dims, 0, rng.as_deref_mut())?; // [B, S, d]
        let mut weights = Vec::with_capacity(self.encoder.len());
        for layer in &self.encoder {
            let (y, w) = layer.forward(&x, &src_len, want_weights, &mut rng)?;
            x = y; // [B, S, d]
            weights.extend(w); // [B, H, S, S]
        }
        Ok(Encoded {
            memory: final_norm(self.encoder_norm.as_ref(), x),
            padding,
            src_len,
            weights,
        })
    }

    /// The tokens the encoder reads for one source: `ids`, wrapped where `source_bos` /
    /// `source_eos` (the columns of the attention maps).
    pub fn encoder_input(&self, ids: &[u32]) -> Vec<u32> {
        self.wrap().tokens(ids)
    }

    fn wrap(&self) -> SourceWrap {
        SourceWrap {
            bos: self.spec.source_bos,
            eos: self.spec.source_eos,
        }
    }

    /// What the encoder reads: `src [B, src_max]` as given, or each row wrapped in `<s>` / `</s>`
    /// where `source_bos` / `source_eos` (then wider, lengths longer).
    fn source(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> (Vec<u32>, Vec<usize>, usize) {
        self.wrap().batch(src, src_len, src_max)
    }

    /// The decoder's last hidden states `[…, d]` through `decoder.norm` (where the model has it)
    /// and the output projection → logits `[…, V]`.
    pub(super) fn output(&self, x: Var) -> Var {
        self.out_proj
            .forward(&final_norm(self.decoder_norm.as_ref(), x))
    }

    /// Teacher-forced pass: `src [B, src_max]`, `tgt_in [B, tgt_max]` (`<s> y₁ …`, padded) →
    /// logits `[B, T, V]` and, with `want_weights`, every attention weight (without, the fused
    /// kernel runs). `rng`: `Some` while training.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
        tgt_in: &[u32],
        tgt_max: usize,
        mut rng: Option<&mut Rng>,
        want_weights: bool,
    ) -> Result<Forward, TransformerError> {
        let b = src_len.len();
        let enc = self.encode(src, src_len, src_max, rng.as_deref_mut(), want_weights)?;
        let (tgt_emb, dims) = (&self.embedding.tgt, (b, tgt_max));
        let mut x =
            self.embedding
                .forward(tgt_emb, "target", tgt_in, dims, 0, rng.as_deref_mut())?; // [B, T, d]
        let (mut decoder_self, mut cross) = (Vec::new(), Vec::new());
        for layer in &self.decoder {
            let out = layer.forward(&x, &enc.memory, &enc.src_len, want_weights, &mut rng)?;
            x = out.x; // [B, T, d]
            decoder_self.extend(out.self_weights); // [B, H, T, T]
            cross.extend(out.cross_weights); // [B, H, T, S]
        }
        let logits = self.output(x); // [B, T, V]
        Ok(Forward {
            logits,
            encoder_self: enc.weights,
            decoder_self,
            cross,
        })
    }

    /// Every attention weight of a teacher-forced pass (evaluation mode, no gradients):
    /// `src [B, src_max]` with lengths `src_len`, `tgt_in [B, tgt_max]` starting with `<s>`.
    pub fn attention_maps(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
        tgt_in: &[u32],
        tgt_max: usize,
    ) -> Result<AttentionMaps, TransformerError> {
        tensor::no_grad(|| {
            let f = self.forward(src, src_len, src_max, tgt_in, tgt_max, None, true)?;
            let tensors = |v: Vec<Var>| v.iter().map(Var::to_tensor).collect();
            Ok(AttentionMaps {
                encoder_self: tensors(f.encoder_self),
                decoder_self: tensors(f.decoder_self),
                cross: tensors(f.cross),
            })
        })
    }
}

/// `x` through the final layer norm where there is one.
fn final_norm(norm: Option<&LayerNorm>, x: Var) -> Var {
    match norm {
        Some(n) => n.forward(&x),
        None => x,
    }
}

/// `n` layers built by `layer` under the names `{prefix}.0`, `{prefix}.1`, … (in that order).
fn stack<L>(
    n: usize,
    prefix: &str,
    mut layer: impl FnMut(&str) -> Result<L, AttentionError>,
) -> Result<Vec<L>, AttentionError> {
    (0..n).map(|l| layer(&format!("{prefix}.{l}"))).collect()
}

impl Seq2Seq for Transformer {
    fn params(&self) -> &Params {
        &self.params
    }

    fn tgt_vocab(&self) -> usize {
        self.spec.tgt_vocab
    }

    fn as_transformer(&self) -> Option<&Transformer> {
        Some(self)
    }

    fn encoder_input(&self, ids: &[u32]) -> Vec<u32> {
        Transformer::encoder_input(self, ids)
    }

    fn logits(&self, batch: &Batch, rng: Option<&mut Rng>) -> Var {
        let f = self
            .forward(
                &batch.src,
                &batch.src_len,
                batch.src_max,
                &batch.tgt_in,
                batch.tgt_max,
                rng,
                false,
            )
            .expect("batches come from the batcher with the model's vocabularies");
        f.logits
            .reshape(&[batch.batch_size * batch.tgt_max, self.spec.tgt_vocab]) // [B·T, V]
    }

    fn begin<'a>(
        &'a self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'a> {
        Box::new(
            TransformerDecoding::new(self, src, src_len, src_max)
                .expect("sources are checked against the vocabulary by the caller"),
        )
    }
}
