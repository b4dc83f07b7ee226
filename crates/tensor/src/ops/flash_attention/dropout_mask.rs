//! The dropout mask of flash attention: inverted dropout on the probabilities `P [B·H, T, S]`.
//!
//! `M[bh, i, j] = 1/(1−p)` with probability `1 − p`, else 0, drawn from the counter-based stream of
//! [`Var::dropout`](crate::var::Var::dropout) at the flat index `(bh·T + i)·S + j`. Addressing the
//! mask by position rather than drawing it in order is what lets the forward apply it block by block
//! and the backward regenerate it instead of storing `T × S` values, and it makes the fused and the
//! plain path drop the same weights.

use super::{AttentionDropout, Dims};
use crate::ops::dropout::mask_value;

/// The dropout mask of one call, addressed as the `[B·H, T, S]` probabilities it drops from.
#[derive(Clone, Copy, Debug)]
pub(super) struct DropMask {
    key: u64,
    p: f32,
    scale: f32,
    t: usize,
    s: usize,
}

impl DropMask {
    pub(super) fn new(dropout: Option<AttentionDropout>, dims: Dims) -> Option<DropMask> {
        let AttentionDropout { p, key } = dropout?;
        assert!(
            (0.0..1.0).contains(&p),
            "flash_attention: dropout p = {p} must be in [0, 1)"
        );
        (p > 0.0).then_some(DropMask {
            key,
            p,
            scale: 1.0 / (1.0 - p),
            t: dims.t,
            s: dims.s,
        })
    }

    /// Multiplies `row`, the probabilities of key `key` for the queries `q0, q0 + 1, …` of head
    /// `bh` (a row of a transposed block), by their mask values.
    #[inline(always)]
    pub(super) fn apply(&self, bh: usize, q0: usize, key: usize, row: &mut [f32]) {
        let first = ((bh * self.t + q0) * self.s + key) as u64;
        for (i, x) in row.iter_mut().enumerate() {
            *x *= mask_value(self.key, first + (i * self.s) as u64, self.p, self.scale);
        }
    }
}
