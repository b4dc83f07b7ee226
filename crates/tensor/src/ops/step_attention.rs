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
//! they split the heads and copy the growing cache at every step, which this op never does.

use crate::kernels::isa::simd_fn;
use crate::kernels::math::{dot, exp};
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
    /// `[B, H, d_h, ld]` contiguous, `ld ≥ len` positions per row of which the first `len` are keys:
    /// a query's scores are then vector loops over the keys per component of `q` (no horizontal
    /// sum per key) — for keys that are read at every step, such as a projected encoder memory,
    /// transposed once per decode. With `ld` a multiple of [`KEY_BLOCK`] every block of scores is
    /// one register's worth of whole-vector loads (the padding is read, never used).
    Transposed {
        data: &'a [f32],
        len: usize,
        ld: usize,
    },
}

/// Keys per register block of scores with [`Keys::Transposed`] (one AVX-512 register of f32).
pub const KEY_BLOCK: usize = 16;

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
            Keys::Transposed { data, len, ld } => *ld >= *len && data.len() >= batch * d * ld,
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
            Keys::Transposed { data, ld, .. } => {
                let kt = &data[(b * heads + h) * dh * ld..(b * heads + h + 1) * dh * ld];
                for j0 in (0..end).step_by(KEY_BLOCK) {
                    let width = KEY_BLOCK.min(end - j0);
                    if j0 + KEY_BLOCK <= ld {
                        let block = key_block_scores(q, kt, ld, j0);
                        w[j0..j0 + width].copy_from_slice(&block[..width]);
                    } else {
                        for (&qx, row) in q.iter().zip(kt.chunks_exact(ld)) {
                            for (s, &k) in w[j0..j0 + width].iter_mut().zip(&row[j0..]) {
                                *s += qx * k;
                            }
                        }
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
            }
        }
        // o = Σ_j w_j v_j, whole vectors of o at a time accumulated in registers over the keys.
        let value = |j: usize| &values.row(b, j, col + dh)[col..];
        let mut c0 = 0;
        while c0 + 64 <= dh {
            add_weighted::<64>(&mut o[c0..c0 + 64], w, end, &visible, |j| &value(j)[c0..]);
            c0 += 64;
        }
        while c0 + 16 <= dh {
            add_weighted::<16>(&mut o[c0..c0 + 16], w, end, &visible, |j| &value(j)[c0..]);
            c0 += 16;
        }
        for (c, o) in o.iter_mut().enumerate().skip(c0) {
            for (j, &s) in w[..end].iter().enumerate() {
                if visible(j) {
                    *o += s * value(j)[c];
                }
            }
        }
    }
}

/// Scores (unscaled) of keys `j0..j0 + KEY_BLOCK` for query `q [d_h]` from transposed keys
/// `kt [d_h, ld]`: four accumulators over the components, each one register.
#[inline(always)]
fn key_block_scores(q: &[f32], kt: &[f32], ld: usize, j0: usize) -> [f32; KEY_BLOCK] {
    let row = |c: usize| -> &[f32; KEY_BLOCK] {
        kt[c * ld + j0..c * ld + j0 + KEY_BLOCK]
            .try_into()
            .expect("a block")
    };
    let mut acc = [[0.0f32; KEY_BLOCK]; 4];
    let quads = q.len() / 4;
    for c in (0..quads * 4).step_by(4) {
        for (u, acc) in acc.iter_mut().enumerate() {
            let (qx, r) = (q[c + u], row(c + u));
            for (a, &k) in acc.iter_mut().zip(r) {
                *a += qx * k;
            }
        }
    }
    for (c, &qx) in q.iter().enumerate().skip(quads * 4) {
        for (a, &k) in acc[0].iter_mut().zip(row(c)) {
            *a += qx * k;
        }
    }
    let mut out = [0.0f32; KEY_BLOCK];
    for (l, o) in out.iter_mut().enumerate() {
        *o = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    out
}

/// `o [W] += Σ_{j < end, visible} w_j · v(j)[..W]`, the sum kept in registers over the keys.
#[inline(always)]
fn add_weighted<'v, const W: usize>(
    o: &mut [f32],
    w: &[f32],
    end: usize,
    visible: &impl Fn(usize) -> bool,
    v: impl Fn(usize) -> &'v [f32],
) {
    let mut acc = [0.0f32; W];
    for (j, &s) in w[..end].iter().enumerate() {
        if visible(j) {
            let v: &[f32; W] = v(j)[..W].try_into().expect("a block");
            for (a, &x) in acc.iter_mut().zip(v) {
                *a += s * x;
            }
        }
    }
    for (o, a) in o.iter_mut().zip(acc) {
        *o += a;
    }
}
