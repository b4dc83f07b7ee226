//! Decoding: greedy and batched beam search over any [`Seq2Seq`](crate::models::Seq2Seq) model,
//! by attend's rules or (for imported models) by Hugging Face's ([`hf`]).

pub mod beam;
pub mod greedy;
pub mod hf;

pub use beam::{beam_search, beam_search_with_limits, BeamConfig};
pub use greedy::{greedy, greedy_with_limits};
pub use hf::{hf_beam, hf_generate, hf_greedy};

/// The attention columns of a source of `len` tokens: its tokens, and the `</s>` that a
/// `source_eos` Transformer (an imported Marian model) appends and attends to as well.
pub fn attended_len(model: &dyn crate::models::Seq2Seq, len: usize) -> usize {
    let appended = model.as_transformer().is_some_and(|t| t.spec().source_eos);
    len + usize::from(appended)
}

/// The source ids the attention covers: `ids`, then `</s>` where the model appends it (the
/// labels of a [`Hypothesis`]'s attention columns).
pub fn attended_source(model: &dyn crate::models::Seq2Seq, ids: &[u32]) -> Vec<u32> {
    model
        .as_transformer()
        .map_or_else(|| ids.to_vec(), |t| t.encoder_input(ids))
}

/// One decoded sentence.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// Target ids, without BOS and EOS.
    pub ids: Vec<u32>,
    /// Sum of the log-probabilities of the emitted tokens (EOS included when it was emitted).
    pub log_prob: f32,
    /// Score used to rank hypotheses (the log-probability with the length penalty applied).
    pub score: f32,
    /// Attention weights per emitted token (EOS included), each over the source tokens the encoder
    /// read ([`attended_len`]: the `</s>` a `source_eos` model appends included).
    pub attention: Vec<Vec<f32>>,
    /// Pre-softmax attention scores per emitted token, where the model has them.
    pub scores: Vec<Vec<f32>>,
}

impl Hypothesis {
    /// No tokens (the output for an empty input or a limit of 0 tokens).
    pub fn empty() -> Hypothesis {
        Hypothesis {
            ids: vec![],
            log_prob: 0.0,
            score: 0.0,
            attention: vec![],
            scores: vec![],
        }
    }
}
