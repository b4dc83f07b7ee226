//! Attention, as the seed notes teach it: one file per variant, each returning `(context, weights)`
//! so that every caller can show the weights.
//!
//! | variant | score(query s, key h) | file |
//! |---|---|---|
//! | additive (Bahdanau) | `vᵀ tanh(W_q s + W_k h + b_k)` | [`additive`] |
//! | multiplicative dot / general (Luong) | `sᵀh`, `(W s)ᵀh` | [`multiplicative`] |
//! | scaled dot-product, separate Q/K/V | `q·k / √d_k` | [`scaled_dot`] |
//! | multi-head | h heads of scaled dot-product, concatenated, projected | [`multi_head`] |
//! | self-attention over an image's CNN grid (SAGAN) | `q_i·k_j / √C`, 1×1-conv projections | [`image_self`] |
//! | masks | padding mask, causal ("no look-ahead") mask | [`mask`] |
//! | positions | sinusoidal, learned | [`position`] |
//!
//! Mask convention everywhere: an f32 tensor where **1.0 means "masked"** (a padded key, a future
//! position); masked scores become −∞ before the softmax, so their weights are exactly 0, and a row in
//! which every key is masked gets all-zero weights (and a zero context) instead of NaN.
//!
//! The RNN decoders and the captioner use the one-query-per-step layers through [`StepAttention`]
//! (additive attention with its fused step); the Transformer uses
//! [`multi_head::MultiHeadAttention`]. Shapes and masks are checked on entry and a mismatch is an
//! [`AttentionError`], never a panic.

pub mod additive;
pub mod image_self;
pub mod kv_cache;
pub mod mask;
pub mod multi_head;
pub mod multiplicative;
pub mod position;
pub mod scaled_dot;

pub use additive::AdditiveAttention;
pub use image_self::ImageSelfAttention;
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

/// One decoder step's attention as the decoders use it: the context on the tape, the weights and
/// the raw scores as plain values (what the search returns and `attend explain` prints).
pub struct Attended {
    /// `c [B, Dv]`, differentiable.
    pub context: Var,
    /// `a [B, S]`: each row sums to 1, or is all zeros where every key is masked.
    pub weights: Tensor,
    /// `e [B, S]`, before masking.
    pub scores: Tensor,
}

impl Attended {
    /// The plain path's `(context, weights, scores)`, weights and scores taken off the tape.
    pub fn from_plain((context, weights, scores): (Var, Var, Var)) -> Attended {
        Attended {
            context,
            weights: weights.to_tensor(),
            scores: scores.to_tensor(),
        }
    }
}

/// Attention for one decoder step over a fixed source: the interface of the RNN decoders and the
/// captioner to the additive and multiplicative layers. A layer supplies its keys and its score
/// function; the step is the same for all of them:
///
/// ```text
/// e = score(s, keys)          [B, S]    raw scores
/// a = softmax(e masked)       [B, S]    weights (masked keys get exactly 0)
/// c = Σ_j a_j values_j        [B, Dv]   context
/// ```
///
/// Per batch call [`project_keys`](StepAttention::project_keys) once on the annotations
/// `h [B, S, Dk]`; per decoder step call [`step`](StepAttention::step) with the query `s [B, Dq]`.
/// `step` is the layer's fast path: a layer with a fused kernel (additive attention) overrides it.
/// [`step_plain`](StepAttention::step_plain) computes the same function one engine op per line of
/// the formula, every output on the tape: the oracle that `step` is tested against, and the path
/// for a loss that differentiates the weights.
pub trait StepAttention {
    /// The score function's name: `additive`, `dot` or `general`.
    fn name(&self) -> &'static str;

    /// The decoder state as the score reads it (`W_q s`, `W s` or `s`), `[B, Dq] → [B, Q]`: with
    /// the keys of [`project_keys`](StepAttention::project_keys) and
    /// [`score_vector`](StepAttention::score_vector), the parts the explorer fills the formula with.
    fn scored_query(&self, query: &Var) -> Var {
        query.clone()
    }

    /// The vector `v [Q]` of additive attention's `vᵀ tanh(…)`; `None` where the score is a dot
    /// product.
    fn score_vector(&self) -> Option<Tensor> {
        None
    }

    /// Keys as the layer scores them, computed once per batch: `h [B, S, Dk] → keys [B, S, ·]`.
    fn project_keys(&self, h: &Var) -> Result<Var, AttentionError>;

    /// Raw scores `e [B, S]` (no mask applied) of `query [B, Dq]` against the projected keys.
    fn scores(&self, query: &Var, keys: &Var) -> Result<Var, AttentionError>;

    /// One step. `query [B, Dq]`, `keys` from [`project_keys`](StepAttention::project_keys),
    /// `values [B, S, Dv]` (the annotations h), `mask [B, S]` (1 = pad) → context `[B, Dv]` on
    /// the tape, weights and raw scores `[B, S]` as values. Without a fused kernel, the plain path.
    fn step(
        &self,
        query: &Var,
        keys: &Var,
        values: &Var,
        mask: Option<&Tensor>,
    ) -> Result<Attended, AttentionError> {
        self.step_plain(query, keys, values, mask)
            .map(Attended::from_plain)
    }

    /// The step through the plain layer ops, every output differentiable:
    /// `(context [B, Dv], weights [B, S], scores [B, S])`. The mask may be any shape that
    /// broadcasts to `[B, S]`.
    fn step_plain(
        &self,
        query: &Var,
        keys: &Var,
        values: &Var,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Var, Var), AttentionError> {
        let e = self.scores(query, keys)?; // [B, S]
        let a = mask::masked_softmax(&e, mask)?; // [B, S]
        let context = weighted_sum(&a, values)?; // [B, Dv]
        Ok((context, a, e))
    }
}

/// Checks that `values` are `[b, s, Dv]` (the batch and length of the keys) and returns `Dv`.
pub(crate) fn check_values(
    layer: &'static str,
    values: &Var,
    b: usize,
    s: usize,
) -> Result<usize, AttentionError> {
    let vs = values.shape();
    if vs.len() != 3 || vs[0] != b || vs[1] != s {
        let expected = format!("[{b}, {s}, Dv] (batch and length of the keys)");
        return Err(shape_error(layer, "values", &vs, expected));
    }
    Ok(vs[2])
}

/// The context `c = Σ_j a_j values_j`: `weights [B, S]`, `values [B, S, Dv]` → `[B, Dv]`.
pub(crate) fn weighted_sum(weights: &Var, values: &Var) -> Result<Var, AttentionError> {
    let (b, s) = (weights.dim(0), weights.dim(1));
    let dv = check_values("attention step", values, b, s)?;
    Ok(weights
        .reshape(&[b, 1, s])
        .matmul(values) // [B, 1, Dv]
        .reshape(&[b, dv]))
}
