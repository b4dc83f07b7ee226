//! A fused GRU or LSTM recurrence over a padded batch: one op for all time steps, backward (BPTT)
//! written by hand.
//!
//! The input projection `xp = x·W_ihᵀ + b_ih` (`[B, T, G]`, `G = 3H` for a GRU, `4H` for an LSTM) is
//! computed by the caller in one matrix product for all steps; this op runs only what must be
//! sequential. Per processing step (time `t = s`, or `t = T−1−s` when `reverse`):
//!
//! `gh = h·W_hhᵀ + b_hh` (one `[B, H]·[H, G]` product), then per row `b` with `t < len_b`:
//! - GRU (gate order r, z, n): `r = σ(xp_r + gh_r)`, `z = σ(xp_z + gh_z)`,
//!   `n = tanh(xp_n + r ⊙ gh_n)`, `h' = (1 − z) ⊙ n + z ⊙ h`;
//! - LSTM (gate order i, f, g, o): `i, f, o = σ(xp + gh)`, `g = tanh(xp_g + gh_g)`,
//!   `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`.
//!
//! Rows with `t ≥ len_b` keep their state and output zeros (as PyTorch's packed sequences do), so a
//! reverse pass starts at each sequence's own last real token.
//!
//! Output, packed into one tensor `[B, T + k, H]`: rows `0..T` are the outputs `h_t`, row `T` is the
//! final `h`, and for an LSTM row `T + 1` is the final `c` (`k` = 1 or 2).
//!
//! Backward, per step in reverse processing order, with `dh` (and `dc`) carried:
//! - GRU: `dn = dh(1−z)`, `dz = dh(h−n)`, `ân = dn(1−n²)`, `âr = ân·gh_n·r(1−r)`, `âz = dz·z(1−z)`;
//!   `dxp = [âr, âz, ân]`, `dgh = [âr, âz, ân ⊙ r]`, `dh_prev = dh ⊙ z + dgh·W_hh`;
//! - LSTM: `dc' = dc + dh·o(1−tanh²c')`, pre-activation grads `[dc'·g·i(1−i), dc'·c·f(1−f),
//!   dc'·i(1−g²), dh·tanh c'·o(1−o)]` = `dxp` = `dgh`; `dc_prev = dc'·f`, `dh_prev = dgh·W_hh`;
//! - both: `dW_hh += dghᵀ·h_prev`, `db_hh += Σ_b dgh`; padded rows pass `dh`, `dc` through.

use crate::kernels::isa::simd_fn;
use crate::kernels::math::{sigmoid, tanh};
use crate::kernels::{fill, gemm};
use crate::tensor::Tensor;
use crate::var::Var;

/// Which recurrent cell the recurrence runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Gated recurrent unit, gates r, z, n.
    Gru,
    /// Long short-term memory, gates i, f, g, o.
    Lstm,
}

impl CellKind {
    /// Number of gate blocks stacked in `W_ih`/`W_hh` (3 for a GRU, 4 for an LSTM).
    pub fn gates(self) -> usize {
        match self {
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }

    /// Number of state tensors (h; or h and c).
    pub fn states(self) -> usize {
        match self {
            CellKind::Gru => 1,
            CellKind::Lstm => 2,
        }
    }

    /// Floats saved per row and step for the backward pass (GRU r, z, n, gh_n; LSTM i, f, g, o, tanh c').
    fn saved(self) -> usize {
        match self {
            CellKind::Gru => 4,
            CellKind::Lstm => 5,
        }
    }
}

/// Shapes of one recurrence call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    g: usize,
    k: usize,
}

/// `gh = h·W_hhᵀ + b_hh` for all rows: `[B, H]·[H, G] → [B, G]`.
fn hidden_projection(gh: &mut [f32], h: &[f32], w_hh: &[f32], b_hh: &[f32], d: Dims) {
    for row in gh.chunks_exact_mut(d.g) {
        row.copy_from_slice(b_hh);
    }
    gemm::matmul(gh, h, w_hh, d.b, d.h, d.g, false, true, true);
}

impl Var {
    /// Runs a GRU or LSTM recurrence (see the module doc). `xp [B, T, G]`, `h0 [B, H]`,
    /// `c0 [B, H]` (LSTM only), `w_hh [G, H]`, `b_hh [G]`, `lengths[b] ≤ T`.
    /// Returns `[B, T + k, H]`: outputs, final h, (final c).
    #[allow(clippy::too_many_arguments)]
    pub fn recurrence(
        kind: CellKind,
        xp: &Var,
        h0: &Var,
        c0: Option<&Var>,
        w_hh: &Var,
        b_hh: &Var,
        lengths: &[usize],
        reverse: bool,
    ) -> Var {
        let xs = xp.shape();
        let (wv, bv, hv) = (w_hh.value(), b_hh.value(), h0.value());
        assert!(
            xs.len() == 3,
            "recurrence: xp must be [B, T, G], got {xs:?}"
        );
        let (b, t, g) = (xs[0], xs[1], xs[2]);
        let h = wv.dim(-1);
        let d = Dims {
            b,
            t,
            h,
            g,
            k: kind.states(),
        };
        assert!(
            wv.shape() == [kind.gates() * h, h] && g == kind.gates() * h && bv.shape() == [g],
            "recurrence: xp {xs:?}, w_hh {:?}, b_hh {:?} for {kind:?}",
            wv.shape(),
            bv.shape()
        );
        assert_eq!(hv.shape(), [b, h], "recurrence: h0 shape");
        assert_eq!(
            c0.is_some(),
            kind == CellKind::Lstm,
            "recurrence: c0 is given exactly for an LSTM"
        );
        assert!(
            lengths.len() == b && lengths.iter().all(|&l| l <= t),
            "recurrence: lengths {lengths:?} for batch {b}, time {t}"
        );
        let mut hcur = hv.data().to_vec();
        let mut ccur = c0.map_or_else(Vec::new, |c| {
            assert_eq!(c.value().shape(), [b, h], "recurrence: c0 shape");
            c.value().data().to_vec()
        });
        let w = kind.saved() * h;
        let mut out = vec![0.0; b * (t + d.k) * h];
        let mut hs = vec![0.0; t * b * h];
        let mut cs = vec![0.0; if kind == CellKind::Lstm { t * b * h } else { 0 }];
        let mut acts = vec![0.0; t * b * w];
        let mut gh = vec![0.0; b * g];
        {
            let xpv = xp.value();
            let x = xpv.data();
            for s in 0..t {
                let tt = if reverse { t - 1 - s } else { s };
                hs[s * b * h..(s + 1) * b * h].copy_from_slice(&hcur);
                if kind == CellKind::Lstm {
                    cs[s * b * h..(s + 1) * b * h].copy_from_slice(&ccur);
                }
                hidden_projection(&mut gh, &hcur, wv.data(), bv.data(), d);
                for (bi, &len) in lengths.iter().enumerate() {
                    if tt >= len {
                        continue;
                    }
                    let xi = &x[(bi * t + tt) * g..(bi * t + tt + 1) * g];
                    let gr = &gh[bi * g..(bi + 1) * g];
                    let a = &mut acts[(s * b + bi) * w..(s * b + bi + 1) * w];
                    let hr = &mut hcur[bi * h..(bi + 1) * h];
                    match kind {
                        CellKind::Gru => gru_forward(xi, gr, a, hr),
                        CellKind::Lstm => {
                            lstm_forward(xi, gr, a, hr, &mut ccur[bi * h..(bi + 1) * h])
                        }
                    }
                    let o = (bi * (t + d.k) + tt) * h;
                    out[o..o + h].copy_from_slice(hr);
                }
            }
        }
        for bi in 0..b {
            let o = (bi * (t + d.k) + t) * h;
            out[o..o + h].copy_from_slice(&hcur[bi * h..(bi + 1) * h]);
            if kind == CellKind::Lstm {
                out[o + h..o + 2 * h].copy_from_slice(&ccur[bi * h..(bi + 1) * h]);
            }
        }
        drop((wv, bv, hv));
        let lengths = lengths.to_vec();
        let mut parents = vec![xp.clone(), h0.clone(), w_hh.clone(), b_hh.clone()];
        parents.extend(c0.cloned());
        Var::from_op(
            Tensor::from_vec(out, &[b, t + d.k, h]),
            parents,
            Box::new(move |gout, _, p| {
                let saved = Saved {
                    hs: &hs,
                    cs: &cs,
                    acts: &acts,
                    lengths: &lengths,
                };
                backward(kind, d, reverse, gout.data(), &p[2].value(), saved)
            }),
        )
    }
}

simd_fn! {
    /// One GRU row: `xi`, `gr` are the `[3H]` projections, `a` receives `[r, z, n, gh_n]`, `hr` is
    /// updated.
    fn gru_forward(xi: &[f32], gr: &[f32], a: &mut [f32], hr: &mut [f32]) {
        let h = hr.len();
        let (xr, xi) = xi.split_at(h);
        let (xz, xn) = xi.split_at(h);
        let (gr_, gr) = gr.split_at(h);
        let (gz, gn) = gr.split_at(h);
        let (ar, a) = a.split_at_mut(h);
        let (az, a) = a.split_at_mut(h);
        let (an, agn) = a.split_at_mut(h);
        // Every slice exactly h long, so that the loop has no bounds checks and vectorizes.
        let (xn, gn, agn) = (&xn[..h], &gn[..h], &mut agn[..h]);
        for j in 0..h {
            let r = sigmoid(xr[j] + gr_[j]);
            let z = sigmoid(xz[j] + gz[j]);
            let ghn = gn[j];
            let n = tanh(xn[j] + r * ghn);
            ar[j] = r;
            az[j] = z;
            an[j] = n;
            agn[j] = ghn;
            hr[j] = (1.0 - z) * n + z * hr[j];
        }
    }
}

simd_fn! {
    /// One LSTM row: `a` receives `[i, f, g, o, tanh c']`; `hr`, `cr` are updated.
    fn lstm_forward(xi: &[f32], gr: &[f32], a: &mut [f32], hr: &mut [f32], cr: &mut [f32]) {
        let h = hr.len();
        let (xi_, xi) = xi.split_at(h);
        let (xf, xi) = xi.split_at(h);
        let (xg, xo) = xi.split_at(h);
        let (gi, gr) = gr.split_at(h);
        let (gf, gr) = gr.split_at(h);
        let (gg, go) = gr.split_at(h);
        let (ai, a) = a.split_at_mut(h);
        let (af, a) = a.split_at_mut(h);
        let (ag, a) = a.split_at_mut(h);
        let (ao, atc) = a.split_at_mut(h);
        // Every slice exactly h long, so that the loop has no bounds checks and vectorizes.
        let (xo, go, atc, cr) = (&xo[..h], &go[..h], &mut atc[..h], &mut cr[..h]);
        for j in 0..h {
            let i = sigmoid(xi_[j] + gi[j]);
            let f = sigmoid(xf[j] + gf[j]);
            let g = tanh(xg[j] + gg[j]);
            let o = sigmoid(xo[j] + go[j]);
            let c = f * cr[j] + i * g;
            let tc = tanh(c);
            ai[j] = i;
            af[j] = f;
            ag[j] = g;
            ao[j] = o;
            atc[j] = tc;
            cr[j] = c;
            hr[j] = o * tc;
        }
    }
}

/// What the forward pass keeps for the backward pass.
struct Saved<'a> {
    /// `h` before each processing step, `[T, B, H]`.
    hs: &'a [f32],
    /// `c` before each processing step (LSTM), `[T, B, H]`.
    cs: &'a [f32],
    /// Gate activations per step and row, `[T, B, saved·H]`.
    acts: &'a [f32],
    lengths: &'a [usize],
}

/// Gradients for `[xp, h0, w_hh, b_hh, (c0)]` given the packed output gradient `gout [B, T + k, H]`.
fn backward(
    kind: CellKind,
    d: Dims,
    reverse: bool,
    gout: &[f32],
    w_hh: &Tensor,
    sv: Saved,
) -> Vec<Option<Tensor>> {
    let Dims { b, t, h, g, k } = d;
    let w = kind.saved() * h;
    let mut dh = vec![0.0; b * h];
    let mut dc = vec![0.0; if kind == CellKind::Lstm { b * h } else { 0 }];
    for bi in 0..b {
        let o = (bi * (t + k) + t) * h;
        dh[bi * h..(bi + 1) * h].copy_from_slice(&gout[o..o + h]);
        if kind == CellKind::Lstm {
            dc[bi * h..(bi + 1) * h].copy_from_slice(&gout[o + h..o + 2 * h]);
        }
    }
    let mut dxp = fill::zeroed(b * t * g);
    let mut dw = vec![0.0; g * h];
    let mut db = vec![0.0; g];
    let mut dgh = vec![0.0; b * g];
    for s in (0..t).rev() {
        let tt = if reverse { t - 1 - s } else { s };
        dgh.fill(0.0);
        for (bi, &len) in sv.lengths.iter().enumerate() {
            if tt >= len {
                continue;
            }
            let o = (bi * (t + k) + tt) * h;
            let dhr = &mut dh[bi * h..(bi + 1) * h];
            for (x, &go) in dhr.iter_mut().zip(&gout[o..o + h]) {
                *x += go;
            }
            let a = &sv.acts[(s * b + bi) * w..(s * b + bi + 1) * w];
            let dx = &mut dxp[(bi * t + tt) * g..(bi * t + tt + 1) * g];
            let dg = &mut dgh[bi * g..(bi + 1) * g];
            let prev = (s * b + bi) * h;
            match kind {
                CellKind::Gru => gru_backward(a, &sv.hs[prev..prev + h], dhr, dx, dg),
                CellKind::Lstm => lstm_backward(
                    a,
                    &sv.cs[prev..prev + h],
                    dhr,
                    &mut dc[bi * h..(bi + 1) * h],
                    dx,
                    dg,
                ),
            }
        }
        // dh_prev += dgh · W_hh: [B, G]·[G, H]
        gemm::matmul(&mut dh, &dgh, w_hh.data(), b, g, h, false, false, true);
        // dW_hh += dghᵀ · h_prev: [G, B]·[B, H]
        let hp = &sv.hs[s * b * h..(s + 1) * b * h];
        gemm::matmul(&mut dw, &dgh, hp, g, b, h, true, false, true);
        for row in dgh.chunks_exact(g) {
            for (x, &y) in db.iter_mut().zip(row) {
                *x += y;
            }
        }
    }
    let mut grads = vec![
        Some(Tensor::from_vec(dxp, &[b, t, g])),
        Some(Tensor::from_vec(dh, &[b, h])),
        Some(Tensor::from_vec(dw, &[g, h])),
        Some(Tensor::from_vec(db, &[g])),
    ];
    if kind == CellKind::Lstm {
        grads.push(Some(Tensor::from_vec(dc, &[b, h])));
    }
    grads
}

/// One GRU row backward: `dhr` holds `dh'` on entry and the direct part `dh ⊙ z` of `dh_prev` on exit.
fn gru_backward(a: &[f32], hp: &[f32], dhr: &mut [f32], dx: &mut [f32], dg: &mut [f32]) {
    let h = hp.len();
    for j in 0..h {
        let (r, z, n, ghn) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
        let dhj = dhr[j];
        let dn = dhj * (1.0 - z) * (1.0 - n * n);
        let dz = dhj * (hp[j] - n) * z * (1.0 - z);
        let dr = dn * ghn * r * (1.0 - r);
        dx[j] = dr;
        dx[h + j] = dz;
        dx[2 * h + j] = dn;
        dg[j] = dr;
        dg[h + j] = dz;
        dg[2 * h + j] = dn * r;
        dhr[j] = dhj * z;
    }
}

/// One LSTM row backward: `dhr` (`dh'`) is consumed (set to 0, `dh_prev` comes from the product with
/// `W_hh` alone); `dcr` holds `dc'` on entry and `dc_prev` on exit.
fn lstm_backward(
    a: &[f32],
    cp: &[f32],
    dhr: &mut [f32],
    dcr: &mut [f32],
    dx: &mut [f32],
    dg: &mut [f32],
) {
    let h = cp.len();
    for j in 0..h {
        let (i, f, g, o, tc) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j], a[4 * h + j]);
        let dhj = dhr[j];
        let dct = dcr[j] + dhj * o * (1.0 - tc * tc);
        let pre = [
            dct * g * i * (1.0 - i),
            dct * cp[j] * f * (1.0 - f),
            dct * i * (1.0 - g * g),
            dhj * tc * o * (1.0 - o),
        ];
        for (q, &v) in pre.iter().enumerate() {
            dx[q * h + j] = v;
            dg[q * h + j] = v;
        }
        dcr[j] = dct * f;
        dhr[j] = 0.0;
    }
}
