//! SentencePiece models as attend tokenizers (`tokenizers` pipelines, saved as JSON in run
//! directories): on the golden sentences their ids equal the reference's, with the model's own
//! ids and with another vocabulary's, except where the text spells a special piece (`<unk>`,
//! `<s>`, `</s>`), which the tokenizer reads as that special token (as attend's own tokenizers
//! and Hugging Face's do) and the reference spells out.

mod sentencepiece_support;

use std::collections::HashMap;

use attend::data::sentencepiece::{PieceVocab, SentencePiece};
use attend::data::tokenizer::Tokenizer;
use sentencepiece_support::{fixture, golden, scratch};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Row {
    text: String,
    unigram: Expected,
    bpe: Expected,
}

fn spells_a_special(text: &str) -> bool {
    ["<unk>", "<s>", "</s>"].iter().any(|s| text.contains(s))
}

/// The texts whose ids from `tokenizer` differ from `expected`.
fn differing<'a>(tokenizer: &Tokenizer, rows: &[(&'a str, Vec<u32>)]) -> Vec<&'a str> {
    rows.iter()
        .filter(|(text, ids)| &tokenizer.encode(text).unwrap() != ids)
        .map(|(text, _)| *text)
        .collect()
}

/// Checks `spm`'s tokenizer against the reference ids, and against `encode_ids_with` for a
/// vocabulary that numbers the pieces backwards.
fn check(name: &str, expected: impl Fn(&Row) -> &Vec<u32>) {
    let rows: Vec<Row> = golden("golden.jsonl.gz");
    let spm = SentencePiece::load(fixture(&format!("{name}.spm"))).unwrap();
    let specials: Vec<&str> = rows
        .iter()
        .map(|r| r.text.as_str())
        .filter(|t| spells_a_special(t))
        .collect();
    assert!(!specials.is_empty());

    let own: Vec<_> = rows
        .iter()
        .map(|r| (r.text.as_str(), expected(r).clone()))
        .collect();
    let tokenizer = spm.to_tokenizer(None).unwrap();
    assert_eq!(tokenizer.vocab_size(), spm.len());
    assert_eq!(differing(&tokenizer, &own), specials, "{name}, own ids");
    let literal = tokenizer.encode(specials[0]).unwrap();
    assert_eq!(literal[0], spm.unk_id(), "{name}: {:?}", specials[0]);

    // Saved as attend saves tokenizers into a run directory, read back by `tokenizers`.
    let path = scratch(name).join("src_tokenizer.json");
    tokenizer.save(&path).unwrap();
    let reloaded = tokenizers::Tokenizer::from_file(&path).unwrap();
    for (text, ids) in own.iter().filter(|(t, _)| !spells_a_special(t)).step_by(7) {
        assert_eq!(
            &reloaded.encode(*text, false).unwrap().get_ids().to_vec(),
            ids,
            "{text:?}"
        );
    }

    let n = spm.len() as u32;
    let ids: HashMap<String, u32> = (0..n)
        .map(|id| (spm.id_to_piece(id).unwrap().to_string(), n - 1 - id))
        .collect();
    let vocab = PieceVocab {
        unk: ids[spm.id_to_piece(spm.unk_id()).unwrap()],
        ids,
    };
    let other: Vec<_> = rows
        .iter()
        .map(|r| {
            let ids = spm.encode_ids_with(&r.text, &vocab.ids, vocab.unk);
            (r.text.as_str(), ids)
        })
        .collect();
    assert!(other.iter().zip(&own).any(|(a, b)| a.1 != b.1));
    let tokenizer = spm.to_tokenizer(Some(&vocab)).unwrap();
    assert_eq!(
        differing(&tokenizer, &other),
        specials,
        "{name}, other vocabulary"
    );
}

#[test]
fn unigram_tokenizer_gives_the_reference_ids() {
    check("unigram", |r| &r.unigram.ids);
}

#[test]
fn bpe_tokenizer_with_byte_fallback_gives_the_reference_ids() {
    check("bpe", |r| &r.bpe.ids);
}

#[test]
fn a_vocabulary_with_gaps_is_refused() {
    let spm = SentencePiece::load(fixture("unigram.spm")).unwrap();
    let vocab = PieceVocab {
        ids: HashMap::from([("<unk>".to_string(), 0), ("▁the".to_string(), 5)]),
        unk: 0,
    };
    let err = spm.to_tokenizer(Some(&vocab)).unwrap_err().to_string();
    assert!(err.contains("id 5"), "{err}");
}

#[test]
fn models_without_a_pipeline_equivalent_are_refused() {
    for name in ["unigram_user", "bpe_user"] {
        let spm = SentencePiece::load(fixture(&format!("{name}.spm"))).unwrap();
        let err = spm.to_tokenizer(None).unwrap_err().to_string();
        assert!(err.contains("user-defined pieces"), "{name}: {err}");
    }
}
