//! End-to-end training on the generated reverse task: it learns (test BLEU ≥ 95 with greedy search),
//! seeded runs are reproducible, and an interrupted run resumed from its checkpoint ends with exactly
//! the weights of an uninterrupted one.

use attend::config::Config;
use attend::nn::params::load_tensors;
use attend::train::trainer::{train, TrainOptions};
use std::path::{Path, PathBuf};

fn reverse_config(sets: &[&str]) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/reverse.toml");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(Some(&path), &sets).expect("configs/reverse.toml parses")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(config: &Config, out: &Path, resume: bool) -> attend::train::trainer::Summary {
    train(
        config,
        &TrainOptions {
            out: out.to_path_buf(),
            resume,
            progress: &attend::train::progress::Quiet,
            comm: &attend::train::collective::Single,
        },
    )
    .expect("training runs")
}

#[test]
fn reverse_task_reaches_bleu_95_with_greedy_search() {
    let out = temp_dir("reverse");
    let summary = run(&reverse_config(&["train.max_steps=600"]), &out, false);
    assert!(
        summary.test_bleu >= 95.0,
        "test BLEU {:.2} < 95",
        summary.test_bleu
    );
    assert_eq!(summary.beam, 1);
    for f in [
        "config.toml",
        "src_tokenizer.json",
        "best.safetensors",
        "log.jsonl",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing from the run directory");
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let small = [
        "data.reverse_sizes=[600, 40, 40]",
        "train.valid_every=10",
        "model.rnn.hidden=16",
        "model.rnn.decoder_hidden=32",
        "model.rnn.embedding=16",
        "model.rnn.attention_size=16",
        "model.rnn.dropout=0.1",
    ];
    let with = |steps: &str| {
        let mut s = small.to_vec();
        s.push(steps);
        reverse_config(&s)
    };
    let whole = temp_dir("whole");
    run(&with("train.max_steps=30"), &whole, false);
    let parts = temp_dir("parts");
    run(&with("train.max_steps=20"), &parts, false);
    // Finished runs refuse to resume unless there is something left to do.
    assert!(train(
        &with("train.max_steps=20"),
        &TrainOptions {
            out: parts.clone(),
            resume: true,
            progress: &attend::train::progress::Quiet,
            comm: &attend::train::collective::Single,
        }
    )
    .is_err());
    run(&with("train.max_steps=30"), &parts, true);
    let a = load_tensors(&whole.join("last.safetensors")).expect("weights");
    let b = load_tensors(&parts.join("last.safetensors")).expect("weights");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert_eq!(t, &b[name], "{name} differs after resume");
    }
    // A fresh run into a directory that holds one is refused (nothing is overwritten).
    assert!(train(
        &with("train.max_steps=30"),
        &TrainOptions {
            out: whole.clone(),
            resume: false,
            progress: &attend::train::progress::Quiet,
            comm: &attend::train::collective::Single,
        }
    )
    .is_err());
    std::fs::remove_dir_all(&whole).ok();
    std::fs::remove_dir_all(&parts).ok();
}

#[test]
fn seeded_runs_are_reproducible() {
    let cfg = reverse_config(&[
        "data.reverse_sizes=[300, 20, 20]",
        "train.max_steps=8",
        "train.valid_every=4",
        "model.rnn.hidden=8",
        "model.rnn.decoder_hidden=16",
        "model.rnn.embedding=8",
        "model.rnn.attention_size=8",
    ]);
    let (a, b) = (temp_dir("seed-a"), temp_dir("seed-b"));
    run(&cfg, &a, false);
    run(&cfg, &b, false);
    assert_eq!(
        load_tensors(&a.join("last.safetensors")).expect("a"),
        load_tensors(&b.join("last.safetensors")).expect("b")
    );
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}
