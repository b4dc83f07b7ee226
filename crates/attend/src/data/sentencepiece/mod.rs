//! SentencePiece in Rust: reads `.spm` model files and encodes and decodes text exactly as the
//! reference implementation (Kudo & Richardson 2018, "SentencePiece: A simple and language
//! independent subword tokenizer and detokenizer for Neural Text Processing") does, for unigram
//! and BPE models, with the normalizer rules a model carries and byte fallback.
//!
//! Encoding is three steps:
//! 1. normalize (`normalizer.rs`): rewrite the text with the model's rules and escape spaces
//!    as `▁` (`" Hello  wörld"` → `"▁Hello▁wörld"`);
//! 2. segment the normalized text: `unigram.rs` (Viterbi over piece log-probabilities) or
//!    `bpe.rs` (merges by piece score);
//! 3. unknown characters: with byte fallback each becomes its UTF-8 bytes as pieces `<0x..>`;
//!    without it a run of them becomes one piece (the characters themselves) with the unknown
//!    id.
//!
//! Decoding (`decode.rs`) reverses this up to normalization. OPUS-MT / Marian and Hugging Face
//! models give pieces ids of their own vocabulary: [`SentencePiece::encode_ids_with`] maps pieces
//! through one, [`SentencePiece::to_tokenizer`] makes attend's tokenizer for a run directory.
//! The golden tests compare pieces, ids and decodes with the Python `sentencepiece` package.

mod bpe;
mod charsmap;
mod decode;
mod model_file;
mod normalizer;
mod to_tokenizers;
mod unigram;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use model_file::{ModelFile, ParseError};
pub use model_file::{ModelKind, NormalizerSpec, PieceKind};
use normalizer::Normalizer;
pub use to_tokenizers::PieceVocab;
use unigram::Unigram;

use crate::data::tokenizer::Tokenizer;

/// What went wrong reading a model or decoding ids.
#[derive(Debug, thiserror::Error)]
pub enum SentencePieceError {
    /// The file could not be read.
    #[error("cannot read SentencePiece model {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is not a SentencePiece model (truncated, another format, or inconsistent).
    #[error("{path} is not a SentencePiece model: {reason}; pass the .spm file the model was trained with")]
    NotAModel {
        /// The file.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// A SentencePiece model of a kind this implementation does not run.
    #[error("{path}: unsupported SentencePiece model: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// The model cannot be expressed as a `tokenizers` pipeline with the given vocabulary.
    #[error("cannot build a tokenizer from the SentencePiece model: {0}")]
    Convert(String),
    /// An id outside the model's pieces.
    #[error("id {id} is outside the SentencePiece vocabulary of {size} pieces")]
    IdOutOfRange {
        /// The id.
        id: u32,
        /// The number of pieces.
        size: usize,
    },
}

/// A SentencePiece model ready to encode and decode.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    model: ModelFile,
    normalizer: Normalizer,
    unigram: Option<Unigram>,
}

impl SentencePiece {
    /// Reads a `.spm` model file (Marian's `source.spm`, Hugging Face's `source.spm`, or what
    /// `spm_train` writes as `.model`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SentencePieceError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SentencePieceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a model file; `path` names them in errors.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self, SentencePieceError> {
        let path = path.as_ref().to_path_buf();
        let model = ModelFile::parse(bytes).map_err(|e| match e {
            ParseError::NotAModel(reason) => SentencePieceError::NotAModel {
                path: path.clone(),
                reason,
            },
            ParseError::Unsupported(what) => SentencePieceError::Unsupported {
                path: path.clone(),
                what,
            },
        })?;
        let user_defined = model
            .texts
            .iter()
            .zip(&model.kinds)
            .filter(|(_, &kind)| kind == PieceKind::UserDefined)
            .map(|(text, _)| text.clone())
            .collect();
        let normalizer = Normalizer::new(model.normalizer.clone(), user_defined)
            .map_err(|reason| SentencePieceError::NotAModel { path, reason })?;
        let unigram = (model.kind == ModelKind::Unigram).then(|| Unigram::new(&model));
        Ok(SentencePiece {
            model,
            normalizer,
            unigram,
        })
    }

    /// The text as the model sees it before segmentation (normalized, spaces as `▁`).
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    /// Pieces and their ids: what the reference's `encode(text, out_type=str)` and
    /// `encode(text)` return, together.
    pub fn encode(&self, text: &str) -> Vec<(String, u32)> {
        let normalized = self.normalize(text);
        let ranges = match &self.unigram {
            Some(unigram) => unigram.encode(&self.model, &normalized),
            None => bpe::encode(&self.model, &self.normalizer, &normalized),
        };
        let mut out: Vec<(String, u32)> = Vec::with_capacity(ranges.len());
        let mut prev_unknown = false;
        for (start, end, id) in ranges {
            let piece = &normalized[start..end];
            let unknown = id == self.model.unk_id;
            if unknown && self.model.byte_fallback {
                for byte in piece.bytes() {
                    let byte_piece = format!("<0x{byte:02X}>");
                    let id = decode::piece_id(&self.model, &byte_piece);
                    out.push((byte_piece, id));
                }
            } else if unknown && prev_unknown {
                if let Some(last) = out.last_mut() {
                    last.0.push_str(piece);
                }
            } else {
                out.push((piece.to_string(), id));
            }
            prev_unknown = unknown;
        }
        out
    }

    /// The pieces of `text` (unknown characters appear as themselves).
    pub fn encode_pieces(&self, text: &str) -> Vec<String> {
        self.encode(text)
            .into_iter()
            .map(|(piece, _)| piece)
            .collect()
    }

    /// The ids of `text` in the model's own numbering.
    pub fn encode_ids(&self, text: &str) -> Vec<u32> {
        self.encode(text).into_iter().map(|(_, id)| id).collect()
    }

    /// The ids of `text` in another vocabulary (Marian's `vocab.yml`, Hugging Face's
    /// `vocab.json`): each piece looked up in `vocab`, `unk` where it is missing. This is how
    /// Marian and `MarianTokenizer` number pieces.
    pub fn encode_ids_with(&self, text: &str, vocab: &HashMap<String, u32>, unk: u32) -> Vec<u32> {
        self.encode(text)
            .into_iter()
            .map(|(piece, _)| vocab.get(&piece).copied().unwrap_or(unk))
            .collect()
    }

    /// attend's [`Tokenizer`] for this model, numbering pieces with the model's own ids or with
    /// `vocab`'s (see [`PieceVocab`] for where the two differ). The result is not checked for
    /// attend's fixed special ids: the caller decides how the imported ids map.
    pub fn to_tokenizer(
        &self,
        vocab: Option<&PieceVocab>,
    ) -> Result<Tokenizer, SentencePieceError> {
        let inner =
            to_tokenizers::to_tokenizers(self, vocab).map_err(SentencePieceError::Convert)?;
        Ok(Tokenizer::from_tokenizers(inner))
    }

    /// The text of `pieces` (the reference's `decode_pieces`).
    pub fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let pieces: Vec<&str> = pieces.iter().map(AsRef::as_ref).collect();
        decode::decode(&self.model, &pieces)
    }

    /// The text of `ids` (the reference's `decode`); an id outside the model is an error.
    pub fn decode_ids(&self, ids: &[u32]) -> Result<String, SentencePieceError> {
        let pieces = ids
            .iter()
            .map(|&id| {
                self.id_to_piece(id)
                    .ok_or(SentencePieceError::IdOutOfRange {
                        id,
                        size: self.len(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(decode::decode(&self.model, &pieces))
    }

    /// The number of pieces; every id is below it.
    pub fn len(&self) -> usize {
        self.model.texts.len()
    }

    /// Whether the model has no pieces (never true for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.model.texts.is_empty()
    }

    /// The piece with id `id`.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.model.texts.get(id as usize).map(String::as_str)
    }

    /// The id of `piece`; the unknown id for a string that is not a piece.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        decode::piece_id(&self.model, piece)
    }

    /// The kind of piece `id` (`None` outside the model).
    pub fn piece_kind(&self, id: u32) -> Option<PieceKind> {
        self.model.kinds.get(id as usize).copied()
    }

    /// The score of piece `id` (`None` outside the model).
    pub fn score(&self, id: u32) -> Option<f32> {
        self.model.scores.get(id as usize).copied()
    }

    /// The pieces in id order.
    pub fn pieces(&self) -> impl Iterator<Item = &str> {
        self.model.texts.iter().map(String::as_str)
    }

    /// Unigram or BPE.
    pub fn model_kind(&self) -> ModelKind {
        self.model.kind
    }

    /// Whether unknown characters become byte pieces.
    pub fn byte_fallback(&self) -> bool {
        self.model.byte_fallback
    }

    /// The normalizer spec the model carries.
    pub fn normalizer_spec(&self) -> &NormalizerSpec {
        self.normalizer.spec()
    }

    /// The id of the unknown piece.
    pub fn unk_id(&self) -> u32 {
        self.model.unk_id
    }

    /// The id of `<s>`, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.model.bos_id
    }

    /// The id of `</s>`, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.model.eos_id
    }

    /// The id of the padding piece, if the model has one.
    pub fn pad_id(&self) -> Option<u32> {
        self.model.pad_id
    }
}
