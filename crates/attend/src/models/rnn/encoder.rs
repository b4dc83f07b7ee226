//! The encoder of the RNN encoder-decoder: source embeddings read by a (bi)directional GRU/LSTM.
//!
//! ```text
//! x     = dropout(src_emb(src))                          [B, S, E]
//! h_j   = [fwd_j ; bwd_j]   stacked (bi)RNN over x        [B, S, Dk = D·H]   the annotations
//! final_l = [fwd_S ; bwd_1] of layer l (top: last)     [B, D·H]           torch's h_n[l·D..(l+1)·D]
//! ```
//!
//! The annotations are what the decoder attends to; the final states are what the
//! [bridge](super::bridge) turns into the decoder's initial state. Padded positions (beyond `src_len`) are zero in `h`
//! and do not reach the final states.

use crate::nn::rnn::{CellKind, RnnConfig, RnnError};
use crate::nn::{Dropout, Embedding, Params, Rnn};
use anyhow::Result;
use tensor::{Rng, Var};

/// Source embeddings and the stacked recurrent encoder.
pub(super) struct RnnEncoder {
    /// `src_emb.weight [V_src, E]`.
    embedding: Embedding,
    /// `encoder.weight_ih_l{k}[_reverse]` …
    rnn: Rnn,
    /// On the embeddings (the RNN applies its own between layers).
    dropout: Dropout,
}

/// What the encoder gives the decoder.
pub(super) struct Encoded {
    /// `h [B, S, Dk]`.
    pub(super) annotations: Var,
    /// Final states of every layer, bottom first, both directions concatenated: `[B, D·H]` each
    /// (the last is the top layer's).
    pub(super) finals: Vec<Var>,
}

impl RnnEncoder {
    /// Registers the recurrent layers (`encoder.*`) over an embedding already registered.
    pub(super) fn new(
        params: &mut Params,
        embedding: Embedding,
        kind: CellKind,
        config: RnnConfig,
        dropout: Dropout,
        rng: &mut Rng,
    ) -> Result<RnnEncoder, RnnError> {
        Ok(RnnEncoder {
            embedding,
            rnn: Rnn::new(params, "encoder", kind, config, rng)?,
            dropout,
        })
    }

    /// Size `Dk = D·H` of an annotation (and of a final state).
    pub(super) fn output_size(&self) -> usize {
        self.rnn.directions() * self.rnn.config().hidden_size
    }

    /// Encodes `src [B, S]` (padded, real lengths `src_len`); dropout draws from `rng` in training.
    pub(super) fn forward(
        &self,
        src: &[u32],
        src_len: &[usize],
        s: usize,
        mut rng: Option<&mut Rng>,
    ) -> Result<Encoded> {
        let b = src_len.len();
        let x = self.embedding.forward(src, &[b, s])?; // [B, S, E]
        let x = self.dropout.forward(&x, rng.as_deref_mut());
        let enc = self.rnn.forward(&x, src_len, None, rng)?; // output [B, S, D·H]
        let cfg = self.rnn.config();
        let dirs = self.rnn.directions();
        // h_n is [L·D, B, H]; layer l's directions are entries l·D .. (l+1)·D.
        let finals = (0..cfg.num_layers)
            .map(|l| {
                let dir: Vec<Var> = (0..dirs)
                    .map(|d| enc.state.h.select(0, l * dirs + d))
                    .collect();
                if dirs == 1 {
                    dir[0].clone()
                } else {
                    Var::concat(&dir, -1) // [B, D·H]
                }
            })
            .collect();
        Ok(Encoded {
            annotations: enc.output,
            finals,
        })
    }
}
