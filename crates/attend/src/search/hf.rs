//! Greedy and beam search exactly as Hugging Face's `generate` runs them (transformers 5, no
//! sampling, `early_stopping = False`), for models imported from Hugging Face or Marian, so that
//! attend emits the very tokens the original emits. attend's own [`beam`](super::beam) search
//! differs in three places: the length penalty, when a sentence stops, and which hypotheses are
//! finished at the length limit.
//!
//! ```text
//! log p  = log_softmax(logits)  then banned tokens (the pad) set to −∞       [rows, V]
//! greedy:  y_t = argmax log p; stop at </s> or after max_len tokens
//! beam K:  acc[b, v] = score_b + log p[b, v]; the 2K best (b, v) over all beams, in order;
//!          a candidate "hits" when v = </s> or the limit is reached;
//!          running ← the K best candidates, those that hit pushed down by −10⁹;
//!          finished ← the K best of finished ∪ {candidate i < K that hits:
//!                                               acc / len^length_penalty}   len = tokens emitted
//!          a sentence is done when its K finished slots are real and
//!          best running score / len^length_penalty ≤ worst finished score
//! ```
//! Scores stay in f32 with Hugging Face's −10⁹ sentinels, so that ties and near-ties fall the same
//! way. The length penalty counts emitted tokens, `</s>` included (Hugging Face's
//! `cur_len + 1 − decoder_prompt_len`). `max_len[i]` is the most tokens sentence `i` emits:
//! Hugging Face's `max_length − 1` (its `max_length` counts the decoder start token).

use super::beam::top_k_log_probs;
use super::greedy::argmax;
use super::{attended_len, Hypothesis};
use crate::data::tokenizer::{BOS, EOS, PAD};
use crate::models::Seq2Seq;
use rayon::prelude::*;
use tensor::ops::softmax::log_softmax_row;

/// Hugging Face's "impossible" score.
const SENTINEL: f32 = -1.0e9;

/// The tokens an imported model never emits: the pad (Hugging Face's `bad_words_ids = [[pad]]`)
/// and `<s>`, which attend's vocabulary adds for the decoder start.
pub const NEVER_EMITTED: [u32; 2] = [PAD, BOS];

/// Hugging Face's `generate`: greedy where `beam ≤ 1`, else beam search with `length_penalty`;
/// [`NEVER_EMITTED`] banned; sentence `i` emits at most `max_len[i]` tokens.
pub fn hf_generate(
    model: &dyn Seq2Seq,
    src: (&[u32], &[usize], usize),
    beam: usize,
    length_penalty: f32,
    max_len: &[usize],
) -> Vec<Hypothesis> {
    if beam <= 1 {
        hf_greedy(model, src, max_len, &NEVER_EMITTED)
    } else {
        hf_beam(model, src, (beam, length_penalty), max_len, &NEVER_EMITTED)
    }
}

/// Log-probabilities of one row of logits with the banned tokens at −∞.
fn log_probs(logits: &[f32], banned: &[u32]) -> Vec<f32> {
    let mut lp = logits.to_vec();
    log_softmax_row(&mut lp);
    for &t in banned {
        if let Some(x) = lp.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
    lp
}

/// The source-side slice of row `r` of a step's weights `[rows, S]` (real tokens only).
fn weights_row(w: &tensor::Tensor, r: usize, len: usize) -> Vec<f32> {
    let s = w.dim(-1);
    w.data()[r * s..r * s + len.min(s)].to_vec()
}

/// Greedy decoding as `generate(num_beams=1)`: `banned` never emitted; row `i` emits at most
/// `max_len[i]` tokens.
pub fn hf_greedy(
    model: &dyn Seq2Seq,
    (src, src_len, src_max): (&[u32], &[usize], usize),
    max_len: &[usize],
    banned: &[u32],
) -> Vec<Hypothesis> {
    tensor::no_grad(|| {
        let rows = src_len.len();
        let mut dec = model.begin(src, src_len, src_max);
        // The attention columns of each sentence (its `</s>` too where the model appends one).
        let cols: Vec<usize> = src_len.iter().map(|&l| attended_len(model, l)).collect();
        let mut out: Vec<Hypothesis> = (0..rows).map(|_| Hypothesis::empty()).collect();
        let mut live: Vec<usize> = (0..rows).filter(|&i| max_len[i] > 0).collect();
        dec.select(&live);
        let mut prev = vec![BOS; live.len()];
        while !live.is_empty() {
            let step = dec.step(&prev);
            let v = step.logits.dim(-1);
            let (mut keep, mut next) = (Vec::new(), Vec::new());
            for (r, &sent) in live.iter().enumerate() {
                let lp = log_probs(&step.logits.data()[r * v..(r + 1) * v], banned);
                let (best, x) = argmax(&lp);
                let h = &mut out[sent];
                h.log_prob += x;
                if let Some(w) = &step.weights {
                    h.attention.push(weights_row(w, r, cols[sent]));
                }
                if best == EOS {
                    continue;
                }
                h.ids.push(best);
                if h.ids.len() < max_len[sent] {
                    keep.push(r);
                    next.push(best);
                }
            }
            live = keep.iter().map(|&r| live[r]).collect();
            dec.select(&keep);
            prev = next;
        }
        for h in &mut out {
            h.score = h.log_prob;
        }
        out
    })
}

/// One hypothesis of a beam: tokens emitted (`</s>` included once finished), its score, attention.
#[derive(Clone)]
struct Slot {
    ids: Vec<u32>,
    score: f32,
    attention: Vec<Vec<f32>>,
    finished: bool,
}

impl Slot {
    fn start(score: f32) -> Slot {
        Slot {
            ids: vec![],
            score,
            attention: vec![],
            finished: false,
        }
    }
}

/// Beam search as `generate(num_beams=K, early_stopping=False)`: returns the best finished
/// hypothesis of each sentence. `length_penalty` is Hugging Face's exponent (1.0 by default).
pub fn hf_beam(
    model: &dyn Seq2Seq,
    (src, src_len, src_max): (&[u32], &[usize], usize),
    (beam, length_penalty): (usize, f32),
    max_len: &[usize],
    banned: &[u32],
) -> Vec<Hypothesis> {
    let k = beam.max(1);
    tensor::no_grad(|| {
        let n = src_len.len();
        let mut dec = model.begin(src, src_len, src_max);
        // The attention columns of each sentence (its `</s>` too where the model appends one).
        let cols: Vec<usize> = src_len.iter().map(|&l| attended_len(model, l)).collect();
        let mut alive: Vec<usize> = (0..n).filter(|&i| max_len[i] > 0).collect();
        dec.select(
            &alive
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, k))
                .collect::<Vec<_>>(),
        );
        let initial: Vec<Slot> = (0..k)
            .map(|b| Slot::start(if b == 0 { 0.0 } else { SENTINEL }))
            .collect();
        let mut running = vec![initial; n];
        let mut finished: Vec<Vec<Slot>> = vec![vec![Slot::start(SENTINEL); k]; n];
        let mut prev = vec![BOS; alive.len() * k];
        let mut len = 0; // tokens emitted so far
        while !alive.is_empty() {
            len += 1;
            let step = dec.step(&prev);
            let v = step.logits.dim(-1);
            let (mut rows, mut next_alive, mut next_prev) = (Vec::new(), Vec::new(), Vec::new());
            // Each row's 2K best tokens, the rows spread over the threads.
            let tops: Vec<Vec<(u32, f32)>> = step
                .logits
                .data()
                .par_chunks(v.max(1))
                .map(|row| top_k_log_probs(row, banned, 2 * k))
                .collect();
            for (a, &sent) in alive.iter().enumerate() {
                // The 2K best continuations over all beams: (accumulated log-prob, beam, token).
                // (Each beam's 2K best hold the 2K best overall.)
                let mut cands: Vec<(f32, usize, u32)> = Vec::with_capacity(2 * k * k);
                for (b, slot) in running[sent].iter().enumerate() {
                    let best = tops[a * k + b].iter();
                    cands.extend(best.map(|&(t, x)| (x + slot.score, b, t)));
                }
                cands.sort_by(|x, y| y.0.total_cmp(&x.0));
                cands.truncate(2 * k);
                let at_limit = len >= max_len[sent];
                let extend = |&(acc, b, t): &(f32, usize, u32)| {
                    let mut s = running[sent][b].clone();
                    s.ids.push(t);
                    s.score = acc;
                    if let Some(w) = &step.weights {
                        s.attention.push(weights_row(w, a * k + b, cols[sent]));
                    }
                    s
                };
                let hits = |t: u32| t == EOS || at_limit;
                // Finished: the K best of the old ones and the hitting top-K candidates.
                let penalty = (len as f32).powf(length_penalty);
                let mut merged = finished[sent].clone();
                for (i, c) in cands.iter().enumerate() {
                    let mut s = extend(c);
                    s.score = c.0 / penalty;
                    s.finished = i < k && hits(c.2);
                    if !s.finished {
                        s.score += SENTINEL;
                    }
                    merged.push(s);
                }
                merged.sort_by(|x, y| y.score.total_cmp(&x.score));
                merged.truncate(k);
                finished[sent] = merged;
                // Running: the K best candidates, those that hit pushed down.
                let mut next: Vec<(f32, usize)> = cands
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (if hits(c.2) { c.0 + SENTINEL } else { c.0 }, i))
                    .collect();
                next.sort_by(|x, y| y.0.total_cmp(&x.0));
                next.truncate(k);
                running[sent] = next
                    .iter()
                    .map(|&(score, i)| Slot {
                        score,
                        ..extend(&cands[i])
                    })
                    .collect();
                // Done when every finished slot is real and the best running hypothesis, at
                // its present length, cannot beat the worst of them; or at the limit.
                let fin = &finished[sent];
                let worst = fin.iter().map(|s| s.score).fold(f32::INFINITY, f32::min);
                let best_running = running[sent][0].score / penalty;
                let improvable = fin
                    .iter()
                    .any(|s| best_running > if s.finished { worst } else { SENTINEL });
                if improvable && !at_limit {
                    next_alive.push(sent);
                    rows.extend(next.iter().map(|&(_, i)| a * k + cands[i].1));
                    next_prev.extend(running[sent].iter().map(|s| *s.ids.last().unwrap_or(&BOS)));
                }
            }
            dec.select(&rows);
            alive = next_alive;
            prev = next_prev;
        }
        finished
            .into_iter()
            .map(|slots| {
                slots
                    .into_iter()
                    .next()
                    .filter(|s| s.finished)
                    .map(into_hypothesis)
                    .unwrap_or_else(Hypothesis::empty)
            })
            .collect()
    })
}

fn into_hypothesis(s: Slot) -> Hypothesis {
    let mut ids = s.ids;
    if ids.last() == Some(&EOS) {
        ids.pop();
    }
    Hypothesis {
        ids,
        log_prob: s.score,
        score: s.score,
        attention: s.attention,
        scores: vec![],
    }
}
