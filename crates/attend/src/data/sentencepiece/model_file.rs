//! Reading a SentencePiece `.spm` model file: the `ModelProto` protobuf (parsed by the
//! `sentencepiece-model` crate) checked and turned into plain tables.
//!
//! A model holds `pieces` (text, score, type) whose position is the id, a trainer spec (model
//! type, byte fallback, the unknown surface) and a normalizer spec (the precompiled character
//! map and the whitespace rules). The checks are the reference implementation's own
//! (`ModelInterface::InitializePieces`): no empty or repeated piece, exactly one unknown piece,
//! byte pieces only with byte fallback and then all 256 of them.

use std::collections::HashMap;

use sentencepiece_model::{ModelProto, ModelType, SentencePieceModel, Type};

/// What a piece is for; the reference's `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// An ordinary subword, chosen by the segmentation.
    Normal,
    /// The unknown piece (`<unk>`): stands for text outside the vocabulary.
    Unknown,
    /// A control symbol such as `<s>`: never produced from text, invisible when decoded.
    Control,
    /// A user-defined symbol: always kept whole, never normalized.
    UserDefined,
    /// A piece kept in the vocabulary but never produced (split into its parts instead).
    Unused,
    /// A byte piece `<0xNN>` (byte fallback).
    Byte,
}

/// The segmentation algorithm of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Unigram language model: the most probable segmentation (Viterbi).
    Unigram,
    /// Byte-pair encoding: repeatedly merge the adjacent pair whose merge has the best score.
    Bpe,
}

/// The normalizer spec: how text is rewritten before it is segmented.
#[derive(Debug, Clone)]
pub struct NormalizerSpec {
    /// The rule set's name (`nmt_nfkc`, `identity`, …), for messages.
    pub name: String,
    /// The compiled rewrite rules (a double-array trie and its replacement strings); empty for
    /// `identity`.
    pub precompiled_charsmap: Vec<u8>,
    /// Put a space (`▁`) before the text.
    pub add_dummy_prefix: bool,
    /// Drop leading and trailing spaces and squeeze runs of spaces into one.
    pub remove_extra_whitespaces: bool,
    /// Write spaces as `▁`.
    pub escape_whitespaces: bool,
    /// Put the dummy space after the text instead of before it.
    pub treat_whitespace_as_suffix: bool,
}

/// A checked SentencePiece model: pieces, model kind, normalizer and special ids.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// Piece texts by id.
    pub texts: Vec<String>,
    /// Piece scores by id (log probabilities for unigram, merge priorities for BPE).
    pub scores: Vec<f32>,
    /// Piece kinds by id.
    pub kinds: Vec<PieceKind>,
    /// Normal, user-defined and unused pieces: text → id.
    pub normal: HashMap<String, u32>,
    /// Unknown, control and byte pieces: text → id.
    pub reserved: HashMap<String, u32>,
    /// The segmentation algorithm.
    pub kind: ModelKind,
    /// Whether unknown text becomes byte pieces instead of `<unk>`.
    pub byte_fallback: bool,
    /// Id of the unknown piece.
    pub unk_id: u32,
    /// Ids the trainer gave `<s>`, `</s>` and `<pad>` (`None`: disabled).
    pub bos_id: Option<u32>,
    /// See [`ModelFile::bos_id`].
    pub eos_id: Option<u32>,
    /// See [`ModelFile::bos_id`].
    pub pad_id: Option<u32>,
    /// What an unknown piece decodes to (` ⁇ ` by default).
    pub unk_surface: String,
    /// How text is normalized before segmentation.
    pub normalizer: NormalizerSpec,
}

/// Why bytes are not a usable model: `NotAModel` for broken or foreign data, `Unsupported`
/// for a valid model that uses what this implementation does not do.
#[derive(Debug)]
pub enum ParseError {
    /// The bytes are not a SentencePiece model (the reason says which check failed).
    NotAModel(String),
    /// A SentencePiece model of a kind this implementation does not run.
    Unsupported(String),
}

fn not_a_model(reason: impl Into<String>) -> ParseError {
    ParseError::NotAModel(reason.into())
}

/// The byte of a byte piece `<0xNN>`, as the reference's `PieceToByte` reads it.
pub fn piece_to_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// An id from the trainer spec: negative means disabled; it must name a piece.
fn special_id(id: i32, len: usize, name: &str) -> Result<Option<u32>, ParseError> {
    match u32::try_from(id) {
        Err(_) => Ok(None),
        Ok(id) if (id as usize) < len => Ok(Some(id)),
        Ok(id) => Err(not_a_model(format!(
            "{name} {id} is outside the {len} pieces"
        ))),
    }
}

impl ModelFile {
    /// Parses and checks the bytes of a `.spm` file.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let model = SentencePieceModel::from_slice(bytes)
            .map_err(|e| not_a_model(format!("truncated, or not a ModelProto protobuf ({e})")))?;
        let proto: &ModelProto = model.model();
        if proto.pieces.is_empty() {
            return Err(not_a_model("it has no pieces"));
        }
        let trainer = proto.trainer_spec.clone().unwrap_or_default();
        let kind =
            match ModelType::try_from(trainer.model_type.unwrap_or(ModelType::Unigram as i32)) {
                Ok(ModelType::Unigram) => ModelKind::Unigram,
                Ok(ModelType::Bpe) => ModelKind::Bpe,
                Ok(other) => {
                    return Err(ParseError::Unsupported(format!(
                        "model type {} (only UNIGRAM and BPE are supported)",
                        other.as_str_name()
                    )))
                }
                Err(_) => {
                    return Err(not_a_model(format!(
                        "unknown model type {:?}",
                        trainer.model_type
                    )))
                }
            };
        if proto
            .denormalizer_spec
            .as_ref()
            .is_some_and(|d| !d.precompiled_charsmap().is_empty())
        {
            return Err(ParseError::Unsupported(
                "a denormalizer (decoding rewrite rules)".into(),
            ));
        }
        let byte_fallback = trainer.byte_fallback();
        let n = proto.pieces.len();
        let mut model = ModelFile {
            texts: Vec::with_capacity(n),
            scores: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            normal: HashMap::with_capacity(n),
            reserved: HashMap::new(),
            kind,
            byte_fallback,
            unk_id: 0,
            bos_id: special_id(trainer.bos_id(), n, "bos_id")?,
            eos_id: special_id(trainer.eos_id(), n, "eos_id")?,
            pad_id: special_id(trainer.pad_id(), n, "pad_id")?,
            unk_surface: trainer.unk_surface().to_string(),
            normalizer: normalizer_spec(proto, &trainer),
        };
        let mut unk = None;
        let mut bytes_found = [false; 256];
        for (id, piece) in (0u32..).zip(&proto.pieces) {
            let text = piece.piece();
            if text.is_empty() {
                return Err(not_a_model(format!("piece {id} is empty")));
            }
            let kind = match Type::try_from(piece.r#type.unwrap_or(Type::Normal as i32)) {
                Ok(Type::Normal) => PieceKind::Normal,
                Ok(Type::Unknown) => PieceKind::Unknown,
                Ok(Type::Control) => PieceKind::Control,
                Ok(Type::UserDefined) => PieceKind::UserDefined,
                Ok(Type::Unused) => PieceKind::Unused,
                Ok(Type::Byte) => PieceKind::Byte,
                Err(_) => {
                    return Err(not_a_model(format!(
                        "piece {id} {text:?} has an unknown type"
                    )))
                }
            };
            let table = match kind {
                PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused => &mut model.normal,
                _ => &mut model.reserved,
            };
            if table.insert(text.to_string(), id).is_some() {
                return Err(not_a_model(format!("piece {text:?} is defined twice")));
            }
            match kind {
                PieceKind::Unknown if unk.is_some() => {
                    return Err(not_a_model("it has two unknown pieces"))
                }
                PieceKind::Unknown => unk = Some(id),
                PieceKind::Byte if !byte_fallback => {
                    return Err(not_a_model(format!(
                        "byte piece {text:?} although byte_fallback is off"
                    )))
                }
                PieceKind::Byte => match piece_to_byte(text) {
                    Some(b) => bytes_found[b as usize] = true,
                    None => return Err(not_a_model(format!("byte piece {text:?} is invalid"))),
                },
                _ => {}
            }
            model.texts.push(text.to_string());
            model.scores.push(piece.score());
            model.kinds.push(kind);
        }
        model.unk_id = unk.ok_or_else(|| not_a_model("it has no unknown piece (<unk>)"))?;
        if byte_fallback && bytes_found.contains(&false) {
            return Err(not_a_model(
                "byte_fallback is on but the 256 byte pieces are not all there",
            ));
        }
        Ok(model)
    }
}

fn normalizer_spec(
    proto: &ModelProto,
    trainer: &sentencepiece_model::TrainerSpec,
) -> NormalizerSpec {
    let spec = proto.normalizer_spec.clone().unwrap_or_default();
    NormalizerSpec {
        name: spec.name().to_string(),
        precompiled_charsmap: spec.precompiled_charsmap().to_vec(),
        add_dummy_prefix: spec.add_dummy_prefix(),
        remove_extra_whitespaces: spec.remove_extra_whitespaces(),
        escape_whitespaces: spec.escape_whitespaces(),
        treat_whitespace_as_suffix: trainer.treat_whitespace_as_suffix(),
    }
}
