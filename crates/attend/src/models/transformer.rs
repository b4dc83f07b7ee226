//! The encoder-decoder Transformer (Vaswani et al. 2017, *Attention Is All You Need*), equal to
//! `torch.nn.Transformer(batch_first=True)` with source/target `nn.Embedding`s and an output
//! `nn.Linear` — the model of `transformer_bench.py` in `../shared/peers`.
//!
//! ```text
//! x_src  = dropout(src_emb(src) · √d + pe[0:S])                                   [B, S, d]
//! memory = encoder.norm(EncoderLayer_N(… EncoderLayer_1(x_src)))  source padding masked  [B, S, d]
//! x_tgt  = dropout(tgt_emb(tgt_in) · √d + pe[0:T])                  tgt_in = <s> y₁ … y_{T−1}
//! h      = decoder.norm(DecoderLayer_M(… DecoderLayer_1(x_tgt, memory)))   causal mask    [B, T, d]
//! logits = out_proj(h)                                                                 [B, T, V]
//! pe[p, 2i] = sin(p / 10000^(2i/d)),  pe[p, 2i+1] = cos(p / 10000^(2i/d)),  p from 0   (or learned)
//! ```
//! The layers are in [`layers`] (pre- or post-norm; `nn.Transformer` always adds the final
//! `encoder.norm` and `decoder.norm`). The √d scale is optional (`scale_embeddings`); source and
//! target may share one table (`shared_embeddings`, then only `src_emb.weight` exists) and the
//! output projection may reuse the target table (`tie_output`, then only `out_proj.bias` exists).
//!
//! Parameter names are PyTorch's state_dict names: `src_emb.weight [Vs, d]`, `tgt_emb.weight
//! [Vt, d]`, `transformer.encoder.layers.{l}.…`, `transformer.encoder.norm.*`,
//! `transformer.decoder.layers.{l}.…`, `transformer.decoder.norm.*`, `out_proj.{weight [Vt, d],
//! bias}`, and for learned positions `pos_emb.weight [max_positions, d]`.
//!
//! Incremental decoding ([`Seq2Seq::begin`]) keeps, per decoder layer, the self-attention keys and
//! values of the prefix ([`KvCache`]) and the cross-attention keys and
//! values of the memory, projected once ([`StepMemory`]): one step
//! costs O(t) instead of recomputing the prefix.
//! [`Transformer::attention_maps`] returns every layer's and head's attention weights.

pub mod decoding;
pub mod layers;

use self::decoding::TransformerDecoding;
use self::layers::{
    dropout, Activation, AttentionPath, DecoderLayer, EncoderLayer, LayerSpec, NormPlacement,
    LAYER_NORM_EPS,
};
use super::{Decoding, Seq2Seq};
use crate::attention::mask::{causal_mask, padding_mask};
use crate::attention::position::sinusoidal_table;
use crate::attention::{
    AttentionError, KvCache, LearnedPositions, Positions, SinusoidalPositions, StepMemory,
};
use crate::config::{Config, ModelConfig};
use crate::data::batcher::Batch;
use crate::nn::{LayerNorm, Linear, Params};
use tensor::{Rng, Tensor, Var};

/// Why a Transformer cannot be built or run on some input.
#[derive(Debug, thiserror::Error)]
pub enum TransformerError {
    #[error(transparent)]
    Attention(#[from] AttentionError),
    #[error("shared embeddings need equal source and target vocabularies, got {src} and {tgt}; set data.joint_vocab = true")]
    SharedVocab { src: usize, tgt: usize },
    #[error("transformer input: {0}")]
    Input(String),
}

/// Positional encodings of a Transformer: fixed sin/cos (computed further when a sequence
/// outruns `max_positions`), or a trained table `pos_emb.weight [max_positions, d]` whose last row
/// positions past it reuse.
pub use crate::config::PositionKind;

/// Everything that fixes a Transformer's shape (read from `[model]` by [`TransformerSpec::from_config`]).
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
    pub max_positions: usize,
    pub scale_embeddings: bool,
    pub shared_embeddings: bool,
    pub tie_output: bool,
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
            return Err(TransformerError::Input(format!(
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
            dropout: m.dropout,
            attention_dropout: m.attention_dropout(),
        })
    }

    fn layer_spec(&self) -> LayerSpec {
        LayerSpec {
            d_model: self.d_model,
            heads: self.heads,
            ff_size: self.ff_size,
            activation: self.activation,
            norm: self.norm,
            dropout: self.dropout,
            attention_dropout: self.attention_dropout,
        }
    }
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
    /// Self-attention weights `[B, H, S, S]`, one per layer (none where the fused kernel ran).
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
    src_emb: Var,
    tgt_emb: Var,
    positions: Positions,
    encoder: Vec<EncoderLayer>,
    encoder_norm: LayerNorm,
    decoder: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
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
        let std = (d as f32).powf(-0.5);
        let src_emb = params.normal("src_emb.weight", &[spec.src_vocab, d], std, &mut rng);
        let tgt_emb = if spec.shared_embeddings {
            src_emb.clone()
        } else {
            params.normal("tgt_emb.weight", &[spec.tgt_vocab, d], std, &mut rng)
        };
        let positions = match spec.positions {
            PositionKind::Sinusoidal => {
                Positions::Sinusoidal(SinusoidalPositions::new(spec.max_positions, d))
            }
            PositionKind::Learned => Positions::Learned(LearnedPositions::new(
                &mut params,
                "pos_emb",
                spec.max_positions,
                d,
                &mut rng,
            )),
        };
        let ls = spec.layer_spec();
        let encoder = (0..spec.encoder_layers)
            .map(|l| {
                EncoderLayer::new(
                    &mut params,
                    &format!("transformer.encoder.layers.{l}"),
                    &ls,
                    &mut rng,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let encoder_norm =
            LayerNorm::new(&mut params, "transformer.encoder.norm", d, LAYER_NORM_EPS);
        let decoder = (0..spec.decoder_layers)
            .map(|l| {
                DecoderLayer::new(
                    &mut params,
                    &format!("transformer.decoder.layers.{l}"),
                    &ls,
                    &mut rng,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let decoder_norm =
            LayerNorm::new(&mut params, "transformer.decoder.norm", d, LAYER_NORM_EPS);
        let out_proj = if spec.tie_output {
            let bound = 1.0 / (d as f32).sqrt();
            Linear {
                weight: tgt_emb.clone(),
                bias: Some(params.uniform("out_proj.bias", &[spec.tgt_vocab], bound, &mut rng)),
            }
        } else {
            Linear::new(&mut params, "out_proj", d, spec.tgt_vocab, true, &mut rng)
        };
        Ok(Transformer {
            params,
            spec,
            src_emb,
            tgt_emb,
            positions,
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

    /// Positional encodings of positions `start..start + len` → `[len, d]` (see [`PositionKind`]
    /// for positions past `max_positions`).
    fn position_encoding(&self, start: usize, len: usize) -> Var {
        let max = self.positions.max_len();
        match &self.positions {
            Positions::Sinusoidal(_) if start + len > max => {
                let table = sinusoidal_table(start + len, self.spec.d_model);
                Var::constant(tensor::ops::layout::narrow_tensor(&table, 0, start, len))
            }
            Positions::Learned(l) if start + len > max => {
                let ids: Vec<u32> = (start..start + len)
                    .map(|p| p.min(max - 1) as u32)
                    .collect();
                l.weight.gather_rows(&ids)
            }
            p => p
                .encoding(start, len)
                .expect("the range fits the table (checked above)"),
        }
    }

    /// `dropout(table[ids] · √d + pe[start..start + L])`: ids `[B, L]` → `[B, L, d]`.
    fn embed(
        &self,
        table: &Var,
        ids: &[u32],
        b: usize,
        len: usize,
        start: usize,
        rng: &mut Option<&mut Rng>,
    ) -> Var {
        let d = self.spec.d_model;
        let mut x = table.gather_rows(ids).reshape(&[b, len, d]);
        if self.spec.scale_embeddings {
            x = x.scale((d as f32).sqrt());
        }
        let x = x.add(&self.position_encoding(start, len));
        dropout(x, self.spec.dropout, rng)
    }

    /// Checks a padded id batch: `ids` fill `[rows, max]`, every length ≤ `max`, every id < `vocab`.
    fn check_ids(
        what: &str,
        ids: &[u32],
        rows: usize,
        max: usize,
        vocab: usize,
    ) -> Result<(), TransformerError> {
        if ids.len() != rows * max {
            return Err(TransformerError::Input(format!(
                "{what} has {} ids, expected {rows} rows × {max}",
                ids.len()
            )));
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(TransformerError::Input(format!(
                "{what} id {id} is outside the vocabulary of {vocab} (the vocabulary does not match the model)"
            )));
        }
        Ok(())
    }

    /// Encodes `src [B, src_max]` (padded, real lengths `src_len`). `rng`: `Some` while training.
    /// `weights`: return every self-attention weight (plain path); `false` takes the fused kernel
    /// (attention dropout, while training, inside it).
    pub fn encode(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
        mut rng: Option<&mut Rng>,
        weights: bool,
    ) -> Result<Encoded, TransformerError> {
        let path = Self::path(weights, src_len);
        let b = src_len.len();
        Self::check_ids("source", src, b, src_max, self.spec.src_vocab)?;
        let padding = padding_mask(src_len, src_max)?; // [B, S]
        let mut x = self.embed(&self.src_emb, src, b, src_max, 0, &mut rng); // [B, S, d]
        let mut weights = Vec::with_capacity(self.encoder.len());
        for layer in &self.encoder {
            let (y, w) = layer.forward(&x, &padding, path, &mut rng)?;
            x = y;
            weights.extend(w); // [B, H, S, S]
        }
        Ok(Encoded {
            memory: self.encoder_norm.forward(&x),
            padding,
            weights,
        })
    }

    /// The attention path of a pass that does (`weights`) or does not return the weights.
    fn path(weights: bool, src_len: &[usize]) -> AttentionPath<'_> {
        if weights {
            AttentionPath::Weights
        } else {
            AttentionPath::Fused { src_len }
        }
    }

    /// Teacher-forced pass: `src [B, src_max]`, `tgt_in [B, tgt_max]` (`<s> y₁ …`, padded) →
    /// logits `[B, T, V]` and, with `weights`, every attention weight (without, the fused kernel
    /// runs). Target padding needs no mask: the causal mask
    /// already keeps real positions from seeing the padding after them.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
        tgt_in: &[u32],
        tgt_max: usize,
        mut rng: Option<&mut Rng>,
        weights: bool,
    ) -> Result<Forward, TransformerError> {
        let b = src_len.len();
        Self::check_ids("target", tgt_in, b, tgt_max, self.spec.tgt_vocab)?;
        let enc = self.encode(src, src_len, src_max, rng.as_deref_mut(), weights)?;
        let path = Self::path(weights, src_len);
        let causal = causal_mask(tgt_max); // [T, T]
        let mut x = self.embed(&self.tgt_emb, tgt_in, b, tgt_max, 0, &mut rng); // [B, T, d]
        let (mut decoder_self, mut cross) = (Vec::new(), Vec::new());
        for layer in &self.decoder {
            let memory = layer.project_memory(&enc.memory)?; // [B, H, S, d_h]
            let out = layer.forward(&x, &causal, &memory, &enc.padding, path, &mut rng)?;
            x = out.x;
            decoder_self.extend(out.self_weights); // [B, H, T, T]
            cross.extend(out.cross_weights); // [B, H, T, S]
        }
        let logits = self.out_proj.forward(&self.decoder_norm.forward(&x)); // [B, T, V]
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

    /// One decoder step for every row: `prev [rows]` at position `pos`, with per-layer caches and
    /// projected memories → (logits `[rows, V]`, last layer's cross-attention `[rows, H, 1, S]`).
    fn decode_step(
        &self,
        prev: &[u32],
        pos: usize,
        caches: &mut [KvCache],
        memories: &[StepMemory],
        padding: &Tensor,
    ) -> Result<(Var, Var), TransformerError> {
        let rows = prev.len();
        Self::check_ids("previous token", prev, rows, 1, self.spec.tgt_vocab)?;
        let mut x = self.embed(&self.tgt_emb, prev, rows, 1, pos, &mut None); // [rows, 1, d]
        let mut cross = None;
        for ((layer, cache), memory) in self.decoder.iter().zip(caches).zip(memories) {
            let out = layer.forward_step(&x, cache, memory, padding)?;
            x = out.x;
            cross = out.cross_weights;
        }
        let d = self.spec.d_model;
        let h = self.decoder_norm.forward(&x).reshape(&[rows, d]);
        let cross = cross
            .ok_or_else(|| TransformerError::Input("a decoder needs at least one layer".into()))?;
        Ok((self.out_proj.forward(&h), cross))
    }
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
