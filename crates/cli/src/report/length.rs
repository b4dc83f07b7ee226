//! BLEU by source sentence length: the test sentences are put into buckets by the number of
//! words of their source side, and each model's corpus BLEU is computed over every bucket on its
//! own. Bahdanau et al. (2015, figure 2) drew this to show that an encoder-decoder without
//! attention degrades as sentences grow, while attention holds up.
//!
//! A bucket `lo-hi` holds the sentences of lo < n ≤ hi words (labelled `lo+1-hi`), `lo-` those of
//! more than lo words (labelled `lo+1+`), so the default `0-10,10-20,20-30,30-40,40-` reads
//! 1-10, 11-20, 21-30, 31-40, 41+. Words are whitespace-separated, counted on the raw source.

use attend::metrics::{bleu::corpus_bleu, MetricsError};
use attend::show::{LengthChart, LengthSeries, ShowError};

/// The default buckets.
pub const DEFAULT_BUCKETS: &str = "0-10,10-20,20-30,30-40,40-";

/// Source lengths lo < n ≤ hi in words; `hi = None` has no upper end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub lo: usize,
    pub hi: Option<usize>,
}

impl Bucket {
    /// Whether a sentence of `words` source words falls in the bucket.
    pub fn contains(&self, words: usize) -> bool {
        words > self.lo && self.hi.is_none_or(|hi| words <= hi)
    }

    /// The inclusive range as a reader expects it: `1-10`, `41+` (`7` when it holds one length).
    pub fn label(&self) -> String {
        match self.hi {
            None => format!("{}+", self.lo + 1),
            Some(hi) if hi == self.lo + 1 => hi.to_string(),
            Some(hi) => format!("{}-{hi}", self.lo + 1),
        }
    }
}

/// Why a length study cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum LengthError {
    /// The bucket list does not parse or is not increasing.
    #[error("--buckets {spec:?}: {message} (example: {DEFAULT_BUCKETS})")]
    Buckets { spec: String, message: String },
    /// A model's hypotheses do not pair up with the test sentences.
    #[error("model {model:?} has {got} translations for {expected} test sentences")]
    Mismatch {
        model: String,
        expected: usize,
        got: usize,
    },
    /// No test sentence falls into any bucket.
    #[error("none of the {0} test sentences falls into a bucket; widen --buckets")]
    NoSentences(usize),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Show(#[from] ShowError),
}

/// Parses `0-10,10-20,40-`: comma-separated `lo-hi` (lo < hi) or a last open `lo-`, in
/// increasing order without overlap.
pub fn parse_buckets(spec: &str) -> Result<Vec<Bucket>, LengthError> {
    let err = |message: String| LengthError::Buckets {
        spec: spec.to_string(),
        message,
    };
    let number = |s: &str| -> Result<usize, LengthError> {
        s.trim()
            .parse()
            .map_err(|_| err(format!("{s:?} is not a whole number of words")))
    };
    let mut out: Vec<Bucket> = Vec::new();
    for part in spec.split(',') {
        let (lo, hi) = part
            .split_once('-')
            .ok_or_else(|| err(format!("{part:?} is not of the form lo-hi or lo-")))?;
        let lo = number(lo)?;
        let hi = match hi.trim() {
            "" => None,
            h => Some(number(h)?),
        };
        if let Some(h) = hi {
            if h <= lo {
                return Err(err(format!("{part:?} is empty: {h} is not above {lo}")));
            }
        }
        if let Some(prev) = out.last() {
            match prev.hi {
                None => return Err(err("only the last bucket may be open (lo-)".to_string())),
                Some(p) if lo < p => {
                    return Err(err(format!(
                        "{part:?} overlaps the bucket before it, which ends at {p}"
                    )))
                }
                Some(_) => {}
            }
        }
        out.push(Bucket { lo, hi });
    }
    Ok(out)
}

/// Number of whitespace-separated words.
pub fn source_words(sentence: &str) -> usize {
    sentence.split_whitespace().count()
}

/// One model's translations of the test set, in test order.
#[derive(Debug, Clone)]
pub struct Translations {
    /// The model's name in the legend and the table.
    pub model: String,
    /// One detokenized translation per test sentence.
    pub hypotheses: Vec<String>,
}

/// The result of a length study.
#[derive(Debug, Clone)]
pub struct LengthStudy {
    /// BLEU per non-empty bucket per model, with the sentence counts; draws the chart and table.
    pub chart: LengthChart,
    /// Labels of the buckets no test sentence fell into (left out of the chart).
    pub empty_buckets: Vec<String>,
    /// Test sentences outside every bucket.
    pub outside: usize,
}

/// Buckets the test `pairs` (source, reference) by source length and scores every model's
/// translations bucket by bucket with corpus BLEU.
pub fn length_study(
    title: &str,
    pairs: &[(String, String)],
    systems: &[Translations],
    buckets: &[Bucket],
) -> Result<LengthStudy, LengthError> {
    for s in systems {
        if s.hypotheses.len() != pairs.len() {
            return Err(LengthError::Mismatch {
                model: s.model.clone(),
                expected: pairs.len(),
                got: s.hypotheses.len(),
            });
        }
    }
    // members[b]: indices of the test sentences in bucket b.
    let members: Vec<Vec<usize>> = buckets
        .iter()
        .map(|b| {
            (0..pairs.len())
                .filter(|&i| b.contains(source_words(&pairs[i].0)))
                .collect()
        })
        .collect();
    let placed: usize = members.iter().map(Vec::len).sum();
    if placed == 0 {
        return Err(LengthError::NoSentences(pairs.len()));
    }
    let kept: Vec<usize> = (0..buckets.len())
        .filter(|&b| !members[b].is_empty())
        .collect();
    let mut series = Vec::with_capacity(systems.len());
    for s in systems {
        let mut bleu = Vec::with_capacity(kept.len());
        for &b in &kept {
            let hyps: Vec<&str> = members[b]
                .iter()
                .map(|&i| s.hypotheses[i].as_str())
                .collect();
            let refs: Vec<&str> = members[b].iter().map(|&i| pairs[i].1.as_str()).collect();
            bleu.push(corpus_bleu(&hyps, &refs)?.score as f32);
        }
        series.push(LengthSeries {
            model: s.model.clone(),
            bleu,
        });
    }
    let chart = LengthChart::new(
        title,
        kept.iter().map(|&b| buckets[b].label()).collect(),
        kept.iter().map(|&b| members[b].len()).collect(),
        series,
    )?;
    Ok(LengthStudy {
        chart,
        empty_buckets: (0..buckets.len())
            .filter(|&b| members[b].is_empty())
            .map(|b| buckets[b].label())
            .collect(),
        outside: pairs.len() - placed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_parse_and_label() {
        let b = parse_buckets(DEFAULT_BUCKETS).unwrap();
        let labels: Vec<String> = b.iter().map(Bucket::label).collect();
        assert_eq!(labels, ["1-10", "11-20", "21-30", "31-40", "41+"]);
        assert!(b[0].contains(1) && b[0].contains(10) && !b[0].contains(11) && !b[0].contains(0));
        assert!(b[4].contains(41) && b[4].contains(1000) && !b[4].contains(40));
        assert_eq!(parse_buckets("4-5").unwrap()[0].label(), "5");
        assert_eq!(parse_buckets(" 0 - 3 , 5-9").unwrap().len(), 2);
    }

    #[test]
    fn bad_buckets_are_errors() {
        for spec in [
            "",
            "10",
            "a-3",
            "5-5",
            "9-3",
            "0-10,5-20",
            "0-,10-20",
            "0-10,,10-20",
        ] {
            let e = parse_buckets(spec).unwrap_err();
            assert!(e.to_string().contains("--buckets"), "{spec}: {e}");
        }
    }
}
