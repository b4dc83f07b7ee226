//! Incremental decoding with [`MultiHeadAttention`]: one new target position per step, attending
//! over what is already known instead of recomputing the prefix.
//!
//! ```text
//! self-attention   (causal):  K, V ← K ∪ {x_t W_Kᵀ + b_K},  V ∪ {x_t W_Vᵀ + b_V}     KvCache [B, cap, d]
//!                             out_t = MHA(x_t; K[0..=t], V[0..=t])                         [B, 1, d]
//! cross-attention  (memory):  K, V = memory W_{K,V}ᵀ + b_{K,V}  once per decode          StepMemory
//!                             out_t = MHA(x_t; K, V, source padding)                       [B, 1, d]
//! ```
//!
//! [`MultiHeadAttention::forward_step`] projects only the new positions and appends their keys and
//! values to a [`KvCache`] (written in place), so that a decoder step costs O(t), not O(t²);
//! [`MultiHeadAttention::project_step_memory`] projects the encoder memory once for
//! cross-attention ([`StepMemory`]) and [`MultiHeadAttention::attend_step`] attends over it. Both
//! run the engine's step kernel (`tensor::ops::step_attention`), which reads keys and values where
//! they lie; both states reorder their batch rows for beam search. Step by step they equal
//! [`MultiHeadAttention::forward`] (causal, or over the same memory); no gradient flows through
//! them (decoding only).

use crate::attention::multi_head::LAYER;
use crate::attention::{shape_error, AttentionError, MultiHeadAttention};
use tensor::kernels::transpose::transpose;
use tensor::ops::step_attention::{step_attention, Keys, Rows, StepMask, KEY_BLOCK};
use tensor::{Tensor, Var};

/// The keys and values of the positions decoded so far, for one self-attention layer: `[B, cap, d]`
/// buffers (the heads side by side in `d`) of which the first `t` positions of every batch row are
/// filled, so that a step writes its keys and values in place and [`step_attention`] reads each
/// batch row's keys contiguously. The capacity doubles when full (amortised O(1) per position).
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
    /// The buffer the next [`select_rows`](Self::select_rows) writes into.
    spare: Vec<f32>,
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
    /// Only the filled positions are copied, into a buffer kept from the last selection.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), AttentionError> {
        if self.is_empty() {
            return Ok(());
        }
        check_rows("KvCache::select_rows", rows, self.batch)?;
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) && rows.len() == self.batch {
            return Ok(());
        }
        let (block, used) = (self.cap * self.d, self.len * self.d);
        for x in [&mut self.k, &mut self.v] {
            let out = &mut self.spare;
            out.resize(rows.len() * block, 0.0);
            for (o, &r) in out.chunks_exact_mut(block).zip(rows) {
                let r = r as usize;
                o[..used].copy_from_slice(&x[r * block..r * block + used]);
            }
            std::mem::swap(x, out);
        }
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
/// per head, `kt [M, H, d_h, S']` with `S` padded to `S'`, a multiple of the step kernel's
/// `KEY_BLOCK` (a query's scores are then whole-vector loops over the keys), the values in
/// `kv [M, S, 2d]` (keys in the first `d` columns of each row, values in the last `d`), both read by
/// every decoding step where they lie; and the query rows of the input projection sliced once
/// (`w_q [d, d]`, `b_q [d]`) instead of at every step.
///
/// Each memory row serves `group` consecutive batch rows (`B = M · group`): beam search's `K`
/// hypotheses of one sentence read one copy of its memory, as `K` queries of one row of the step
/// kernel. [`select_rows`](Self::select_rows) keeps the grouping where the selected rows come in
/// equal runs of one memory row each (beam search's reorderings), so the memory is copied only when
/// sentences leave the batch, and then only the rows that stay; other selections copy a row per
/// batch row.
#[derive(Clone)]
pub struct StepMemory {
    kt: Tensor,
    kv: Tensor,
    group: usize,
    w_q: Var,
    b_q: Var,
}

impl StepMemory {
    /// Batch size `B` (the rows it serves).
    pub fn batch(&self) -> usize {
        self.kv.dim(0) * self.group
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
        // The memory row each selected row reads.
        let source: Vec<usize> = rows.iter().map(|&r| r as usize / self.group).collect();
        let (keep, group) = match equal_runs(&source) {
            Some(group) => (source.iter().step_by(group).copied().collect(), group),
            None => (source, 1),
        };
        let unchanged =
            keep.len() == self.kv.dim(0) && keep.iter().enumerate().all(|(i, &m)| i == m);
        let pick = |t: &Tensor| {
            if unchanged {
                t.clone()
            } else {
                t.select_rows(&keep)
            }
        };
        Ok(StepMemory {
            kt: pick(&self.kt),
            kv: pick(&self.kv),
            group,
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

/// The run length `g` when `source` is runs of `g` equal entries (and not empty).
fn equal_runs(source: &[usize]) -> Option<usize> {
    let first = source.first()?;
    let g = source.iter().take_while(|&m| m == first).count();
    let equal = source.len().is_multiple_of(g)
        && source
            .chunks_exact(g)
            .all(|run| run.iter().all(|&m| m == run[0]));
    equal.then_some(g)
}

impl MultiHeadAttention {
    /// Causal self-attention for the `n` newest positions `x [B, n, d]` (usually `n = 1`): their keys
    /// and values are appended to `cache`, and each attends over every cached position up to itself
    /// → `(output [B, n, d], weights [B, H, n, t + n])`.
    pub fn forward_step(&self, x: &Var, cache: &mut KvCache) -> Result<(Var, Var), AttentionError> {
        let qkv = self.project(x, 0, 3, "step input")?.to_tensor(); // [B, n, 3d]
        let (b, n, d) = (x.dim(0), x.dim(1), self.d_model());
        cache.append(qkv.data(), b, n, d)?;
        let q: Vec<f32> = qkv
            .data()
            .chunks_exact(3 * d)
            .flat_map(|r| &r[..d])
            .copied()
            .collect(); // [B, n, d]
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
            group: 1,
            w_q: self.in_proj_weight.narrow(0, 0, d),
            b_q: self.in_proj_bias.narrow(0, 0, d),
        })
    }

    /// `query [B, n, d]` attends over a [`StepMemory`] with `key_padding [B, S]` (1 = masked) →
    /// `(output [B, n, d], weights [B, H, n, S])`.
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
        let q = query.linear(&memory.w_q, Some(&memory.b_q)).to_tensor(); // [B, n, d]
        let (k, v) = memory.rows();
        let g = memory.group;
        if g == 1 {
            let mask = StepMask {
                causal_past: None,
                padding: key_padding.map(Tensor::data),
            };
            return self.step_heads(q.data(), b, n, k, v, mask);
        }
        // A group's rows share their memory row (and so its padding): its g·n queries are one
        // row's queries for the kernel, [M, g·n, d] being [B, n, d] in memory.
        let m = b / g;
        let padding = key_padding.map(|p| {
            let rows: Vec<usize> = (0..m).map(|i| i * g).collect();
            p.select_rows(&rows)
        });
        let mask = StepMask {
            causal_past: None,
            padding: padding.as_ref().map(Tensor::data),
        };
        let (out, weights) = self.step_heads(q.data(), m, g * n, k, v, mask)?;
        // weights [M, H, g·n, S] → [B, H, n, S]
        let (heads, w) = (self.heads, weights.value());
        let mut per_row = vec![0.0f32; w.numel()];
        let block = n * s;
        for (mi, w_m) in w.data().chunks_exact(heads * g * block).enumerate() {
            for (h, w_mh) in w_m.chunks_exact(g * block).enumerate() {
                for (i, w_i) in w_mh.chunks_exact(block).enumerate() {
                    let at = ((mi * g + i) * heads + h) * block;
                    per_row[at..at + block].copy_from_slice(w_i);
                }
            }
        }
        let weights = Var::constant(Tensor::from_vec(per_row, &[b, heads, n, s]));
        Ok((out.reshape(&[b, n, self.d_model()]), weights))
    }

    /// The scaled dot-product scores `e = q·k / √d_h` of `query [B, n, d]` against the keys of a
    /// [`StepMemory`], per head → `[B, H, n, S]`, with `-∞` at the keys `key_padding [B, S]` masks
    /// (1 = masked). The plain loop behind what [`attend_step`](Self::attend_step) computes inside
    /// its kernel, which keeps only `softmax(e)`: `attend explain` shows these scores beside
    /// the weights. Sums in f64.
    pub fn step_scores(
        &self,
        query: &Var,
        memory: &StepMemory,
        key_padding: Option<&Tensor>,
    ) -> Result<Tensor, AttentionError> {
        let d = self.checked_d_model()?;
        let qs = query.shape();
        let (b, s, heads) = (memory.batch(), memory.len(), self.heads);
        if qs.len() != 3 || qs[0] != b || qs[2] != d {
            return Err(shape_error(LAYER, "query", &qs, format!("[{b}, T, {d}]")));
        }
        if key_padding.is_some_and(|p| p.shape() != [b, s]) {
            let found = key_padding.map_or(&[][..], Tensor::shape);
            return Err(shape_error(
                LAYER,
                "key padding mask",
                found,
                format!("[{b}, {s}]"),
            ));
        }
        let n = qs[1];
        let dh = d / heads;
        let scale = 1.0 / (dh as f64).sqrt();
        let q = query.linear(&memory.w_q, Some(&memory.b_q)).to_tensor(); // [B, n, d]
        let kv = memory.kv.data(); // [B, S, 2d], keys in the first d columns
        let mut out = vec![0.0f32; b * heads * n * s];
        for (i, e) in out.iter_mut().enumerate() {
            let (row, j) = (i / s, i % s);
            let (bi, h, t) = (row / (heads * n), row / n % heads, row % n);
            if key_padding.is_some_and(|p| p.data()[bi * s + j] != 0.0) {
                *e = f32::NEG_INFINITY;
                continue;
            }
            let q = &q.data()[(bi * n + t) * d + h * dh..][..dh];
            let k = &kv[(bi * s + j) * 2 * d + h * dh..][..dh];
            let dot: f64 = q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum();
            *e = (dot * scale) as f32;
        }
        Ok(Tensor::from_vec(out, &[b, heads, n, s]))
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
