//! Decoding: greedy and batched beam search over any [`Seq2Seq`](crate::models::Seq2Seq) model.

pub mod beam;
pub mod greedy;

pub use beam::{beam_search, beam_search_with_limits, BeamConfig};
pub use greedy::{greedy, greedy_with_limits};

/// One decoded sentence.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// Target ids, without BOS and EOS.
    pub ids: Vec<u32>,
    /// Sum of the log-probabilities of the emitted tokens (EOS included when it was emitted).
    pub log_prob: f32,
    /// Score used to rank hypotheses (the log-probability with the length penalty applied).
    pub score: f32,
    /// Attention weights per emitted token (EOS included), each over the real source tokens.
    pub attention: Vec<Vec<f32>>,
    /// Pre-softmax attention scores per emitted token, where the model has them.
    pub scores: Vec<Vec<f32>>,
}
