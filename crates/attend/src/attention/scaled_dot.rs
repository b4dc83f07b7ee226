//! Scaled dot-product attention (Vaswani et al. 2017, *Attention Is All You Need*, §3.2.1), many
//! queries at once.
//!
//! ```text
//! weights = softmax(Q Kᵀ / √d_k + M)      M = −∞ where the mask is 1
//! context = weights V
//! ```
//!
//! Shapes: `q [B, (H,) T, d_k]`, `k [B, (H,) S, d_k]`, `v [B, (H,) S, d_v]`, mask broadcastable to
//! `[B, (H,) T, S]` → `context [B, (H,) T, d_v]`, `weights [B, (H,) T, S]`. Any number of leading
//! (batch, head) axes works, as long as q, k and v share them.
//!
//! Self-attention takes Q, K and V from one sequence, cross-attention Q from the decoder and K, V from
//! the encoder; [`ScaledDotProductAttention`] is the single-head layer with separate projections
//! `Q = x_q W_Qᵀ`, `K = x_kv W_Kᵀ`, `V = x_kv W_Vᵀ` (no biases, as in the paper).
//!
//! This is the plain path: it materialises the `[T, S]` weights (for the pictures) and serves as the
//! oracle of any fused kernel.

use crate::attention::{mask, shape_error, AttentionError};
use crate::nn::{Linear, Params};
use tensor::{Rng, Tensor, Var};

const LAYER: &str = "scaled dot-product attention";

/// `softmax(Q Kᵀ / √d_k)` with masked scores at −∞: `q [.., T, d]`, `k [.., S, d]` → `[.., T, S]`.
pub fn attention_weights(q: &Var, k: &Var, mask: Option<&Tensor>) -> Result<Var, AttentionError> {
    let (qs, ks) = (q.shape(), k.shape());
    let r = qs.len();
    if r < 2 {
        return Err(shape_error(LAYER, "q", &qs, "[.., T, d_k]"));
    }
    if ks.len() != r || ks[..r - 2] != qs[..r - 2] || ks[r - 1] != qs[r - 1] {
        return Err(shape_error(
            LAYER,
            "k",
            &ks,
            format!(
                "{:?} + [S, {}] (q's leading axes and d_k)",
                &qs[..r - 2],
                qs[r - 1]
            ),
        ));
    }
    let scale = 1.0 / (qs[r - 1] as f32).sqrt();
    let scores = q.matmul_t(k, false, true).scale(scale); // [.., T, S]
    mask::masked_softmax(&scores, mask)
}

/// `(context, weights)` of `softmax(Q Kᵀ / √d_k + M) V`; see the module doc for shapes.
pub fn scaled_dot_product(
    q: &Var,
    k: &Var,
    v: &Var,
    mask: Option<&Tensor>,
) -> Result<(Var, Var), AttentionError> {
    let weights = attention_weights(q, k, mask)?;
    let context = weighted_values(&weights, v)?;
    Ok((context, weights))
}

/// `weights [.., T, S] · v [.., S, d_v] → [.., T, d_v]`, checking that `v` fits.
pub fn weighted_values(weights: &Var, v: &Var) -> Result<Var, AttentionError> {
    let (ws, vs) = (weights.shape(), v.shape());
    let r = ws.len();
    if r < 2 {
        return Err(shape_error(LAYER, "weights", &ws, "[.., T, S]"));
    }
    if vs.len() != r || vs[..r - 2] != ws[..r - 2] || vs[r - 2] != ws[r - 1] {
        return Err(shape_error(
            LAYER,
            "v",
            &vs,
            format!(
                "{:?} + [{}, d_v] (k's leading axes and S)",
                &ws[..r - 2],
                ws[r - 1]
            ),
        ));
    }
    Ok(weights.matmul(v))
}

/// Single-head attention with separate Q, K, V projections (no biases):
/// `{prefix}.w_q.weight [d_k, Dq]`, `{prefix}.w_k.weight [d_k, Dkv]`, `{prefix}.w_v.weight [d_v, Dkv]`.
pub struct ScaledDotProductAttention {
    pub w_q: Linear,
    pub w_k: Linear,
    pub w_v: Linear,
}

impl ScaledDotProductAttention {
    /// Registers the three projections under `prefix`, initialised as PyTorch's `Linear`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        query_dim: usize,
        key_value_dim: usize,
        d_k: usize,
        d_v: usize,
        rng: &mut Rng,
    ) -> ScaledDotProductAttention {
        let mut lin = |name: &str, input, output| {
            Linear::new(
                params,
                &format!("{prefix}.{name}"),
                input,
                output,
                false,
                rng,
            )
        };
        ScaledDotProductAttention {
            w_q: lin("w_q", query_dim, d_k),
            w_k: lin("w_k", key_value_dim, d_k),
            w_v: lin("w_v", key_value_dim, d_v),
        }
    }

    /// `x_q [B, T, Dq]` attends over `x_kv [B, S, Dkv]` (pass the same var for self-attention) with a
    /// mask broadcastable to `[B, T, S]` → `(context [B, T, d_v], weights [B, T, S])`.
    pub fn forward(
        &self,
        x_q: &Var,
        x_kv: &Var,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Var), AttentionError> {
        let (qs, kvs) = (x_q.shape(), x_kv.shape());
        let (dq, dkv) = (self.w_q.input_size(), self.w_k.input_size());
        if qs.len() != 3 || qs[2] != dq {
            return Err(shape_error(LAYER, "queries", &qs, format!("[B, T, {dq}]")));
        }
        if kvs.len() != 3 || kvs[0] != qs[0] || kvs[2] != dkv {
            return Err(shape_error(
                LAYER,
                "keys/values",
                &kvs,
                format!("[{}, S, {dkv}]", qs[0]),
            ));
        }
        let q = self.w_q.forward(x_q); // [B, T, d_k]
        let k = self.w_k.forward(x_kv); // [B, S, d_k]
        let v = self.w_v.forward(x_kv); // [B, S, d_v]
        scaled_dot_product(&q, &k, &v, mask)
    }
}
