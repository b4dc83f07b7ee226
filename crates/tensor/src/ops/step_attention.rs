//! Multi-head scaled-dot-product attention for decoding steps: a few new queries against keys and
//! values laid out however the caller keeps them (no head split, no copy), no gradient.
//!
//! ```text
//! query (b, i), head h:  s_j = scale · q_{b,i,h} · k_{b,j,h}      for the keys j it sees
//!                        w = softmax(s)  (0 for keys it does not see)
//!                        o_{b,i,h} = Σ_j w_j v_{b,j,h}
//! ```
//!
//! Shapes: queries `[B, n, d]` row-major with `d = H·d_h`, head `h` in columns `h·d_h..(h+1)·d_h`;
//! keys and values are `len` positions per batch row, each a row of `d` floats at
//! `offset + b·batch_stride + j·pos_stride` ([`Rows`]): an incremental decoder's cache is kept with
//! room to grow (`[B, capacity, d]`, written in place) and a projected encoder memory as
//! `[B, S, 2d]` (keys and values side by side), and both are read where they lie. Output
//! `[B, n, d]` (heads merged, ready for the output projection) and the weights `[B, H, n, len]`.
//!
//! Visibility: with `causal_past = Some(p)` query `i` sees keys `j ≤ p + i` (the `n` queries are
//! positions `p..p + n` of a sequence whose first `p` positions are cached); with `padding`
//! (`[B, len]`, nonzero = masked) batch row `b` does not see its masked keys. A query that sees no
//! key gets zero weights and a zero output, as the plain path's fully masked rows.
//!
//! The plain layer ops (`attention_weights`, `weighted_values` over split heads) are its oracle;
//! at a decoding step they spent their time splitting heads and re-copying the growing cache.

use crate::kernels::math::{dot, exp, simd_fn};
use crate::threads::threads;
use rayon::prelude::*;

/// Where the keys (or values) of every batch row and position lie in `data`: row `(b, j)` is
/// `data[offset + b·batch_stride + j·pos_stride ..][..d]`.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub batch_stride: usize,
    pub pos_stride: usize,
    /// Positions per batch row.
    pub len: usize,
}

impl Rows<'_> {
    /// The `d` floats of row `(b, j)`.
    fn row(&self, b: usize, j: usize, d: usize) -> &[f32] {
        let start = self.offset + b * self.batch_stride + j * self.pos_stride;
        &self.data[start..start + d]
    }

    /// Whether every row of `batch` rows of `d` floats lies inside `data`.
    fn fits(&self, batch: usize, d: usize) -> bool {
        batch == 0
            || self.len == 0
            || self.offset + (batch - 1) * self.batch_stride + (self.len - 1) * self.pos_stride + d
                <= self.data.len()
    }
}

/// Where the keys lie: as [`Rows`], or transposed per batch row and head.
#[derive(Clone, Copy, Debug)]
pub enum Keys<'a> {
    Rows(Rows<'a>),
    /// `[B, H, d_h, len]` contiguous: a query's scores are then one vector loop over the keys per
    /// component of `q` (no horizontal sum per key) — for keys that are read at every step, such as
    /// a projected encoder memory, transposed once per decode.
    Transposed {
        data: &'a [f32],
        len: usize,
    },
}

impl Keys<'_> {
    /// Positions per batch row.
    pub fn len(&self) -> usize {
        match self {
            Keys::Rows(r) => r.len,
            Keys::Transposed { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fits(&self, batch: usize, d: usize) -> bool {
        match self {
            Keys::Rows(r) => r.fits(batch, d),
            Keys::Transposed { data, len } => data.len() >= batch * d * len,
        }
    }
}

/// Which keys each query sees (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepMask<'a> {
    /// Query `i` sees keys `j ≤ p + i`.
    pub causal_past: Option<usize>,
    /// `[B, len]`, nonzero = masked.
    pub padding: Option<&'a [f32]>,
}

/// Queries `q [B, n, d]` over `keys`, `values` with `heads` heads → `(out [B, n, d], weights
/// [B, H, n, len])`. Panics if a shape does not fit (callers check their inputs).
#[allow(clippy::too_many_arguments)]
pub fn step_attention(
    q: &[f32],
    batch: usize,
    n: usize,
    heads: usize,
    keys: Keys,
    values: Rows,
    mask: StepMask,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    assert!(
        heads > 0 && q.len().is_multiple_of((batch * n).max(1)),
        "step_attention: heads, queries"
    );
    let d = q.len().checked_div(batch * n).unwrap_or(0);
    let len = keys.len();
    assert!(
        d.is_multiple_of(heads)
            && values.len == len
            && keys.fits(batch, d)
            && values.fits(batch, d)
            && mask.padding.is_none_or(|p| p.len() == batch * len),
        "step_attention: keys/values/padding do not fit [{batch}, {len}, {d}]"
    );
    let dh = d / heads;
    let mut out = vec![0.0f32; batch * n * d];
    let mut weights = vec![0.0f32; batch * heads * n * len];
    // One batch row: its n·d outputs and H·n·len weights.
    let row = |(b, (out, w)): (usize, (&mut [f32], &mut [f32]))| {
        let pad = mask.padding.map(|p| &p[b * len..(b + 1) * len]);
        for i in 0..n {
            let end = mask.causal_past.map_or(len, |p| (p + i + 1).min(len));
            let qi = &q[(b * n + i) * d..(b * n + i + 1) * d];
            for h in 0..heads {
                let head = Head {
                    b,
                    h,
                    heads,
                    col: h * dh,
                    dh,
                    end,
                };
                one_head(
                    &qi[h * dh..(h + 1) * dh],
                    keys,
                    values,
                    pad,
                    head,
                    scale,
                    &mut w[(h * n + i) * len..(h * n + i + 1) * len],
                    &mut out[i * d + h * dh..i * d + (h + 1) * dh],
                );
            }
        }
    };
    let (oc, wc) = ((n * d).max(1), (heads * n * len).max(1));
    // Parallel over batch rows when the work is worth waking the threads (≈ 2·B·n·len·d flops).
    if threads() > 1 && batch * n * len * d >= 1 << 16 {
        out.par_chunks_mut(oc)
            .zip(weights.par_chunks_mut(wc))
            .enumerate()
            .for_each(row);
    } else {
        out.chunks_mut(oc)
            .zip(weights.chunks_mut(wc))
            .enumerate()
            .for_each(row);
    }
    (out, weights)
}

/// Which head of which batch row [`one_head`] computes, and how many keys it may see.
#[derive(Clone, Copy)]
struct Head {
    b: usize,
    h: usize,
    heads: usize,
    /// First column of the head, `h·d_h`.
    col: usize,
    dh: usize,
    /// Keys `j < end` (before padding).
    end: usize,
}

simd_fn! {
    /// One query and head: weights `w [len]` (0 where not seen) and output `o [d_h]` (zero if no key
    /// is seen).
    fn one_head(
        q: &[f32],
        keys: Keys,
        values: Rows,
        pad: Option<&[f32]>,
        head: Head,
        scale: f32,
        w: &mut [f32],
        o: &mut [f32],
    ) {
        let Head { b, h, heads, col, dh, end } = head;
        let visible = |j: usize| pad.is_none_or(|p| p[j] == 0.0);
        let mut max = f32::NEG_INFINITY;
        match keys {
            Keys::Rows(keys) => {
                for (j, s) in w[..end].iter_mut().enumerate() {
                    if visible(j) {
                        *s = scale * dot(q, &keys.row(b, j, col + dh)[col..]);
                        max = max.max(*s);
                    }
                }
            }
            Keys::Transposed { data, len } => {
                let kt = &data[(b * heads + h) * dh * len..(b * heads + h + 1) * dh * len];
                for (&qx, row) in q.iter().zip(kt.chunks_exact(len)) {
                    for (s, &k) in w[..end].iter_mut().zip(row) {
                        *s += qx * k;
                    }
                }
                for (j, s) in w[..end].iter_mut().enumerate() {
                    if visible(j) {
                        *s *= scale;
                        max = max.max(*s);
                    } else {
                        *s = 0.0;
                    }
                }
            }
        }
        if max == f32::NEG_INFINITY {
            return; // sees no key: zero weights, zero output
        }
        let mut total = 0.0;
        for (j, s) in w[..end].iter_mut().enumerate() {
            if visible(j) {
                *s = exp(*s - max);
                total += *s;
            }
        }
        let inv = 1.0 / total;
        for (j, s) in w[..end].iter_mut().enumerate() {
            if visible(j) {
                *s *= inv;
                for (o, &v) in o.iter_mut().zip(&values.row(b, j, col + dh)[col..]) {
                    *o += *s * v;
                }
            }
        }
    }
}
