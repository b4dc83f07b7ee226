//! Every configuration value is checked when the config is read: a value that parses but makes no
//! sense (a negative learning rate, a NaN penalty, a beam too large to allocate, length rules that
//! leave every output empty, …) is refused with a message naming the key and its valid range, and
//! the values at the edge of each range are accepted.

use attend::config::{Config, MAX_BEAM};
use std::path::{Path, PathBuf};

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(format!("{name}.toml"))
}

/// Loads `config` (`None`: the embedded default) with the `--set`s.
fn load(config: Option<&str>, sets: &[&str]) -> Result<Config, String> {
    let path = config.map(bundled);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(path.as_deref(), &sets).map_err(|e| e.to_string())
}

/// The error of a config that must be refused; it must name `key` and contain `range`.
fn refused(config: Option<&str>, sets: &[&str], key: &str, range: &str) {
    let err = match load(config, sets) {
        Ok(_) => panic!("{sets:?} was accepted"),
        Err(e) => e,
    };
    assert!(
        err.contains(key),
        "{sets:?}: the key {key:?} missing from: {err}"
    );
    assert!(
        err.contains(range),
        "{sets:?}: the range {range:?} missing from: {err}"
    );
}

#[test]
fn a_negative_learning_rate_is_refused() {
    refused(None, &["train.lr=-0.002"], "train.lr", "> 0");
}

#[test]
fn a_negative_max_len_a_is_refused() {
    refused(
        None,
        &["search.max_len_a=-1.0"],
        "search.max_len_a",
        "[0, 100]",
    );
}

#[test]
fn a_non_finite_length_penalty_is_refused() {
    for alpha in ["nan", "inf", "-inf"] {
        refused(
            None,
            &[&format!("search.alpha={alpha}")],
            "search.alpha",
            "[0, 10]",
        );
    }
}

#[test]
fn a_beam_past_the_shared_bound_is_refused() {
    refused(None, &["search.beam=100000"], "search.beam", "and 16");
    assert_eq!(MAX_BEAM, 16, "the bound named in the messages");
    load(None, &[&format!("search.beam={MAX_BEAM}")]).unwrap();
}

#[test]
fn every_other_nonsense_value_is_refused_by_name() {
    let rnn = None;
    let transformer = Some("en-fr-transformer");
    let reverse = Some("reverse");
    let captioner = Some("caption-digits");
    #[rustfmt::skip]
    let table: &[(Option<&str>, &[&str], &str, &str)] = &[
        // [data]
        (rnn, &["data.vocab_size=4"], "data.vocab_size", "at least 5"),
        (rnn, &["data.max_len=0"], "data.max_len", "positive"),
        (reverse, &["data.reverse_sizes=[0, 10, 10]"], "data.reverse_sizes", "≥ 1"),
        // [train]
        (rnn, &["train.lr=0.0"], "train.lr", "> 0"),
        (rnn, &["train.lr=nan"], "train.lr", "> 0"),
        (rnn, &["train.lr=inf"], "train.lr", "> 0"),
        (rnn, &["train.max_steps=0"], "train.max_steps", "positive"),
        (rnn, &["train.valid_every=0"], "train.valid_every", "positive"),
        (rnn, &["train.token_budget=0"], "train.token_budget", "positive"),
        (rnn, &["train.token_budget=60"], "train.token_budget", "≥ 61"),
        (rnn, &["train.label_smoothing=1.0"], "train.label_smoothing", "[0, 1)"),
        (rnn, &["train.label_smoothing=-0.1"], "train.label_smoothing", "[0, 1)"),
        (rnn, &["train.label_smoothing=nan"], "train.label_smoothing", "[0, 1)"),
        (rnn, &["train.clip=-1.0"], "train.clip", "finite number in [0,"),
        (rnn, &["train.clip=inf"], "train.clip", "finite number in [0,"),
        (rnn, &["train.weight_decay=-0.01"], "train.weight_decay", "[0, 1]"),
        (rnn, &["train.weight_decay=nan"], "train.weight_decay", "[0, 1]"),
        (rnn, &["train.max_minutes=-1.0"], "train.max_minutes", "finite number in [0,"),
        (rnn, &["train.max_minutes=nan"], "train.max_minutes", "finite number in [0,"),
        (rnn, &["train.warmup=100"], "train.warmup", "\"plateau\""),
        // [search]
        (rnn, &["search.beam=0"], "search.beam", "between 1 (greedy) and 16"),
        (rnn, &["search.beam=17"], "search.beam", "between 1 (greedy) and 16"),
        (rnn, &["search.alpha=-0.5"], "search.alpha", "[0, 10]"),
        (rnn, &["search.alpha=10.5"], "search.alpha", "[0, 10]"),
        (rnn, &["search.max_len_a=nan"], "search.max_len_a", "[0, 100]"),
        (rnn, &["search.max_len_a=101.0"], "search.max_len_a", "[0, 100]"),
        (rnn, &["search.max_len_b=10001"], "search.max_len_b", "at most 10000"),
        (rnn, &["search.max_len_a=0.5", "search.max_len_b=0"], "search.max_len_b", "raise max_len_b"),
        // [model.rnn]
        (rnn, &["model.rnn.embedding=0"], "model.rnn.embedding", "positive"),
        (rnn, &["model.rnn.encoder_layers=0"], "model.rnn.encoder_layers", "positive"),
        (rnn, &["model.rnn.decoder_layers=0"], "model.rnn.decoder_layers", "positive"),
        (rnn, &["model.rnn.dropout=1.0"], "model.rnn.dropout", "[0, 1)"),
        (rnn, &["model.rnn.dropout=nan"], "model.rnn.dropout", "[0, 1)"),
        // [model.transformer]
        (transformer, &["model.transformer.d_model=0"], "model.transformer.d_model", "positive"),
        (transformer, &["model.transformer.heads=0"], "model.transformer.heads", "positive"),
        (transformer, &["model.transformer.heads=3"], "model.transformer.heads", "divide"),
        (transformer, &["model.transformer.ff_size=0"], "model.transformer.ff_size", "positive"),
        (transformer, &["model.transformer.encoder_layers=0"], "model.transformer.encoder_layers", "positive"),
        (transformer, &["model.transformer.decoder_layers=0"], "model.transformer.decoder_layers", "positive"),
        (transformer, &["model.transformer.max_positions=10"], "model.transformer.max_positions", "data.max_len + 1"),
        (transformer, &["model.transformer.dropout=-0.1"], "model.transformer.dropout", "[0, 1)"),
        (transformer, &["model.transformer.attention_dropout=1.5"], "model.transformer.attention_dropout", "[0, 1)"),
        // [model.captioner] and [caption]
        (captioner, &["model.captioner.embedding=0"], "model.captioner.embedding", "positive"),
        (captioner, &["model.captioner.hidden=0"], "model.captioner.hidden", "positive"),
        (captioner, &["model.captioner.attention_size=0"], "model.captioner.attention_size", "positive"),
        (captioner, &["model.captioner.dropout=1.0"], "model.captioner.dropout", "[0, 1)"),
        (captioner, &["caption.channels=2"], "caption.channels", "1 (grey) or 3 (RGB)"),
        (captioner, &["caption.batch_size=0"], "caption.batch_size", "positive"),
        (captioner, &["caption.strips=[0, 10, 10]"], "caption.strips", "≥ 1"),
        (captioner, &["caption.min_digits=0"], "caption.min_digits", "1 ≤ min ≤ max"),
        (captioner, &["caption.doubly_stochastic=nan"], "caption.doubly_stochastic", "[0, 100]"),
        (captioner, &["caption.self_attention=true", "caption.self_attention_size=0"], "caption.self_attention_size", "positive"),
    ];
    for (config, sets, key, range) in table {
        refused(*config, sets, key, range);
    }
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    for sets in [
        &["search.beam=1", "search.alpha=0.0", "search.alpha=10.0"][..],
        &["search.max_len_a=0.0", "search.max_len_b=1"],
        &["search.max_len_a=100.0", "search.max_len_b=10000"],
        &["train.lr=1e-9", "train.clip=0.0", "train.weight_decay=1.0"],
        &["train.label_smoothing=0.0", "train.max_minutes=0.0"],
        &["train.token_budget=61", "data.vocab_size=5"],
        &["train.schedule=\"noam\"", "train.warmup=200"],
        &["train.schedule=\"inverse_sqrt\"", "train.warmup=1"],
    ] {
        load(None, sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    }
}

#[test]
fn an_identity_decoder_start_needs_matching_sizes() {
    // The default model: a bi-GRU of 128 per direction (annotations of 256), decoder 256.
    refused(
        None,
        &[
            "model.rnn.decoder_init=\"identity\"",
            "model.rnn.bidirectional=false",
        ],
        "model.rnn.decoder_init",
        "must equal 128 = 1 × 128",
    );
    refused(
        None,
        &[
            "model.rnn.decoder_init=\"identity\"",
            "model.rnn.decoder_layers=2",
        ],
        "model.rnn.decoder_init",
        "encoder 1, decoder 2",
    );
    let ok = load(
        None,
        &[
            "model.rnn.decoder_init=\"identity\"",
            "model.rnn.decoder_input_activation=\"relu\"",
        ],
    );
    assert!(ok.is_ok(), "{ok:?}");
}
