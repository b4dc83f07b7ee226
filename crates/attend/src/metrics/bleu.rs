//! BLEU (Papineni et al., 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation"),
//! exactly as sacreBLEU 2.x computes it by default (`BLEU()`: tokenizer 13a, case-sensitive,
//! 4-grams, `exp` smoothing, one reference).
//!
//! For hypotheses `h` and references `r`, after 13a tokenization, summed over the corpus:
//!
//! ```text
//! pₙ  = 100 · Σ min(count_h(g), count_r(g)) / Σ count_h(g)     over n-grams g, n = 1..4
//! BP  = 1                   if c ≥ r_len        c = hypothesis tokens, r_len = reference tokens
//!     = exp(1 − r_len / c)  otherwise (0 if c = 0)
//! BLEU = BP · exp(¼ Σₙ ln pₙ)
//! ```
//!
//! Smoothing (`exp`, NIST / mteval-v13a): the k-th order with zero matches gets
//! `pₙ = 100 / (2ᵏ · totalₙ)`. If no n-gram matches at all the score is 0; if an order has no
//! hypothesis n-grams, it and higher orders keep `pₙ = 0` (log floored to −9999999999), so the
//! score is ≈ 0. [`sentence_bleu`] uses sacreBLEU's `sentence_bleu` default `effective_order`:
//! the mean runs only over orders that the hypothesis has.

use std::collections::HashMap;

use serde::Serialize;

use super::{check_lengths, is_py_space, MetricsError};

/// Maximum n-gram order.
pub const MAX_ORDER: usize = 4;

/// A BLEU score with its parts, as sacreBLEU's `BLEUScore` reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU, 0–100.
    pub score: f64,
    /// Smoothed n-gram precisions p₁…p₄, each 0–100.
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty, 0–1.
    pub bp: f64,
    /// Hypothesis length in 13a tokens.
    pub sys_len: usize,
    /// Reference length in 13a tokens.
    pub ref_len: usize,
    /// Matched (clipped) n-grams per order.
    pub counts: [usize; MAX_ORDER],
    /// Hypothesis n-grams per order.
    pub totals: [usize; MAX_ORDER],
}

/// Sufficient statistics of one or more segments.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    sys_len: usize,
    ref_len: usize,
    counts: [usize; MAX_ORDER],
    totals: [usize; MAX_ORDER],
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_ORDER {
            self.counts[n] += other.counts[n];
            self.totals[n] += other.totals[n];
        }
    }
}

/// The mteval-v13a tokenization used by sacreBLEU (`Tokenizer13a`): unescapes `&quot; &amp; &lt;
/// &gt;`, splits off ASCII punctuation and symbols, splits `.` and `,` except between digits, splits
/// `-` after a digit, and collapses whitespace. Returns the tokens.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    // sacreBLEU strips trailing whitespace (`rstrip`) before tokenizing.
    let mut line = line
        .trim_end_matches(is_py_space)
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let chars: Vec<char> = format!(" {line} ").chars().collect();
    // r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' → r' \1 '
    let mut spaced = Vec::with_capacity(chars.len() * 2);
    for c in chars {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    let is_digit = |c: char| c.is_ascii_digit();
    let is_dot_comma = |c: char| c == '.' || c == ',';
    // r'([^0-9])([\.,])' → r'\1 \2 '
    let spaced = substitute_pairs(
        &spaced,
        |a, b| !is_digit(a) && is_dot_comma(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    // r'([\.,])([^0-9])' → r' \1 \2'
    let spaced = substitute_pairs(
        &spaced,
        |a, b| is_dot_comma(a) && !is_digit(b),
        |a, b| vec![' ', a, ' ', b],
    );
    // r'([0-9])(-)' → r'\1 \2 '
    let spaced = substitute_pairs(
        &spaced,
        |a, b| is_digit(a) && b == '-',
        |a, b| vec![a, ' ', b, ' '],
    );
    spaced
        .into_iter()
        .collect::<String>()
        .split(is_py_space)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Python `re.sub` for a two-character pattern: scanning left to right, each non-overlapping pair
/// `(a, b)` with `matches(a, b)` is replaced by `replace(a, b)` and the scan resumes after it.
fn substitute_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Counts of all n-grams of orders 1..=MAX_ORDER.
fn ngram_counts(tokens: &[String]) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// Statistics of one hypothesis against one reference.
fn segment_stats(hyp: &str, reference: &str) -> Stats {
    let hyp = tokenize_13a(hyp);
    let reference = tokenize_13a(reference);
    let ref_counts = ngram_counts(&reference);
    let mut stats = Stats {
        sys_len: hyp.len(),
        ref_len: reference.len(),
        ..Stats::default()
    };
    for (gram, count) in ngram_counts(&hyp) {
        let n = gram.len() - 1;
        stats.totals[n] += count;
        stats.counts[n] += count.min(ref_counts.get(gram).copied().unwrap_or(0));
    }
    stats
}

/// sacreBLEU's `my_log`: ln, with ln 0 floored to −9999999999.
fn floored_ln(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// sacreBLEU's `compute_bleu` with `exp` smoothing.
fn compute(stats: &Stats, effective_order: bool) -> BleuScore {
    let Stats {
        sys_len,
        ref_len,
        counts,
        totals,
    } = *stats;
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let score = if counts.iter().all(|&c| c == 0) {
        0.0
    } else {
        let mut smooth = 1.0;
        let mut order = MAX_ORDER;
        for n in 0..MAX_ORDER {
            if totals[n] == 0 {
                break;
            }
            if effective_order {
                order = n + 1;
            }
            precisions[n] = if counts[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * totals[n] as f64)
            } else {
                100.0 * counts[n] as f64 / totals[n] as f64
            };
        }
        let log_sum: f64 = precisions[..order].iter().map(|&p| floored_ln(p)).sum();
        bp * (log_sum / order as f64).exp()
    };
    BleuScore {
        score,
        precisions,
        bp,
        sys_len,
        ref_len,
        counts,
        totals,
    }
}

/// Corpus BLEU of `hyps` against `refs` (one reference per hypothesis, detokenized text);
/// equals sacreBLEU's `BLEU().corpus_score(hyps, [refs])`.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
) -> Result<BleuScore, MetricsError> {
    check_lengths(hyps.len(), refs.len())?;
    let mut total = Stats::default();
    for (h, r) in hyps.iter().zip(refs) {
        total.add(&segment_stats(h.as_ref(), r.as_ref()));
    }
    Ok(compute(&total, false))
}

/// BLEU of one sentence; equals sacreBLEU's `sentence_bleu(hyp, [reference])` (exp smoothing,
/// effective order).
pub fn sentence_bleu(hyp: &str, reference: &str) -> BleuScore {
    compute(&segment_stats(hyp, reference), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_13a_splits_punctuation_but_not_numbers() {
        let toks = tokenize_13a("J'ai 3,5 kg, (voilà) & 1.000 pièces-d'or: 12-3.  ");
        let expected = "J'ai 3,5 kg , ( voilà ) & 1.000 pièces-d'or : 12 - 3 .";
        assert_eq!(toks.join(" "), expected);
        assert_eq!(
            tokenize_13a("a &amp;quot; b &lt;i&gt;").join(" "),
            "a & quot ; b < i >"
        );
    }

    #[test]
    fn identical_corpus_scores_100_and_disjoint_scores_0() {
        let refs = ["Un chat noir dort sur le tapis.", "Il est rempli d'or."];
        let same = corpus_bleu(&refs, &refs).unwrap();
        assert!((same.score - 100.0).abs() < 1e-9, "{same:?}");
        assert_eq!(same.bp, 1.0);
        let none = corpus_bleu(&["xyz qqq"; 2], &refs).unwrap();
        assert_eq!((none.score, none.precisions), (0.0, [0.0; 4]));
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = corpus_bleu(&["a"], &["a", "b"]).unwrap_err();
        assert_eq!(err, MetricsError::LengthMismatch { hyps: 1, refs: 2 });
    }
}
