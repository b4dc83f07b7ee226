//! Subword (BPE) and word-level tokenizers, learned on training text, built on the `tokenizers`
//! crate and saved in its JSON format (so Hugging Face tools can read them too).
//!
//! Pre-tokenization (SentencePiece style, reversible):
//! 1. Metaspace: every space becomes `▁` and a `▁` is put before the first word, then the text is
//!    split before each `▁`: `"Un chat noir !"` → `▁Un ▁chat ▁noir ▁!`.
//! 2. Punctuation is split off as its own piece: `"J'ai"` → `▁J ' ai`, `"noir."` → `▁noir .`.
//!
//! The model (BPE merges or a word list) then maps each piece to ids. Decoding concatenates the
//! tokens, turns `▁` back into spaces and drops the leading one, so `decode(encode(s)) == s` for
//! any text whose characters are in the vocabulary: French `« Oublier » !` keeps its spaces before
//! punctuation and English `chest!` keeps none.
//!
//! Special tokens have fixed ids in every tokenizer: [`PAD`] 0 `<pad>`, [`BOS`] 1 `<s>`,
//! [`EOS`] 2 `</s>`, [`UNK`] 3 `<unk>`. [`Tokenizer::encode`] adds no BOS/EOS (the batcher does).

use std::path::{Path, PathBuf};

use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::metaspace::Metaspace;
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// Padding id (`<pad>`).
pub const PAD: u32 = 0;
/// Beginning-of-sequence id (`<s>`), the decoder's first input.
pub const BOS: u32 = 1;
/// End-of-sequence id (`</s>`), the decoder's last output.
pub const EOS: u32 = 2;
/// Unknown-token id (`<unk>`).
pub const UNK: u32 = 3;
/// The special tokens, indexed by their id.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// The word-boundary marker that stands for a space inside tokens.
const METASPACE: char = '▁';

/// What went wrong while training, using, saving or loading a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The `tokenizers` crate failed while learning the vocabulary.
    #[error("tokenizer training failed: {0}")]
    Train(String),
    /// Training saw no text (the vocabulary would hold only the special tokens).
    #[error("tokenizer training got no text; check that the training corpus is not empty")]
    NoText,
    /// A BPE vocabulary size too small to hold the special tokens.
    #[error("vocabulary size {0} is too small: it must exceed the {n} special tokens", n = SPECIAL_TOKENS.len())]
    VocabTooSmall(usize),
    /// Encoding failed (only possible with a hand-edited tokenizer file).
    #[error("cannot encode {text:?}: {message}")]
    Encode {
        /// The text.
        text: String,
        /// The library's message.
        message: String,
    },
    /// The tokenizer file could not be written.
    #[error("cannot save tokenizer to {path}: {message}")]
    Save {
        /// The file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// The tokenizer file could not be read or parsed.
    #[error("cannot load tokenizer from {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// A tokenizer file whose special tokens are not at attend's fixed ids.
    #[error("{path}: special token {token} has id {found:?}, attend needs {expected}; train the tokenizer with attend")]
    SpecialIds {
        /// The file.
        path: PathBuf,
        /// The token.
        token: &'static str,
        /// Its id in the file (`None`: absent).
        found: Option<u32>,
        /// The id attend requires.
        expected: u32,
    },
}

/// Which tokenizer to learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-pair encoding with at most `vocab_size` tokens (special tokens and the character
    /// alphabet included; the alphabet is always kept, so very small sizes may be exceeded).
    Bpe {
        /// Target vocabulary size.
        vocab_size: usize,
    },
    /// One token per word or punctuation mark seen at least `min_freq` times, the most frequent
    /// first, at most `max_size` tokens (special tokens included); others become `<unk>`.
    Word {
        /// Minimum count for a word to enter the vocabulary.
        min_freq: u64,
        /// Maximum vocabulary size.
        max_size: usize,
    },
}

/// A trained tokenizer: text ↔ ids.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn special_tokens() -> Vec<AddedToken> {
    SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect()
}

/// An empty tokenizer around `model` with attend's pre-tokenizer and decoder.
fn empty(model: impl Into<tokenizers::models::ModelWrapper>) -> tokenizers::Tokenizer {
    let mut inner = tokenizers::Tokenizer::new(model);
    let pre = Sequence::new(vec![
        Metaspace::default().into(),
        Punctuation::new(SplitDelimiterBehavior::Isolated).into(),
    ]);
    inner.with_pre_tokenizer(Some(pre));
    inner.with_decoder(Some(MetaspaceDecoder::default()));
    inner
}

impl Tokenizer {
    /// Learns a tokenizer of the given kind on `texts` (one sentence each). For a joint
    /// source/target vocabulary pass both sides; for separate ones train two tokenizers.
    pub fn train<I, S>(kind: &TokenizerKind, texts: I) -> Result<Self, TokenizerError>
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
    {
        match *kind {
            TokenizerKind::Bpe { vocab_size } => Self::train_bpe(texts, vocab_size),
            TokenizerKind::Word { min_freq, max_size } => {
                Self::train_word(texts, min_freq, max_size)
            }
        }
    }

    /// Learns byte-pair-encoding merges on `texts` until the vocabulary has `vocab_size` tokens
    /// (special tokens and every character seen included).
    pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Self, TokenizerError>
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
    {
        if vocab_size <= SPECIAL_TOKENS.len() {
            return Err(TokenizerError::VocabTooSmall(vocab_size));
        }
        let model = BPE::builder()
            .unk_token(SPECIAL_TOKENS[UNK as usize].to_string())
            .build()
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .show_progress(false)
            .special_tokens(special_tokens())
            .build();
        Self::fit(empty(model), trainer.into(), texts)
    }

    /// Learns a word-level vocabulary on `texts`: words and punctuation marks seen at least
    /// `min_freq` times, most frequent first (ties alphabetical), at most `max_size` tokens
    /// including the special ones.
    pub fn train_word<I, S>(
        texts: I,
        min_freq: u64,
        max_size: usize,
    ) -> Result<Self, TokenizerError>
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
    {
        if max_size <= SPECIAL_TOKENS.len() {
            return Err(TokenizerError::VocabTooSmall(max_size));
        }
        let model = WordLevel::builder()
            .unk_token(SPECIAL_TOKENS[UNK as usize].to_string())
            .build()
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        let trainer = WordLevelTrainer::builder()
            .min_frequency(min_freq)
            .vocab_size(max_size)
            .show_progress(false)
            .special_tokens(special_tokens())
            .build()
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        Self::fit(empty(model), trainer.into(), texts)
    }

    fn fit<I, S>(
        mut inner: tokenizers::Tokenizer,
        mut trainer: TrainerWrapper,
        texts: I,
    ) -> Result<Self, TokenizerError>
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
    {
        inner
            .train(&mut trainer, texts.into_iter())
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        let tokenizer = Tokenizer { inner };
        if tokenizer.vocab_size() <= SPECIAL_TOKENS.len() {
            return Err(TokenizerError::NoText);
        }
        Ok(tokenizer)
    }

    /// Token ids of `text`, without BOS/EOS. Characters (BPE) or words (word-level) outside the
    /// vocabulary become [`UNK`]. A literal special-token string such as `<s>` in the text maps to
    /// its special id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode {
                text: text.to_string(),
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`: [`PAD`], [`BOS`] and [`EOS`] are dropped, [`UNK`] and ids outside the
    /// vocabulary show as `<unk>`, and `▁` markers become spaces (the first one dropped), so the
    /// result reads like normal text. A word-level `<unk>` stands for a whole word and keeps the
    /// space before it (`Un chat <unk>.`); a BPE `<unk>` is one unknown character, inside a word.
    pub fn decode(&self, ids: &[u32]) -> String {
        let word_level = matches!(self.inner.get_model(), ModelWrapper::WordLevel(_));
        let mut text = String::new();
        for &id in ids
            .iter()
            .filter(|&&id| id != PAD && id != BOS && id != EOS)
        {
            let unknown = id == UNK || self.inner.id_to_token(id).is_none();
            if unknown && word_level {
                text.push(METASPACE);
            }
            text.push_str(&self.token(id));
        }
        let text = text.replace(METASPACE, " ");
        match text.strip_prefix(' ') {
            Some(rest) => rest.to_string(),
            None => text,
        }
    }

    /// The token string of `id` as stored (with its `▁` marker), for display such as heat-map
    /// labels; `<unk>` for an id outside the vocabulary.
    pub fn token(&self, id: u32) -> String {
        self.inner
            .id_to_token(id)
            .unwrap_or_else(|| SPECIAL_TOKENS[UNK as usize].to_string())
    }

    /// The id of a token string (with its `▁` marker), if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids, special tokens included; every id is below this.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Writes the tokenizer as `tokenizers` JSON (pretty-printed).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let path = path.as_ref();
        self.inner
            .save(path, true)
            .map_err(|e| TokenizerError::Save {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Wraps a `tokenizers` pipeline built elsewhere (such as an imported SentencePiece model,
    /// see [`crate::data::sentencepiece::SentencePiece::to_tokenizer`]); unlike
    /// [`Tokenizer::load`] it does not check the special tokens' ids.
    pub fn from_tokenizers(inner: tokenizers::Tokenizer) -> Self {
        Tokenizer { inner }
    }

    /// Reads a tokenizer written by [`Tokenizer::save`]; checks the special tokens' ids.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let json = std::fs::read(path).map_err(|e| TokenizerError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_json(&json, path)
    }

    /// Parses the JSON of a tokenizer file already in memory; `path` names it in errors.
    ///
    /// The bytes become a JSON value first, and the tokenizer is read from that value:
    /// `tokenizers` panics on a syntax error or a bad string inside its `decoder` object when it
    /// reads the bytes itself.
    pub fn from_json(json: &[u8], path: &Path) -> Result<Self, TokenizerError> {
        let load_err = |message: String| TokenizerError::Load {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| load_err(format!("not valid JSON: {e}")))?;
        let inner: tokenizers::Tokenizer =
            serde_json::from_value(value).map_err(|e| load_err(e.to_string()))?;
        for (expected, token) in (0u32..).zip(SPECIAL_TOKENS) {
            let found = inner.token_to_id(token);
            if found != Some(expected) {
                return Err(TokenizerError::SpecialIds {
                    path: path.to_path_buf(),
                    token,
                    found,
                    expected,
                });
            }
        }
        Ok(Tokenizer { inner })
    }
}

/// Source and target tokenizers, trained jointly (one shared vocabulary, the same tokenizer on
/// both sides) or separately.
#[derive(Debug, Clone)]
pub struct Vocabs {
    /// Tokenizer for the source language.
    pub src: Tokenizer,
    /// Tokenizer for the target language.
    pub tgt: Tokenizer,
}

impl Vocabs {
    /// File name of the source tokenizer inside a model directory.
    pub const SRC_FILE: &'static str = "src_tokenizer.json";
    /// File name of the target tokenizer inside a model directory.
    pub const TGT_FILE: &'static str = "tgt_tokenizer.json";

    /// Trains on the pairs' sources and targets: with `joint`, one tokenizer on both sides (used
    /// for both); otherwise one per side.
    pub fn train(
        kind: &TokenizerKind,
        pairs: &[(String, String)],
        joint: bool,
    ) -> Result<Self, TokenizerError> {
        let sources = pairs.iter().map(|(s, _)| s.as_str());
        let targets = pairs.iter().map(|(_, t)| t.as_str());
        if joint {
            let both = Tokenizer::train(kind, sources.chain(targets))?;
            Ok(Vocabs {
                src: both.clone(),
                tgt: both,
            })
        } else {
            Ok(Vocabs {
                src: Tokenizer::train(kind, sources)?,
                tgt: Tokenizer::train(kind, targets)?,
            })
        }
    }

    /// Writes [`Vocabs::SRC_FILE`] and [`Vocabs::TGT_FILE`] into `dir` (which must exist).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), TokenizerError> {
        self.src.save(dir.as_ref().join(Self::SRC_FILE))?;
        self.tgt.save(dir.as_ref().join(Self::TGT_FILE))
    }

    /// Reads the two tokenizers written by [`Vocabs::save`] from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        Ok(Vocabs {
            src: Tokenizer::load(dir.as_ref().join(Self::SRC_FILE))?,
            tgt: Tokenizer::load(dir.as_ref().join(Self::TGT_FILE))?,
        })
    }
}
