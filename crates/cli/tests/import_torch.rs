//! `attend import-torch` on the PyTorch golden fixtures: the imported directory decodes (through
//! `attend translate --ids`, and in text mode with `w<i>` words) to PyTorch's greedy ids; sizes that
//! do not fit the state_dict and a positional table in another layout are refused clearly. The
//! peer's own numpy export (`transformer_bench.py --export-npz`, tiny sizes) imports from `.npz` and
//! `attend bench transformer --weights … --check …` reproduces torch's greedy ids for its check batch.

/// The PyTorch golden fixtures' reader, shared with the library's tests.
#[path = "../../attend/tests/attention_support/mod.rs"]
mod attention_support;

use attention_support::{fixture, get};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attend/tests/fixtures/torch")
        .join(format!("{name}.safetensors"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The fixtures' sizes (see crates/attend/tests/fixtures/torch/README.md), with exactly 8 greedy
/// steps; the fixtures' golden inputs and outputs beside the parameters are not the model's.
fn sizes(norm_first: bool, activation: &str, layers: usize) -> String {
    format!(
        "src_vocab = 20\ntgt_vocab = 20\nd_model = 16\nheads = 2\nencoder_layers = {layers}\n\
         decoder_layers = {layers}\nff_size = 32\nactivation = \"{activation}\"\n\
         norm_first = {norm_first}\nmax_positions = 16\n\
         ignore = [\"grad.\", \"grad_out.logits\", \"greedy_ids\", \"logits\", \"memory\", \"src\", \
         \"src_key_padding_mask\", \"src_lengths\", \"tgt_in\"]\n\n\
         [search]\nbeam = 1\nalpha = 0.0\nmax_len_a = 0.0\nmax_len_b = 8\n"
    )
}

fn attend(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs attend");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writes stdin");
    child.wait_with_output().expect("attend finishes")
}

fn import(name: &str, sizes_text: &str, dir: &Path) -> Output {
    import_state(&fixture_path(name), sizes_text, dir)
}

/// `attend import-torch --state STATE` with the given sizes into `dir/model`.
fn import_state(state: &Path, sizes_text: &str, dir: &Path) -> Output {
    let sizes_path = dir.join("sizes.toml");
    std::fs::write(&sizes_path, sizes_text).expect("writes sizes");
    let out = dir.join("model");
    attend(
        &[
            "import-torch",
            "--state",
            state.to_str().expect("utf-8 path"),
            "--config",
            sizes_path.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        "",
    )
}

fn stdout_of(o: &Output) -> String {
    assert!(
        o.status.success(),
        "attend failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

/// The fixture's sources (real tokens only) and greedy ids, one line per sentence.
fn sources_and_greedy(name: &str) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let f = fixture(name);
    let (src, len, greedy) = (
        get(&f, "src"),
        get(&f, "src_lengths"),
        get(&f, "greedy_ids"),
    );
    let (s, steps) = (src.dim(1), greedy.dim(1));
    let rows = len.numel();
    let sources = (0..rows)
        .map(|r| {
            let l = len.data()[r] as usize;
            src.data()[r * s..r * s + l]
                .iter()
                .map(|&x| x as u32)
                .collect()
        })
        .collect();
    let greedy = (0..rows)
        .map(|r| {
            greedy.data()[r * steps..(r + 1) * steps]
                .iter()
                .map(|&x| x as u32)
                .collect()
        })
        .collect();
    (sources, greedy)
}

fn join(ids: &[u32], prefix: &str) -> String {
    ids.iter()
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn imported_model_decodes_like_pytorch(name: &str, norm_first: bool, activation: &str) {
    let dir = scratch(name);
    let out = import(name, &sizes(norm_first, activation, 2), &dir);
    let msg = stdout_of(&out);
    assert!(msg.contains("imported"), "{msg}");
    let model = dir.join("model");
    for file in [
        "config.toml",
        "best.safetensors",
        "src_tokenizer.json",
        "tgt_tokenizer.json",
    ] {
        assert!(model.join(file).is_file(), "{file} written");
    }
    let (sources, greedy) = sources_and_greedy(name);
    let model_arg = model.to_str().expect("utf-8 path");
    // Ids in, ids out.
    let input: String = sources.iter().map(|s| join(s, "") + "\n").collect();
    let got = stdout_of(&attend(
        &["translate", "--model", model_arg, "--ids"],
        &input,
    ));
    let expected: String = greedy.iter().map(|g| join(g, "") + "\n").collect();
    assert_eq!(got, expected, "{name}: greedy ids through translate --ids");
    // Text mode: the words are w<id>.
    let input: String = sources.iter().map(|s| join(s, "w") + "\n").collect();
    let got = stdout_of(&attend(&["translate", "--model", model_arg], &input));
    let expected: String = greedy.iter().map(|g| join(g, "w") + "\n").collect();
    assert_eq!(got, expected, "{name}: greedy words through translate");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn prenorm_import_decodes_pytorch_greedy_ids() {
    imported_model_decodes_like_pytorch("transformer", true, "relu");
}

#[test]
fn postnorm_import_decodes_pytorch_greedy_ids() {
    imported_model_decodes_like_pytorch("transformer_postnorm", false, "gelu");
}

#[test]
fn sizes_that_do_not_fit_the_state_dict_are_refused() {
    let dir = scratch("bad");
    let cases = [
        (sizes(true, "relu", 3), "transformer.encoder.layers.2"),
        (
            sizes(true, "relu", 2).replace("ff_size = 32", "ff_size = 64"),
            "shape",
        ),
        (
            sizes(true, "relu", 2).replace("max_positions = 16", "max_positions = 12"),
            "pos_enc",
        ),
        (
            sizes(true, "relu", 2).replace("heads = 2", "heads = 3"),
            "heads",
        ),
        (sizes(true, "tanh", 2), "activation"),
    ];
    for (text, needle) in cases {
        let out = import("transformer", &text, &dir);
        assert!(!out.status.success(), "{needle}: import should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// The tiny export of `transformer_bench.py` (tools/golden/make_transformer_bench_npz.sh).
fn bench_export() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attend/tests/fixtures/torch/transformer_bench_tiny.npz")
}

/// The sizes of that export (`--vocab 40 --d-model 16 --heads 2 --ff 32 --enc-layers 2
/// --dec-layers 2`, the peer's 1024-row `pos_enc`).
const BENCH_TINY_SIZES: &str = "src_vocab = 40\ntgt_vocab = 40\nd_model = 16\nheads = 2\n\
    encoder_layers = 2\ndecoder_layers = 2\nff_size = 32\nactivation = \"relu\"\n\
    norm_first = true\nmax_positions = 1024\n";

#[test]
fn the_peers_npz_export_decodes_to_torchs_greedy_ids() {
    let dir = scratch("npz");
    let msg = stdout_of(&import_state(&bench_export(), BENCH_TINY_SIZES, &dir));
    assert!(msg.contains("imported"), "{msg}");
    let model = dir.join("model");
    let check = bench_export().with_extension("npz.json");
    let out = stdout_of(&attend(
        &[
            "--threads",
            "1",
            "bench",
            "transformer",
            "--mode",
            "decode",
            "--json",
            "--weights",
            model.to_str().expect("utf-8 path"),
            "--check",
            check.to_str().expect("utf-8 path"),
            "--vocab",
            "40",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--ff",
            "32",
            "--enc-layers",
            "2",
            "--dec-layers",
            "2",
            "--batch",
            "4",
            "--src-len",
            "6",
            "--tgt-len",
            "6",
            "--warmup",
            "1",
            "--decode-reps",
            "1",
        ],
        "",
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(v["bench"], "transformer_decode_greedy");
    assert_eq!(v["greedy_rows_vs_torch_total"], 4);
    assert_eq!(v["greedy_rows_identical_vs_torch"], 4, "{v}");
    assert_eq!(v["greedy_token_agreement_vs_torch"], 1.0);
    // Sizes other than the export's are refused, not decoded.
    let wrong = attend(
        &[
            "bench",
            "transformer",
            "--mode",
            "decode",
            "--weights",
            model.to_str().expect("utf-8 path"),
        ],
        "",
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("d_model = 16 (the benchmark's: 256)"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[test]
fn state_dicts_in_other_formats_or_corrupt_are_refused() {
    let dir = scratch("formats");
    let pickle = dir.join("state.pt");
    std::fs::write(&pickle, b"not read").expect("writes");
    let corrupt = dir.join("state.npz");
    let bytes = std::fs::read(bench_export()).expect("reads the fixture");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).expect("writes");
    for (state, needle) in [
        (&pickle, ".safetensors or .npz"),
        (&corrupt, "not a numpy .npz"),
    ] {
        let out = import_state(state, BENCH_TINY_SIZES, &dir);
        assert!(!out.status.success(), "{needle}: import should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
