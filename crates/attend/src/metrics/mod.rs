//! Translation quality metrics, computed exactly as sacreBLEU 2.x does with its defaults, so that
//! numbers are comparable with published ones: BLEU (13a tokenization, 4-grams, exponential
//! smoothing, brevity penalty) and chrF (character 6-grams, β = 2).
//!
//! Both take detokenized text: score `Tokenizer::decode` output against raw references.

pub mod bleu;
pub mod chrf;

/// sacreBLEU's signature of the BLEU that [`bleu::corpus_bleu`] computes (one reference, mixed
/// case, 13a tokenization, exponential smoothing), as `sacrebleu.BLEU().get_signature()` prints it
/// for the version the golden fixtures (`tests/fixtures/bleu/`) were made with.
pub const BLEU_SIGNATURE: &str = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0";

/// sacreBLEU's signature of the chrF that [`chrf::corpus_chrf`] computes (character 6-grams, no
/// word n-grams, whitespace removed), as `sacrebleu.CHRF().get_signature()` prints it.
pub const CHRF_SIGNATURE: &str = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0";

/// Why a score cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// Hypotheses and references must pair up line by line.
    #[error("{hyps} hypotheses but {refs} references; they must pair up line by line")]
    LengthMismatch {
        /// Number of hypotheses.
        hyps: usize,
        /// Number of references.
        refs: usize,
    },
}

/// Checks that there are as many hypotheses as references.
fn check_lengths(hyps: usize, refs: usize) -> Result<(), MetricsError> {
    if hyps == refs {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { hyps, refs })
    }
}

/// Python's `str.isspace` for one character, which sacreBLEU's `split()` and `rstrip()` use:
/// Unicode White_Space plus the information separators U+001C–U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
