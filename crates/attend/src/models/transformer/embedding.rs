//! The Transformer's input layer (Vaswani et al. 2017, §3.4–3.5): token embeddings scaled by √d,
//! plus positional encodings, then dropout.
//!
//! ```text
//! x = dropout(emb[ids] · √d + pe[start..start + L])       ids [B, L] → x [B, L, d]
//! ```
//!
//! `start` is 0 for a whole sequence and `t` for the `t`-th decoding step. The √d scale is optional
//! (`scale_embeddings`); source and target may share one table (`shared_embeddings`). A sequence
//! reaching past the positional table (`max_positions`) is an error naming both lengths
//! ([`TransformerError::TooLong`]), for positions of either kind (see
//! [`position`](crate::attention::position)).

use super::{PositionKind, TransformerError, TransformerSpec};
use crate::attention::{LearnedPositions, Positions, SinusoidalPositions};
use crate::nn::{Dropout, Embedding, Params};
use tensor::{Rng, Var};

/// Source and target token tables, positions, scale and dropout.
pub struct InputEmbedding {
    /// `src_emb.weight [Vs, d]`.
    pub src: Embedding,
    /// `tgt_emb.weight [Vt, d]`, or the source table where shared.
    pub tgt: Embedding,
    pub positions: Positions,
    /// `√d`, or `None` without scaling.
    scale: Option<f32>,
    dropout: Dropout,
}

impl InputEmbedding {
    /// Registers `src_emb.weight`, `tgt_emb.weight` (unless shared) ~ `N(0, 1/d)` and, for learned
    /// positions, `pos_emb.weight [max_positions, d]`.
    pub fn new(
        params: &mut Params,
        spec: &TransformerSpec,
        rng: &mut Rng,
    ) -> Result<InputEmbedding, TransformerError> {
        let d = spec.d_model;
        let std = (d as f32).powf(-0.5);
        let src = params.normal("src_emb.weight", &[spec.src_vocab, d], std, rng);
        let tgt = if spec.shared_embeddings {
            src.clone()
        } else {
            params.normal("tgt_emb.weight", &[spec.tgt_vocab, d], std, rng)
        };
        let positions = match spec.positions {
            PositionKind::Sinusoidal => {
                Positions::Sinusoidal(SinusoidalPositions::new(spec.max_positions, d))
            }
            PositionKind::SinusoidalHalves => {
                Positions::Sinusoidal(SinusoidalPositions::halves(spec.max_positions, d))
            }
            PositionKind::Learned => Positions::Learned(LearnedPositions::new(
                params,
                "pos_emb",
                spec.max_positions,
                d,
                rng,
            )),
        };
        Ok(InputEmbedding {
            src: Embedding::from_weight(src),
            tgt: Embedding::from_weight(tgt),
            positions,
            scale: spec.scale_embeddings.then(|| (d as f32).sqrt()),
            dropout: Dropout::new(spec.dropout)?,
        })
    }

    /// `dropout(table[ids] · √d + pe[start..start + L])`: `ids [B, L]` → `[B, L, d]`; `what` names
    /// the ids in errors. `rng`: `Some` while training.
    pub fn forward(
        &self,
        table: &Embedding,
        what: &'static str,
        ids: &[u32],
        (b, len): (usize, usize),
        start: usize,
        rng: Option<&mut Rng>,
    ) -> Result<Var, TransformerError> {
        self.check_fits(what, start + len)?;
        let pe = self.positions.encoding(start, len)?; // [L, d]
        let mut x = table
            .forward(ids, &[b, len])
            .map_err(|source| TransformerError::Ids { what, source })?; // [B, L, d]
        if let Some(scale) = self.scale {
            x = x.scale(scale);
        }
        Ok(self.dropout.forward(&x.add(&pe), rng))
    }

    /// A sequence of `needed` positions (`0..needed`) fits the positional table, or an error naming
    /// both lengths.
    pub fn check_fits(&self, what: &'static str, needed: usize) -> Result<(), TransformerError> {
        let max_positions = self.positions.max_len();
        if needed > max_positions {
            return Err(TransformerError::TooLong {
                what,
                needed,
                max_positions,
            });
        }
        Ok(())
    }
}
