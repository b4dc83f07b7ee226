//! Sequence-to-sequence models behind one interface, so that training, search, pictures and the
//! server treat the RNN encoder-decoders and the Transformer alike.

use crate::data::batcher::Batch;
use crate::nn::Params;
use tensor::{Rng, Tensor, Var};

pub mod rnn;
pub mod source_wrap;
pub mod transformer;

/// What one decoding step returns for every live row.
pub struct StepOutput {
    /// Next-token logits, `[rows, V]`.
    pub logits: Tensor,
    /// Attention weights over the source, `[rows, S]` (cross-attention averaged over heads for a
    /// Transformer); `None` for a model without attention.
    pub weights: Option<Tensor>,
    /// Pre-softmax attention scores, `[rows, S]`, where the model has a single score function (the
    /// RNN decoders); shown by `attend explain`.
    pub scores: Option<Tensor>,
}

/// What the attention of the last decoding step worked with, for showing it step by step (the
/// explorer page, `attend explain --json`): the decoder state it scored the source with, the keys
/// and values, and the context it returned. Only models with one step attention over the source
/// (the RNN decoders) have it.
///
/// ```text
/// e_j = score(query, keys_j)        additive: vᵀ tanh(query + keys_j)    dot, general: query · keys_j
/// c   = Σ_j softmax(e)_j values_j
/// ```
pub struct StepInternals {
    /// The score function: `additive`, `dot` or `general`.
    pub score: &'static str,
    /// The decoder state the step scored with, s_{t-1}: `[rows, H]`.
    pub state: Tensor,
    /// The state as the score reads it: `W_q s` (additive), `W s` (general) or `s` (dot): `[rows, Q]`.
    pub query: Tensor,
    /// The keys as the score reads them: `W_k h_j + b_k` (additive) or `h_j`: `[rows, S, Q]`.
    pub keys: Tensor,
    /// Additive attention's `v` `[Q]`; `None` for the multiplicative scores.
    pub v: Option<Tensor>,
    /// The values h_j (the encoder's annotations): `[rows, S, Dk]`.
    pub values: Tensor,
    /// The context c = Σ_j a_j h_j: `[rows, Dk]`.
    pub context: Tensor,
}

/// An encoder-decoder translation model.
pub trait Seq2Seq {
    /// The model's named parameters.
    fn params(&self) -> &Params;

    /// Teacher-forced logits `[B·T, V]` for a batch (rows in `tgt_out` order). With `dropout`
    /// (training) dropout layers draw from it; `None` is evaluation.
    fn logits(&self, batch: &Batch, dropout: Option<&mut Rng>) -> Var;

    /// Encodes `src` (`[rows, src_max]`, padded with 0, `src_len` real lengths) and returns an
    /// incremental decoder positioned before the first target token.
    fn begin<'a>(
        &'a self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'a>;

    /// Largest target id + 1.
    fn tgt_vocab(&self) -> usize;

    /// The tokens the encoder reads for one source (the columns of the attention maps): `ids`,
    /// wrapped in `<s>` / `</s>` where the model reads them so.
    fn encoder_input(&self, ids: &[u32]) -> Vec<u32> {
        ids.to_vec()
    }

    /// The model as a Transformer, for what only it has (every layer's and head's attention maps).
    fn as_transformer(&self) -> Option<&transformer::Transformer> {
        None
    }
}

/// Incremental decoding state for a set of rows (sentences, or beam hypotheses).
pub trait Decoding {
    /// Feeds the previous token of every row (BOS first) and returns the next-token distribution.
    fn step(&mut self, prev: &[u32]) -> StepOutput;

    /// Keeps rows `rows` of the state in that order (repeats allowed): beam search expands each
    /// sentence into K hypotheses and reorders them after every step.
    fn select(&mut self, rows: &[usize]);

    /// The attention internals of the last [`step`](Decoding::step), where the model has them
    /// (computed on demand: decoding does not pay for them).
    fn internals(&self) -> Option<StepInternals> {
        None
    }
}

/// Builds the model a config describes (`model.kind`), initialised from `seed`.
pub fn build(
    config: &crate::config::Config,
    src_vocab: usize,
    tgt_vocab: usize,
    seed: u64,
) -> anyhow::Result<Box<dyn Seq2Seq>> {
    use crate::config::ModelKind;
    match config.model.kind() {
        ModelKind::Rnn => Ok(Box::new(rnn::RnnSeq2Seq::new(
            config, src_vocab, tgt_vocab, seed,
        )?)),
        ModelKind::Transformer => Ok(Box::new(transformer::Transformer::from_config(
            config, src_vocab, tgt_vocab, seed,
        )?)),
        ModelKind::Captioner => anyhow::bail!(
            "model.kind = \"captioner\" captions images; translation needs \"rnn\" or \"transformer\""
        ),
    }
}
