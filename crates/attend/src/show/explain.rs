//! The data behind `attend explain`: run a model greedily on one sentence and keep, at every
//! decoder step, what the attention did: the alignment scores e_ij of the source tokens, the
//! softmax weights α_ij = exp(e_ij) / Σ_k exp(e_ik), and the token emitted.
//!
//! The loop is greedy search written out for one sentence (BOS first, the most probable token fed
//! back, stop after EOS or `max_len` tokens), so the weights are the model's own: the same numbers
//! [`greedy`](crate::search::greedy()) records in `Hypothesis::attention`.

use super::explain_rnn::RnnExplanation;
use super::explain_transformer::TransformerExplanation;
use super::plots::{display_token, display_tokens, EOS_LABEL};
use super::ExplainStep;
use crate::data::tokenizer::{TokenizerError, Vocabs, BOS, EOS};
use crate::models::transformer::TransformerError;
use crate::models::Seq2Seq;
use crate::search::greedy::argmax;
use tensor::ops::softmax::log_softmax_row;

/// Where the `scores` of the steps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreSource {
    /// The model's own pre-softmax scores e_ij (the RNN decoders: one score function).
    Model,
    /// The model has no single score function (a Transformer averages its heads), so the scores
    /// shown are ln α_ij: softmax(ln α) = α, the scores up to a constant per step.
    LogWeights,
}

/// One sentence explained step by step. Serialises to the JSON of `attend explain --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    /// The input sentence.
    pub source: String,
    /// The greedy translation, detokenized.
    pub translation: String,
    /// The source tokens as displayed (markers dropped): `[src_len]`.
    pub source_tokens: Vec<String>,
    /// Where the step scores come from.
    pub scores_from: ScoreSource,
    /// One entry per decoder step, the EOS step last (unless `max_len` cut decoding short).
    pub steps: Vec<ExplainStep>,
    /// The RNN decoders: each step's decoder state, query, keys, values and context (see
    /// [`RnnExplanation`]); absent for other models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rnn: Option<RnnExplanation>,
    /// Transformers: every layer's and head's cross- and decoder self-attention, and the
    /// positional encodings (see [`TransformerExplanation`]); absent for other models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<TransformerExplanation>,
}

/// Why a sentence cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The sentence is blank.
    #[error("the sentence {0:?} has no tokens; give a non-empty sentence")]
    Empty(String),
    /// The model does not attend.
    #[error(
        "this model has no attention (model.rnn.attention = \"none\"): there are no weights to \
         explain; use a model trained with attention"
    )]
    NoAttention,
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The Transformer's teacher-forced pass over the explained tokens failed.
    #[error("the per-layer attention maps: {0}")]
    Transformer(#[from] TransformerError),
}

/// Decodes `sentence` greedily for at most `max_len` tokens and records every step's scores,
/// weights and emitted token.
pub fn explain(
    model: &dyn Seq2Seq,
    vocabs: &Vocabs,
    sentence: &str,
    max_len: usize,
) -> Result<Explanation, ExplainError> {
    let src = vocabs.src.encode(sentence)?;
    if sentence.trim().is_empty() || src.is_empty() {
        return Err(ExplainError::Empty(sentence.to_string()));
    }
    // The attention covers what the encoder reads: the source, and `</s>` where the model appends
    // it (`source_eos`, imported Marian models).
    let read = model
        .as_transformer()
        .map_or_else(|| src.clone(), |t| t.encoder_input(&src));
    let source_tokens = display_tokens(&vocabs.src, &read);
    let n = read.len();
    let (steps, ids, scores_from, rnn) = tensor::no_grad(|| {
        let mut dec = model.begin(&src, &[src.len()], src.len());
        let mut steps = Vec::new();
        let mut ids = Vec::new();
        let mut scores_from = ScoreSource::Model;
        let mut rnn: Option<RnnExplanation> = None;
        let mut prev = BOS;
        for step in 1..=max_len {
            let out = dec.step(&[prev]);
            // weights, scores: [1, S]; logits: [1, V]
            let weights = out.weights.ok_or(ExplainError::NoAttention)?.data()[..n].to_vec();
            let scores = match out.scores {
                Some(s) => s.data()[..n].to_vec(),
                None => {
                    scores_from = ScoreSource::LogWeights;
                    weights
                        .iter()
                        .map(|w| w.max(f32::MIN_POSITIVE).ln())
                        .collect()
                }
            };
            if let Some(inside) = dec.internals() {
                rnn.get_or_insert_with(|| RnnExplanation::new(&inside, n))
                    .push(&inside);
            }
            let mut row = out.logits.data().to_vec();
            log_softmax_row(&mut row);
            let (best, _) = argmax(&row);
            let emitted = if best == EOS {
                EOS_LABEL.to_string()
            } else {
                display_token(&vocabs.tgt.token(best))
            };
            steps.push(ExplainStep {
                step,
                emitted,
                source_tokens: source_tokens.clone(),
                scores,
                weights,
            });
            if best == EOS {
                break;
            }
            ids.push(best);
            prev = best;
        }
        Ok::<_, ExplainError>((steps, ids, scores_from, rnn))
    })?;
    let transformer = match model.as_transformer() {
        Some(t) => {
            // The steps' tokens: the emitted ones, then `</s>` where decoding ended with it.
            let mut emitted = ids.clone();
            emitted.resize(steps.len(), EOS);
            Some(TransformerExplanation::new(t, &src, &emitted)?)
        }
        None => None,
    };
    Ok(Explanation {
        source: sentence.to_string(),
        translation: vocabs.tgt.decode(&ids),
        source_tokens,
        scores_from,
        steps,
        rnn,
        transformer,
    })
}
