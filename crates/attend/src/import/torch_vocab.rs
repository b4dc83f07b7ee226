//! The tokenizers of an imported PyTorch model: from its vocabulary list (character- or
//! word-level), or, where the checkpoint comes without one, tokens named for their ids.
//!
//! ```text
//! char   "le chat" → l e ▁ c h a t      every character a token (a space is ▁)
//! word   "le chat" → ▁le ▁chat          tokens separated by spaces
//! ids    "w4 w5"   → ▁w4 ▁w5            id i ≥ 4 is the word w<i>
//! ```
//! Tokens are numbered in attend's order (the special tokens first, see
//! [`Special::rows`](super::torch_map::Special::rows)); a token outside the vocabulary is
//! `<unk>`. The tokenizers are `tokenizers` pipelines checked by [`Tokenizer::from_json`], so they
//! are exactly what a run directory loads.

use super::torch_map::{Rows, VocabLevel};
use super::ImportError;
use crate::data::tokenizer::{Tokenizer, SPECIAL_TOKENS, UNK};
use std::path::Path;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

const METASPACE: char = '▁';

/// attend's tokenizer for the model tokens `tokens` (model id order) reordered by `rows`.
pub fn vocab_tokenizer(
    tokens: &[String],
    rows: &Rows,
    level: VocabLevel,
    vocab_file: &Path,
) -> Result<Tokenizer, ImportError> {
    let ordered = rows.iter().enumerate().map(|(i, row)| match (i, row) {
        (i, _) if i < SPECIAL_TOKENS.len() => SPECIAL_TOKENS[i].to_string(),
        (_, Some(r)) => match level {
            VocabLevel::Char => tokens[*r as usize].replace(' ', "▁"),
            VocabLevel::Word => format!("{METASPACE}{}", tokens[*r as usize]),
        },
        (_, None) => unreachable!("only special ids have no model row"),
    });
    build(ordered.collect(), level, vocab_file)
}

/// A word-level tokenizer whose id `i ≥ 4` is the word `w<i>`, for a checkpoint without a
/// vocabulary.
pub fn id_tokenizer(vocab: usize, what: &Path) -> Result<Tokenizer, ImportError> {
    if vocab <= SPECIAL_TOKENS.len() {
        return Err(ImportError::Format {
            path: what.display().to_string(),
            reason: format!("a vocabulary of {vocab} ids has no room beyond the 4 special tokens"),
        });
    }
    let words = (0..vocab).map(|i| match SPECIAL_TOKENS.get(i) {
        Some(t) => t.to_string(),
        None => format!("{METASPACE}w{i}"),
    });
    build(words.collect(), VocabLevel::Word, what)
}

/// The pipeline over `tokens` (token `i` is id `i`), checked by loading it back.
fn build(tokens: Vec<String>, level: VocabLevel, what: &Path) -> Result<Tokenizer, ImportError> {
    use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
    use tokenizers::normalizers::replace::Replace;
    use tokenizers::pre_tokenizers::metaspace::Metaspace;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

    let fail = |reason: String| ImportError::Format {
        path: what.display().to_string(),
        reason,
    };
    let mut vocab = std::collections::HashMap::new();
    for (id, t) in (0u32..).zip(&tokens) {
        if let Some(first) = vocab.insert(t.clone(), id) {
            return Err(fail(format!(
                "token {t:?} appears twice (ids {first} and {id} in attend's order)"
            )));
        }
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token(SPECIAL_TOKENS[UNK as usize].to_string())
        .build()
        .map_err(|e| fail(format!("building the tokenizer: {e}")))?;
    let mut inner = tokenizers::Tokenizer::new(model);
    match level {
        VocabLevel::Char => {
            let space = Replace::new(" ", "▁").map_err(|e| fail(e.to_string()))?;
            let chars = Split::new(
                SplitPattern::Regex(".".into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| fail(e.to_string()))?;
            inner.with_normalizer(Some(space));
            inner.with_pre_tokenizer(Some(chars));
        }
        VocabLevel::Word => {
            inner.with_pre_tokenizer(Some(Metaspace::default()));
        }
    }
    inner.with_decoder(Some(MetaspaceDecoder::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    inner.add_special_tokens(&specials);
    let json = inner
        .to_string(false)
        .map_err(|e| fail(format!("writing the tokenizer: {e}")))?;
    Tokenizer::from_json(json.as_bytes(), what).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn char_level_splits_every_character_and_reads_back() {
        // The model's ids: <unk> 0, <pad> 1, <bos> 2, <eos> 3, then characters.
        let model = tokens(&["<unk>", "<pad>", "<bos>", "<eos>", " ", "a", "b", "é"]);
        let rows: Rows = [1, 2, 3, 0, 4, 5, 6, 7].iter().map(|&r| Some(r)).collect();
        let t = vocab_tokenizer(&model, &rows, VocabLevel::Char, Path::new("v.json")).unwrap();
        assert_eq!(t.encode("ab é").unwrap(), [5, 6, 4, 7]);
        assert_eq!(t.encode("az").unwrap(), [5, UNK]);
        assert_eq!(t.decode(&[5, 4, 6]), "a b");
    }

    #[test]
    fn word_level_splits_at_spaces() {
        let model = tokens(&["SOS", "EOS", "le", "chat", "."]);
        let rows: Rows = vec![None, Some(0), Some(1), None, Some(2), Some(3), Some(4)];
        let t = vocab_tokenizer(&model, &rows, VocabLevel::Word, Path::new("v.json")).unwrap();
        assert_eq!(t.encode("le chat .").unwrap(), [4, 5, 6]);
        assert_eq!(t.encode("le chien").unwrap(), [4, UNK]);
        assert_eq!(t.decode(&[4, 5, 6]), "le chat .");
    }

    #[test]
    fn a_repeated_token_is_an_error() {
        let model = tokens(&["<pad>", "<s>", "</s>", "<unk>", "a", "a"]);
        let rows: Rows = (0..6).map(Some).collect();
        let e = vocab_tokenizer(&model, &rows, VocabLevel::Char, Path::new("v.json")).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }
}
