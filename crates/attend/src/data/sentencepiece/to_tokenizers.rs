//! A SentencePiece model as a `tokenizers` pipeline, so that attend's
//! [`Tokenizer`](crate::data::tokenizer::Tokenizer) (saved as `tokenizers` JSON in a run
//! directory) can carry an imported model's segmentation.
//!
//! The pipeline is the one Hugging Face builds from SentencePiece models, completed with the
//! whitespace rules it lacks:
//! - normalizer: `Precompiled` (the model's character map; none for `identity`), then with
//!   `remove_extra_whitespaces` leading/trailing spaces removed and runs squeezed
//!   (`Replace`), spaces → `▁` (`Replace`), and with `add_dummy_prefix` a `▁` before non-empty
//!   text (`Prepend`);
//! - model: `Unigram` with the piece scores, or `BPE` with merges read from the scores (each
//!   piece made of two pieces is a merge; a higher score merges first); unknown characters
//!   fused into one unknown token, or byte pieces with byte fallback;
//! - unknown and control pieces as special tokens; decoder `▁` → space, bytes → UTF-8, one
//!   leading space stripped.
//!
//! Models with user-defined or unused pieces, or with whitespace as a suffix, are refused: the
//! pipeline has no exact equivalent of how the reference treats them (unused pieces are merged
//! and then split again, user-defined ones outrank every segmentation). [`SentencePiece`]
//! itself encodes them exactly.
//!
//! Ids are the model's own or, with a [`PieceVocab`], another vocabulary's (Marian's
//! `vocab.yml`, Hugging Face's `vocab.json`): then the pipeline holds that vocabulary's pieces
//! (scores from the SentencePiece model; pieces the model lacks get the lowest score minus 10,
//! so that they are chosen only over unknown characters, except attend's special tokens such as
//! `<pad>`, which are matched whole as special tokens). Pieces the vocabulary lacks cannot be
//! produced, where [`SentencePiece::encode_ids_with`] gives them the unknown id: that method is
//! exact, this pipeline an approximation in such cases. The tests measure its agreement with the
//! reference on the golden sentences.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::models::unigram::Unigram;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Prepend, Replace, Sequence};
use tokenizers::AddedToken;

use super::normalizer::SPACE_SYMBOL;
use super::{ModelKind, PieceKind, SentencePiece};
use crate::data::tokenizer::SPECIAL_TOKENS;

/// Another vocabulary's ids for pieces: `ids` maps piece → id (dense: every id below
/// `ids.len()` used once), `unk` is its unknown id.
#[derive(Debug, Clone)]
pub struct PieceVocab {
    /// Piece → id.
    pub ids: HashMap<String, u32>,
    /// The id of the unknown piece.
    pub unk: u32,
}

/// The pieces of the pipeline by id, with their scores and whether they are special tokens.
fn vocabulary(
    spm: &SentencePiece,
    vocab: Option<&PieceVocab>,
) -> Result<Vec<(String, f64, bool)>, String> {
    let special = |id: u32| {
        matches!(
            spm.piece_kind(id),
            Some(PieceKind::Control | PieceKind::Unknown)
        )
    };
    let Some(vocab) = vocab else {
        return Ok((0u32..)
            .zip(spm.pieces())
            .map(|(id, piece)| {
                (
                    piece.to_string(),
                    f64::from(spm.score(id).unwrap_or(0.0)),
                    special(id),
                )
            })
            .collect());
    };
    let lowest = (0..spm.len() as u32)
        .filter(|&id| spm.piece_kind(id) == Some(PieceKind::Normal))
        .filter_map(|id| spm.score(id))
        .fold(f32::MAX, f32::min);
    let mut pieces: Vec<Option<(String, f64, bool)>> = vec![None; vocab.ids.len()];
    for (piece, &id) in &vocab.ids {
        let slot = pieces.get_mut(id as usize).ok_or_else(|| {
            format!(
                "vocabulary id {id} of {piece:?} is not below its size {}",
                vocab.ids.len()
            )
        })?;
        let spm_id = spm.piece_to_id(piece);
        let known = spm.id_to_piece(spm_id) == Some(piece.as_str());
        let score = if known {
            spm.score(spm_id).unwrap_or(0.0)
        } else {
            lowest - 10.0
        };
        // attend's special tokens the model lacks (`<pad>`) are matched whole, never segmented:
        // Marian and Hugging Face's tokenizers treat them so too.
        let reserved = !known && SPECIAL_TOKENS.contains(&piece.as_str());
        *slot = Some((
            piece.clone(),
            f64::from(score),
            id == vocab.unk || reserved || (known && special(spm_id)),
        ));
    }
    if vocab.unk as usize >= pieces.len() {
        return Err(format!(
            "the unknown id {} is outside the vocabulary",
            vocab.unk
        ));
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(id, piece)| piece.ok_or_else(|| format!("the vocabulary has no piece with id {id}")))
        .collect()
}

/// BPE merges from piece scores: each normal piece that splits into two pieces of the
/// vocabulary, by descending score (then id), each split from left to right.
fn merges(spm: &SentencePiece, is_piece: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut normal: Vec<u32> = (0..spm.len() as u32)
        .filter(|&id| spm.piece_kind(id) == Some(PieceKind::Normal))
        .collect();
    normal.sort_by(|&a, &b| {
        spm.score(b)
            .unwrap_or(0.0)
            .total_cmp(&spm.score(a).unwrap_or(0.0))
            .then(a.cmp(&b))
    });
    let mut out = Vec::new();
    for id in normal {
        let piece = spm.id_to_piece(id).unwrap_or_default();
        for (i, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(i);
            if is_piece(left) && is_piece(right) {
                out.push((left.to_string(), right.to_string()));
            }
        }
    }
    out
}

fn normalizer(spm: &SentencePiece) -> Result<NormalizerWrapper, String> {
    let spec = spm.normalizer_spec();
    if spec.treat_whitespace_as_suffix {
        return Err("treat_whitespace_as_suffix has no tokenizers equivalent".into());
    }
    let replace = |pattern: ReplacePattern, with: &str| -> Result<NormalizerWrapper, String> {
        Ok(Replace::new(pattern, with)
            .map_err(|e| e.to_string())?
            .into())
    };
    let mut steps: Vec<NormalizerWrapper> = Vec::new();
    if !spec.precompiled_charsmap.is_empty() {
        let map = Precompiled::from(&spec.precompiled_charsmap).map_err(|e| e.to_string())?;
        steps.push(map.into());
    }
    if spec.remove_extra_whitespaces {
        steps.push(replace(ReplacePattern::Regex("^ +| +$".into()), "")?);
        steps.push(replace(ReplacePattern::Regex(" {2,}".into()), " ")?);
    }
    if spec.escape_whitespaces {
        steps.push(replace(ReplacePattern::String(" ".into()), SPACE_SYMBOL)?);
    }
    if spec.add_dummy_prefix {
        steps.push(Prepend::new(SPACE_SYMBOL.into()).into());
    }
    Ok(Sequence::new(steps).into())
}

/// The `tokenizers` pipeline of `spm`, with its own ids or those of `vocab`.
pub fn to_tokenizers(
    spm: &SentencePiece,
    vocab: Option<&PieceVocab>,
) -> Result<tokenizers::Tokenizer, String> {
    for (kind, what) in [
        (PieceKind::UserDefined, "user-defined"),
        (PieceKind::Unused, "unused"),
    ] {
        if let Some(piece) = (0..spm.len() as u32).find(|&id| spm.piece_kind(id) == Some(kind)) {
            return Err(format!(
                "it has {what} pieces (such as {:?}), which a tokenizers pipeline cannot treat as SentencePiece does",
                spm.id_to_piece(piece).unwrap_or_default()
            ));
        }
    }
    let pieces = vocabulary(spm, vocab)?;
    let unk_id = match vocab {
        Some(v) => v.unk,
        None => spm.unk_id(),
    };
    let model: ModelWrapper = match spm.model_kind() {
        ModelKind::Unigram => {
            let scored = pieces.iter().map(|(p, s, _)| (p.clone(), *s)).collect();
            Unigram::from(scored, Some(unk_id as usize), spm.byte_fallback())
                .map_err(|e| e.to_string())?
                .into()
        }
        ModelKind::Bpe => {
            let ids: Vocab = match vocab {
                Some(v) => v.ids.iter().map(|(p, &id)| (p.clone(), id)).collect(),
                None => (0u32..)
                    .zip(spm.pieces())
                    .map(|(id, p)| (p.to_string(), id))
                    .collect(),
            };
            let merges = merges(spm, |p| ids.contains_key(p));
            let unk = pieces
                .get(unk_id as usize)
                .map(|p| p.0.clone())
                .unwrap_or_default();
            BPE::builder()
                .vocab_and_merges(ids, merges)
                .unk_token(unk)
                .fuse_unk(true)
                .byte_fallback(spm.byte_fallback())
                .build()
                .map_err(|e| e.to_string())?
                .into()
        }
    };
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_normalizer(Some(normalizer(spm)?));
    let space = Replace::new(ReplacePattern::String(SPACE_SYMBOL.into()), " ")
        .map_err(|e| e.to_string())?;
    inner.with_decoder(Some(DecoderSequence::new(vec![
        space.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ])));
    let specials: Vec<AddedToken> = pieces
        .iter()
        .filter(|(_, _, special)| *special)
        .map(|(p, _, _)| AddedToken::from(p.clone(), true))
        .collect();
    inner.add_special_tokens(&specials);
    Ok(inner)
}
