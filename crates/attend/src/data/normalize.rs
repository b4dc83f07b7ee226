//! Text normalisation at the edge: every text that enters attend — the training corpora, the lines
//! of `attend translate`, the sentence of `attend explain`, the texts sent to `attend serve` —
//! passes through [`normalize`] once, before the tokenizer sees it.
//!
//! Why: the tokenizer turns every space into a word-boundary marker `▁`, so `"1  2"` (two spaces)
//! would read as `▁1 ▁ ▁2`, one token more than `"1 2"`, and a line of spaces would become a
//! token of its own. After normalisation the spacing of a text no longer changes its tokens.
//!
//! The rules:
//! - Unicode whitespace (`char::is_whitespace`: space, tab, no-break space, ideographic space,
//!   line and paragraph separators, …) separates words; a run of it becomes one ASCII space.
//! - Whitespace at the start and the end is removed.
//! - Other control characters (Unicode category Cc: NUL, BEL, ESC, DEL, the C1 controls) are
//!   dropped: they carry no text, and the tokenizer would make `<unk>` of them. A control
//!   character between two spaces leaves one space; one inside a word joins its two halves.
//! - Nothing else changes: no Unicode normal form, no case folding, no change to punctuation or
//!   to format characters such as the zero-width joiner, which some scripts need.
//!
//! A text of only whitespace and control characters normalises to the empty string, the empty
//! input that every entry point handles in its own documented way.

/// `text` with whitespace runs collapsed to one space, trimmed, and control characters dropped.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace() {
            gap = true;
        } else if !c.is_control() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn runs_of_spaces_collapse_and_the_ends_are_trimmed() {
        assert_eq!(normalize("1  2   3 "), "1 2 3");
        assert_eq!(normalize("  a cat\t\tsat \n"), "a cat sat");
        assert_eq!(normalize("1 2 3"), "1 2 3");
    }

    #[test]
    fn unicode_whitespace_is_a_space_and_controls_are_dropped() {
        // No-break space, ideographic space, line separator, vertical tab.
        assert_eq!(normalize("a\u{a0}b\u{3000}c\u{2028}d\u{b}e"), "a b c d e");
        assert_eq!(normalize("ab\u{0}c\u{7f}d\u{9b}"), "abcd");
        assert_eq!(normalize("a \u{1b} b"), "a b");
        // Format characters and non-ASCII letters stay.
        assert_eq!(normalize("« Oublier » !\u{200d}"), "« Oublier » !\u{200d}");
    }

    #[test]
    fn only_whitespace_or_controls_is_empty() {
        for text in ["", " ", "   \t ", "\u{a0}\u{0}\u{3000}"] {
            assert_eq!(normalize(text), "", "{text:?}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for text in ["  x  y ", "a\u{a0}\u{a0}b", "\u{0}q", "", "ü ö"] {
            let once = normalize(text);
            assert_eq!(normalize(&once), once, "{text:?}");
        }
    }
}
