//! Experiment configuration: one TOML file per experiment, every key documented in `configs/`.
//!
//! The embedded default (`configs/en-fr-attention.toml`) is what `attend train` runs with no file.
//! `--set section.key=value` overrides any key after the file is read.

mod model;
mod validate;

pub use crate::caption::CaptionConfig;
pub use model::{
    Activation, AttentionScore, CaptionerConfig, Cell, DecoderInit, InputActivation, ModelConfig,
    ModelKind, NormPlacement, PositionKind, RnnConfig, TransformerConfig,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use validate::{ALPHA_RANGE, MAX_BEAM};

/// The default experiment: English→French, bi-GRU encoder, GRU decoder with additive attention.
pub const DEFAULT_CONFIG: &str = include_str!("../../../../configs/en-fr-attention.toml");

/// Errors in a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("--set {0}: expected section.key=value, e.g. --set train.max_steps=500")]
    BadSet(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A short name for the experiment (used for the default output directory).
    pub name: String,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub search: SearchConfig,
    /// The image captioner's images, digit strips and CNN (only with `model.kind = "captioner"`).
    #[serde(default, skip_serializing_if = "CaptionConfig::is_default")]
    pub caption: CaptionConfig,
}

/// Where the sentence pairs (or images) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusName {
    /// Bundled English→French (Wesnoth strings).
    EnFr,
    /// Bundled English→Spanish (Bible verses).
    EnEsBible,
    /// The generated reverse-the-sequence task.
    Reverse,
    /// Tab-separated files `data.train`, `data.dev`, `data.test`.
    Tsv,
    /// Line-aligned files `<prefix>.<src_lang>` / `<prefix>.<tgt_lang>`.
    Parallel,
    /// Captioner: generated strips of MNIST digits.
    MnistStrips,
    /// Captioner: TSV files of image path and caption.
    ImageTsv,
    /// A model imported from another toolkit (`attend import`): no corpus to train on.
    Imported,
}

impl CorpusName {
    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            CorpusName::EnFr => "en-fr",
            CorpusName::EnEsBible => "en-es-bible",
            CorpusName::Reverse => "reverse",
            CorpusName::Tsv => "tsv",
            CorpusName::Parallel => "parallel",
            CorpusName::MnistStrips => "mnist-strips",
            CorpusName::ImageTsv => "image-tsv",
            CorpusName::Imported => "imported",
        }
    }

    /// Whether the corpus holds images (for the captioner) rather than sentence pairs.
    pub fn is_images(self) -> bool {
        matches!(self, CorpusName::MnistStrips | CorpusName::ImageTsv)
    }
}

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerName {
    /// Byte-pair encoding learned on the training data.
    Bpe,
    /// Whitespace-separated words.
    Word,
}

/// The learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleName {
    Constant,
    /// `lr · d^−½ · min(s^−½, s · warmup^−³ᐟ²)` (Vaswani et al. 2017).
    Noam,
    /// Linear warm-up, then `∝ s^−½`.
    InverseSqrt,
    /// Halve when the dev BLEU stops improving.
    Plateau,
}

impl ScheduleName {
    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleName::Constant => "constant",
            ScheduleName::Noam => "noam",
            ScheduleName::InverseSqrt => "inverse_sqrt",
            ScheduleName::Plateau => "plateau",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub corpus: CorpusName,
    /// For `tsv`: three files (train, dev, test). For `parallel`: file prefixes; `{prefix}.{src_lang}`.
    #[serde(default)]
    pub train: String,
    #[serde(default)]
    pub dev: String,
    #[serde(default)]
    pub test: String,
    /// TSV columns (0-based) of the source and the target.
    #[serde(default)]
    pub src_col: usize,
    #[serde(default = "one")]
    pub tgt_col: usize,
    /// Language suffixes for `parallel` corpora.
    #[serde(default)]
    pub src_lang: String,
    #[serde(default)]
    pub tgt_lang: String,
    pub tokenizer: TokenizerName,
    /// Vocabulary size per side (BPE) or maximum size (word).
    pub vocab_size: usize,
    /// One vocabulary for both sides.
    #[serde(default)]
    pub joint_vocab: bool,
    /// Pairs with a side longer than this many tokens are left out of training.
    pub max_len: usize,
    /// Reverse task: number of generated train/dev/test examples.
    #[serde(default)]
    pub reverse_sizes: Option<[usize; 3]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub seed: u64,
    /// Batches hold at most this many (padded) tokens per side.
    pub token_budget: usize,
    pub max_steps: usize,
    /// Stop after this many minutes of training even if `max_steps` is not reached (0 = no limit).
    #[serde(default)]
    pub max_minutes: f64,
    pub lr: f32,
    pub schedule: ScheduleName,
    #[serde(default)]
    pub warmup: usize,
    /// Global gradient-norm clip (0 = off).
    pub clip: f32,
    pub label_smoothing: f32,
    #[serde(default)]
    pub weight_decay: f32,
    /// Validate every this many steps.
    pub valid_every: usize,
    /// Stop after this many validations without a better dev BLEU (0 = never).
    pub patience: usize,
    /// Dev sentences decoded for the validation BLEU (0 = all).
    #[serde(default)]
    pub valid_sentences: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Beam size for the test set (1 = greedy).
    pub beam: usize,
    /// Length-penalty exponent.
    pub alpha: f32,
    /// Most target tokens: `max_len_a · source length + max_len_b`.
    pub max_len_a: f32,
    pub max_len_b: usize,
    /// Whose search rules: attend's (the default) or Hugging Face `generate`'s (`"hf"`, for
    /// imported models: the pad and `<s>` never emitted, `alpha` is its `length_penalty`).
    #[serde(default, skip_serializing_if = "SearchStyle::is_attend")]
    pub style: SearchStyle,
}

/// The rules greedy and beam search follow (`search.style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchStyle {
    /// attend's: length penalty `((5 + |y|) / 6)^α`, a sentence done with K finished hypotheses.
    #[default]
    Attend,
    /// Hugging Face `generate`'s ([`crate::search::hf`]).
    #[serde(rename = "hf")]
    HuggingFace,
}

impl SearchStyle {
    fn is_attend(&self) -> bool {
        *self == SearchStyle::Attend
    }
}

fn one() -> usize {
    1
}

impl Config {
    /// Reads a config file, or the embedded default when `path` is `None`, then applies `--set`s.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_CONFIG.to_string(),
                "embedded default config".to_string(),
            ),
        };
        Config::parse(&text, &origin, sets)
    }

    /// Parses TOML text and applies `--set section.key=value` overrides.
    pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Config, ConfigError> {
        let parse_err = |e: &dyn std::fmt::Display| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let mut value: toml::Value = toml::from_str(text).map_err(|e| parse_err(&e))?;
        for set in sets {
            apply_set(&mut value, set)?;
        }
        let has_caption = value.get("caption").is_some();
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            parse_err(&if key == "." {
                message
            } else {
                format!("{key}: {message}")
            })
        })?;
        if has_caption && config.model.kind() != ModelKind::Captioner {
            return Err(parse_err(&format!(
                "[caption] does nothing when model.kind = {:?}; remove it",
                config.model.kind().name()
            )));
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        match &self.model {
            ModelConfig::Rnn(m) => m.validate()?,
            ModelConfig::Transformer(m) => m.validate(&self.data)?,
            ModelConfig::Captioner(m) => m.validate()?,
        }
        let images = self.model.kind() == ModelKind::Captioner;
        if self.data.corpus.is_images() != images {
            return bad(format!(
                "data.corpus = {:?} {} images, but model.kind = {:?} {}",
                self.data.corpus.name(),
                if images { "does not hold" } else { "holds" },
                self.model.kind().name(),
                if images {
                    "captions images: use \"mnist-strips\" or \"image-tsv\""
                } else {
                    "translates sentences"
                }
            ));
        }
        self.data.validate()?;
        let pairs = !images && self.data.corpus != CorpusName::Imported;
        self.train.validate(pairs.then_some(self.data.max_len))?;
        self.search.validate()?;
        if images {
            self.caption.validate().map_err(|e| match e {
                crate::caption::CaptionError::Config(m) => ConfigError::Invalid(m),
                other => ConfigError::Invalid(other.to_string()),
            })?;
        }
        Ok(())
    }

    /// Most target tokens for a source of `src_len` tokens.
    pub fn max_output_len(&self, src_len: usize) -> usize {
        (self.search.max_len_a * src_len as f32) as usize + self.search.max_len_b
    }
}

/// Applies one `section.key=value` override to a parsed TOML document.
fn apply_set(doc: &mut toml::Value, set: &str) -> Result<(), ConfigError> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| ConfigError::BadSet(set.to_string()))?;
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::BadSet(set.to_string()));
    }
    // A TOML literal (number, bool, quoted string, array) or else a bare string.
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut node = doc;
    for part in &path[..path.len() - 1] {
        let table = node
            .as_table_mut()
            .ok_or_else(|| ConfigError::BadSet(set.to_string()))?;
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    let table = node
        .as_table_mut()
        .ok_or_else(|| ConfigError::BadSet(set.to_string()))?;
    table.insert(path[path.len() - 1].to_string(), value);
    Ok(())
}
