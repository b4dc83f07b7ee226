//! A short end-to-end run on a tiny strip set: `train_captioner` writes a complete run directory,
//! the training loss falls, the summary holds accuracy, BLEU and the attention measures, and the
//! saved model reloads and captions the test strips as the run did.

use attend::caption::trainer::max_words;
use attend::caption::{load_captioner, train_captioner, ImageRows};
use attend::config::Config;
use attend::train::trainer::TrainOptions;

#[test]
fn a_short_run_learns_and_reloads() {
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
        "train.max_steps=120",
        "train.valid_every=40",
        "train.lr=0.01",
        "search.beam=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let config = Config::load(Some(std::path::Path::new(path)), &sets).unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join("run");
    let _ = std::fs::remove_dir_all(&out);
    let opts = TrainOptions {
        out: out.clone(),
        resume: false,
        quiet: true,
    };
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
