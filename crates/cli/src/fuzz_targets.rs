//! The fuzz targets: every parser that reads outside input, each behind one function that takes
//! arbitrary bytes and must answer `Ok` or a clean `Err` — never a panic, an abort, a hang or an
//! unbounded allocation.
//!
//! | target | what the bytes are | what reads them |
//! |---|---|---|
//! | [`corpus`] | a TSV file, or two parallel files (plain or gzip) | `data::corpus` |
//! | [`tokenizer`] | a tokenizer JSON file | `Tokenizer::from_json`, then encode + decode |
//! | [`config`] | an experiment TOML file | `Config::parse` (parse + validate) |
//! | [`checkpoint`] | a safetensors or `.npz` checkpoint | loaded into a tiny RNN model / `read_npz` |
//! | [`request`] | the body of `POST /translate` | `TranslateRequest::parse` |
//! | [`torch`] | a `torch.save` checkpoint, or its pickle alone | `import::torch_zip::parse_torch`, `import::pickle::parse` |
//!
//! The same functions run under libFuzzer (`fuzz/`, `cargo fuzz run NAME`) and in the stable test
//! suite (`tests/fuzz_seeds.rs`: the committed seeds under `fuzz/seeds/NAME/` plus seeded
//! mutations). Each returns the parser's error message so that the test can tell accepted seeds
//! from refused mutations.

use crate::serve::api::TranslateRequest;
use crate::serve::limits::Limits;
use attend::config::Config;
use attend::data::corpus::{read_parallel_from, read_tsv_from};
use attend::data::tokenizer::Tokenizer;
use attend::import::torch_zip::parse_torch;
use attend::models::Seq2Seq;
use attend::nn::npz::read_npz;
use attend::nn::params::parse_tensors;
use std::path::Path;

/// A target: arbitrary bytes in, `Ok` or the parser's error message out.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// Every target by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/seeds/NAME/` are named.
pub const TARGETS: [(&str, Target); 6] = [
    ("corpus", corpus),
    ("tokenizer", tokenizer),
    ("config", config),
    ("checkpoint", checkpoint),
    ("request", request),
    ("torch", torch),
];

/// The bytes as a TSV corpus (columns 0 → 1; and with a header, columns 2 → 0), and split in the
/// middle as a pair of parallel files. `Ok` when any reading yields a corpus.
pub fn corpus(data: &[u8]) -> Result<(), String> {
    let label = Path::new("fuzz.tsv");
    let plain = read_tsv_from(data, label, 0, 1, false).map(drop);
    let header = read_tsv_from(data, label, 2, 0, true).map(drop);
    let (src, tgt) = data.split_at(data.len() / 2);
    let parallel = read_parallel_from(src, Path::new("fuzz.src"), tgt, Path::new("fuzz.tgt"));
    plain
        .or(header)
        .or(parallel.map(drop))
        .map_err(|e| e.to_string())
}

/// The bytes as a tokenizer file; a tokenizer that loads must then encode and decode a sentence
/// with words, punctuation, digits and non-ASCII letters.
pub fn tokenizer(data: &[u8]) -> Result<(), String> {
    let tok =
        Tokenizer::from_json(data, Path::new("fuzz_tokenizer.json")).map_err(|e| e.to_string())?;
    let ids = tok
        .encode("Un chat noir ! J'ai 3 « chats », l'été.")
        .map_err(|e| e.to_string())?;
    tok.decode(&ids);
    Ok(())
}

/// The bytes as an experiment config (UTF-8 TOML), parsed and validated.
pub fn config(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("fuzz.toml: {e}"))?;
    Config::parse(text, "fuzz.toml", &[])
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The bytes as a safetensors checkpoint loaded into [`tiny_model`], and as an `.npz` archive.
/// `Ok` when either reading succeeds.
pub fn checkpoint(data: &[u8]) -> Result<(), String> {
    let path = Path::new("fuzz.safetensors");
    let loaded = parse_tensors(data, path)
        .and_then(|map| tiny_model().params().assign(&map, path))
        .map_err(|e| e.to_string());
    let npz =
        read_npz(std::io::Cursor::new(data), Path::new("fuzz.npz")).map_err(|e| e.to_string());
    match (loaded, npz) {
        (Ok(()), _) | (_, Ok(_)) => Ok(()),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
    }
}

/// The bytes as the body of `POST /translate` under the server's default limits; a refusal is
/// always a 400 or a 413.
pub fn request(data: &[u8]) -> Result<(), String> {
    match TranslateRequest::parse(data, &Limits::default()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.status.as_u16();
            assert!(
                status == 400 || status == 413,
                "a request body got {status}: {}",
                e.message
            );
            Err(e.message)
        }
    }
}

/// The bytes as a `torch.save` checkpoint (its state dict, or the one under `model_state_dict`),
/// and as a bare pickle. `Ok` when any reading succeeds.
pub fn torch(data: &[u8]) -> Result<(), String> {
    let path = Path::new("fuzz.pt");
    let flat = parse_torch(data, path, None).map(drop);
    let nested = parse_torch(data, path, Some("model_state_dict")).map(drop);
    let pickle = attend::import::pickle::parse(data).map(drop);
    match (flat.or(nested), pickle) {
        (Ok(()), _) | (_, Ok(())) => Ok(()),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
    }
}

/// The model whose checkpoints [`checkpoint`] loads: `configs/reverse.toml` shrunk to a bi-LSTM
/// encoder of width 4 with additive attention, 12 tokens per side.
pub fn tiny_model() -> Box<dyn Seq2Seq> {
    let sets = [
        "model.rnn.embedding=4",
        "model.rnn.hidden=4",
        "model.rnn.decoder_hidden=8",
        "model.rnn.attention_size=4",
    ]
    .map(String::from);
    let config = Config::parse(
        include_str!("../../../configs/reverse.toml"),
        "reverse.toml",
        &sets,
    )
    .expect("the bundled reverse config with small sizes is valid");
    attend::models::build(&config, 12, 12, 1).expect("the tiny model builds")
}
