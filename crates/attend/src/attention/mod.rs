//! Attention, as the seed notes teach it: one file per variant, each returning `(context, weights)`
//! so that every caller can show the weights.
//!
//! | variant | score(query s, key h) | file |
//! |---|---|---|
//! | additive (Bahdanau) | `vᵀ tanh(W_q s + W_k h + b_k)` | [`additive`] |
//! | multiplicative dot / general (Luong) | `sᵀh`, `(W s)ᵀh` | [`multiplicative`] |
//! | scaled dot-product, separate Q/K/V | `q·k / √d_k` | [`scaled_dot`] |
//! | multi-head | h heads of scaled dot-product, concatenated, projected | [`multi_head`] |
//! | masks | padding mask, causal ("no look-ahead") mask | [`mask`] |
//! | positions | sinusoidal, learned | [`position`] |
//!
//! Mask convention everywhere: an f32 tensor where **1.0 means "masked"** (a padded key, a future
//! position); masked scores become −∞ before the softmax, so their weights are exactly 0, and a row in
//! which every key is masked gets all-zero weights (and a zero context) instead of NaN.
//!
//! The RNN decoders use the one-query-per-step layers through [`StepAttention`]; the Transformer uses
//! [`multi_head::MultiHeadAttention`]. Shapes and masks are checked on entry and a mismatch is an
//! [`AttentionError`], never a panic.

pub mod additive;
pub mod kv_cache;
pub mod mask;
pub mod multi_head;
pub mod multiplicative;
pub mod position;
pub mod scaled_dot;

pub use additive::AdditiveAttention;
pub use kv_cache::{KvCache, StepMemory};
pub use multi_head::{Mask, MultiHeadAttention};
pub use multiplicative::{MultiplicativeAttention, Score};
pub use position::{LearnedPositions, Positions, SinusoidalPositions};
pub use scaled_dot::ScaledDotProductAttention;

use tensor::{Tensor, Var};

/// What can go wrong when calling an attention layer: inputs whose shapes do not fit the layer or each
/// other, or a sequence longer than the positions a model was built for.
#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    #[error("{layer}: {what} has shape {found:?}, expected {expected}")]
    Shape {
        layer: &'static str,
        what: &'static str,
        found: Vec<usize>,
        expected: String,
    },
    #[error("multi-head attention: d_model = {d_model} is not divisible by heads = {heads}; choose a head count that divides d_model")]
    Heads { d_model: usize, heads: usize },
    #[error("padding mask: length {length} exceeds the padded length {max_len}")]
    Length { length: usize, max_len: usize },
    #[error("positions: a sequence reaching position {needed} does not fit max_len = {max_len}; raise max_len in the model config (or shorten the input)")]
    TooLong { needed: usize, max_len: usize },
    #[error("{layer}: row {row} is out of range for a batch of {batch}")]
    Row {
        layer: &'static str,
        row: usize,
        batch: usize,
    },
}

/// Shorthand for a shape error.
pub(crate) fn shape_error(
    layer: &'static str,
    what: &'static str,
    found: &[usize],
    expected: impl Into<String>,
) -> AttentionError {
    AttentionError::Shape {
        layer,
        what,
        found: found.to_vec(),
        expected: expected.into(),
    }
}

/// Attention for one decoder step over a fixed source: the RNN decoders' interface to the additive
/// and multiplicative layers.
///
/// Per batch call [`project_keys`](StepAttention::project_keys) once on the annotations
/// `h [B, S, Dk]`; per decoder step call [`step`](StepAttention::step) with the query `s [B, Dq]`.
pub trait StepAttention {
    /// Keys as the layer scores them, computed once per batch: `h [B, S, Dk] → keys [B, S, ·]`.
    fn project_keys(&self, h: &Var) -> Result<Var, AttentionError>;

    /// Raw (unmasked, pre-softmax) scores `e [B, S]` of query `s [B, Dq]` against projected keys.
    fn scores(&self, query: &Var, keys: &Var) -> Result<Var, AttentionError>;

    /// One step: `a = softmax(e masked)`, `context = Σ_j a_j values_j`.
    /// `query [B, Dq]`, `keys` from [`project_keys`](StepAttention::project_keys), `values [B, S, Dv]`
    /// (the annotations h), `mask [B, S]` (1 = pad) → `(context [B, Dv], weights [B, S])`.
    fn step(
        &self,
        query: &Var,
        keys: &Var,
        values: &Var,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Var), AttentionError> {
        let (context, weights, _) = self.step_with_scores(query, keys, values, mask)?;
        Ok((context, weights))
    }

    /// As [`step`](StepAttention::step), also returning the raw scores `e [B, S]` (what
    /// `attend explain` shows before the softmax): `(context, weights, scores)`.
    fn step_with_scores(
        &self,
        query: &Var,
        keys: &Var,
        values: &Var,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Var, Var), AttentionError> {
        let e = self.scores(query, keys)?; // [B, S]
        let (b, s) = (e.dim(0), e.dim(1));
        let vs = values.shape();
        if vs.len() != 3 || vs[0] != b || vs[1] != s {
            return Err(shape_error(
                "attention step",
                "values",
                &vs,
                format!("[{b}, {s}, Dv] (batch and length of the keys)"),
            ));
        }
        let weights = mask::masked_softmax(&e, mask)?; // [B, S]
        let context = weights
            .reshape(&[b, 1, s])
            .matmul(values) // [B, 1, Dv]
            .reshape(&[b, vs[2]]);
        Ok((context, weights, e))
    }
}
