//! Multi-head attention (Vaswani et al. 2017, *Attention Is All You Need*, §3.2.2), equal to
//! `torch.nn.MultiheadAttention(d_model, heads, batch_first=True)`.
//!
//! ```text
//! Q = x_q W_Qᵀ + b_Q,  K = x_kv W_Kᵀ + b_K,  V = x_kv W_Vᵀ + b_V          [B, T|S, d]
//! head_i = softmax(Q_i K_iᵀ / √d_h + M) V_i      Q_i = columns i·d_h..(i+1)·d_h, d_h = d / H
//! output = concat(head_1, …, head_H) W_Oᵀ + b_O
//! ```
//!
//! Shapes: `query [B, T, d]`, `key_value [B, S, d]` (the same sequence for self-attention, the encoder
//! memory for cross-attention), `key_padding [B, S]` and `attn_mask [T, S]` (1 = masked, see
//! [`mask`](crate::attention::mask)) → `(output [B, T, d], weights [B, H, T, S])`, the weights per
//! head (PyTorch's `average_attn_weights=False`; their mean over `H` is its default).
//!
//! Parameters carry PyTorch's names so that a `torch.nn.Transformer` state dict loads unchanged:
//! `{prefix}.in_proj_weight [3d, d]` (rows `[W_Q; W_K; W_V]`), `{prefix}.in_proj_bias [3d]`,
//! `{prefix}.out_proj.weight [d, d]`, `{prefix}.out_proj.bias [d]`.
//!
//! Incremental decoding: [`forward_step`](MultiHeadAttention::forward_step) projects only the new
//! positions and appends their keys and values to a [`KvCache`] (`[B, capacity, d]`, written in
//! place), so that a decoder step costs O(t), not O(t²);
//! [`project_step_memory`](MultiHeadAttention::project_step_memory) projects the encoder memory
//! once for cross-attention ([`StepMemory`]) and [`attend_step`](MultiHeadAttention::attend_step)
//! attends over it. Both run the engine's step kernel (`tensor::ops::step_attention`), which reads
//! keys and values where they lie, and both reorder their batch rows for beam search.
//!
//! Dropout on the attention weights (training only) is applied after the returned weights are taken,
//! so the weights are always the softmax.
//!
//! Fused path: where no weights are wanted, [`self_attend_fused`](MultiHeadAttention::self_attend_fused)
//! and [`attend_fused`](MultiHeadAttention::attend_fused) run the engine's flash-attention kernel
//! (`tensor::ops::flash_attention`: no `T × S` matrix is kept; masks are causal and/or key lengths;
//! dropout on the probabilities drawn inside the kernel from the same stream as the plain path's,
//! so that one seed drops the same weights on both). The plain path above is their oracle (tested
//! equal, forward and backward, with and without dropout).

use crate::attention::mask::{combine, key_padding_broadcast};
use crate::attention::scaled_dot::{attention_weights, weighted_values};
use crate::attention::{shape_error, AttentionError};
use crate::nn::{Linear, Params};
use tensor::kernels::transpose::transpose;
use tensor::ops::flash_attention::{flash_attention, AttentionDropout};
use tensor::ops::step_attention::{step_attention, Keys, Rows, StepMask, KEY_BLOCK};
use tensor::{Rng, Tensor, Var};

const LAYER: &str = "multi-head attention";

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

/// Projected keys and values of a sequence, split into heads: `k, v [B, H, S, d_h]`.
#[derive(Clone)]
pub struct KvMemory {
    pub k: Var,
    pub v: Var,
}

impl KvMemory {
    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.k.dim(0)
    }

    /// Number of positions `S`.
    pub fn len(&self) -> usize {
        self.k.dim(2)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The keys and values of the positions decoded so far, for one self-attention layer: `[B, cap, d]`
/// buffers (the heads side by side in `d`) of which the first `t` positions of every batch row are
/// filled, so that a step writes its keys and values in place (re-concatenating `[B, H, t, d_h]`
/// tensors copied the whole cache at every step) and [`step_attention`] reads each batch row's keys
/// contiguously. The capacity doubles when full (amortised O(1) per position).
#[derive(Clone, Default)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    /// Batch rows and width; `(0, 0)` until the first append.
    batch: usize,
    d: usize,
    len: usize,
    /// Positions each batch row has room for.
    cap: usize,
}

impl KvCache {
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Number of cached positions `t`.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps batch rows `rows` (repeats allowed; beam search expands and reorders hypotheses so).
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), AttentionError> {
        if self.is_empty() {
            return Ok(());
        }
        check_rows("KvCache::select_rows", rows, self.batch)?;
        let block = self.cap * self.d;
        let pick = |x: &[f32]| -> Vec<f32> {
            let mut out = Vec::with_capacity(rows.len() * block);
            for &r in rows {
                out.extend_from_slice(&x[r as usize * block..(r as usize + 1) * block]);
            }
            out
        };
        self.k = pick(&self.k);
        self.v = pick(&self.v);
        self.batch = rows.len();
        Ok(())
    }

    /// Appends the keys and values of `n` new positions from the projection `qkv [B, n, 3d]`
    /// (rows `[q | k | v]`). The cache is unchanged on error.
    fn append(
        &mut self,
        qkv: &[f32],
        batch: usize,
        n: usize,
        d: usize,
    ) -> Result<(), AttentionError> {
        if !self.is_empty() && (self.batch, self.d) != (batch, d) {
            return Err(shape_error(
                LAYER,
                "step input (batch, width)",
                &[batch, d],
                format!(
                    "[{}, {}], the cache's (call select_rows when the batch changes)",
                    self.batch, self.d
                ),
            ));
        }
        (self.batch, self.d) = (batch, d);
        if self.len + n > self.cap {
            self.grow((self.len + n).max(2 * self.cap).max(16));
        }
        for b in 0..batch {
            for i in 0..n {
                let row = &qkv[(b * n + i) * 3 * d..(b * n + i + 1) * 3 * d];
                let at = (b * self.cap + self.len + i) * d;
                self.k[at..at + d].copy_from_slice(&row[d..2 * d]);
                self.v[at..at + d].copy_from_slice(&row[2 * d..]);
            }
        }
        self.len += n;
        Ok(())
    }

    /// Re-lays the buffers out with room for `cap` positions per batch row.
    fn grow(&mut self, cap: usize) {
        let (old, d, len) = (self.cap, self.d, self.len);
        let relay = |x: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0; self.batch * cap * d];
            for b in 0..self.batch {
                out[b * cap * d..(b * cap + len) * d]
                    .copy_from_slice(&x[b * old * d..(b * old + len) * d]);
            }
            out
        };
        self.k = relay(&self.k);
        self.v = relay(&self.v);
        self.cap = cap;
    }

    /// The cached keys and values as [`Rows`] (position `j` of batch row `b` at `(b·cap + j)·d`).
    fn rows(&self) -> (Keys<'_>, Rows<'_>) {
        let rows = |data| Rows {
            data,
            offset: 0,
            batch_stride: self.cap * self.d,
            pos_stride: self.d,
            len: self.len,
        };
        (Keys::Rows(rows(&self.k)), rows(&self.v))
    }
}

/// The encoder memory projected once per decode for one cross-attention layer: the keys transposed
/// per head, `kt [B, H, d_h, S']` with `S` padded to `S'`, a multiple of the step kernel's
/// `KEY_BLOCK` (a query's scores are then whole-vector loops over the keys), the values in
/// `kv [B, S, 2d]` (keys in the first `d` columns of each row, values in the last `d`), both read by
/// every decoding step where they lie; and the query rows of the input projection sliced once
/// (`w_q [d, d]`, `b_q [d]`) instead of at every step.
#[derive(Clone)]
pub struct StepMemory {
    kt: Tensor,
    kv: Tensor,
    w_q: Var,
    b_q: Var,
}

impl StepMemory {
    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.kv.dim(0)
    }

    /// Number of positions `S`.
    pub fn len(&self) -> usize {
        self.kv.dim(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `rows` of the batch (repeats allowed; beam search expands and reorders hypotheses so).
    pub fn select_rows(&self, rows: &[u32]) -> Result<StepMemory, AttentionError> {
        check_rows("StepMemory::select_rows", rows, self.batch())?;
        let rows: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
        Ok(StepMemory {
            kt: self.kt.select_rows(&rows),
            kv: self.kv.select_rows(&rows),
            w_q: self.w_q.clone(),
            b_q: self.b_q.clone(),
        })
    }

    /// The transposed keys and the values.
    fn rows(&self) -> (Keys<'_>, Rows<'_>) {
        let (s, d2) = (self.len(), self.kv.dim(2));
        let keys = Keys::Transposed {
            data: self.kt.data(),
            len: s,
            ld: self.kt.dim(3),
        };
        let values = Rows {
            data: self.kv.data(),
            offset: d2 / 2,
            batch_stride: s * d2,
            pos_stride: d2,
            len: s,
        };
        (keys, values)
    }
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

    /// `d`, checking that the parameters fit `heads`.
    fn checked_d_model(&self) -> Result<usize, AttentionError> {
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
    fn project(
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

    /// The shape `[B, H, S, d_h]` of projected keys and values, checked against batch `b` and the
    /// heads.
    fn check_memory(&self, memory: &KvMemory, b: usize) -> Result<Vec<usize>, AttentionError> {
        let ks = memory.k.shape();
        if ks.len() != 4 || ks[0] != b || ks[1] != self.heads || memory.v.shape() != ks {
            return Err(shape_error(
                LAYER,
                "projected memory",
                &ks,
                format!("[{b}, {}, S, d_h] for keys and values", self.heads),
            ));
        }
        Ok(ks)
    }

    /// `[B, L, d] → [B, H, L, d_h]`.
    fn split_heads(&self, x: &Var) -> Var {
        let s = x.shape();
        let dh = s[2] / self.heads;
        x.reshape(&[s[0], s[1], self.heads, dh])
            .permute(&[0, 2, 1, 3])
    }

    /// Keys and values of `memory [B, S, d]`, projected and split into heads once (cross-attention
    /// over the encoder output during decoding).
    pub fn project_memory(&self, memory: &Var) -> Result<KvMemory, AttentionError> {
        let kv = self.project(memory, 1, 2, "keys/values")?; // [B, S, 2d]
        let d = self.d_model();
        Ok(KvMemory {
            k: self.split_heads(&kv.narrow(2, 0, d)), // [B, H, S, d_h]
            v: self.split_heads(&kv.narrow(2, d, d)), // [B, H, S, d_h]
        })
    }

    /// `query [B, T, d]` attends over `key_value [B, S, d]`; see the module doc. `dropout_rng`:
    /// `Some` while training (dropout on the weights), `None` otherwise.
    pub fn forward(
        &self,
        query: &Var,
        key_value: &Var,
        key_padding: Option<&Tensor>,
        attn_mask: Option<&Tensor>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<(Var, Var), AttentionError> {
        let memory = self.project_memory(key_value)?;
        self.attend(query, &memory, key_padding, attn_mask, dropout_rng)
    }

    /// `query [B, T, d]` attends over projected `memory` (`[B, H, S, d_h]`), with `key_padding
    /// [B, S]` and `attn_mask [T, S]` → `(output [B, T, d], weights [B, H, T, S])`.
    pub fn attend(
        &self,
        query: &Var,
        memory: &KvMemory,
        key_padding: Option<&Tensor>,
        attn_mask: Option<&Tensor>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<(Var, Var), AttentionError> {
        let q = self.split_heads(&self.project(query, 0, 1, "query")?); // [B, H, T, d_h]
        let (b, t) = (q.dim(0), q.dim(2));
        let ks = self.check_memory(memory, b)?;
        let s = ks[2];
        let mask = match (key_padding, attn_mask) {
            (None, None) => None,
            (Some(p), None) => Some(check_key_padding(p, b, s)?),
            (None, Some(a)) => Some(check_attn_mask(a, t, s)?),
            (Some(p), Some(a)) => Some(combine(
                &check_key_padding(p, b, s)?,
                &check_attn_mask(a, t, s)?,
            )?),
        };
        self.attend_heads(&q, memory, mask.as_ref(), dropout_rng)
    }

    /// Per-head queries `q [B, H, T, d_h]` over `memory` with a ready mask (broadcastable to
    /// `[B, H, T, S]`) → `(output [B, T, d], weights [B, H, T, S])`.
    fn attend_heads(
        &self,
        q: &Var,
        memory: &KvMemory,
        mask: Option<&Tensor>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<(Var, Var), AttentionError> {
        let weights = attention_weights(q, &memory.k, mask)?; // [B, H, T, S]
        let attended = match dropout_rng {
            Some(rng) if self.dropout > 0.0 => weights.dropout(self.dropout, rng),
            _ => weights.clone(),
        };
        let heads = weighted_values(&attended, &memory.v)?; // [B, H, T, d_h]
        let (b, t, d) = (q.dim(0), q.dim(2), self.d_model());
        let merged = heads.permute(&[0, 2, 1, 3]).reshape(&[b, t, d]); // [B, T, d]
        Ok((self.out_proj.forward(&merged), weights))
    }

    /// Self-attention of `x [B, L, d]` through the fused kernel → `[B, L, d]` (no weights): one
    /// projection into Q, K, V; `causal`: position `i` sees `j ≤ i`; `key_lengths`: batch row `b`
    /// sees positions `j < key_lengths[b]`; `dropout_rng` as [`forward`](Self::forward).
    pub fn self_attend_fused(
        &self,
        x: &Var,
        causal: bool,
        key_lengths: Option<&[usize]>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<Var, AttentionError> {
        let qkv = self.project(x, 0, 3, "input")?; // [B, L, 3d]
        let d = self.d_model();
        let memory = KvMemory {
            k: self.split_heads(&qkv.narrow(2, d, d)),
            v: self.split_heads(&qkv.narrow(2, 2 * d, d)),
        };
        let q = self.split_heads(&qkv.narrow(2, 0, d));
        self.attend_heads_fused(&q, &memory, causal, key_lengths, dropout_rng)
    }

    /// `query [B, T, d]` over projected `memory` through the fused kernel → `[B, T, d]`; masks as
    /// [`self_attend_fused`](Self::self_attend_fused).
    pub fn attend_fused(
        &self,
        query: &Var,
        memory: &KvMemory,
        causal: bool,
        key_lengths: Option<&[usize]>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<Var, AttentionError> {
        let q = self.split_heads(&self.project(query, 0, 1, "query")?);
        self.attend_heads_fused(&q, memory, causal, key_lengths, dropout_rng)
    }

    /// Per-head queries `q [B, H, T, d_h]` over `memory` through the fused kernel, heads merged and
    /// projected → `[B, T, d]`.
    fn attend_heads_fused(
        &self,
        q: &Var,
        memory: &KvMemory,
        causal: bool,
        key_lengths: Option<&[usize]>,
        dropout_rng: Option<&mut Rng>,
    ) -> Result<Var, AttentionError> {
        let (b, t, dh) = (q.dim(0), q.dim(2), q.dim(3));
        let ks = self.check_memory(memory, b)?;
        if let Some(lengths) = key_lengths {
            if lengths.len() != b || lengths.iter().any(|&l| l > ks[2]) {
                return Err(shape_error(
                    LAYER,
                    "key lengths",
                    &[lengths.len()],
                    format!("[{b}] lengths ≤ {}", ks[2]),
                ));
            }
        }
        let scale = 1.0 / (dh as f32).sqrt();
        // One key per call, drawn where the plain path's `Var::dropout` draws it.
        let dropout = match dropout_rng {
            Some(rng) if self.dropout > 0.0 => Some(AttentionDropout {
                p: self.dropout,
                key: rng.next_seed(),
            }),
            _ => None,
        };
        let heads = flash_attention(q, &memory.k, &memory.v, causal, key_lengths, scale, dropout);
        let merged = heads
            .permute(&[0, 2, 1, 3])
            .reshape(&[b, t, self.d_model()]);
        Ok(self.out_proj.forward(&merged))
    }

    /// Causal self-attention for the `n` newest positions `x [B, n, d]` (usually `n = 1`): their keys
    /// and values are appended to `cache`, and each attends over every cached position up to itself
    /// → `(output [B, n, d], weights [B, H, n, t + n])`. Step by step this equals
    /// [`forward`](MultiHeadAttention::forward) over the whole sequence with a causal mask. For
    /// decoding: no gradient flows through the attention (its output is a constant).
    pub fn forward_step(&self, x: &Var, cache: &mut KvCache) -> Result<(Var, Var), AttentionError> {
        let qkv = self.project(x, 0, 3, "step input")?.to_tensor(); // [B, n, 3d]
        let (b, n, d) = (x.dim(0), x.dim(1), self.d_model());
        cache.append(qkv.data(), b, n, d)?;
        let q: Vec<f32> = qkv
            .data()
            .chunks_exact(3 * d)
            .flat_map(|r| &r[..d])
            .copied()
            .collect();
        let (k, v) = cache.rows();
        let mask = StepMask {
            causal_past: Some(cache.len() - n),
            padding: None,
        };
        self.step_heads(&q, b, n, k, v, mask)
    }

    /// The cross-attention keys and values of `memory [B, S, d]` for decoding steps
    /// ([`attend_step`](Self::attend_step)).
    pub fn project_step_memory(&self, memory: &Var) -> Result<StepMemory, AttentionError> {
        let d = self.checked_d_model()?;
        let kv = self.project(memory, 1, 2, "keys/values")?.to_tensor(); // [B, S, 2d]
        let (b, len, heads) = (kv.dim(0), kv.dim(1), self.heads);
        let (dh, ld) = (d / heads, len.next_multiple_of(KEY_BLOCK));
        // kt[b, h, x, j] = kv[b, j, h·d_h + x], zero for j ≥ S
        let mut kt = vec![0.0f32; b * d * ld];
        if len > 0 {
            for (rows, kt_b) in kv
                .data()
                .chunks_exact(len * 2 * d)
                .zip(kt.chunks_exact_mut(d * ld))
            {
                for (h, kt_bh) in kt_b.chunks_exact_mut(dh * ld).enumerate() {
                    transpose(&rows[h * dh..], 2 * d, len, dh, kt_bh, ld);
                }
            }
        }
        Ok(StepMemory {
            kt: Tensor::from_vec(kt, &[b, heads, dh, ld]),
            kv,
            w_q: self.in_proj_weight.narrow(0, 0, d),
            b_q: self.in_proj_bias.narrow(0, 0, d),
        })
    }

    /// `query [B, n, d]` attends over a [`StepMemory`] with `key_padding [B, S]` (1 = masked) →
    /// `(output [B, n, d], weights [B, H, n, S])`; equals [`attend`](Self::attend) over the same
    /// memory. For decoding: no gradient flows through the attention.
    pub fn attend_step(
        &self,
        query: &Var,
        memory: &StepMemory,
        key_padding: Option<&Tensor>,
    ) -> Result<(Var, Var), AttentionError> {
        let d = self.checked_d_model()?;
        let qs = query.shape();
        if qs.len() != 3 || qs[2] != d {
            return Err(shape_error(LAYER, "query", &qs, format!("[B, T, {d}]")));
        }
        let (b, n, s) = (qs[0], qs[1], memory.len());
        if memory.batch() != b {
            return Err(shape_error(
                LAYER,
                "step memory",
                memory.kv.shape(),
                format!("[{b}, S, {}]", 2 * d),
            ));
        }
        if let Some(p) = key_padding {
            if p.shape() != [b, s] {
                return Err(shape_error(
                    LAYER,
                    "key padding mask",
                    p.shape(),
                    format!("[{b}, {s}]"),
                ));
            }
        }
        let q = query.linear(&memory.w_q, Some(&memory.b_q)).to_tensor();
        let (k, v) = memory.rows();
        let mask = StepMask {
            causal_past: None,
            padding: key_padding.map(Tensor::data),
        };
        self.step_heads(q.data(), b, n, k, v, mask)
    }

    /// Queries `q [B, n, d]` over keys and values where they lie ([`step_attention`]), heads merged
    /// and projected → `(output [B, n, d], weights [B, H, n, len])`.
    fn step_heads(
        &self,
        q: &[f32],
        b: usize,
        n: usize,
        k: Keys,
        v: Rows,
        mask: StepMask,
    ) -> Result<(Var, Var), AttentionError> {
        let (d, len) = (self.d_model(), k.len());
        let scale = 1.0 / ((d / self.heads) as f32).sqrt();
        let (out, weights) = step_attention(q, b, n, self.heads, k, v, mask, scale);
        let out = Var::constant(Tensor::from_vec(out, &[b, n, d]));
        let weights = Var::constant(Tensor::from_vec(weights, &[b, self.heads, n, len]));
        Ok((self.out_proj.forward(&out), weights))
    }
}

/// Every row of `rows` is a row of a batch of `batch` (beam search selects rows of the current batch).
fn check_rows(layer: &'static str, rows: &[u32], batch: usize) -> Result<(), AttentionError> {
    match rows.iter().find(|&&r| r as usize >= batch) {
        Some(&row) => Err(AttentionError::Row {
            layer,
            row: row as usize,
            batch,
        }),
        None => Ok(()),
    }
}

/// `[B, S]` key padding mask → `[B, 1, 1, S]`.
fn check_key_padding(mask: &Tensor, b: usize, s: usize) -> Result<Tensor, AttentionError> {
    if mask.shape() != [b, s] {
        return Err(shape_error(
            LAYER,
            "key padding mask",
            mask.shape(),
            format!("[{b}, {s}]"),
        ));
    }
    key_padding_broadcast(mask, 4)
}

/// `[T, S]` attention mask, used as is (it broadcasts over batch and heads).
fn check_attn_mask(mask: &Tensor, t: usize, s: usize) -> Result<Tensor, AttentionError> {
    if mask.shape() != [t, s] {
        return Err(shape_error(
            LAYER,
            "attention mask",
            mask.shape(),
            format!("[{t}, {s}]"),
        ));
    }
    Ok(mask.clone())
}
