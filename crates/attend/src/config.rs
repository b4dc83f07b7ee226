//! Experiment configuration: one TOML file per experiment, every key documented in `configs/`.
//!
//! The embedded default (`configs/en-fr-attention.toml`) is what `attend train` runs with no file.
//! `--set section.key=value` overrides any key after the file is read.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The default experiment: English→French, bi-GRU encoder, GRU decoder with additive attention.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/en-fr-attention.toml");

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
    /// The image captioner (`model.kind = "captioner"`): image size, digit strips, CNN.
    #[serde(default)]
    pub caption: crate::caption::CaptionConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `en-fr` / `en-es-bible` (bundled), `reverse` (generated), `tsv` or `parallel` (files).
    pub corpus: String,
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
    /// `bpe` or `word`.
    pub tokenizer: String,
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
pub struct ModelConfig {
    /// `rnn` or `transformer`.
    pub kind: String,
    /// RNN: `gru` or `lstm`.
    #[serde(default = "gru")]
    pub cell: String,
    /// Embedding size (RNN) — the Transformer uses `d_model`.
    #[serde(default = "d256")]
    pub embedding: usize,
    /// RNN hidden size of the encoder (per direction).
    #[serde(default = "d256")]
    pub hidden: usize,
    /// RNN hidden size of the decoder (defaults to `hidden`).
    #[serde(default)]
    pub decoder_hidden: Option<usize>,
    #[serde(default = "one")]
    pub encoder_layers: usize,
    #[serde(default = "one")]
    pub decoder_layers: usize,
    #[serde(default = "yes")]
    pub bidirectional: bool,
    /// `none`, `additive`, `dot` or `general`.
    #[serde(default = "additive")]
    pub attention: String,
    /// Size of the additive attention's hidden layer.
    #[serde(default = "d256")]
    pub attention_size: usize,
    #[serde(default)]
    pub dropout: f32,
    /// Transformer: model width (embeddings, attention, residual stream).
    #[serde(default = "d256")]
    pub d_model: usize,
    /// Transformer: attention heads (must divide `d_model`).
    #[serde(default = "heads4")]
    pub heads: usize,
    /// Transformer: inner size of the position-wise feed-forward block.
    #[serde(default = "d1024")]
    pub ff_size: usize,
    /// Transformer: feed-forward activation, `relu` or `gelu` (erf form).
    #[serde(default = "relu")]
    pub activation: String,
    /// Transformer: layer-norm placement, `pre` (norm_first) or `post` (the 2017 paper).
    #[serde(default = "pre")]
    pub norm: String,
    /// Transformer: `sinusoidal` or `learned` positions.
    #[serde(default = "sinusoidal")]
    pub positions: String,
    /// Transformer: rows of the position table (learned positions cannot go further).
    #[serde(default = "d1024")]
    pub max_positions: usize,
    /// Transformer: multiply embeddings by √d_model before adding positions.
    #[serde(default = "yes")]
    pub scale_embeddings: bool,
    /// Transformer: one embedding table for source and target (needs equal vocabularies).
    #[serde(default)]
    pub shared_embeddings: bool,
    /// Transformer: the output projection reuses the target embedding matrix.
    #[serde(default)]
    pub tie_output: bool,
    /// Transformer: dropout on attention weights (defaults to `dropout`, as nn.Transformer).
    #[serde(default)]
    pub attention_dropout: Option<f32>,
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
    /// `constant`, `noam`, `inverse_sqrt` or `plateau`.
    pub schedule: String,
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
}

fn one() -> usize {
    1
}
fn d256() -> usize {
    256
}
fn yes() -> bool {
    true
}
fn heads4() -> usize {
    4
}
fn d1024() -> usize {
    1024
}
fn relu() -> String {
    "relu".into()
}
fn pre() -> String {
    "pre".into()
}
fn sinusoidal() -> String {
    "sinusoidal".into()
}
fn gru() -> String {
    "gru".into()
}
fn additive() -> String {
    "additive".into()
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
        let config: Config = value.try_into().map_err(|e| parse_err(&e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let m = &self.model;
        if !["rnn", "transformer", "captioner"].contains(&m.kind.as_str()) {
            return bad(format!(
                "model.kind = {:?}; use \"rnn\", \"transformer\" or \"captioner\"",
                m.kind
            ));
        }
        if !["gru", "lstm"].contains(&m.cell.as_str()) {
            return bad(format!(
                "model.cell = {:?}; use \"gru\" or \"lstm\"",
                m.cell
            ));
        }
        if !["none", "additive", "dot", "general"].contains(&m.attention.as_str()) {
            return bad(format!(
                "model.attention = {:?}; use none, additive, dot or general",
                m.attention
            ));
        }
        let dirs = if m.bidirectional { 2 } else { 1 };
        if m.attention == "dot" && dirs * m.hidden != self.decoder_hidden() {
            return bad(format!(
                "model.attention = \"dot\" scores sᵀh, so the decoder hidden size ({}) must equal the encoder output size ({} = {} × {}); set model.decoder_hidden = {}",
                self.decoder_hidden(), dirs * m.hidden, dirs, m.hidden, dirs * m.hidden
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", m.dropout));
        }
        if m.hidden == 0 || m.embedding == 0 || m.encoder_layers == 0 || m.decoder_layers == 0 {
            return bad("model sizes and layer counts must be positive".into());
        }
        if m.kind == "transformer" {
            self.validate_transformer()?;
        }
        let t = &self.train;
        if !["constant", "noam", "inverse_sqrt", "plateau"].contains(&t.schedule.as_str()) {
            return bad(format!(
                "train.schedule = {:?}; use constant, noam, inverse_sqrt or plateau",
                t.schedule
            ));
        }
        if t.valid_every == 0 || t.max_steps == 0 {
            return bad("train.valid_every and train.max_steps must be positive".into());
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return bad(format!(
                "train.label_smoothing = {} must be in [0, 1)",
                t.label_smoothing
            ));
        }
        if !["bpe", "word"].contains(&self.data.tokenizer.as_str()) {
            return bad(format!(
                "data.tokenizer = {:?}; use \"bpe\" or \"word\"",
                self.data.tokenizer
            ));
        }
        if self.search.beam == 0 {
            return bad("search.beam must be ≥ 1".into());
        }
        Ok(())
    }

    /// The Transformer's keys (sizes, choices, and that the training data fit the positions).
    fn validate_transformer(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let m = &self.model;
        if m.d_model == 0 || m.ff_size == 0 || m.heads == 0 || m.max_positions == 0 {
            return bad("model.d_model, heads, ff_size and max_positions must be positive".into());
        }
        if !m.d_model.is_multiple_of(m.heads) {
            return bad(format!(
                "model.heads = {} does not divide model.d_model = {}; choose a head count that divides it",
                m.heads, m.d_model
            ));
        }
        for (key, value, allowed) in [
            ("activation", &m.activation, ["relu", "gelu"]),
            ("norm", &m.norm, ["pre", "post"]),
            ("positions", &m.positions, ["sinusoidal", "learned"]),
        ] {
            if !allowed.contains(&value.as_str()) {
                return bad(format!(
                    "model.{key} = {value:?}; use {:?} or {:?}",
                    allowed[0], allowed[1]
                ));
            }
        }
        if let Some(p) = m.attention_dropout.filter(|p| !(0.0..1.0).contains(p)) {
            return bad(format!("model.attention_dropout = {p} must be in [0, 1)"));
        }
        if m.shared_embeddings && !self.data.joint_vocab {
            return bad("model.shared_embeddings = true needs data.joint_vocab = true (one vocabulary for both sides)".into());
        }
        if m.positions == "learned" && m.max_positions < self.data.max_len + 1 {
            return bad(format!(
                "model.max_positions = {} is shorter than data.max_len + 1 = {} (target plus <s>); raise it",
                m.max_positions,
                self.data.max_len + 1
            ));
        }
        Ok(())
    }

    pub fn decoder_hidden(&self) -> usize {
        self.model.decoder_hidden.unwrap_or(self.model.hidden)
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
