//! `attend import hf|marian DIR --out RUN` on the fixtures of `tools/golden/marian.sh`, then
//! `attend translate --ids` on the run directory: the beam-4 outputs of Hugging Face `generate`;
//! and the same sentences as raw text, translated to the text of those outputs.
//! Broken input fails with the file named; `attend import torch` is `attend import-torch`.

mod cli_support;
use attend::data::sentencepiece::SentencePiece;
use attend::data::tokenizer::Vocabs;
use cli_support::attend;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attend/tests/fixtures/marian")
        .join(variant)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Imports `variant` in `form`, translates the first sentences with the run's defaults (beam 4,
/// Hugging Face's rules) and compares with `generate`.
fn translates_like_hugging_face(variant: &str, form: &str) {
    let run = scratch(&format!("{variant}-{form}"));
    let dir = fixtures(variant).join(form);
    let o = attend(
        &[
            "import",
            form,
            dir.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures(variant).join("expected.json")).unwrap(),
    )
    .unwrap();
    let vocabs = Vocabs::load(&run).unwrap();
    let hf = fixtures(variant).join("hf");
    let vocab = |name: &str| -> BTreeMap<String, u32> {
        let path = if hf.join(name).is_file() {
            hf.join(name)
        } else {
            hf.join("vocab.json")
        };
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (src_vocab, tgt_vocab) = (vocab("vocab.json"), vocab("target_vocab.json"));
    let to_attend =
        |vocab: &BTreeMap<String, u32>, tok: &attend::data::tokenizer::Tokenizer, id: u32| {
            let piece = vocab.iter().find(|(_, &i)| i == id).unwrap().0;
            tok.token_id(piece).unwrap()
        };
    let n = 8;
    let mut input = String::new();
    for s in expected["sources"].as_array().unwrap().iter().take(n) {
        let s = ids(s);
        let line: Vec<String> = s[..s.len() - 1]
            .iter()
            .map(|&i| to_attend(&src_vocab, &vocabs.src, i).to_string())
            .collect();
        input.push_str(&line.join(" "));
        input.push('\n');
    }
    // Hugging Face's max_length (48) counts the decoder start; the run's own limit is the
    // positional table, which these sentences do not reach.
    let o = attend(
        &["translate", "--model", run.to_str().unwrap(), "--ids"],
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    for (line, want) in out.lines().zip(expected["beam4"].as_array().unwrap()) {
        let want: Vec<String> = ids(want)
            .into_iter()
            .filter(|&t| t != 0)
            .map(|t| to_attend(&tgt_vocab, &vocabs.tgt, t).to_string())
            .collect();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            want,
            "{variant}/{form}"
        );
    }
    assert_eq!(out.lines().count(), n);

    // The same sentences as raw text (the reference decode of their pieces) give the reference
    // decode of Hugging Face's outputs.
    let text = |spm: &str, vocab: &BTreeMap<String, u32>, ids: &[u32]| {
        let pieces: Vec<&String> = ids
            .iter()
            .filter(|&&t| t != 0)
            .map(|&t| vocab.iter().find(|(_, &i)| i == t).unwrap().0)
            .collect();
        SentencePiece::load(hf.join(spm))
            .unwrap()
            .decode_pieces(&pieces)
    };
    let rows = |key: &str| expected[key].as_array().unwrap().iter().take(n).map(ids);
    let input: Vec<String> = rows("sources")
        .map(|s| text("source.spm", &src_vocab, &s))
        .collect();
    let o = attend(
        &["translate", "--model", run.to_str().unwrap()],
        &(input.join("\n") + "\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: Vec<String> = rows("beam4")
        .map(|t| text("target.spm", &tgt_vocab, &t))
        .collect();
    assert_eq!(
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        want,
        "{variant}/{form}: text in, text out"
    );
}

#[test]
fn imported_hf_and_marian_models_translate_like_hugging_face() {
    translates_like_hugging_face("tied", "hf");
    translates_like_hugging_face("separate", "marian");
}

#[test]
fn a_broken_directory_fails_naming_the_file() {
    let empty = scratch("empty");
    let out = scratch("empty-run");
    for form in ["hf", "marian"] {
        let o = attend(
            &[
                "import",
                form,
                empty.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "",
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        let file = if form == "hf" {
            "config.json"
        } else {
            "model.npz"
        };
        assert!(
            err.contains(file) && !err.contains("panicked"),
            "{form}: {err}"
        );
    }
}

/// `explain` on an imported model: the attention covers the `</s>` the model appends to every
/// source, so each step's weights are a softmax distribution over the tokens shown.
#[test]
fn explain_shows_the_appended_end_of_source() {
    let run = scratch("explain");
    let dir = fixtures("tied").join("hf");
    let o = attend(
        &[
            "import",
            "hf",
            dir.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = attend(
        &[
            "explain",
            "--model",
            run.to_str().unwrap(),
            "The cat sat on the mat.",
            "--json",
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tokens = v["source_tokens"].as_array().unwrap();
    assert_eq!(tokens.last().unwrap(), "</s>");
    let steps = v["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    for step in steps {
        let weights: Vec<f64> = step["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .collect();
        assert_eq!(weights.len(), tokens.len());
        let sum: f64 = weights.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "step {}: weights sum to {sum}",
            step["step"]
        );
    }
}

/// `translate --plot` on an imported model: the maps' columns are the source tokens and the `</s>`
/// the model appends (the picture of the alignment view and of every layer and head).
#[test]
fn plots_show_the_appended_end_of_source() {
    let run = scratch("plot");
    let dir = fixtures("tied").join("hf");
    let o = attend(
        &[
            "import",
            "hf",
            dir.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plots = scratch("plot-pictures");
    let o = attend(
        &[
            "translate",
            "--model",
            run.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
        "The cat sat on the mat.\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for svg in ["line-1.svg", "line-1/cross-l2-h3.svg"] {
        let text = std::fs::read_to_string(plots.join(svg)).unwrap();
        assert!(text.contains("&lt;/s&gt;"), "{svg} labels the </s> column");
    }
    let text = std::fs::read_to_string(plots.join("line-1.svg")).unwrap();
    assert!(
        text.contains("layer 1, mean of 4 heads"),
        "the alignment view"
    );
}
