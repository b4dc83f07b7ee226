//! Every layer's and head's attention of a Transformer over one explained sentence, for the
//! explorer page: the cross-attention and the decoder's (causal) self-attention per layer and head,
//! and the positional encodings the embeddings were added to.
//!
//! ```text
//! head_i = softmax(Q_i K_iᵀ / √d_k + M) V_i     d_k = d_model / heads
//! M: cross-attention   −∞ at source padding (none for one sentence)
//!    self-attention    −∞ above the diagonal (position t sees 0..=t: the causal triangle)
//! ```
//!
//! The maps come from one teacher-forced pass over the greedy tokens of the explanation (decoder
//! input `<s> y₁ … y_{T−1}`), the same weights the cached decoding used: the mean over heads of the
//! last layer's cross-attention is each step's `weights`.
//!
//! Shapes: `cross [L][H][T][S]`, `decoder_self [L][H][T][T]`, `positions [max(S, T)][d_model]`.

use crate::data::tokenizer::BOS;
use crate::models::transformer::{Transformer, TransformerError};
use tensor::Tensor;

/// Per-layer, per-head attention of a Transformer: `"transformer"` in `attend explain --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransformerExplanation {
    /// Heads per attention layer.
    pub heads: usize,
    /// Width of one head's queries and keys, d_k = d_model / heads (the scores are divided by
    /// √d_k).
    pub d_k: usize,
    /// Cross-attention weights, `[layers][heads][steps][source tokens]`.
    pub cross: Vec<Vec<Vec<Vec<f32>>>>,
    /// Decoder self-attention weights, `[layers][heads][steps][steps]`: row t is zero past t.
    pub decoder_self: Vec<Vec<Vec<Vec<f32>>>>,
    /// Positional encodings of positions `0..max(S, T)`, `[positions][d_model]`.
    pub positions: Vec<Vec<f32>>,
}

impl TransformerExplanation {
    /// The maps for source `src` (token ids, without any `</s>` the model appends) and the
    /// emitted tokens `emitted` (one per step; the last step's, `</s>`, is not fed back).
    pub fn new(
        t: &Transformer,
        src: &[u32],
        emitted: &[u32],
    ) -> Result<TransformerExplanation, TransformerError> {
        let steps = emitted.len();
        let tgt_in: Vec<u32> = std::iter::once(BOS)
            .chain(emitted.iter().copied())
            .take(steps)
            .collect();
        let maps = t.attention_maps(src, &[src.len()], src.len(), &tgt_in, steps)?;
        let spec = t.spec();
        let n = t.encoder_input(src).len().max(steps);
        let table = tensor::no_grad(|| t.positions().encoding(0, n).map(|v| v.to_tensor()))
            .map_err(|e| TransformerError::Input(e.to_string()))?; // [n, d]
        Ok(TransformerExplanation {
            heads: spec.heads,
            d_k: spec.d_model / spec.heads,
            cross: maps.cross.iter().map(per_head).collect(),
            decoder_self: maps.decoder_self.iter().map(per_head).collect(),
            positions: table
                .data()
                .chunks(spec.d_model)
                .map(<[f32]>::to_vec)
                .collect(),
        })
    }
}

/// A `[1, H, T, K]` map as `[H][T][K]`.
fn per_head(m: &Tensor) -> Vec<Vec<Vec<f32>>> {
    let k = m.dim(3);
    m.data()
        .chunks(m.dim(2) * k)
        .map(|head| head.chunks(k).map(<[f32]>::to_vec).collect())
        .collect()
}
