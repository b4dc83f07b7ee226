//! SentencePiece models that cannot be used give errors that name the file and say why: a
//! missing file, truncated files, files of another format, models of an unsupported type, and
//! models that break the reference's consistency checks. Never a panic.

mod sentencepiece_support;

use std::path::Path;

use attend::data::sentencepiece::{SentencePiece, SentencePieceError};
use prost::Message;
use sentencepiece_model::{ModelProto, ModelType, SentencePieceModel, Type};
use sentencepiece_support::{fixture, scratch};

/// The BPE fixture's protobuf, to alter.
fn bpe_proto() -> ModelProto {
    SentencePieceModel::from_file(fixture("bpe.spm"))
        .unwrap()
        .model()
        .clone()
}

/// Writes `proto` to `dir/name` and loads it, expecting an error; returns its message.
fn load_error(dir: &Path, name: &str, bytes: &[u8]) -> (SentencePieceError, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = SentencePiece::load(&path).expect_err(name);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    (err, message)
}

#[test]
fn a_missing_file_is_named() {
    let path = scratch("missing").join("source.spm");
    let err = SentencePiece::load(&path).unwrap_err();
    assert!(matches!(err, SentencePieceError::Read { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("source.spm") && message.contains("cannot read"),
        "{message}"
    );
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let dir = scratch("truncated");
    let bytes = std::fs::read(fixture("bpe.spm")).unwrap();
    let (err, message) = load_error(&dir, "empty.spm", &[]);
    assert!(
        matches!(err, SentencePieceError::NotAModel { .. }),
        "{message}"
    );
    assert!(message.contains("no pieces"), "{message}");
    // Cut inside the list of pieces, inside a piece: the protobuf does not parse.
    let (err, message) = load_error(&dir, "half.spm", &bytes[..bytes.len() / 2 + 1]);
    assert!(
        matches!(err, SentencePieceError::NotAModel { .. }),
        "{message}"
    );
    assert!(message.contains("not a ModelProto protobuf"), "{message}");
    // Every cut loads or fails cleanly; one that ends inside a field fails.
    let mut failed = 0;
    for len in (1..bytes.len()).step_by(61) {
        let path = dir.join("cut.spm");
        std::fs::write(&path, &bytes[..len]).unwrap();
        failed += usize::from(SentencePiece::load(&path).is_err());
    }
    assert!(failed > 0);
}

#[test]
fn files_of_other_formats_are_not_models() {
    let dir = scratch("other_formats");
    for (name, bytes) in [
        (
            "tokenizer.json",
            &br#"{"model": {"type": "Unigram", "vocab": []}}"#[..],
        ),
        ("vocab.yml", &b"</s>: 0\n<unk>: 1\n\xe2\x96\x81the: 2\n"[..]),
        ("hello.txt", &b"hello world\n"[..]),
    ] {
        let (err, message) = load_error(&dir, name, bytes);
        assert!(
            matches!(err, SentencePieceError::NotAModel { .. }),
            "{name}: {message}"
        );
        assert!(
            message.contains("is not a SentencePiece model"),
            "{name}: {message}"
        );
    }
}

#[test]
fn word_and_char_models_are_unsupported() {
    let dir = scratch("unsupported");
    for model_type in [ModelType::Word, ModelType::Char] {
        let mut proto = bpe_proto();
        proto.trainer_spec.as_mut().unwrap().model_type = Some(model_type as i32);
        let (err, message) = load_error(&dir, "word.spm", &proto.encode_to_vec());
        assert!(
            matches!(err, SentencePieceError::Unsupported { .. }),
            "{message}"
        );
        assert!(message.contains(model_type.as_str_name()), "{message}");
    }
}

#[test]
fn inconsistent_models_are_rejected_with_the_reason() {
    let dir = scratch("inconsistent");
    let unk = |proto: &ModelProto| {
        proto
            .pieces
            .iter()
            .position(|p| p.r#type() == Type::Unknown)
            .unwrap()
    };
    let mut no_unk = bpe_proto();
    let i = unk(&no_unk);
    no_unk.pieces[i].r#type = Some(Type::Normal as i32);
    let mut twice = bpe_proto();
    let copy = twice.pieces[10].clone();
    twice.pieces.push(copy);
    let mut missing_byte = bpe_proto();
    let i = missing_byte
        .pieces
        .iter()
        .position(|p| p.piece() == "<0x41>")
        .unwrap();
    missing_byte.pieces.remove(i);
    let mut bad_bos = bpe_proto();
    bad_bos.trainer_spec.as_mut().unwrap().bos_id = Some(1_000_000);
    for (proto, reason) in [
        (no_unk, "no unknown piece"),
        (twice, "defined twice"),
        (missing_byte, "256 byte pieces"),
        (bad_bos, "bos_id 1000000"),
    ] {
        let (err, message) = load_error(&dir, "bad.spm", &proto.encode_to_vec());
        assert!(
            matches!(err, SentencePieceError::NotAModel { .. }),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn ids_outside_the_model_do_not_decode() {
    let model = SentencePiece::load(fixture("unigram.spm")).unwrap();
    let size = model.len() as u32;
    let err = model.decode_ids(&[5, size]).unwrap_err();
    assert!(
        matches!(err, SentencePieceError::IdOutOfRange { id, .. } if id == size),
        "{err}"
    );
}
