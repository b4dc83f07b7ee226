//! Decoding-step attention against a float64 reference on random shapes: keys and values read
//! time-major (strided), batch-major (with an offset, as keys and values side by side) and keys
//! transposed per head; causal offsets, padding with a fully masked batch row, one thread's batch
//! and several threads' worth; weights are distributions over the visible keys.

use tensor::ops::step_attention::{step_attention, Keys, Rows, StepMask, KEY_BLOCK};
use tensor::Rng;

/// Plain float64 attention: `(out [B, n, d], weights [B, H, n, len])` with `visible(b, i, j)`.
#[allow(clippy::too_many_arguments)]
fn reference(
    q: &[f32],
    k: impl Fn(usize, usize) -> Vec<f32>,
    v: impl Fn(usize, usize) -> Vec<f32>,
    (batch, n, heads, len, d): (usize, usize, usize, usize, usize),
    visible: impl Fn(usize, usize, usize) -> bool,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let dh = d / heads;
    let mut out = vec![0.0; batch * n * d];
    let mut w = vec![0.0; batch * heads * n * len];
    for b in 0..batch {
        for i in 0..n {
            for h in 0..heads {
                let c = h * dh..(h + 1) * dh;
                let qi = &q[(b * n + i) * d..][..d];
                let s: Vec<Option<f64>> = (0..len)
                    .map(|j| {
                        visible(b, i, j).then(|| {
                            let kj = k(b, j);
                            scale * c.clone().map(|x| qi[x] as f64 * kj[x] as f64).sum::<f64>()
                        })
                    })
                    .collect();
                let max = s.iter().flatten().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let total: f64 = s.iter().flatten().map(|x| (x - max).exp()).sum();
                for (j, sj) in s.iter().enumerate() {
                    if let Some(sj) = sj {
                        let wj = (sj - max).exp() / total;
                        w[((b * heads + h) * n + i) * len + j] = wj;
                        let vj = v(b, j);
                        for x in c.clone() {
                            out[(b * n + i) * d + x] += wj * vj[x] as f64;
                        }
                    }
                }
            }
        }
    }
    (out, w)
}

fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn time_major_cache_with_causal_offsets_matches_f64() {
    let mut rng = Rng::new(61);
    // (batch, n, heads, d_h, past): a one-position step, several new positions, one head, and a
    // batch large enough for the threaded path.
    for (batch, n, heads, dh, past) in [
        (3, 1, 2, 4, 5),
        (2, 3, 4, 8, 0),
        (1, 2, 1, 5, 3),
        (64, 1, 4, 64, 23),
        (2, 2, 2, 80, 9),
    ] {
        let (len, d) = (past + n, heads * dh);
        // Cache [len, B, d], time-major.
        let (kd, vd) = (
            random(len * batch * d, &mut rng),
            random(len * batch * d, &mut rng),
        );
        let q = random(batch * n * d, &mut rng);
        let rows = |data| Rows {
            data,
            offset: 0,
            batch_stride: d,
            pos_stride: batch * d,
            len,
        };
        let mask = StepMask {
            causal_past: Some(past),
            padding: None,
        };
        let scale = 1.0 / (dh as f32).sqrt();
        let (out, w) = step_attention(
            &q,
            batch,
            n,
            heads,
            Keys::Rows(rows(&kd)),
            rows(&vd),
            mask,
            scale,
        );
        let at = |data: &Vec<f32>| {
            let data = data.clone();
            move |b: usize, j: usize| data[(j * batch + b) * d..][..d].to_vec()
        };
        let (want_out, want_w) = reference(
            &q,
            at(&kd),
            at(&vd),
            (batch, n, heads, len, d),
            |_, i, j| j <= past + i,
            scale as f64,
        );
        let what = format!("B{batch} n{n} H{heads} dh{dh} past{past}");
        assert_close(&format!("{what} out"), &out, &want_out);
        assert_close(&format!("{what} weights"), &w, &want_w);
    }
}

#[test]
fn batch_major_memory_with_padding_matches_f64_and_rows_are_distributions() {
    let mut rng = Rng::new(62);
    // (batch, n, heads, d_h, len, key lengths): batch row 2 of the first sees nothing; the others
    // have more keys than a key block, whole blocks, and head sizes of whole value vectors.
    for (batch, n, heads, dh, len, lengths) in [
        (4, 2, 2, 6, 7, vec![7, 3, 0, 5]),
        (3, 1, 4, 64, 37, vec![37, 17, 1]),
        (2, 2, 1, 16, 16, vec![16, 9]),
    ] {
        let what = format!("B{batch} n{n} H{heads} dh{dh} len{len}");
        let d = heads * dh;
        // Keys and values side by side, [B, len, 2d]: keys at offset 0, values at offset d.
        let kv = random(batch * len * 2 * d, &mut rng);
        let q = random(batch * n * d, &mut rng);
        let padding: Vec<f32> = (0..batch * len)
            .map(|x| if x % len < lengths[x / len] { 0.0 } else { 1.0 })
            .collect();
        let rows = |offset| Rows {
            data: &kv,
            offset,
            batch_stride: len * 2 * d,
            pos_stride: 2 * d,
            len,
        };
        let mask = StepMask {
            causal_past: None,
            padding: Some(&padding),
        };
        let (out, w) = step_attention(&q, batch, n, heads, Keys::Rows(rows(0)), rows(d), mask, 0.3);
        // The same keys transposed per head, [B, H, d_h, len].
        let mut kt = vec![0.0f32; batch * d * len];
        for b in 0..batch {
            for h in 0..heads {
                for x in 0..dh {
                    for j in 0..len {
                        kt[((b * heads + h) * dh + x) * len + j] =
                            kv[(b * len + j) * 2 * d + h * dh + x];
                    }
                }
            }
        }
        let transposed = Keys::Transposed {
            data: &kt,
            len,
            ld: len,
        };
        let (out_t, w_t) = step_attention(&q, batch, n, heads, transposed, rows(d), mask, 0.3);
        // And padded to whole key blocks, the padding filled with values that must not be used.
        let ld = len.next_multiple_of(KEY_BLOCK);
        let mut kt_padded = vec![f32::NAN; batch * d * ld];
        for (src, dst) in kt.chunks_exact(len).zip(kt_padded.chunks_exact_mut(ld)) {
            dst[..len].copy_from_slice(src);
        }
        let padded = Keys::Transposed {
            data: &kt_padded,
            len,
            ld,
        };
        let (out_p, w_p) = step_attention(&q, batch, n, heads, padded, rows(d), mask, 0.3);
        let at = |offset: usize| {
            let kv = kv.clone();
            move |b: usize, j: usize| kv[(b * len + j) * 2 * d + offset..][..d].to_vec()
        };
        let (want_out, want_w) = reference(
            &q,
            at(0),
            at(d),
            (batch, n, heads, len, d),
            |b, _, j| j < lengths[b],
            0.3,
        );
        for (name, (o, w)) in [
            ("rows", (&out, &w)),
            ("transposed keys", (&out_t, &w_t)),
            ("padded transposed keys", (&out_p, &w_p)),
        ] {
            assert_close(&format!("{what} out ({name})"), o, &want_out);
            assert_close(&format!("{what} weights ({name})"), w, &want_w);
        }
        for (r, row) in w.chunks(len).enumerate() {
            let b = r / (heads * n);
            let sum: f32 = row.iter().sum();
            if lengths[b] == 0 {
                assert!(
                    row.iter().all(|&x| x == 0.0),
                    "{what}: fully masked row {r}"
                );
                assert!(out[b * n * d..(b + 1) * n * d].iter().all(|&x| x == 0.0));
            } else {
                assert!((sum - 1.0).abs() < 1e-5, "{what}: row {r} sums to {sum}");
                assert!(
                    row[lengths[b]..].iter().all(|&x| x == 0.0),
                    "{what}: masked keys of row {r}"
                );
            }
        }
    }
}
