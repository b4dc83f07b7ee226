//! Cross-entropy over the last axis with label smoothing and an ignored (padding) index; fused with
//! log-softmax.
//!
//! For logits `z [N, V]` and targets `y [N]`, with `log p = log_softmax(z)` and smoothing `ε`:
//! `ℓ_i = (1 − ε)(−log p_{i,y_i}) + ε · mean_v(−log p_{i,v})` (PyTorch's definition), and the loss is the
//! mean of `ℓ_i` over the rows whose target is not the ignored index.
//! Backward: `dz_i = (p_i − q_i) / n`, `q_i = (1 − ε)·onehot(y_i) + ε/V`; ignored rows get zero.

use crate::kernels::fill;
use crate::kernels::isa::simd_fn;
use crate::kernels::math::exp;
use crate::ops::softmax::log_softmax_row;
use crate::tensor::Tensor;
use crate::var::Var;
use rayon::prelude::*;

/// Sum of the unsmoothed negative log-likelihood and the number of counted rows (for perplexity).
pub fn nll_sum(logits: &Tensor, targets: &[u32], ignore: Option<u32>) -> (f64, usize) {
    let v = logits.dim(-1);
    assert_eq!(
        logits.numel() / v,
        targets.len(),
        "nll_sum: {} rows, {} targets",
        logits.numel() / v,
        targets.len()
    );
    let mut sum = 0.0;
    let mut n = 0;
    let mut row = vec![0.0; v];
    for (r, &y) in logits.data().chunks_exact(v).zip(targets) {
        if Some(y) == ignore {
            continue;
        }
        row.copy_from_slice(r);
        log_softmax_row(&mut row);
        sum -= row[y as usize] as f64;
        n += 1;
    }
    (sum, n)
}

impl Var {
    /// Mean label-smoothed cross-entropy of `self` (logits `[..., V]`) against `targets` (one per row),
    /// skipping rows whose target is `ignore`. A batch whose rows are all ignored gives 0.
    pub fn cross_entropy(&self, targets: &[u32], ignore: Option<u32>, smoothing: f32) -> Var {
        let logits = self.value();
        let v = logits.dim(-1);
        let rows = logits.numel() / v;
        assert_eq!(
            rows,
            targets.len(),
            "cross_entropy: {rows} rows, {} targets",
            targets.len()
        );
        assert!(
            targets
                .iter()
                .all(|&y| Some(y) == ignore || (y as usize) < v),
            "cross_entropy: target ≥ {v}"
        );
        // Per row: log-probabilities (kept for backward as probabilities) and the loss.
        let mut logp = fill::copied(logits.data());
        let per_row: Vec<f64> = logp
            .par_chunks_mut(v)
            .zip(targets.par_iter())
            .map(|(row, &y)| {
                if Some(y) == ignore {
                    return 0.0;
                }
                log_softmax_row(row);
                let nll = -row[y as usize] as f64;
                let mean_nll = -row.iter().map(|&x| x as f64).sum::<f64>() / v as f64;
                (1.0 - smoothing as f64) * nll + smoothing as f64 * mean_nll
            })
            .collect();
        let count = targets.iter().filter(|&&y| Some(y) != ignore).count();
        let loss = if count == 0 {
            0.0
        } else {
            per_row.iter().sum::<f64>() / count as f64
        };
        drop(logits);
        let targets = targets.to_vec();
        Var::from_op(
            Tensor::scalar(loss as f32),
            vec![self.clone()],
            Box::new(move |g, _, p| {
                let shape = p[0].value().shape().to_vec();
                let mut dz = fill::zeroed(logp.len());
                if count > 0 {
                    let scale = g.item() / count as f32;
                    let off = smoothing / v as f32;
                    dz.par_chunks_mut(v)
                        .zip(logp.par_chunks(v))
                        .zip(targets.par_iter())
                        .for_each(|((dz, lp), &y)| {
                            if Some(y) == ignore {
                                return;
                            }
                            grad_row(dz, lp, off, scale);
                            dz[y as usize] -= (1.0 - smoothing) * scale;
                        });
                }
                vec![Some(Tensor::from_vec(dz, &shape))]
            }),
        )
    }
}

simd_fn! {
    /// `dz = (e^{log p} − off) · scale` for one row (the target's share is subtracted by the caller).
    fn grad_row(dz: &mut [f32], logp: &[f32], off: f32, scale: f32) {
        for (d, &l) in dz.iter_mut().zip(logp) {
            *d = (exp(l) - off) * scale;
        }
    }
}
