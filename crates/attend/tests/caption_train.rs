//! A short end-to-end run on a tiny strip set: `train_captioner` writes a complete run directory,
//! the training loss falls, the summary holds accuracy, BLEU and the attention measures, and the
//! saved model reloads and captions the test strips as the run did. An interrupted run resumed
//! from its checkpoint ends with exactly the weights of an uninterrupted one, also when it was
//! killed while writing a checkpoint.

use attend::caption::trainer::max_words;
use attend::caption::{load_captioner, train_captioner, ImageRows};
use attend::config::Config;
use attend::nn::params::load_tensors;
use attend::train::trainer::TrainOptions;
use std::path::{Path, PathBuf};

/// The bundled digits config shrunk to a tiny model on tiny strips, with `extra` settings.
fn tiny_config(extra: &[&str]) -> Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/caption-digits.toml"
    );
    let sets: Vec<String> = [
        "caption.image_height=28",
        "caption.image_width=56",
        "caption.min_digits=1",
        "caption.max_digits=2",
        "caption.strips=[256, 16, 16]",
        "caption.conv_channels=[4, 8]",
        "caption.batch_size=16",
        "caption.doubly_stochastic=0.01",
        "model.captioner.embedding=8",
        "model.captioner.hidden=24",
        "model.captioner.attention_size=12",
        "train.lr=0.01",
        "search.beam=2",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    Config::load(Some(Path::new(path)), &sets).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn options(out: &Path, resume: bool) -> TrainOptions<'static> {
    TrainOptions {
        out: out.to_path_buf(),
        resume,
        progress: &attend::train::progress::Quiet,
        comm: &attend::train::collective::Single,
    }
}

#[test]
fn a_short_run_learns_and_reloads() {
    let config = tiny_config(&["train.max_steps=120", "train.valid_every=40"]);
    let out = temp_dir("run");
    let opts = options(&out, false);
    let summary = train_captioner(&config, &opts).unwrap();
    for f in [
        "config.toml",
        "tgt_tokenizer.json",
        "best.safetensors",
        "last.safetensors",
        "summary.json",
        "test.hyp.txt",
        "test-strips/000.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let losses: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(
        losses[2] < 0.8 * losses[0],
        "training loss did not fall: {losses:?}"
    );
    assert_eq!(summary.steps, 120);
    assert!(summary.test_bleu >= 0.0 && (0.0..=1.0).contains(&summary.test_exact));
    assert!(summary.attention_left_to_right.is_some() && summary.attention_on_digit.is_some());
    // A second run into the same directory is refused.
    assert!(train_captioner(&config, &opts).is_err());

    let loaded = load_captioner(&out, "best").unwrap();
    let sets = attend::caption::trainer::load_sets(&loaded.config).unwrap();
    let hyps = ImageRows {
        model: &loaded.model,
        images: &sets[2].images,
    }
    .caption_all(2, 0.0, max_words(&loaded.config));
    let text: Vec<String> = hyps.iter().map(|h| loaded.vocab.decode(&h.ids)).collect();
    let saved = std::fs::read_to_string(out.join("test.hyp.txt")).unwrap();
    assert_eq!(saved.lines().collect::<Vec<_>>(), text);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The steps of the validations in `DIR/log.jsonl`.
fn logged_steps(dir: &Path) -> Vec<u64> {
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    log.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    // 256 strips in batches of 16: 16 steps an epoch, so the resumed part starts mid-epoch.
    let with =
        |steps: &str| tiny_config(&["train.valid_every=10", "model.captioner.dropout=0.1", steps]);
    let whole = temp_dir("whole");
    train_captioner(&with("train.max_steps=30"), &options(&whole, false)).unwrap();
    let parts = temp_dir("parts");
    train_captioner(&with("train.max_steps=20"), &options(&parts, false)).unwrap();
    // Finished runs refuse to resume unless there is something left to do.
    assert!(train_captioner(&with("train.max_steps=20"), &options(&parts, true)).is_err());
    // A kill while writing the step-30 checkpoint: its parameters written (here, torn), its log
    // line too, but not yet state.json. Resuming starts again from step 20.
    std::fs::write(parts.join("checkpoint/30.safetensors"), b"torn").unwrap();
    let mut log = std::fs::read_to_string(parts.join("log.jsonl")).unwrap();
    log.push_str("{\"step\":30,\"train_loss\":9.9}\n");
    std::fs::write(parts.join("log.jsonl"), log).unwrap();
    train_captioner(&with("train.max_steps=30"), &options(&parts, true)).unwrap();
    let a = load_tensors(&whole.join("last.safetensors")).unwrap();
    let b = load_tensors(&parts.join("last.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert_eq!(t, &b[name], "{name} differs after resume");
    }
    assert_eq!(logged_steps(&parts), [10, 20, 30]);
    assert_eq!(logged_steps(&whole), [10, 20, 30]);
    let files = |d: &Path| {
        let mut f: Vec<_> = std::fs::read_dir(d.join("checkpoint"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        f.sort();
        f
    };
    assert_eq!(files(&parts), ["30.optim.safetensors", "30.safetensors"]);
    std::fs::remove_dir_all(&whole).ok();
    std::fs::remove_dir_all(&parts).ok();
}
