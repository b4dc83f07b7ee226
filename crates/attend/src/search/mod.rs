//! Decoding: greedy and batched beam search over any [`Seq2Seq`](crate::models::Seq2Seq) model,
//! by attend's rules or (for imported models) by Hugging Face's ([`hf`]).

pub mod beam;
pub mod greedy;
pub mod hf;

pub use beam::{beam_search, beam_search_with_limits, BeamConfig};
pub use greedy::{greedy, greedy_with_limits};
pub use hf::{hf_beam, hf_generate, hf_greedy};

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
