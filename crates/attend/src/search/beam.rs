//! Batched beam search with a length penalty and n-best lists.
//!
//! Every sentence keeps `K` hypotheses; all sentences' hypotheses are decoded together as the rows
//! of one batch. At each step every live hypothesis is extended by each token, the best `2K`
//! extensions of a sentence are considered in order: one ending in EOS is finished (scored with
//! the length penalty), the others fill the `K` places of the next step. A sentence is done when
//! it has `K` finished hypotheses or after `max_len` tokens — its own limit with
//! [`beam_search_with_limits`] — (then its live hypotheses finish as they are). Length penalty (Wu et al. 2016): `score = log P / ((5 + |y|) / 6)^α`; `α = 0` ranks by
//! log-probability. With `K = 1` this is exactly greedy decoding.

use super::{attended_len, Hypothesis};
use crate::data::tokenizer::{BOS, EOS};
use crate::models::Seq2Seq;
use tensor::ops::softmax::log_softmax_row;

/// Beam search settings.
#[derive(Debug, Clone, Copy)]
pub struct BeamConfig {
    /// Hypotheses kept per sentence (`K`).
    pub beam: usize,
    /// Length-penalty exponent `α` (0 = none).
    pub alpha: f32,
    /// Most tokens emitted per sentence.
    pub max_len: usize,
    /// Hypotheses returned per sentence (≤ `beam`), best first.
    pub n_best: usize,
}

/// The length penalty `((5 + len) / 6)^α`.
pub fn length_penalty(len: usize, alpha: f32) -> f32 {
    ((5.0 + len as f32) / 6.0).powf(alpha)
}

#[derive(Clone)]
struct Beam {
    ids: Vec<u32>,
    log_prob: f32,
    attention: Vec<Vec<f32>>,
    scores: Vec<Vec<f32>>,
}

/// Decodes every row of `src` with beam search; returns, per sentence, up to `n_best` hypotheses
/// sorted by score (best first).
pub fn beam_search(
    model: &dyn Seq2Seq,
    src: &[u32],
    src_len: &[usize],
    src_max: usize,
    cfg: BeamConfig,
) -> Vec<Vec<Hypothesis>> {
    let limits = vec![cfg.max_len; src_len.len()];
    beam_search_with_limits(model, src, src_len, src_max, cfg, &limits)
}

/// As [`beam_search`], with a limit per sentence in place of `cfg.max_len`: sentence `i` emits at
/// most `max_len[i]` tokens, so that its output does not depend on the other sentences of its
/// batch.
pub fn beam_search_with_limits(
    model: &dyn Seq2Seq,
    src: &[u32],
    src_len: &[usize],
    src_max: usize,
    cfg: BeamConfig,
    max_len: &[usize],
) -> Vec<Vec<Hypothesis>> {
    assert_eq!(
        max_len.len(),
        src_len.len(),
        "beam search: one limit per sentence"
    );
    let k = cfg.beam.max(1);
    let n_best = cfg.n_best.clamp(1, k);
    tensor::no_grad(|| {
        let n = src_len.len();
        let mut dec = model.begin(src, src_len, src_max);
        // The attention columns of each sentence (its `</s>` too where the model appends one).
        let cols: Vec<usize> = src_len.iter().map(|&l| attended_len(model, l)).collect();
        // Row r of the decoder belongs to sentence alive[r / k].
        let expand: Vec<usize> = (0..n).flat_map(|s| std::iter::repeat_n(s, k)).collect();
        dec.select(&expand);
        let empty = Beam {
            ids: vec![],
            log_prob: 0.0,
            attention: vec![],
            scores: vec![],
        };
        let mut alive: Vec<usize> = (0..n).collect();
        let steps = max_len.iter().copied().max().unwrap_or(0);
        // Only the first beam of each sentence is real at the start; the others are -inf copies.
        let mut beams: Vec<Vec<Beam>> = (0..n)
            .map(|_| {
                (0..k)
                    .map(|i| Beam {
                        log_prob: if i == 0 { 0.0 } else { f32::NEG_INFINITY },
                        ..empty.clone()
                    })
                    .collect()
            })
            .collect();
        let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); n];
        let mut prev = vec![BOS; n * k];
        for t in 0..steps {
            // A sentence with a limit of 0 emits nothing (and has no hypothesis).
            if alive.iter().any(|&sent| t >= max_len[sent]) {
                let keep: Vec<usize> = (0..alive.len())
                    .filter(|&a| t < max_len[alive[a]])
                    .collect();
                let rows: Vec<usize> = keep.iter().flat_map(|&a| a * k..(a + 1) * k).collect();
                prev = rows.iter().map(|&r| prev[r]).collect();
                alive = keep.iter().map(|&a| alive[a]).collect();
                dec.select(&rows);
            }
            if alive.is_empty() {
                break;
            }
            let step = dec.step(&prev);
            let v = step.logits.dim(-1);
            let mut next_rows = Vec::new();
            let mut next_alive = Vec::new();
            let mut next_prev = Vec::new();
            for (a, &sent) in alive.iter().enumerate() {
                // Candidate extensions (total log-prob, beam, token).
                let mut cands: Vec<(f32, usize, u32)> = Vec::with_capacity(2 * k * k);
                for (b, beam) in beams[sent].iter().enumerate() {
                    let row = a * k + b;
                    let base = beam.log_prob;
                    if base == f32::NEG_INFINITY {
                        continue;
                    }
                    let mut lp = step.logits.data()[row * v..(row + 1) * v].to_vec();
                    log_softmax_row(&mut lp);
                    for (tok, x) in top_k(&lp, 2 * k) {
                        cands.push((base + x, b, tok));
                    }
                }
                cands.sort_by(|x, y| y.0.total_cmp(&x.0));
                let mut new_beams: Vec<Beam> = Vec::with_capacity(k);
                let mut src_rows = Vec::with_capacity(k);
                for &(total, b, tok) in &cands {
                    let row = a * k + b;
                    let mut beam = beams[sent][b].clone();
                    if let Some(w) = &step.weights {
                        let s = w.dim(-1);
                        beam.attention
                            .push(w.data()[row * s..row * s + cols[sent]].to_vec());
                    }
                    if let Some(sc) = &step.scores {
                        let s = sc.dim(-1);
                        beam.scores
                            .push(sc.data()[row * s..row * s + cols[sent]].to_vec());
                    }
                    beam.log_prob = total;
                    if tok == EOS {
                        let len = beam.ids.len() + 1;
                        finished[sent].push(finish(beam, len, cfg.alpha));
                        if finished[sent].len() >= k {
                            break;
                        }
                        continue;
                    }
                    beam.ids.push(tok);
                    new_beams.push(beam);
                    src_rows.push(row);
                    if new_beams.len() == k {
                        break;
                    }
                }
                let last_step = t + 1 == max_len[sent];
                let done = finished[sent].len() >= k || new_beams.is_empty() || last_step;
                if done {
                    if finished[sent].len() < n_best || last_step {
                        for beam in new_beams {
                            let len = beam.ids.len();
                            finished[sent].push(finish(beam, len, cfg.alpha));
                        }
                    }
                    continue;
                }
                while new_beams.len() < k {
                    // Too few candidates (tiny vocabulary): fill with dead copies.
                    let mut dead = new_beams[0].clone();
                    dead.log_prob = f32::NEG_INFINITY;
                    new_beams.push(dead);
                    src_rows.push(src_rows[0]);
                }
                next_prev.extend(
                    new_beams
                        .iter()
                        .map(|b| b.ids.last().copied().unwrap_or(BOS)),
                );
                next_rows.extend(src_rows);
                beams[sent] = new_beams;
                next_alive.push(sent);
            }
            if next_alive.is_empty() {
                break;
            }
            dec.select(&next_rows);
            alive = next_alive;
            prev = next_prev;
        }
        finished
            .into_iter()
            .map(|mut hyps| {
                hyps.retain(|h| h.log_prob.is_finite());
                hyps.sort_by(|x, y| y.score.total_cmp(&x.score));
                hyps.truncate(n_best);
                hyps
            })
            .collect()
    })
}

fn finish(beam: Beam, len: usize, alpha: f32) -> Hypothesis {
    Hypothesis {
        score: beam.log_prob / length_penalty(len, alpha),
        ids: beam.ids,
        log_prob: beam.log_prob,
        attention: beam.attention,
        scores: beam.scores,
    }
}

/// The `k` best `(token, log-probability)` of one row of logits, banned tokens at −∞, largest
/// first (ties: lower index first): exactly the `k` largest entries of the row's
/// [`log_softmax_row`] (the same `x − logsumexp` per
/// entry), without writing the row of log-probabilities.
///
/// ```text
/// lse = max(x) + ln Σ exp(x − max(x));   lp_v = x_v − lse  (−∞ where v is banned)
/// ```
pub fn top_k_log_probs(logits: &[f32], banned: &[u32], k: usize) -> Vec<(u32, f32)> {
    let m = tensor::kernels::math::max(logits);
    let lse = m + tensor::kernels::math::sum_exp_shifted(logits, m).ln();
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &x) in logits.iter().enumerate() {
        let mut lp = x - lse;
        if best.len() == k && lp <= best[k - 1].1 {
            continue;
        }
        if banned.contains(&(i as u32)) {
            lp = f32::NEG_INFINITY;
            if best.len() == k {
                continue;
            }
        }
        let pos = best.iter().position(|&(_, y)| lp > y).unwrap_or(best.len());
        best.insert(pos, (i as u32, lp));
        best.truncate(k);
    }
    best
}

/// The `k` largest entries of `row` as `(index, value)`, largest first (ties: lower index first).
pub(super) fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        if best.len() == k && x <= best[k - 1].1 {
            continue;
        }
        let pos = best.iter().position(|&(_, y)| x > y).unwrap_or(best.len());
        best.insert(pos, (i as u32, x));
        best.truncate(k);
    }
    best
}
