//! The fused attention kernel against a plain float64 reference and against the plain path built
//! from engine ops (matmul_t, masked_fill, softmax, matmul): forward and the gradients of Q, K and V
//! on random shapes (odd sizes, several key blocks, T ≠ S, T = 1, causal, padding, fully masked
//! rows), with and without dropout on the probabilities, and finite-difference gradient checks.

use tensor::gradcheck::check_gradients;
use tensor::ops::dropout::dropout_mask;
use tensor::ops::flash_attention::{flash_attention, flash_attention_forward, AttentionDropout};
use tensor::{Rng, Tensor, Var};

/// One attention problem: shapes, masks, inputs and an output gradient.
struct Case {
    b: usize,
    h: usize,
    t: usize,
    s: usize,
    d: usize,
    causal: bool,
    lens: Option<Vec<usize>>,
    /// Dropout on the probabilities: `p` and the seed of the `Rng` its key is drawn from.
    dropout: Option<(f32, u64)>,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(
        b: usize,
        h: usize,
        t: usize,
        s: usize,
        d: usize,
        causal: bool,
        lens: Option<Vec<usize>>,
        rng: &mut Rng,
    ) -> Case {
        Case {
            q: Tensor::randn(&[b, h, t, d], 0.0, 1.0, rng),
            k: Tensor::randn(&[b, h, s, d], 0.0, 1.0, rng),
            v: Tensor::randn(&[b, h, s, d], 0.0, 1.0, rng),
            g: Tensor::randn(&[b, h, t, d], 0.0, 1.0, rng),
            b,
            h,
            t,
            s,
            d,
            causal,
            lens,
            dropout: None,
        }
    }

    fn with_dropout(self, p: f32, seed: u64) -> Case {
        Case {
            dropout: Some((p, seed)),
            ..self
        }
    }

    /// The kernel's dropout: the key a fresh `Rng::new(seed)` draws first, as `Var::dropout` does.
    fn kernel_dropout(&self) -> Option<AttentionDropout> {
        self.dropout.map(|(p, seed)| AttentionDropout {
            p,
            key: Rng::new(seed).next_seed(),
        })
    }

    /// The mask values `[B, H, T, S]` (`1/(1−p)` or 0; all 1 without dropout).
    fn mask_values(&self) -> Vec<f64> {
        let n = self.b * self.h * self.t * self.s;
        match self.kernel_dropout() {
            Some(AttentionDropout { p, key }) => {
                dropout_mask(key, n, p).into_iter().map(f64::from).collect()
            }
            None => vec![1.0; n],
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    fn visible(&self, b: usize, i: usize, j: usize) -> bool {
        let len = self.lens.as_ref().map_or(self.s, |l| l[b]);
        j < len && (!self.causal || j <= i)
    }

    /// The fused kernel on the tape: output and the gradients of q, k, v for `L = Σ out ⊙ g`.
    fn fused(&self) -> [Tensor; 4] {
        let (q, k, v) = self.params();
        let out = flash_attention(
            &q,
            &k,
            &v,
            self.causal,
            self.lens.as_deref(),
            self.scale(),
            self.kernel_dropout(),
        );
        run_backward(out, &self.g, [q, k, v])
    }

    /// The plain path: `dropout(softmax(mask(q kᵀ · scale))) v` from engine ops.
    fn plain(&self) -> [Tensor; 4] {
        let (q, k, v) = self.params();
        let mut mask = vec![0.0; self.b * self.t * self.s];
        for b in 0..self.b {
            for i in 0..self.t {
                for j in 0..self.s {
                    if !self.visible(b, i, j) {
                        mask[(b * self.t + i) * self.s + j] = 1.0;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, &[self.b, 1, self.t, self.s]);
        let weights = q
            .matmul_t(&k, false, true)
            .scale(self.scale())
            .masked_fill(&mask, f32::NEG_INFINITY)
            .softmax();
        let weights = match self.dropout {
            Some((p, seed)) => weights.dropout(p, &mut Rng::new(seed)),
            None => weights,
        };
        let out = weights.matmul(&v);
        run_backward(out, &self.g, [q, k, v])
    }

    fn params(&self) -> (Var, Var, Var) {
        (
            Var::parameter(self.q.clone()),
            Var::parameter(self.k.clone()),
            Var::parameter(self.v.clone()),
        )
    }

    /// Plain float64 attention (dropout mask `M` from [`Case::mask_values`]) and its gradients:
    /// `[out, dq, dk, dv]`, each flattened.
    fn reference(&self) -> [Vec<f64>; 4] {
        let mask = self.mask_values();
        let (t, s, d) = (self.t, self.s, self.d);
        let f = |x: &Tensor| x.data().iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (q, k, v, g) = (f(&self.q), f(&self.k), f(&self.v), f(&self.g));
        let scale = 1.0 / (d as f64).sqrt();
        let mut out = vec![0.0; q.len()];
        let mut dq = vec![0.0; q.len()];
        let mut dk = vec![0.0; k.len()];
        let mut dv = vec![0.0; v.len()];
        for b in 0..self.b {
            for hd in 0..self.h {
                let (qo, ko) = ((b * self.h + hd) * t * d, (b * self.h + hd) * s * d);
                for i in 0..t {
                    let qi = &q[qo + i * d..qo + (i + 1) * d];
                    let gi = &g[qo + i * d..qo + (i + 1) * d];
                    let cols: Vec<usize> = (0..s).filter(|&j| self.visible(b, i, j)).collect();
                    if cols.is_empty() {
                        continue;
                    }
                    let dotp =
                        |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
                    let row = |j: usize, m: &[f64]| m[ko + j * d..ko + (j + 1) * d].to_vec();
                    let scores: Vec<f64> = cols
                        .iter()
                        .map(|&j| scale * dotp(qi, &row(j, &k)))
                        .collect();
                    let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|x| x / z).collect();
                    let m_row = &mask[((b * self.h + hd) * t + i) * s..][..s];
                    // P̃_ij = P_ij M_ij; dP_ij = M_ij (g_i · v_j); dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij)
                    let dp: Vec<f64> = cols
                        .iter()
                        .map(|&j| m_row[j] * dotp(gi, &row(j, &v)))
                        .collect();
                    let pdp: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                    for (n, &j) in cols.iter().enumerate() {
                        let ds = p[n] * (dp[n] - pdp) * scale;
                        let kept = p[n] * m_row[j];
                        for c in 0..d {
                            out[qo + i * d + c] += kept * v[ko + j * d + c];
                            dv[ko + j * d + c] += kept * gi[c];
                            dq[qo + i * d + c] += ds * k[ko + j * d + c];
                            dk[ko + j * d + c] += ds * qi[c];
                        }
                    }
                }
            }
        }
        [out, dq, dk, dv]
    }
}

fn run_backward(out: Var, g: &Tensor, inputs: [Var; 3]) -> [Tensor; 4] {
    let value = out.to_tensor();
    out.backward_with(g.clone());
    let grad = |v: &Var| v.grad().unwrap_or_else(|| Tensor::zeros(v.value().shape()));
    [value, grad(&inputs[0]), grad(&inputs[1]), grad(&inputs[2])]
}

/// Random cases: T and S below, at and past the block sizes (64 queries, 256 keys), T ≠ S, T = 1.
fn random_cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for (n, &d) in [8usize, 16, 64, 8, 16, 64, 16, 8].iter().enumerate() {
        let b = 1 + rng.below(3);
        let h = 1 + rng.below(2);
        let t = if n == 6 { 1 } else { 1 + rng.below(150) };
        let s = if n % 3 == 0 {
            257 + rng.below(120)
        } else {
            1 + rng.below(140)
        };
        for causal in [false, true] {
            for padded in [false, true] {
                // Padding lengths: random, one row fully padded, one unpadded.
                let lens = padded.then(|| {
                    (0..b)
                        .map(|i| match i {
                            0 => 0,
                            1 => s,
                            _ => rng.below(s + 1),
                        })
                        .collect()
                });
                cases.push(Case::new(b, h, t, s, d, causal, lens, rng));
            }
        }
    }
    cases
}

/// The largest `|got − want| / (1 + |want|)` of the kernel's `[out, dq, dk, dv]` against the f64
/// reference's, asserted below `tol`.
fn assert_matches_reference(case: &Case, tol: f64) {
    let got = case.fused();
    let want = case.reference();
    for (name, (g, w)) in ["out", "dq", "dk", "dv"].iter().zip(got.iter().zip(&want)) {
        let err = g
            .data()
            .iter()
            .zip(w)
            .map(|(&a, &b)| (a as f64 - b).abs() / (1.0 + b.abs()))
            .fold(0.0, f64::max);
        assert!(err < tol, "{name}: error {err:e} at {}", describe(case));
    }
}

fn describe(c: &Case) -> String {
    format!(
        "B={} H={} T={} S={} d={} causal={} lens={:?} dropout={:?}",
        c.b, c.h, c.t, c.s, c.d, c.causal, c.lens, c.dropout
    )
}

/// The random cases, each also with dropout (p = 0.3, a seed per case).
fn random_cases_with_dropout(rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for (n, case) in random_cases(rng).into_iter().enumerate() {
        let dropped = Case::new(
            case.b,
            case.h,
            case.t,
            case.s,
            case.d,
            case.causal,
            case.lens.clone(),
            rng,
        )
        .with_dropout(0.3, 100 + n as u64);
        cases.push(case);
        cases.push(dropped);
    }
    cases
}

#[test]
fn forward_and_gradients_match_f64_reference() {
    let mut rng = Rng::new(11);
    for case in random_cases_with_dropout(&mut rng) {
        assert_matches_reference(&case, 2e-5);
    }
}

#[test]
fn equals_plain_engine_path_within_1e_5() {
    let mut rng = Rng::new(12);
    for case in random_cases_with_dropout(&mut rng) {
        let fused = case.fused();
        let plain = case.plain();
        for (name, (f, p)) in ["out", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&plain))
        {
            let err = f
                .data()
                .iter()
                .zip(p.data())
                .map(|(&a, &b)| (a - b).abs() / 1f32.max(b.abs()))
                .fold(0.0, f32::max);
            assert!(err <= 1e-5, "{name}: {err:e} at {}", describe(&case));
        }
    }
}

#[test]
fn gradients_pass_finite_differences_with_and_without_dropout() {
    let mut rng = Rng::new(13);
    // T > S and T < S, causal and not, with a fully padded and a partly padded batch row; with
    // dropout a fixed key makes the dropped function deterministic.
    for dropout in [None, Some(AttentionDropout { p: 0.4, key: 7 })] {
        for (t, s, causal) in [(5, 4, true), (3, 6, false), (4, 4, true)] {
            let q = Tensor::randn(&[3, 2, t, 4], 0.0, 1.0, &mut rng);
            let k = Tensor::randn(&[3, 2, s, 4], 0.0, 1.0, &mut rng);
            let v = Tensor::randn(&[3, 2, s, 4], 0.0, 1.0, &mut rng);
            let lens = [s, 0, s - 1];
            let r = check_gradients(
                |x| flash_attention(&x[0], &x[1], &x[2], causal, Some(&lens), 0.5, dropout),
                &[q, k, v],
                1e-2,
                14,
            );
            assert!(
                r.max_rel_error < 1e-2,
                "T={t} S={s} causal={causal} dropout={dropout:?}: {r:?}"
            );
        }
    }
}

#[test]
fn dropout_p_zero_is_no_dropout_and_p_drops_that_share() {
    let mut rng = Rng::new(20);
    let case = Case::new(2, 3, 40, 300, 16, true, Some(vec![300, 170]), &mut rng);
    let plain = case.fused();
    let zero = Case {
        dropout: Some((0.0, 5)),
        ..Case::new(
            2,
            3,
            40,
            300,
            16,
            true,
            Some(vec![300, 170]),
            &mut Rng::new(20),
        )
    }
    .fused();
    for (a, b) in plain.iter().zip(&zero) {
        assert_eq!(a.data(), b.data());
    }
    // With every value 1, each output is the kept share of its row's probabilities over 1 − p:
    // averaged over many rows it is 1.
    let ones = |shape: &[usize]| Tensor::from_vec(vec![1.0; shape.iter().product()], shape);
    let (q, k) = (
        Tensor::zeros(&[4, 4, 64, 8]),
        Tensor::zeros(&[4, 4, 500, 8]),
    );
    let v = Var::constant(ones(&[4, 4, 500, 8]));
    let dropout = Some(AttentionDropout { p: 0.25, key: 3 });
    let out = flash_attention(
        &Var::constant(q),
        &Var::constant(k),
        &v,
        false,
        None,
        1.0,
        dropout,
    )
    .to_tensor();
    let mean = out.data().iter().map(|&x| x as f64).sum::<f64>() / out.numel() as f64;
    assert!((mean - 1.0).abs() < 0.01, "mean kept share {mean}");
}

/// Keys a query does not see (causally later, or padding) with scores far above the visible ones
/// must not enter its softmax, not even through the running maximum: were they counted there, every
/// visible `exp(s − max)` would underflow to 0.
#[test]
fn hidden_keys_with_huge_scores_change_nothing() {
    let mut rng = Rng::new(21);
    for causal in [true, false] {
        let (t, s, d) = (70, 300, 16);
        let mut case = Case::new(2, 1, t, s, d, causal, Some(vec![280, 40]), &mut rng);
        // Keys 41.. of every row point along query 40, 30× longer: scores ≈ 120 for it, hidden
        // from it by the causal mask (and by the padding in batch row 1), although keys 41..47
        // lie in the register tiles that the score product computes in full next to the diagonal.
        let q0: Vec<f32> = case.q.data()[40 * d..41 * d].to_vec();
        let mut k = case.k.data().to_vec();
        for b in 0..2 {
            for j in 41..s {
                for (x, &q) in k[(b * s + j) * d..][..d].iter_mut().zip(&q0) {
                    *x = 30.0 * q;
                }
            }
        }
        case.k = Tensor::from_vec(k, &[2, 1, s, d]);
        assert_matches_reference(&case, 1e-4);
    }
}

#[test]
fn fully_masked_rows_give_zeros_and_infinite_log_sum_exp() {
    let mut rng = Rng::new(15);
    let case = Case::new(2, 1, 3, 5, 8, true, Some(vec![0, 5]), &mut rng);
    let (out, lse) = flash_attention_forward(
        &case.q,
        &case.k,
        &case.v,
        true,
        case.lens.as_deref(),
        case.scale(),
    );
    assert!(out.data()[..3 * 8].iter().all(|&x| x == 0.0));
    assert!(lse[..3].iter().all(|&x| x == f32::INFINITY));
    assert!(lse[3..].iter().all(|x| x.is_finite()));
    let [_, dq, dk, dv] = case.fused();
    assert!(dq.data()[..3 * 8].iter().all(|&x| x == 0.0));
    assert!(dk.data()[..5 * 8].iter().all(|&x| x == 0.0));
    assert!(dv.data()[..5 * 8].iter().all(|&x| x == 0.0));
}

#[test]
fn log_sum_exp_is_that_of_the_scaled_scores() {
    let mut rng = Rng::new(16);
    let case = Case::new(1, 2, 70, 300, 16, false, None, &mut rng);
    let (_, lse) = flash_attention_forward(&case.q, &case.k, &case.v, false, None, case.scale());
    let scale = case.scale() as f64;
    for (row, &got) in lse.iter().enumerate() {
        let (hd, i) = (row / case.t, row % case.t);
        let qi = &case.q.data()[(hd * case.t + i) * 16..(hd * case.t + i + 1) * 16];
        let scores: Vec<f64> = (0..case.s)
            .map(|j| {
                let kj = &case.k.data()[(hd * case.s + j) * 16..(hd * case.s + j + 1) * 16];
                scale
                    * qi.iter()
                        .zip(kj)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
            })
            .collect();
        let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let want = mx + scores.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
        assert!(
            (got as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{got} vs {want}"
        );
    }
}

#[test]
#[should_panic(expected = "key-padding lengths")]
fn padding_longer_than_the_keys_is_rejected() {
    let q = Var::constant(Tensor::zeros(&[1, 1, 2, 4]));
    let k = Var::constant(Tensor::zeros(&[1, 1, 3, 4]));
    flash_attention(&q, &k, &k, false, Some(&[4]), 0.5, None);
}

#[test]
#[should_panic(expected = "differ in batch, heads or head size")]
fn mismatched_head_sizes_are_rejected() {
    let q = Var::constant(Tensor::zeros(&[1, 1, 2, 4]));
    let k = Var::constant(Tensor::zeros(&[1, 1, 3, 8]));
    flash_attention(&q, &k, &k, false, None, 0.5, None);
}

#[test]
fn no_keys_or_no_queries_give_zeros() {
    let mut rng = Rng::new(17);
    for (t, s) in [(3, 0), (0, 4), (0, 0)] {
        let case = Case::new(2, 2, t, s, 8, false, None, &mut rng);
        let [out, dq, dk, dv] = case.fused();
        assert_eq!(out.shape(), &[2, 2, t, 8]);
        assert_eq!(dk.shape(), &[2, 2, s, 8]);
        for x in [&out, &dq, &dk, &dv] {
            assert!(x.data().iter().all(|&v| v == 0.0), "T={t} S={s}");
        }
    }
}
