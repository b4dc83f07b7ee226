//! SentencePiece against the reference implementation: pieces, ids and decodes of a unigram and
//! a BPE model on 2,212 sentences (English, French, Spanish, plus CJK, emoji, rare accents and
//! odd spacing) must equal what the Python `sentencepiece` package wrote into
//! `fixtures/sentencepiece/golden.jsonl.gz`, and those of two models with user-defined symbols,
//! unused pieces and whitespace as suffix what it wrote into `golden_user.jsonl.gz` (both made
//! by `tools/golden/make_sentencepiece.sh`).

mod sentencepiece_support;

use std::collections::{HashMap, HashSet};

use attend::data::sentencepiece::{ModelKind, PieceKind, SentencePiece};
use sentencepiece_support::{fixture, golden};
use serde::Deserialize;

/// What the reference did with one sentence and one model.
#[derive(Deserialize)]
struct Expected {
    ids: Vec<u32>,
    /// The pieces whose id is the unknown id, in order (the others are the pieces of their ids).
    #[serde(default)]
    unk_pieces: Vec<String>,
    decode_ids: String,
    /// Present where `decode_pieces(pieces)` differs from `decode_ids`.
    decode_pieces: Option<String>,
}

/// Golden rows: the sentence and, per model name, what the reference did.
#[derive(Deserialize)]
struct Row {
    text: String,
    #[serde(flatten)]
    models: HashMap<String, Expected>,
}

/// The reference's pieces: those of the ids, with the stored ones where the id is unknown.
fn expected_pieces(model: &SentencePiece, expected: &Expected) -> Vec<String> {
    let mut unknown = expected.unk_pieces.iter();
    expected
        .ids
        .iter()
        .map(|&id| match id == model.unk_id() {
            true => unknown.next().unwrap().clone(),
            false => model.id_to_piece(id).unwrap().to_string(),
        })
        .collect()
}

/// Loads `name`.spm and compares it with the reference on every sentence of `file`; returns
/// the model and the rows; panics with the first differences.
fn check(file: &str, name: &str) -> (SentencePiece, Vec<(String, Expected)>) {
    let model = SentencePiece::load(fixture(&format!("{name}.spm"))).unwrap();
    let rows: Vec<(String, Expected)> = golden::<Row>(file)
        .into_iter()
        .map(|mut row| (row.text, row.models.remove(name).unwrap()))
        .collect();
    let mut wrong = 0;
    for (text, expected) in &rows {
        let want_pieces = expected_pieces(&model, expected);
        let (pieces, ids): (Vec<String>, Vec<u32>) = model.encode(text).into_iter().unzip();
        let decode_ids = model.decode_ids(&expected.ids).unwrap();
        let decode_pieces = model.decode_pieces(&want_pieces);
        let want_decode_pieces = expected
            .decode_pieces
            .as_ref()
            .unwrap_or(&expected.decode_ids);
        if pieces != want_pieces
            || ids != expected.ids
            || decode_ids != expected.decode_ids
            || &decode_pieces != want_decode_pieces
        {
            wrong += 1;
            if wrong <= 5 {
                eprintln!(
                    "{name} {text:?}\n  pieces {pieces:?}\n  expect {want_pieces:?}\n  ids {ids:?}\n  expect {:?}\n  decode {decode_ids:?} / {decode_pieces:?}\n  expect {:?} / {want_decode_pieces:?}",
                    expected.ids, expected.decode_ids
                );
            }
        }
    }
    assert_eq!(
        wrong,
        0,
        "{name}: {wrong} of {} sentences differ",
        rows.len()
    );
    (model, rows)
}

#[test]
fn unigram_matches_the_reference_on_every_sentence() {
    let (model, rows) = check("golden.jsonl.gz", "unigram");
    assert!(rows.len() >= 2000, "{} sentences", rows.len());
    assert_eq!(model.model_kind(), ModelKind::Unigram);
    assert!(!model.byte_fallback());
    assert_eq!(model.normalizer_spec().name, "nmt_nfkc");
    // The fixtures exercise unknown characters: some sentences have pieces with the unknown id.
    assert!(
        rows.iter()
            .filter(|(_, e)| !e.unk_pieces.is_empty())
            .count()
            > 50
    );
}

#[test]
fn bpe_with_byte_fallback_matches_the_reference_on_every_sentence() {
    let (model, rows) = check("golden.jsonl.gz", "bpe");
    assert_eq!(model.model_kind(), ModelKind::Bpe);
    assert!(model.byte_fallback());
    assert_eq!(model.normalizer_spec().name, "identity");
    assert!(!model.normalizer_spec().remove_extra_whitespaces);
    // Byte fallback is exercised: some sentences have byte pieces.
    let is_byte = |id: &u32| model.piece_kind(*id) == Some(PieceKind::Byte);
    assert!(
        rows.iter()
            .filter(|(_, e)| e.ids.iter().any(is_byte))
            .count()
            > 50
    );
}

/// Pieces of `kind` that the reference produced on some sentence.
fn produced(model: &SentencePiece, rows: &[(String, Expected)], kind: PieceKind) -> usize {
    let ids: HashSet<u32> = rows
        .iter()
        .flat_map(|(_, e)| e.ids.iter().copied())
        .collect();
    ids.into_iter()
        .filter(|&id| model.piece_kind(id) == Some(kind))
        .count()
}

#[test]
fn user_defined_and_unused_pieces_match_the_reference() {
    for name in ["unigram_user", "bpe_user"] {
        let (model, rows) = check("golden_user.jsonl.gz", name);
        assert!(rows.len() >= 600, "{} sentences", rows.len());
        // User-defined symbols are produced, unused pieces exist but are never produced.
        assert!(
            produced(&model, &rows, PieceKind::UserDefined) >= 3,
            "{name}"
        );
        let unused = (0..model.len() as u32)
            .filter(|&id| model.piece_kind(id) == Some(PieceKind::Unused))
            .count();
        assert!(unused > 100, "{name}: {unused} unused pieces");
        assert_eq!(produced(&model, &rows, PieceKind::Unused), 0, "{name}");
    }
    let suffix = SentencePiece::load(fixture("unigram_user.spm")).unwrap();
    assert!(suffix.normalizer_spec().treat_whitespace_as_suffix);
}
