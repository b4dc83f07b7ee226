//! Word alignment read off the attention, as text: for each target word, the source word it
//! attended to most, with the weight.
//!
//! The tokenizers split words into pieces; a piece that starts with `▁` (or is a special token)
//! starts a word, the others continue it. With target word u (a set of pieces i) and source word w
//! (pieces j), the weight of the link is the mean over u's pieces of the attention on w's pieces:
//!
//! ```text
//! A(u, w) = (1/|u|) Σ_{i∈u} Σ_{j∈w} α_ij        Σ_w A(u, w) = 1 for every u
//! ```
//!
//! and the link of u is argmax_w A(u, w) (Bahdanau et al. 2015, §5.2.1: the alignment is the
//! attention read as a soft alignment).

use super::plots::{display_token, is_special};
use super::{check_finite, ShowError};

/// One target word and the source word it attended to most.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WordLink {
    /// The target word (its pieces joined, markers dropped).
    pub target: String,
    /// The source word with the largest A(u, w).
    pub source: String,
    /// A(u, w) of that source word, in [0, 1].
    pub weight: f32,
}

/// Groups token strings (with their `▁` markers) into words: the index range of each word's
/// pieces and the word as text.
fn words(tokens: &[String]) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let starts = t.starts_with('▁') || is_special(t) || out.is_empty();
        // A lone `▁` (a space before an isolated punctuation mark) only marks the word start.
        let piece = if t == "▁" {
            String::new()
        } else {
            display_token(t)
        };
        match out.last_mut() {
            Some((range, text)) if !starts => {
                range.end = i + 1;
                text.push_str(&piece);
            }
            _ => out.push((i..i + 1, piece)),
        }
    }
    for (_, text) in &mut out {
        if text.is_empty() {
            *text = "▁".to_string();
        }
    }
    out
}

/// The word alignment of a translation. `source` and `target` are token strings as the tokenizer
/// stores them (with `▁`); `attention` has one row per target token over the source tokens (a
/// trailing EOS row, as [`Hypothesis`](crate::search::Hypothesis) keeps it, is ignored).
pub fn word_alignment(
    source: &[String],
    target: &[String],
    attention: &[Vec<f32>],
) -> Result<Vec<WordLink>, ShowError> {
    if source.is_empty() {
        return Err(ShowError::Empty("source sentence".to_string()));
    }
    if attention.len() < target.len() {
        return Err(ShowError::Shape {
            what: "attention rows (one per target token)".to_string(),
            expected: target.len(),
            got: attention.len(),
        });
    }
    for row in &attention[..target.len()] {
        super::check_len(
            "attention weights per row (one per source token)",
            source.len(),
            row.len(),
        )?;
        check_finite("attention weights", row)?;
    }
    let src_words = words(source);
    let links = words(target)
        .into_iter()
        .map(|(pieces, text)| {
            let n = pieces.len() as f32;
            let (best, weight) = src_words
                .iter()
                .map(|(cols, _)| {
                    let mass: f32 = attention[pieces.clone()]
                        .iter()
                        .map(|row| row[cols.clone()].iter().sum::<f32>())
                        .sum();
                    mass / n
                })
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (w, a)| {
                        if a > acc.1 {
                            (w, a)
                        } else {
                            acc
                        }
                    },
                );
            WordLink {
                target: text,
                source: src_words[best].1.clone(),
                weight,
            }
        })
        .collect();
    Ok(links)
}

/// The alignment as aligned text lines: `chat  ← cat    0.87`.
pub fn alignment_text(links: &[WordLink]) -> String {
    let width = |f: fn(&WordLink) -> &str| {
        links
            .iter()
            .map(|l| f(l).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (tw, sw) = (width(|l| &l.target), width(|l| &l.source));
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - s.chars().count()));
    links
        .iter()
        .map(|l| {
            format!(
                "{} ← {} {:.2}\n",
                pad(&l.target, tw),
                pad(&l.source, sw),
                l.weight
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn pieces_group_into_words() {
        let w = words(&toks(&["▁bla", "ck", "▁cat", ".", "<unk>"]));
        let got: Vec<(usize, usize, &str)> = w
            .iter()
            .map(|(r, t)| (r.start, r.end, t.as_str()))
            .collect();
        assert_eq!(got, [(0, 2, "black"), (2, 4, "cat."), (4, 5, "<unk>")]);
    }

    #[test]
    fn a_lone_space_marker_starts_a_word_without_showing() {
        let w = words(&toks(&["▁", "(", "unknown", "▁", "▁x"]));
        let got: Vec<&str> = w.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(got, ["(unknown", "▁", "x"]);
    }

    #[test]
    fn links_average_pieces_and_sum_over_source_pieces() {
        // source words: "black" = pieces 0,1; "cat" = piece 2
        let source = toks(&["▁bla", "ck", "▁cat"]);
        // target words: "chat" = piece 0; "noir" = pieces 1,2; then an EOS row
        let target = toks(&["▁chat", "▁no", "ir"]);
        let attention = vec![
            vec![0.1, 0.1, 0.8],
            vec![0.3, 0.3, 0.4], // black 0.6, cat 0.4
            vec![0.5, 0.2, 0.3], // black 0.7, cat 0.3
            vec![0.0, 0.0, 1.0], // EOS, ignored
        ];
        let links = word_alignment(&source, &target, &attention).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(
            (links[0].target.as_str(), links[0].source.as_str()),
            ("chat", "cat")
        );
        assert!((links[0].weight - 0.8).abs() < 1e-6);
        assert_eq!(
            (links[1].target.as_str(), links[1].source.as_str()),
            ("noir", "black")
        );
        assert!((links[1].weight - 0.65).abs() < 1e-6);
        let text = alignment_text(&links);
        assert_eq!(text, "chat ← cat   0.80\nnoir ← black 0.65\n");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let s = toks(&["▁a", "▁b"]);
        let t = toks(&["▁x", "▁y"]);
        assert!(word_alignment(&s, &t, &[vec![0.5, 0.5]]).is_err());
        assert!(word_alignment(&s, &t, &[vec![1.0], vec![1.0]]).is_err());
        assert!(word_alignment(&[], &t, &[vec![], vec![]]).is_err());
        assert!(word_alignment(&s, &t, &[vec![f32::NAN, 1.0], vec![0.5, 0.5]]).is_err());
    }
}
