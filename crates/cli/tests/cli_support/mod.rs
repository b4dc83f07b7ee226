//! Helpers shared by the `cli_*` tests: tiny untrained models saved as run directories, the
//! `attend` binary, and decoders for the pictures it writes.
// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use attend::config::{Config, ModelConfig, TransformerConfig};
use attend::data::tokenizer::{TokenizerKind, Vocabs};
use attend::models;
use attend::train::checkpoint::{load_model, write_config, LoadedModel};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// English→French-like pairs with accents, of 1 to 12 source words.
pub fn pairs() -> Vec<(String, String)> {
    let base = [
        ("black cat", "chat noir"),
        ("the summer café", "le café d'été"),
        ("where is the green tree", "où est l'arbre vert"),
        ("a black cat is in the café", "un chat noir est au café"),
        ("the tree is green in summer", "l'arbre est vert en été"),
        (
            "where is the black cat and the green tree in summer",
            "où sont le chat noir et l'arbre vert en été",
        ),
    ];
    base.iter()
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect()
}

/// The tiny model config: `kind` = "rnn" with `attention`, or "transformer".
pub fn config(kind: &str, attention: &str) -> Config {
    let mut sets: Vec<String> = [
        "name=\"tiny\"",
        "data.tokenizer=\"word\"",
        "data.joint_vocab=true",
        "search.beam=1",
        "model.rnn.cell=\"gru\"",
        "model.rnn.embedding=8",
        "model.rnn.hidden=6",
        "model.rnn.decoder_hidden=12",
        "model.rnn.attention_size=5",
        "model.rnn.encoder_layers=2",
        "model.rnn.decoder_layers=2",
        "model.rnn.dropout=0.0",
    ]
    .map(String::from)
    .into();
    sets.push(format!("model.rnn.attention=\"{attention}\""));
    let mut config = Config::load(None, &sets).expect("tiny config is valid");
    if kind == "transformer" {
        config.model = ModelConfig::Transformer(TransformerConfig {
            d_model: 8,
            heads: 2,
            ff_size: 16,
            encoder_layers: 2,
            decoder_layers: 2,
            dropout: 0.0,
            ..TransformerConfig::default()
        });
        config.validate().expect("tiny config is valid");
    }
    config
}

/// Saves an untrained tiny model (seeded) as a run directory `dir`: config, tokenizers and
/// `best.safetensors`, as `attend train` would leave it.
pub fn tiny_run(dir: &Path, kind: &str, attention: &str, seed: u64) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let cfg = config(kind, attention);
    let vocabs = Vocabs::train(
        &TokenizerKind::Word {
            min_freq: 1,
            max_size: 200,
        },
        &pairs(),
        true,
    )
    .unwrap();
    vocabs.save(dir).unwrap();
    write_config(dir, &cfg).unwrap();
    let model =
        models::build(&cfg, vocabs.src.vocab_size(), vocabs.tgt.vocab_size(), seed).unwrap();
    model.params().save(&dir.join("best.safetensors")).unwrap();
    dir.to_path_buf()
}

/// Loads a run directory's best checkpoint.
pub fn load(dir: &Path) -> LoadedModel {
    load_model(dir, "best").unwrap()
}

/// A fresh directory under cargo's per-test temporary directory.
pub fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the `attend` binary with `args`, feeding `stdin`.
pub fn attend(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("attend runs");
    // A command that fails before reading its input closes the pipe: that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// stdout of a run that must succeed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "attend failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// stderr of a run that must fail.
pub fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "attend should have failed");
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Width and height of a PNG file, after checking the signature and decoding every pixel.
pub fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

/// The `<text>` contents of an SVG file, after checking that it parses, and its size.
pub fn svg_texts(path: &Path) -> (Vec<String>, (u32, u32)) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("SVG parses as XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let dim = |a: &str| root.attribute(a).unwrap().parse::<u32>().unwrap();
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    (texts, (dim("width"), dim("height")))
}
