//! A Transformer explained head by head: greedy decoding of one sentence that records, at every
//! step, the cross-attention of every decoder layer l and head h as the step computed it.
//!
//! ```text
//! step i, layer l, head h:   q = x_i W_Q^{l,h} + b_Q            x_i: the layer's cross-attention input
//!                            k_j = m_j W_K^{l,h} + b_K          m_j: the encoder output at source j
//!                            e_ij = q·k_j / √d_k                scores     [src_len]
//!                            α_ij = softmax_j(e_ij)             weights    [src_len]
//! ```
//!
//! The weights are those the decoding step attended with (the step kernel's own output); the
//! scores are recomputed from the step's queries and keys
//! ([`MultiHeadAttention::step_scores`](crate::attention::MultiHeadAttention::step_scores)), so
//! that softmax(scores) = weights. The steps of the [`Explanation`] show one [`HeadView`]: a head's
//! scores and weights, or the mean of a layer's heads with ln ᾱ as its scores.

use super::explain::{
    emitted_label, log_weights, most_probable, CrossAttention, ExplainError, Explanation,
    HeadAttention, LayerAttention, ScoreSource,
};
use super::explain_transformer::TransformerExplanation;
use super::head_view::{alignment_layer, HeadView};
use super::plots::display_tokens;
use super::ExplainStep;
use crate::data::tokenizer::{Vocabs, BOS, EOS};
use crate::models::transformer::decoding::TransformerDecoding;
use crate::models::transformer::Transformer;
use tensor::Var;

/// Explains `sentence` (source ids `src`, non-empty) for the Transformer `t`: greedy decoding for
/// at most `max_len` tokens, every layer's and head's cross-attention kept, the steps showing
/// `view` (`None`: the alignment view).
pub(super) fn explain_transformer(
    t: &Transformer,
    vocabs: &Vocabs,
    sentence: &str,
    src: &[u32],
    max_len: usize,
    view: Option<HeadView>,
) -> Result<Explanation, ExplainError> {
    let spec = t.spec();
    let (layers, heads) = (spec.decoder_layers, spec.heads);
    let view = view.unwrap_or_else(|| HeadView::alignment(layers));
    view.check(layers, heads)?;
    // The attention covers what the encoder reads: the source, and `</s>` where the model appends
    // it (`source_eos`, imported Marian models).
    let source_tokens = display_tokens(&vocabs.src, &t.encoder_input(src));
    let n = source_tokens.len();
    let (cross, means, emitted) = tensor::no_grad(|| {
        let mut dec = TransformerDecoding::new(t, src, &[src.len()], src.len())?;
        let mut cross: Vec<LayerAttention> = (0..layers)
            .map(|_| LayerAttention {
                heads: vec![HeadAttention::default(); heads],
            })
            .collect();
        // The mean over the heads of the viewed layer, by the op decoding averages with.
        let mut means = Vec::new();
        let mut emitted = Vec::new();
        let mut prev = BOS;
        for _ in 0..max_len {
            let (out, rec) = dec.step_recorded(&[prev])?;
            // rec.scores[l], rec.weights[l]: [1, H, S]
            for (l, layer) in cross.iter_mut().enumerate() {
                let (scores, weights) = (rec.scores[l].data(), rec.weights[l].data());
                for (h, head) in layer.heads.iter_mut().enumerate() {
                    head.scores.push(scores[h * n..(h + 1) * n].to_vec());
                    head.weights.push(weights[h * n..(h + 1) * n].to_vec());
                }
            }
            let viewed = Var::constant(rec.weights[view.layer - 1].clone());
            means.push(viewed.mean_axis(1).into_tensor().data()[..n].to_vec()); // [1, S]
            let best = most_probable(out.logits.data());
            emitted.push(best);
            if best == EOS {
                break;
            }
            prev = best;
        }
        Ok::<_, ExplainError>((cross, means, emitted))
    })?;
    let shown = &cross[view.layer - 1];
    let steps = emitted
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let (scores, weights) = match view.head {
                Some(h) => {
                    let head = &shown.heads[h - 1];
                    (head.scores[i].clone(), head.weights[i].clone())
                }
                None => (log_weights(&means[i]), means[i].clone()),
            };
            ExplainStep {
                step: i + 1,
                emitted: emitted_label(vocabs, id),
                source_tokens: source_tokens.clone(),
                scores,
                weights,
            }
        })
        .collect();
    // Every layer's and head's maps by a teacher-forced pass over the emitted tokens (`</s>` last
    // where decoding ended with it): what the explorer page shows.
    let transformer = Some(TransformerExplanation::new(t, src, &emitted)?);
    let ids: Vec<u32> = emitted.into_iter().filter(|&id| id != EOS).collect();
    Ok(Explanation {
        source: sentence.to_string(),
        translation: vocabs.tgt.decode(&ids),
        source_tokens,
        scores_from: match view.head {
            Some(_) => ScoreSource::ScaledDot,
            None => ScoreSource::LogWeights,
        },
        steps,
        rnn: None,
        transformer,
        view: Some(view),
        cross_attention: Some(CrossAttention {
            d_k: spec.d_model / heads.max(1),
            alignment_layer: alignment_layer(layers),
            layers: cross,
        }),
    })
}
