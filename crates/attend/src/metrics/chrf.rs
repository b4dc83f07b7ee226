//! chrF (Popović, 2015, "chrF: character n-gram F-score for automatic MT evaluation"), exactly
//! as sacreBLEU 2.x computes it by default (`CHRF()`: character n-grams n = 1..6, no word n-grams,
//! β = 2, whitespace removed, case-sensitive).
//!
//! Whitespace is deleted from each sentence, then for every order n, summed over the corpus:
//! `hypₙ` hypothesis n-grams (counted only in sentences whose reference has n-grams of that
//! order), `refₙ` reference n-grams and `matchₙ` clipped matches. With
//! `Pₙ = matchₙ / hypₙ`, `Rₙ = matchₙ / refₙ` averaged over the orders where both counts are
//! non-zero (P̄, R̄):
//!
//! ```text
//! chrF = 100 · (1 + β²) · P̄ · R̄ / (β² · P̄ + R̄)        (0 when P̄ + R̄ = 0)
//! ```

use std::collections::HashMap;

use super::{check_lengths, is_py_space, MetricsError};

/// Maximum character n-gram order.
pub const CHAR_ORDER: usize = 6;
/// Recall weight β (β = 2: recall counts twice as much as precision).
pub const BETA: f64 = 2.0;

/// `[hyp, ref, match]` n-gram counts for each order 1..=CHAR_ORDER.
type Stats = [[usize; 3]; CHAR_ORDER];

/// Counts of the character n-grams of each order in `line`, whitespace removed.
fn char_ngrams(chars: &[char]) -> Vec<HashMap<&[char], usize>> {
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut counts = HashMap::new();
            for gram in chars.windows(n) {
                *counts.entry(gram).or_insert(0) += 1;
            }
            counts
        })
        .collect()
}

fn segment_stats(hyp: &str, reference: &str) -> Stats {
    let hyp: Vec<char> = hyp.chars().filter(|&c| !is_py_space(c)).collect();
    let reference: Vec<char> = reference.chars().filter(|&c| !is_py_space(c)).collect();
    let (hyp_grams, ref_grams) = (char_ngrams(&hyp), char_ngrams(&reference));
    let mut stats = [[0; 3]; CHAR_ORDER];
    for (n, (h, r)) in hyp_grams.iter().zip(&ref_grams).enumerate() {
        let hyp_count: usize = h.values().sum();
        let matches: usize = h
            .iter()
            .map(|(gram, &count)| count.min(r.get(gram).copied().unwrap_or(0)))
            .sum();
        // sacreBLEU does not count hypothesis n-grams when the reference has none of that order.
        stats[n] = [
            if r.is_empty() { 0 } else { hyp_count },
            r.values().sum(),
            matches,
        ];
    }
    stats
}

/// The F-score of summed statistics (sacreBLEU's `_compute_f_score` without eps smoothing).
fn f_score(stats: &Stats) -> f64 {
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut orders) = (0.0, 0.0, 0usize);
    for &[n_hyp, n_ref, n_match] in stats {
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    avg_prec /= orders as f64;
    avg_rec /= orders as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
}

/// Corpus chrF (0–100) of `hyps` against `refs` (one reference each, detokenized text); equals
/// sacreBLEU's `CHRF().corpus_score(hyps, [refs]).score`.
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
) -> Result<f64, MetricsError> {
    check_lengths(hyps.len(), refs.len())?;
    let mut total: Stats = [[0; 3]; CHAR_ORDER];
    for (h, r) in hyps.iter().zip(refs) {
        let s = segment_stats(h.as_ref(), r.as_ref());
        for (t, s) in total.iter_mut().zip(s) {
            for k in 0..3 {
                t[k] += s[k];
            }
        }
    }
    Ok(f_score(&total))
}

/// chrF (0–100) of one sentence; equals sacreBLEU's `sentence_chrf(hyp, [reference])`.
pub fn sentence_chrf(hyp: &str, reference: &str) -> f64 {
    f_score(&segment_stats(hyp, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_100_disjoint_is_0_whitespace_ignored() {
        assert!((sentence_chrf("Un chat noir.", "Un chat noir.") - 100.0).abs() < 1e-9);
        assert!((sentence_chrf("Unchat  noir.", "Un chat noir.") - 100.0).abs() < 1e-9);
        assert_eq!(sentence_chrf("xyz", "Un chat noir."), 0.0);
        assert_eq!(sentence_chrf("", "Un chat noir."), 0.0);
        assert!(corpus_chrf(&["a"], &[] as &[&str]).is_err());
    }
}
