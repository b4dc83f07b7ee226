//! `attend import-torch` on models written as PyTorch tutorials write them
//! (`crates/attend/tests/fixtures/torch_tutorials/`, made by `tools/golden/torch_tutorials.py`):
//! the tutorial's `nn.Transformer` (characters; `torch.save` of a dict holding the state dict) and
//! its GRU encoder-decoder without attention (words; encoder and decoder saved separately). Each
//! imports with its mapping file, and `attend translate` gives PyTorch's greedy and beam outputs on
//! every one of the 120 stored sentences. A wrong mapping is refused with one message that lists
//! every problem, and wrong special ids are caught by the stored check batch.

mod cli_support;
use cli_support::attend;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attend/tests/fixtures/torch_tutorials")
        .join(model)
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn import(mapping: &Path, out: &Path) -> Output {
    attend(
        &[
            "import-torch",
            "--config",
            mapping.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ],
        "",
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Imports `model`'s fixture and compares `attend translate` (greedy, then beam) with PyTorch's
/// outputs on every stored sentence.
fn matches_pytorch(model: &str) {
    let dir = scratch(model);
    let run = dir.join("run");
    let o = import(&fixture(model).join("mapping.toml"), &run);
    assert!(o.status.success(), "import failed: {}", stderr(&o));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(model).join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let rows = expected["sentences"].as_array().expect("sentences");
    assert!(rows.len() >= 100, "{} sentences", rows.len());
    let input: String = rows
        .iter()
        .map(|r| format!("{}\n", r["source"].as_str().expect("source")))
        .collect();
    let beam = expected["beam"].as_u64().expect("beam").to_string();
    let alpha = expected["alpha"].as_f64().expect("alpha").to_string();
    for (search, args) in [
        ("greedy", vec!["--beam", "1"]),
        (
            "beam",
            vec!["--beam", beam.as_str(), "--alpha", alpha.as_str()],
        ),
    ] {
        let mut argv = vec!["translate", "--model", run.to_str().expect("utf-8")];
        argv.extend(args);
        let o = attend(&argv, &input);
        assert!(o.status.success(), "translate failed: {}", stderr(&o));
        let out = String::from_utf8(o.stdout).expect("utf-8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), rows.len(), "{search}: one line per input");
        let differ: Vec<String> = rows
            .iter()
            .zip(&lines)
            .filter(|(r, l)| r[search].as_str() != Some(**l))
            .map(|(r, l)| format!("{:?}: attend {l:?}, PyTorch {}", r["source"], r[search]))
            .collect();
        assert!(
            differ.is_empty(),
            "{model} {search}: {} of {} differ:\n{}",
            differ.len(),
            rows.len(),
            differ.join("\n")
        );
    }
}

#[test]
fn the_transformer_tutorial_decodes_as_pytorch() {
    matches_pytorch("transformer");
}

#[test]
fn the_gru_tutorial_decodes_as_pytorch() {
    matches_pytorch("gru");
}

/// The fixture's files copied into `dir`, with the mapping file edited by `edit`.
fn altered(model: &str, dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    for entry in std::fs::read_dir(fixture(model)).expect("fixture dir") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copies");
    }
    let mapping = dir.join("mapping.toml");
    let text = std::fs::read_to_string(&mapping).expect("mapping");
    std::fs::write(&mapping, edit(text)).expect("writes mapping");
    mapping
}

#[test]
fn a_wrong_mapping_lists_every_problem_at_once() {
    let dir = scratch("wrong-mapping");
    // No rule for the output layer, and a feed-forward size the checkpoint does not have.
    let mapping = altered("transformer", &dir, |t| {
        t.replace("\"out_proj.\" = \"generator.\"\n", "")
            .replace("ff_size = 64", "ff_size = 48")
    });
    let o = import(&mapping, &dir.join("run"));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    for needle in [
        "missing `out_proj.weight` [",
        "missing `out_proj.bias`",
        "unused `generator.weight` [",
        "unused `generator.bias`",
        "`transformer.encoder.layers.0.linear1.weight` has shape [64, 32], expected [48, 32]",
        "`transformer.decoder.layers.1.linear2.weight` has shape [32, 64], expected [32, 48]",
    ] {
        assert!(e.contains(needle), "no {needle:?} in:\n{e}");
    }
    assert!(!dir.join("run/config.toml").exists(), "nothing is written");
}

#[test]
fn wrong_special_ids_are_caught_by_the_check_batch() {
    let dir = scratch("wrong-special");
    // bos and eos swapped: every tensor fits, the model is wrong.
    let mapping = altered("gru", &dir, |t| {
        t.replace("bos = 0\neos = 1", "bos = 1\neos = 0")
    });
    let o = import(&mapping, &dir.join("run"));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("check.json"), "{e}");
    assert!(e.contains("of the 8 check sentences differently"), "{e}");
    assert!(!dir.join("run/config.toml").exists(), "nothing is written");
}

#[test]
fn a_saved_dict_without_a_key_names_its_entries() {
    let dir = scratch("no-key");
    let mapping = altered("transformer", &dir, |t| {
        t.replace("key = \"model_state_dict\"\n", "")
    });
    let o = import(&mapping, &dir.join("run"));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("transformer.pt"), "{e}");
    assert!(
        e.contains("`model_state_dict` (a state dict of"),
        "the message lists the dict's entries: {e}"
    );
    assert!(e.contains("key = "), "{e}");
}
