//! Multi-head attention (Vaswani et al. 2017, *Attention Is All You Need*, §3.2.2), equal to
//! `torch.nn.MultiheadAttention(d_model, heads, batch_first=True)`.
//!
//! ```text
//! Q = x_q W_Qᵀ + b_Q,  K = x_kv W_Kᵀ + b_K,  V = x_kv W_Vᵀ + b_V          [B, T|S, d]
//! head_i = softmax(Q_i K_iᵀ / √d_h + M) V_i      Q_i = columns i·d_h..(i+1)·d_h, d_h = d / H
//! output = concat(head_1, …, head_H) W_Oᵀ + b_O
//! ```
//!
//! Shapes: `query [B, T, d]`, `memory [B, S, d]` (the encoder output for cross-attention; none for
//! self-attention, where keys and values come from the query) → `(output [B, T, d], weights
//! [B, H, T, S])`, the weights per head (PyTorch's `average_attn_weights=False`; their mean over `H`
//! is its default). The [`Mask`] says which keys each query sees: the real key count of every batch
//! row (padding after it) and/or causality (query `i` sees keys `j ≤ i`).
//!
//! One [`forward`](MultiHeadAttention::forward) holds both ways of computing it, side by side, and
//! the caller's `want_weights` picks: with weights, the plain layer ops (scores, masked softmax,
//! weighted values: what pictures and explanations show, and the oracle the tests hold the other
//! way to); without, the engine's flash-attention kernel (`tensor::ops::flash_attention`: online
//! softmax, no `T × S` matrix kept). Both record gradients, both drop attention weights while
//! training — the kernel draws its mask inside from the same stream as the plain path's
//! `Var::dropout`, so one seed drops the same weights on both. The returned weights are the softmax,
//! taken before dropout.
//!
//! Parameters carry PyTorch's names so that a `torch.nn.Transformer` state dict loads unchanged:
//! `{prefix}.in_proj_weight [3d, d]` (rows `[W_Q; W_K; W_V]`), `{prefix}.in_proj_bias [3d]`,
//! `{prefix}.out_proj.weight [d, d]`, `{prefix}.out_proj.bias [d]`.
//!
//! Incremental decoding (one new position at a time, a cache of keys and values) is in
//! [`kv_cache`](crate::attention::kv_cache).

use crate::attention::mask::{causal_mask, combine, key_padding_broadcast, padding_mask};
use crate::attention::scaled_dot::{attention_weights, weighted_values};
use crate::attention::{shape_error, AttentionError};
use crate::nn::{Linear, Params};
use tensor::ops::flash_attention::{flash_attention, AttentionDropout};
use tensor::{Rng, Tensor, Var};

pub(crate) const LAYER: &str = "multi-head attention";

/// PyTorch-compatible multi-head attention.
pub struct MultiHeadAttention {
    /// `[3d, d]`, rows `[W_Q; W_K; W_V]`.
    pub in_proj_weight: Var,
    /// `[3d]`, `[b_Q; b_K; b_V]`.
    pub in_proj_bias: Var,
    /// `W_O [d, d]`, `b_O [d]`.
    pub out_proj: Linear,
    pub heads: usize,
    /// Dropout probability on the attention weights during training.
    pub dropout: f32,
}

/// Which keys each query sees; the default sees every key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mask<'a> {
    /// Batch row `b` sees keys `j < key_lengths[b]` (the rest is padding); `None`: every key.
    pub key_lengths: Option<&'a [usize]>,
    /// Query `i` sees keys `j ≤ i` (self-attention, `T = S`).
    pub causal: bool,
}

impl<'a> Mask<'a> {
    /// Query `i` sees keys `j ≤ i` (a decoder's self-attention).
    pub const CAUSAL: Mask<'static> = Mask {
        key_lengths: None,
        causal: true,
    };

    /// Batch row `b` sees keys `j < lengths[b]` (padding after them).
    pub fn padding(lengths: &'a [usize]) -> Mask<'a> {
        Mask {
            key_lengths: Some(lengths),
            causal: false,
        }
    }
}

/// Projected queries, keys and values split into heads: `q [B, H, T, d_h]`, `k, v [B, H, S, d_h]`.
struct Heads {
    q: Var,
    k: Var,
    v: Var,
}

impl MultiHeadAttention {
    /// Registers the parameters under `prefix`, initialised as PyTorch does: `in_proj_weight`
    /// Xavier-uniform, `out_proj.weight` `U(±1/√d)`, biases zero. Errors if `heads` does not divide
    /// `d_model`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        d_model: usize,
        heads: usize,
        dropout: f32,
        rng: &mut Rng,
    ) -> Result<MultiHeadAttention, AttentionError> {
        if heads == 0 || !d_model.is_multiple_of(heads) {
            return Err(AttentionError::Heads { d_model, heads });
        }
        let xavier = (6.0 / (4 * d_model) as f32).sqrt();
        let in_proj_weight = params.uniform(
            &format!("{prefix}.in_proj_weight"),
            &[3 * d_model, d_model],
            xavier,
            rng,
        );
        let in_proj_bias = params.add(
            &format!("{prefix}.in_proj_bias"),
            Tensor::zeros(&[3 * d_model]),
        );
        let out_proj = Linear {
            weight: params.uniform(
                &format!("{prefix}.out_proj.weight"),
                &[d_model, d_model],
                1.0 / (d_model as f32).sqrt(),
                rng,
            ),
            bias: Some(params.add(
                &format!("{prefix}.out_proj.bias"),
                Tensor::zeros(&[d_model]),
            )),
        };
        Ok(MultiHeadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            heads,
            dropout,
        })
    }

    /// The model width `d`.
    pub fn d_model(&self) -> usize {
        self.in_proj_weight.dim(1)
    }

    /// `query [B, T, d]` attends over `memory [B, S, d]` (`None`: over itself) with `mask` →
    /// `(output [B, T, d], weights [B, H, T, S])`; see the module doc. `want_weights`: return the
    /// weights (plain path) or not (flash kernel). `dropout_rng`: `Some` while training (dropout on
    /// the weights), `None` otherwise.
    pub fn forward(
        &self,
        query: &Var,
        memory: Option<&Var>,
        mask: Mask<'_>,
        want_weights: bool,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<(Var, Option<Var>), AttentionError> {
        let heads = self.project_heads(query, memory, want_weights)?;
        let (b, t, s) = (heads.q.dim(0), heads.q.dim(2), heads.k.dim(2));
        check_mask(mask, b, t, s)?;
        if want_weights {
            let (output, weights) = self.plain(&heads, mask, dropout_rng)?;
            Ok((output, Some(weights)))
        } else {
            Ok((self.flash(&heads, mask, dropout_rng), None))
        }
    }

    /// The plain path: `weights = softmax(Q Kᵀ / √d_h + M)`, `heads = dropout(weights) V`.
    fn plain(
        &self,
        heads: &Heads,
        mask: Mask<'_>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<(Var, Var), AttentionError> {
        let (b, t, s) = (heads.q.dim(0), heads.q.dim(2), heads.k.dim(2));
        let padding = match mask.key_lengths {
            Some(lengths) => Some(key_padding_broadcast(&padding_mask(lengths, s)?, 4)?), // [B, 1, 1, S]
            None => None,
        };
        let causal = mask.causal.then(|| causal_mask(t)); // [T, S]
        let m = match (padding, causal) {
            (Some(p), Some(c)) => Some(combine(&p, &c)?),
            (p, c) => p.or(c),
        };
        let weights = attention_weights(&heads.q, &heads.k, m.as_ref())?; // [B, H, T, S]
        let attended = match dropout_rng {
            Some(rng) if self.dropout > 0.0 => weights.dropout(self.dropout, rng),
            _ => weights.clone(),
        };
        let context = weighted_values(&attended, &heads.v)?; // [B, H, T, d_h]
        Ok((self.merge(&context, b, t), weights))
    }

    /// The fused path: the same function through the flash-attention kernel, without weights.
    fn flash(&self, heads: &Heads, mask: Mask<'_>, dropout_rng: Option<&mut Rng>) -> Var {
        let (b, t, dh) = (heads.q.dim(0), heads.q.dim(2), heads.q.dim(3));
        let scale = 1.0 / (dh as f32).sqrt();
        // One key per call, drawn where the plain path's `Var::dropout` draws it.
        let dropout = match dropout_rng {
            Some(rng) if self.dropout > 0.0 => Some(AttentionDropout {
                p: self.dropout,
                key: rng.next_seed(),
            }),
            _ => None,
        };
        let (q, k, v) = (&heads.q, &heads.k, &heads.v);
        let context = flash_attention(q, k, v, mask.causal, mask.key_lengths, scale, dropout); // [B, H, T, d_h]
        self.merge(&context, b, t)
    }

    /// `[B, H, T, d_h]` → heads side by side `[B, T, d]` → output projection `[B, T, d]`.
    fn merge(&self, context: &Var, b: usize, t: usize) -> Var {
        let merged = context
            .permute(&[0, 2, 1, 3])
            .reshape(&[b, t, self.d_model()]);
        self.out_proj.forward(&merged)
    }

    /// Queries, keys and values split into heads. Self-attention on the flash path projects once
    /// through the whole `[3d, d]` matrix; otherwise the queries and the keys and values are
    /// projected apart (their rows of the matrix), as PyTorch does for distinct inputs.
    fn project_heads(
        &self,
        query: &Var,
        memory: Option<&Var>,
        want_weights: bool,
    ) -> Result<Heads, AttentionError> {
        let d = self.d_model();
        if memory.is_none() && !want_weights {
            let qkv = self.project(query, 0, 3, "input")?; // [B, T, 3d]
            return Ok(Heads {
                k: self.split_heads(&qkv.narrow(2, d, d)),
                v: self.split_heads(&qkv.narrow(2, 2 * d, d)),
                q: self.split_heads(&qkv.narrow(2, 0, d)),
            });
        }
        let kv = self.project(memory.unwrap_or(query), 1, 2, "keys/values")?; // [B, S, 2d]
        let q = self.project(query, 0, 1, "query")?; // [B, T, d]
        if q.dim(0) != kv.dim(0) {
            return Err(shape_error(
                LAYER,
                "memory",
                &kv.shape(),
                format!("[{}, S, {}] (the batch of the query)", q.dim(0), 2 * d),
            ));
        }
        Ok(Heads {
            k: self.split_heads(&kv.narrow(2, 0, d)), // [B, H, S, d_h]
            v: self.split_heads(&kv.narrow(2, d, d)), // [B, H, S, d_h]
            q: self.split_heads(&q),                  // [B, H, T, d_h]
        })
    }

    /// `d`, checking that the parameters fit `heads`.
    pub(crate) fn checked_d_model(&self) -> Result<usize, AttentionError> {
        let d = self.d_model();
        let ws = self.in_proj_weight.shape();
        if self.heads == 0 || !d.is_multiple_of(self.heads) || ws != [3 * d, d] {
            return Err(AttentionError::Heads {
                d_model: d,
                heads: self.heads,
            });
        }
        Ok(d)
    }

    /// `x [B, L, d]` through rows `part·d..(part+n)·d` of the input projection → `[B, L, n·d]`.
    pub(crate) fn project(
        &self,
        x: &Var,
        part: usize,
        n: usize,
        what: &'static str,
    ) -> Result<Var, AttentionError> {
        let d = self.checked_d_model()?;
        let xs = x.shape();
        if xs.len() != 3 || xs[2] != d {
            return Err(shape_error(LAYER, what, &xs, format!("[B, L, {d}]")));
        }
        if part == 0 && n == 3 {
            // The whole projection: no slice of the weights to copy.
            return Ok(x.linear(&self.in_proj_weight, Some(&self.in_proj_bias)));
        }
        let w = self.in_proj_weight.narrow(0, part * d, n * d);
        let b = self.in_proj_bias.narrow(0, part * d, n * d);
        Ok(x.linear(&w, Some(&b)))
    }

    /// `[B, L, d] → [B, H, L, d_h]`.
    fn split_heads(&self, x: &Var) -> Var {
        let s = x.shape();
        let dh = s[2] / self.heads;
        x.reshape(&[s[0], s[1], self.heads, dh])
            .permute(&[0, 2, 1, 3])
    }
}

/// The mask fits `B` batch rows, `T` queries and `S` keys: one key length ≤ `S` per batch row;
/// causality only where queries and keys are one sequence (`T = S`).
fn check_mask(mask: Mask<'_>, b: usize, t: usize, s: usize) -> Result<(), AttentionError> {
    if let Some(lengths) = mask.key_lengths {
        if lengths.len() != b || lengths.iter().any(|&l| l > s) {
            return Err(shape_error(
                LAYER,
                "key lengths",
                &[lengths.len()],
                format!("one length ≤ {s} per batch row (a key padding mask [{b}, {s}])"),
            ));
        }
    }
    if mask.causal && t != s {
        return Err(shape_error(
            LAYER,
            "causal mask",
            &[t, s],
            "T = S: queries and keys of one sequence",
        ));
    }
    Ok(())
}
