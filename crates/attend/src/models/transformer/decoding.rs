//! Incremental decoding for the [`Transformer`]: one target position per step.
//!
//! ```text
//! begin:  memory = encoder(src);  K_l, V_l = multihead_attn_l.project(memory)   once
//!         (K_l transposed per head [rows, H, d_h, S'], S' = S padded to whole key blocks;
//!          V_l in [rows, S, 2d])
//! step t: x = tgt_emb(y_{t-1}) · √d + pe[t]                                           [rows, 1, d]
//!         per layer l: self-attention over cache_l ∪ {x}   (keys/values written in place)
//!                      cache_l: [rows, capacity ≥ t+1, d]
//!                      cross-attention over (K_l, V_l), source padding masked
//!         logits = out_proj(decoder.norm(x))      (decoder.norm where the model has one)  [rows, V]
//! ```
//! Step by step this equals the teacher-forced pass with its causal mask (tested against a decoder
//! that recomputes the prefix). `select` reorders every cache, memory and mask row for beam search.

use super::{Transformer, TransformerError};
use crate::attention::{KvCache, StepMemory};
use crate::models::{Decoding, StepOutput};
use tensor::{Tensor, Var};

/// Decoding state: per-layer self-attention caches and projected memories.
pub struct TransformerDecoding<'a> {
    model: &'a Transformer,
    /// Source padding `[rows, S]`, 1 = pad.
    padding: Tensor,
    /// Cross-attention keys and values per decoder layer, projected once.
    memories: Vec<StepMemory>,
    /// Self-attention keys and values of the positions decoded so far, per decoder layer.
    caches: Vec<KvCache>,
    /// Position of the next input token (0 = `<s>`).
    position: usize,
}

impl<'a> TransformerDecoding<'a> {
    /// Encodes `src [rows, src_max]` and projects the memory for every decoder layer.
    pub fn new(
        model: &'a Transformer,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Result<TransformerDecoding<'a>, TransformerError> {
        let enc = model.encode(src, src_len, src_max, None, false)?;
        let memories = model
            .decoder
            .iter()
            .map(|l| l.project_step_memory(&enc.memory))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TransformerDecoding {
            model,
            padding: enc.padding,
            caches: vec![KvCache::new(); memories.len()],
            memories,
            position: 0,
        })
    }

    /// One decoder step for every row: `prev [rows]` at position `self.position` → (logits
    /// `[rows, V]`, per decoder layer the cross-attention's input `[rows, 1, d]` and weights
    /// `[rows, H, 1, S]`).
    fn decode_step(&mut self, prev: &[u32]) -> Result<(Var, Vec<(Var, Var)>), TransformerError> {
        let (model, rows) = (self.model, prev.len());
        let (tgt_emb, dims) = (&model.embedding.tgt, (rows, 1));
        let mut x =
            model
                .embedding
                .forward(tgt_emb, "previous token", prev, dims, self.position, None)?; // [rows, 1, d]
        let mut cross = Vec::with_capacity(model.decoder.len());
        let layers = model.decoder.iter().zip(&mut self.caches);
        for ((layer, cache), memory) in layers.zip(&self.memories) {
            let out = layer.forward_step(&x, cache, memory, &self.padding)?;
            x = out.x; // [rows, 1, d]
            cross.extend(out.cross_query.zip(out.cross_weights)); // [rows, 1, d], [rows, H, 1, S]
        }
        if cross.is_empty() {
            return Err(TransformerError::Input(
                "a decoder needs at least one layer".into(),
            ));
        }
        self.position += 1;
        let h = x.reshape(&[rows, model.spec.d_model]);
        Ok((model.output(h), cross)) // [rows, V]
    }

    /// One step as [`Decoding::step`] takes it, also returning every decoder layer's
    /// cross-attention per head: the weights the step used and their scores q·k/√d_h.
    pub fn step_recorded(
        &mut self,
        prev: &[u32],
    ) -> Result<(StepOutput, CrossAttentionStep), TransformerError> {
        let (logits, cross) = self.decode_step(prev)?;
        let (rows, s) = (prev.len(), self.padding.dim(1));
        let mut step = CrossAttentionStep {
            scores: Vec::with_capacity(cross.len()),
            weights: Vec::with_capacity(cross.len()),
        };
        for ((query, weights), (layer, memory)) in cross
            .iter()
            .zip(self.model.decoder.iter().zip(&self.memories))
        {
            let heads = weights.dim(1);
            let scores = layer
                .multihead_attn
                .step_scores(query, memory, Some(&self.padding))?; // [rows, H, 1, S]
            step.scores.push(scores.reshape(&[rows, heads, s]));
            step.weights
                .push(weights.to_tensor().reshape(&[rows, heads, s]));
        }
        Ok((output(logits, &cross, rows, s), step))
    }
}

/// Every decoder layer's cross-attention at one decoding step (see
/// [`TransformerDecoding::step_recorded`]).
pub struct CrossAttentionStep {
    /// Per layer, `e = q·k / √d_h` per head: `[rows, H, S]`, `-∞` at padded keys.
    pub scores: Vec<Tensor>,
    /// Per layer, `softmax(e)` per head as the step computed it: `[rows, H, S]`, 0 at padded keys.
    pub weights: Vec<Tensor>,
}

/// The step's output: the logits and the last layer's cross-attention `[rows, H, 1, S]` averaged
/// over the heads → `[rows, S]`.
fn output(logits: Var, cross: &[(Var, Var)], rows: usize, s: usize) -> StepOutput {
    let last = &cross[cross.len() - 1].1;
    let weights = last.reshape(&[rows, last.dim(1), s]).mean_axis(1);
    StepOutput {
        logits: logits.into_tensor(),
        weights: Some(weights.into_tensor()),
        scores: None,
    }
}

impl Decoding for TransformerDecoding<'_> {
    fn step(&mut self, prev: &[u32]) -> StepOutput {
        let (logits, cross) = self
            .decode_step(prev)
            .expect("previous tokens are the model's own outputs; rows follow select");
        output(logits, &cross, prev.len(), self.padding.dim(1))
    }

    fn select(&mut self, rows: &[usize]) {
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        self.padding = self.padding.select_rows(rows);
        for m in &mut self.memories {
            *m = m
                .select_rows(&ids)
                .expect("search selects rows of the current batch");
        }
        for c in &mut self.caches {
            c.select_rows(&ids)
                .expect("search selects rows of the current batch");
        }
    }
}
