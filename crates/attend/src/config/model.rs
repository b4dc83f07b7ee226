//! The `[model]` section: which model (`kind`) and, in a sub-section named for it, that model's keys.
//!
//! ```toml
//! [model]
//! kind = "rnn"            # "rnn" | "transformer" | "captioner"
//!
//! [model.rnn]             # read only when kind = "rnn"
//! cell = "gru"
//! attention = "additive"
//! ```
//!
//! Every choice is an enum, so a misspelled value fails to parse with the key and the valid choices
//! in the message; a sub-section for another kind than `kind` is an error too (its keys would do
//! nothing). A missing sub-section means all its defaults.

use serde::{Deserialize, Serialize};

/// The model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// RNN encoder-decoder, with or without attention (`[model.rnn]`).
    Rnn,
    /// The encoder-decoder Transformer (`[model.transformer]`).
    Transformer,
    /// CNN encoder + LSTM decoder with additive attention over the image grid (`[model.captioner]`).
    Captioner,
}

impl ModelKind {
    /// The name used in configs (`model.kind`) and in the sub-section's header.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Rnn => "rnn",
            ModelKind::Transformer => "transformer",
            ModelKind::Captioner => "captioner",
        }
    }
}

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Gru,
    Lstm,
}

impl Cell {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Gru => "gru",
            Cell::Lstm => "lstm",
        }
    }
}

/// How the RNN decoder scores the encoder's annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionScore {
    /// No attention: the decoder sees only the bridged final encoder state (the bottleneck).
    None,
    /// Bahdanau: `vᵀ tanh(W_q s + W_k h)`.
    Additive,
    /// Luong dot: `sᵀh` (decoder size = annotation size).
    Dot,
    /// Luong general: `(W s)ᵀh`.
    General,
}

impl AttentionScore {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            AttentionScore::None => "none",
            AttentionScore::Additive => "additive",
            AttentionScore::Dot => "dot",
            AttentionScore::General => "general",
        }
    }
}

/// Where the RNN decoder's initial state comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderInit {
    /// `s_0 = tanh(W [fwd_S ; bwd_1] + b)` for all decoder layers (Bahdanau et al.).
    #[default]
    Bridge,
    /// Decoder layer `l` starts from encoder layer `l`'s final states, directions concatenated
    /// (what `decoder(..., hidden=encoder_hidden)` does in PyTorch's seq2seq tutorial).
    Identity,
    /// Zeros.
    Zero,
}

/// An activation on the RNN decoder's input embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputActivation {
    #[default]
    None,
    /// `max(0, x)`, as the PyTorch seq2seq tutorial's `DecoderRNN`.
    Relu,
}

/// The Transformer's feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// `x·Φ(x)`, the erf form (PyTorch's default `gelu`).
    Gelu,
    /// `x·σ(x)` (SiLU): Marian's `swish`, the activation of OPUS-MT models.
    #[serde(alias = "silu")]
    Swish,
}

/// Where the Transformer's layer norms sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormPlacement {
    /// `x + Sublayer(LN(x))` (`norm_first = True`).
    Pre,
    /// `LN(x + Sublayer(x))` (`norm_first = False`, the 2017 paper).
    Post,
}

/// The Transformer's positional encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionKind {
    /// Fixed `pe[p, 2i] = sin(p / 10000^(2i/d))`, `pe[p, 2i+1] = cos(…)`.
    Sinusoidal,
    /// A trained table `pos_emb.weight [max_positions, d]`.
    Learned,
    /// Marian's fixed layout: all sines, then all cosines, `pe[p, i] = sin(p / 10000^(2i/d))`,
    /// `pe[p, d/2 + i] = cos(…)` for `i < d/2`.
    #[serde(rename = "sinusoidal-halves")]
    SinusoidalHalves,
}

/// `[model.rnn]`: the RNN encoder-decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RnnConfig {
    pub cell: Cell,
    /// Embedding size of source and target tokens.
    pub embedding: usize,
    /// Encoder hidden size per direction.
    pub hidden: usize,
    /// Decoder hidden size (defaults to `hidden`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder_hidden: Option<usize>,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Annotations are `[forward ; backward]` states (`2·hidden`).
    pub bidirectional: bool,
    pub attention: AttentionScore,
    /// Size of the additive attention's hidden layer (the A of `vᵀ tanh(…)`).
    pub attention_size: usize,
    /// Dropout on embeddings, between stacked layers and on the decoder output.
    pub dropout: f32,
    /// The decoder's initial state.
    #[serde(skip_serializing_if = "is_default")]
    pub decoder_init: DecoderInit,
    /// Activation on the decoder's input embeddings.
    #[serde(skip_serializing_if = "is_default")]
    pub decoder_input_activation: InputActivation,
    /// The encoder reads every source after `<s>`.
    #[serde(skip_serializing_if = "is_false")]
    pub source_bos: bool,
    /// The encoder reads every source followed by `</s>` (the PyTorch tutorial appends `EOS`).
    #[serde(skip_serializing_if = "is_false")]
    pub source_eos: bool,
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

impl Default for RnnConfig {
    fn default() -> RnnConfig {
        RnnConfig {
            cell: Cell::Gru,
            embedding: 256,
            hidden: 256,
            decoder_hidden: None,
            encoder_layers: 1,
            decoder_layers: 1,
            bidirectional: true,
            attention: AttentionScore::Additive,
            attention_size: 256,
            dropout: 0.0,
            decoder_init: DecoderInit::Bridge,
            decoder_input_activation: InputActivation::None,
            source_bos: false,
            source_eos: false,
        }
    }
}

impl RnnConfig {
    /// The decoder's hidden size.
    pub fn decoder_hidden(&self) -> usize {
        self.decoder_hidden.unwrap_or(self.hidden)
    }

    /// Size of an encoder annotation: `hidden` per direction.
    pub fn annotation_size(&self) -> usize {
        if self.bidirectional {
            2 * self.hidden
        } else {
            self.hidden
        }
    }
}

/// `[model.transformer]`: the encoder-decoder Transformer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// Model width: embeddings, attention, residual stream.
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    pub heads: usize,
    /// Inner size of the position-wise feed-forward block.
    pub ff_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub activation: Activation,
    pub norm: NormPlacement,
    pub positions: PositionKind,
    /// Rows of the position table.
    pub max_positions: usize,
    /// Multiply embeddings by √d_model before adding positions.
    pub scale_embeddings: bool,
    /// One embedding table for source and target (needs `data.joint_vocab`).
    pub shared_embeddings: bool,
    /// The output projection reuses the target embedding matrix.
    pub tie_output: bool,
    /// A layer norm after the last layer of each stack (`nn.Transformer`'s `encoder.norm` and
    /// `decoder.norm`); Marian's post-norm models have none.
    #[serde(skip_serializing_if = "is_true")]
    pub final_norm: bool,
    /// The encoder reads every source after `<s>` (PyTorch's translation tutorial wraps sources
    /// in `<bos> … <eos>`).
    #[serde(skip_serializing_if = "is_false")]
    pub source_bos: bool,
    /// The encoder reads every source followed by `</s>` (Marian appends it to the source).
    #[serde(skip_serializing_if = "is_false")]
    pub source_eos: bool,
    /// Dropout after each sublayer, inside the feed-forward block and on the embeddings.
    pub dropout: f32,
    /// Dropout on the attention weights (defaults to `dropout`, as `nn.Transformer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_dropout: Option<f32>,
}

impl Default for TransformerConfig {
    fn default() -> TransformerConfig {
        TransformerConfig {
            d_model: 256,
            heads: 4,
            ff_size: 1024,
            encoder_layers: 1,
            decoder_layers: 1,
            activation: Activation::Relu,
            norm: NormPlacement::Pre,
            positions: PositionKind::Sinusoidal,
            max_positions: 1024,
            scale_embeddings: true,
            shared_embeddings: false,
            tie_output: false,
            final_norm: true,
            source_bos: false,
            source_eos: false,
            dropout: 0.0,
            attention_dropout: None,
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `[model.captioner]`: the captioner's LSTM decoder and its additive attention (the CNN and the
/// images are set in `[caption]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptionerConfig {
    /// Word embedding size.
    pub embedding: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Size of the additive attention's hidden layer.
    pub attention_size: usize,
    /// Dropout on the embeddings and the decoder output.
    pub dropout: f32,
}

impl Default for CaptionerConfig {
    fn default() -> CaptionerConfig {
        CaptionerConfig {
            embedding: 256,
            hidden: 256,
            attention_size: 256,
            dropout: 0.0,
        }
    }
}

/// The `[model]` section: one model and its keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelSection", into = "ModelSection")]
pub enum ModelConfig {
    Rnn(RnnConfig),
    Transformer(TransformerConfig),
    Captioner(CaptionerConfig),
}

impl ModelConfig {
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::Rnn(_) => ModelKind::Rnn,
            ModelConfig::Transformer(_) => ModelKind::Transformer,
            ModelConfig::Captioner(_) => ModelKind::Captioner,
        }
    }
}

/// `[model]` as written: `kind` and the sub-sections.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    kind: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rnn: Option<RnnConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transformer: Option<TransformerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    captioner: Option<CaptionerConfig>,
}

impl TryFrom<ModelSection> for ModelConfig {
    type Error = String;

    fn try_from(s: ModelSection) -> Result<ModelConfig, String> {
        let present = [
            (ModelKind::Rnn, s.rnn.is_some()),
            (ModelKind::Transformer, s.transformer.is_some()),
            (ModelKind::Captioner, s.captioner.is_some()),
        ];
        if let Some((other, _)) = present.iter().find(|(k, set)| *set && *k != s.kind) {
            return Err(format!(
                "[model.{}] does nothing when model.kind = {:?}; move its keys to [model.{}] or remove it",
                other.name(),
                s.kind.name(),
                s.kind.name()
            ));
        }
        Ok(match s.kind {
            ModelKind::Rnn => ModelConfig::Rnn(s.rnn.unwrap_or_default()),
            ModelKind::Transformer => ModelConfig::Transformer(s.transformer.unwrap_or_default()),
            ModelKind::Captioner => ModelConfig::Captioner(s.captioner.unwrap_or_default()),
        })
    }
}

impl From<ModelConfig> for ModelSection {
    fn from(m: ModelConfig) -> ModelSection {
        let kind = m.kind();
        let mut s = ModelSection {
            kind,
            rnn: None,
            transformer: None,
            captioner: None,
        };
        match m {
            ModelConfig::Rnn(c) => s.rnn = Some(c),
            ModelConfig::Transformer(c) => s.transformer = Some(c),
            ModelConfig::Captioner(c) => s.captioner = Some(c),
        }
        s
    }
}
