//! SentencePiece's normalizer: the text a model segments is not the input but its normal form.
//!
//! 1. Rewrite: from left to right, the longest rule of the precompiled character map that
//!    matches the text's prefix replaces it (`nmt_nfkc`: NFKC plus folding of control and space
//!    characters: `ﬁ` → `fi`, `Ａ` → `A`, a tab or a no-break space → ` `); where none matches,
//!    one character is kept. User-defined symbols are kept whole and never rewritten.
//! 2. Whitespace (`remove_extra_whitespaces`): leading and trailing spaces are dropped and runs
//!    of spaces become one.
//! 3. Escape (`escape_whitespaces`): each space becomes `▁` (U+2581), and with
//!    `add_dummy_prefix` one `▁` is put before the text (after it with
//!    `treat_whitespace_as_suffix`), so that a word has the same pieces at the start of a
//!    sentence as inside it: `"Hello  world "` → `"▁Hello▁world"`.
//!
//! The order of these steps and their corner cases (a rule whose replacement starts with spaces
//! after a space, an all-space input that normalizes to nothing) are the reference's
//! `Normalizer::Normalize`, step for step.

use super::charsmap::CharsMap;
use super::model_file::NormalizerSpec;

/// The whitespace symbol `▁` (U+2581) that stands for a space in pieces.
pub const SPACE_SYMBOL: &str = "\u{2581}";

/// A model's normalizer: its rules and user-defined symbols.
#[derive(Debug, Clone)]
pub struct Normalizer {
    spec: NormalizerSpec,
    charsmap: Option<CharsMap>,
    user_defined: Vec<String>,
}

impl Normalizer {
    /// The normalizer of `spec`; `user_defined` symbols are matched before the rules and kept.
    pub fn new(spec: NormalizerSpec, user_defined: Vec<String>) -> Result<Self, String> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        Ok(Normalizer {
            spec,
            charsmap,
            user_defined,
        })
    }

    /// The spec the normalizer follows.
    pub fn spec(&self) -> &NormalizerSpec {
        &self.spec
    }

    /// The longest user-defined symbol at the start of `text`, as a byte length.
    pub fn user_defined_prefix(&self, text: &str) -> Option<usize> {
        self.user_defined
            .iter()
            .filter(|s| text.starts_with(s.as_str()))
            .map(String::len)
            .max()
    }

    /// The normal form of the start of `text` and the number of bytes of `text` it stands for.
    fn prefix<'a>(&'a self, text: &'a str) -> (&'a str, usize) {
        if let Some(len) = self.user_defined_prefix(text) {
            return (&text[..len], len);
        }
        if let Some((len, replacement)) =
            self.charsmap.as_ref().and_then(|m| m.longest_prefix(text))
        {
            return (replacement, len);
        }
        let len = text.chars().next().map_or(0, char::len_utf8);
        (&text[..len], len)
    }

    /// The normalized form of `text` (empty for an empty or all-space text).
    pub fn normalize(&self, text: &str) -> String {
        let spec = &self.spec;
        let mut input = text;
        if spec.remove_extra_whitespaces {
            while !input.is_empty() {
                let (normal, len) = self.prefix(input);
                if normal != " " {
                    break;
                }
                input = &input[len..];
            }
        }
        let mut out = String::with_capacity(input.len() * 3);
        if input.is_empty() {
            return out;
        }
        let space = if spec.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            " "
        };
        if !spec.treat_whitespace_as_suffix && spec.add_dummy_prefix {
            out.push_str(space);
        }
        let mut is_prev_space = spec.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut normal, len) = self.prefix(input);
            if is_prev_space {
                normal = normal.trim_start_matches(' ');
            }
            if !normal.is_empty() {
                for c in normal.chars() {
                    match c {
                        ' ' if spec.escape_whitespaces => out.push_str(SPACE_SYMBOL),
                        c => out.push(c),
                    }
                }
                is_prev_space = normal.ends_with(' ');
            }
            input = &input[len..];
            if !spec.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if spec.remove_extra_whitespaces {
            while let Some(rest) = out.strip_suffix(space) {
                out.truncate(rest.len());
            }
        }
        if spec.treat_whitespace_as_suffix && spec.add_dummy_prefix {
            out.push_str(space);
        }
        out
    }
}
