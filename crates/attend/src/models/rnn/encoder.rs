//! The encoder of the RNN encoder-decoder: source embeddings read by a (bi)directional GRU/LSTM.
//!
//! ```text
//! x     = dropout(src_emb(src))                          [B, S, E]
//! h_j   = [fwd_j ; bwd_j]   stacked (bi)RNN over x        [B, S, Dk = D·H]   the annotations
//! last  = [fwd_S ; bwd_1]   top layer's final states     [B, D·H]           torch's h_n[-D..]
//! ```
//!
//! The annotations are what the decoder attends to; `last` is what the [bridge](super::bridge)
//! turns into the decoder's initial state. Padded positions (beyond `src_len`) are zero in `h`
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
    /// Final states of the top layer, both directions concatenated: `[B, D·H]`.
    pub(super) last: Var,
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

    /// Size `Dk = D·H` of an annotation (and of `last`).
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
        // h_n is [L·D, B, H]; the top layer's directions are its last D entries.
        let top = (cfg.num_layers - 1) * dirs;
        let finals: Vec<Var> = (0..dirs).map(|d| enc.state.h.select(0, top + d)).collect();
        let last = if dirs == 1 {
            finals[0].clone()
        } else {
            Var::concat(&finals, -1) // [B, D·H]
        };
        Ok(Encoded {
            annotations: enc.output,
            last,
        })
    }
}
