//! The typed configuration: a misspelled choice or a key that the chosen model does not read is a
//! parse error naming the file, the key and the valid choices; every bundled config parses and
//! survives the round trip through the run directory's `config.toml`.

use attend::config::{Config, ModelConfig, ModelKind};
use std::path::{Path, PathBuf};

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(format!("{name}.toml"))
}

fn load_err(path: Option<&Path>, set: &str) -> String {
    Config::load(path, &[set.to_string()])
        .expect_err(set)
        .to_string()
}

#[test]
fn a_misspelled_choice_names_the_key_and_the_choices() {
    let err = load_err(None, "model.rnn.cell=\"gur\"");
    for part in [
        "embedded default config",
        "model.rnn.cell",
        "`gur`",
        "`gru`",
        "`lstm`",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let err = load_err(None, "model.rnn.attention=\"bahdanau\"");
    for part in [
        "model.rnn.attention",
        "`none`",
        "`additive`",
        "`dot`",
        "`general`",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let err = load_err(None, "train.schedule=\"noma\"");
    for part in [
        "train.schedule",
        "`constant`",
        "`noam`",
        "`inverse_sqrt`",
        "`plateau`",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let err = load_err(None, "data.corpus=\"en-de\"");
    for part in [
        "data.corpus",
        "`en-fr`",
        "`en-es-bible`",
        "`tsv`",
        "`parallel`",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let path = bundled("en-fr-transformer");
    let err = load_err(Some(&path), "model.transformer.norm=\"sandwich\"");
    for part in [
        "en-fr-transformer.toml",
        "model.transformer.norm",
        "`pre`",
        "`post`",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let err = load_err(None, "model.kind=\"lstm\"");
    for part in ["model.kind", "`rnn`", "`transformer`", "`captioner`"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
fn a_key_the_model_does_not_read_is_an_error() {
    // A Transformer key in the RNN's section: named, with the keys the section does have.
    let err = load_err(None, "model.rnn.heads=4");
    for part in ["model.rnn", "`heads`", "`cell`", "`attention_size`"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // A whole section for another model.
    let err = load_err(None, "model.transformer.heads=4");
    for part in ["[model.transformer]", "model.kind = \"rnn\"", "[model.rnn]"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // Switching the kind leaves the file's RNN section without a reader.
    let err = load_err(None, "model.kind=\"transformer\"");
    assert!(err.contains("[model.rnn]"), "{err}");
    // The captioner's images for a translator.
    let err = load_err(None, "caption.batch_size=8");
    assert!(err.contains("[caption]"), "{err}");
    // A key at the top of [model] that belongs in a sub-section.
    let err = load_err(None, "model.hidden=8");
    assert!(err.contains("`hidden`") && err.contains("`kind`"), "{err}");
}

#[test]
fn every_bundled_config_parses_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for path in names {
        let config = Config::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{e}"));
        let text = toml::to_string(&config).unwrap();
        let again = Config::parse(&text, "saved", &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again.model, config.model, "{}", path.display());
        assert_eq!(again.caption, config.caption, "{}", path.display());
        let kind = config.model.kind();
        assert_eq!(kind == ModelKind::Captioner, config.data.corpus.is_images());
        assert!(
            text.contains(&format!("[model.{}]", kind.name())),
            "the saved config keeps the model's section:\n{text}"
        );
    }
}

#[test]
fn sizes_of_zero_are_refused_by_name() {
    for (set, key) in [
        ("model.rnn.decoder_hidden=0", "model.rnn.decoder_hidden"),
        ("model.rnn.attention_size=0", "model.rnn.attention_size"),
        ("model.rnn.hidden=0", "model.rnn.hidden"),
    ] {
        let err = load_err(None, set);
        assert!(err.contains(key), "{set}: {err}");
    }
    let config = Config::load(None, &[]).unwrap();
    let ModelConfig::Rnn(rnn) = &config.model else {
        panic!("the default is an RNN");
    };
    assert_eq!(rnn.decoder_hidden(), 256);
}
