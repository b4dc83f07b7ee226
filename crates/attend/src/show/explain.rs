//! The data behind `attend explain`: run a model greedily on one sentence and keep, at every
//! decoder step, what the attention did: the alignment scores e_ij of the source tokens, the
//! softmax weights α_ij = exp(e_ij) / Σ_k exp(e_ik), and the token emitted.
//!
//! The loop is greedy search written out for one sentence (BOS first, the most probable token fed
//! back, stop after EOS or `max_len` tokens), so the weights are the model's own: the same numbers
//! [`greedy`](crate::search::greedy()) records in `Hypothesis::attention`.
//!
//! A Transformer has a cross-attention per decoder layer and head; its explanation
//! (`explain_heads.rs`) keeps every one of them in
//! [`Explanation::cross_attention`] and shows one [`HeadView`] in the steps.

use super::explain_heads::explain_transformer;
use super::explain_rnn::RnnExplanation;
use super::explain_transformer::TransformerExplanation;
use super::head_view::HeadView;
use super::plots::{display_token, display_tokens, EOS_LABEL};
use super::{ExplainStep, ShowError};
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
    /// One Transformer head's scaled dot-product scores e_ij = q_i·k_j / √d_k.
    ScaledDot,
    /// The weights shown are a mean over heads, which no single score function gives, so the
    /// scores shown are ln α_ij: softmax(ln α) = α, the scores up to a constant per step.
    LogWeights,
}

/// One sentence explained step by step. Serialises to the JSON of `attend explain --json`; the
/// two Transformer fields are left out for an RNN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    /// The input sentence.
    pub source: String,
    /// The greedy translation, detokenized.
    pub translation: String,
    /// The source tokens as displayed (markers dropped), as the encoder read them (`</s>` last
    /// where the model appends it): `[src_len]`.
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
    /// Transformer only: the layer and head whose attention `steps` show (JSON `"view": {"layer":
    /// 1, "head": null}`, counted from 1, `null`: the mean of the layer's heads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<HeadView>,
    /// Transformer only: every decoder layer's and head's cross-attention at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_attention: Option<CrossAttention>,
}

/// A Transformer's cross-attention over one explained translation, every layer and head. JSON:
/// `"cross_attention": {"d_k": 16, "alignment_layer": 1, "layers": [{"heads": [{"scores": [[…]],
/// "weights": [[…]]}, …]}, …]}`; `layers[l].heads[h].weights[i][j]` is the weight that head
/// `h + 1` of layer `l + 1` gave source token `j` at step `i + 1`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrossAttention {
    /// The width of one head's queries and keys, d_k = d_model / heads (the √d_k of the scores).
    pub d_k: usize,
    /// The layer (from 1) whose head average is the alignment view
    /// ([`alignment_layer`](super::head_view::alignment_layer)).
    pub alignment_layer: usize,
    /// One entry per decoder layer, the first layer first: `[layers]`.
    pub layers: Vec<LayerAttention>,
}

/// One decoder layer's cross-attention heads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerAttention {
    /// One entry per head: `[heads]`.
    pub heads: Vec<HeadAttention>,
}

/// One head's scaled dot-product attention at every step.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadAttention {
    /// e_ij = q_i·k_j / √d_k: `[steps][src_len]`.
    pub scores: Vec<Vec<f32>>,
    /// α_ij = softmax_j(e_ij), the weights the decoder used: `[steps][src_len]`, rows summing to 1.
    pub weights: Vec<Vec<f32>>,
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
    /// A layer or head was asked of a model that has none (an RNN has one attention).
    #[error(
        "this model is an RNN with a single attention: there are no layers or heads to choose; \
         leave out --layer and --head"
    )]
    NoHeads,
    /// The layer or head asked for does not exist.
    #[error("{0}")]
    View(#[from] ShowError),
    /// The Transformer failed on the input.
    #[error(transparent)]
    Model(#[from] TransformerError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Decodes `sentence` greedily for at most `max_len` tokens and records every step's scores,
/// weights and emitted token; a Transformer's steps show its alignment view
/// ([`HeadView::alignment`]).
pub fn explain(
    model: &dyn Seq2Seq,
    vocabs: &Vocabs,
    sentence: &str,
    max_len: usize,
) -> Result<Explanation, ExplainError> {
    explain_view(model, vocabs, sentence, max_len, None)
}

/// As [`explain`], the steps of a Transformer showing `view` (`None`: the alignment view). An
/// RNN has no layers or heads to choose: `view` must be `None`.
pub fn explain_view(
    model: &dyn Seq2Seq,
    vocabs: &Vocabs,
    sentence: &str,
    max_len: usize,
    view: Option<HeadView>,
) -> Result<Explanation, ExplainError> {
    let src = vocabs.src.encode(sentence)?;
    if sentence.trim().is_empty() || src.is_empty() {
        return Err(ExplainError::Empty(sentence.to_string()));
    }
    if let Some(t) = model.as_transformer() {
        return explain_transformer(t, vocabs, sentence, &src, max_len, view);
    }
    if view.is_some() {
        return Err(ExplainError::NoHeads);
    }
    // The attention covers what the encoder reads: the source, wrapped in `<s>` / `</s>` where
    // the model reads them (imported PyTorch models).
    let read = model.encoder_input(&src);
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
                    log_weights(&weights)
                }
            };
            if let Some(inside) = dec.internals() {
                rnn.get_or_insert_with(|| RnnExplanation::new(&inside, n))
                    .push(&inside);
            }
            let best = most_probable(out.logits.data());
            steps.push(ExplainStep {
                step,
                emitted: emitted_label(vocabs, best),
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
    Ok(Explanation {
        source: sentence.to_string(),
        translation: vocabs.tgt.decode(&ids),
        source_tokens,
        scores_from,
        steps,
        rnn,
        transformer: None,
        view: None,
        cross_attention: None,
    })
}

/// ln α (α floored at the smallest positive f32): scores whose softmax is α again.
pub(super) fn log_weights(weights: &[f32]) -> Vec<f32> {
    weights
        .iter()
        .map(|w| w.max(f32::MIN_POSITIVE).ln())
        .collect()
}

/// The greedy choice from one row of logits, as greedy search makes it.
pub(super) fn most_probable(logits: &[f32]) -> u32 {
    let mut row = logits.to_vec();
    log_softmax_row(&mut row);
    argmax(&row).0
}

/// How an emitted id is shown: its token, or `</s>`.
pub(super) fn emitted_label(vocabs: &Vocabs, id: u32) -> String {
    if id == EOS {
        EOS_LABEL.to_string()
    } else {
        display_token(&vocabs.tgt.token(id))
    }
}
