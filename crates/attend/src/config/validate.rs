//! Values that parse but make no sense: zero sizes, probabilities outside [0, 1), learning rates
//! that are not positive, non-finite numbers, length rules that leave every output empty, a beam
//! too large to allocate, shapes that do not fit together. Each message names the key as it is
//! written in the file and the valid range.
//!
//! The bounds shared with the command line and the server ([`MAX_BEAM`], [`ALPHA_RANGE`]) live
//! here, so that `search.beam`, `--beam` and a request's `"beam"` obey one rule.

use super::model::{AttentionScore, CaptionerConfig, DecoderInit, RnnConfig, TransformerConfig};
use super::{ConfigError, DataConfig, ScheduleName, SearchConfig, TrainConfig};
use crate::data::tokenizer::SPECIAL_TOKENS;
use std::ops::RangeInclusive;

/// Largest beam anywhere (`search.beam`, `--beam`, the server's `max_beam`). Beam search keeps
/// `2·beam²` candidates and `beam` decoder states per sentence, so the bound is what keeps a typo
/// from becoming an allocation of hundreds of gigabytes.
pub const MAX_BEAM: usize = 16;

/// Valid length-penalty exponents α (`search.alpha`, `--alpha`, a request's `"alpha"`): finite,
/// from 0 (no normalisation) to 10.
pub const ALPHA_RANGE: RangeInclusive<f32> = 0.0..=10.0;

/// Most target tokens per source token (`search.max_len_a`).
const MAX_LEN_A: f32 = 100.0;

/// Most target tokens added to the per-source-token budget (`search.max_len_b`).
const MAX_LEN_B: usize = 10_000;

fn bad(message: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid(message))
}

/// Every `(key, value)` must be positive.
fn positive(section: &str, sizes: &[(&str, usize)]) -> Result<(), ConfigError> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => bad(format!("{section}.{key} = 0; it must be positive")),
        None => Ok(()),
    }
}

/// A probability (dropout, label smoothing) must be in [0, 1).
fn probability(key: &str, p: f32) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        bad(format!("{key} = {p} must be in [0, 1)"))
    }
}

/// A finite number within `range` (NaN and infinities never are).
fn within(key: &str, v: f64, range: RangeInclusive<f64>) -> Result<(), ConfigError> {
    if range.contains(&v) {
        Ok(())
    } else {
        bad(format!(
            "{key} = {v} must be a finite number in [{}, {}]",
            range.start(),
            range.end()
        ))
    }
}

/// A finite number above 0.
fn positive_finite(key: &str, v: f32) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bad(format!("{key} = {v} must be a finite number > 0"))
    }
}

impl DataConfig {
    /// `vocab_size` must hold more than the special tokens; `max_len` and the reverse task's sizes
    /// must be positive.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.vocab_size <= SPECIAL_TOKENS.len() {
            return bad(format!(
                "data.vocab_size = {} must exceed the {} special tokens (at least {})",
                self.vocab_size,
                SPECIAL_TOKENS.len(),
                SPECIAL_TOKENS.len() + 1
            ));
        }
        positive("data", &[("max_len", self.max_len)])?;
        if let Some(sizes) = self.reverse_sizes {
            if sizes.contains(&0) {
                return bad(format!(
                    "data.reverse_sizes = {sizes:?}: the train, dev and test sizes must each be ≥ 1"
                ));
            }
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Positive step counts and budgets, a positive finite learning rate, finite non-negative
    /// clip, weight decay and time limit, label smoothing in [0, 1), and a warm-up for the
    /// schedules that have one (and only for them). `max_len` is `data.max_len` when the batches
    /// are made of sentence pairs (`None` for images).
    pub(super) fn validate(&self, max_len: Option<usize>) -> Result<(), ConfigError> {
        if self.valid_every == 0 || self.max_steps == 0 {
            return bad("train.valid_every and train.max_steps must be positive".into());
        }
        positive("train", &[("token_budget", self.token_budget)])?;
        if let Some(max_len) = max_len {
            if self.token_budget < max_len + 1 {
                return bad(format!(
                    "train.token_budget = {} cannot hold one pair of data.max_len = {max_len} tokens plus <s> or </s>; it must be ≥ {}",
                    self.token_budget,
                    max_len + 1
                ));
            }
        }
        positive_finite("train.lr", self.lr)?;
        probability("train.label_smoothing", self.label_smoothing)?;
        within("train.clip", self.clip.into(), 0.0..=f64::MAX)?;
        within("train.weight_decay", self.weight_decay.into(), 0.0..=1.0)?;
        within("train.max_minutes", self.max_minutes, 0.0..=f64::MAX)?;
        let warms = matches!(
            self.schedule,
            ScheduleName::Noam | ScheduleName::InverseSqrt
        );
        if self.warmup > 0 && !warms {
            return bad(format!(
                "train.warmup = {} does nothing with train.schedule = {:?}; set it to 0 or use \"noam\" or \"inverse_sqrt\"",
                self.warmup,
                self.schedule.name()
            ));
        }
        Ok(())
    }
}

impl SearchConfig {
    /// A beam in 1..=[`MAX_BEAM`], α in [`ALPHA_RANGE`], and length rules under which a one-token
    /// source may get at least one target token.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_BEAM).contains(&self.beam) {
            return bad(format!(
                "search.beam = {} must be between 1 (greedy) and {MAX_BEAM}",
                self.beam
            ));
        }
        within(
            "search.alpha",
            self.alpha.into(),
            f64::from(*ALPHA_RANGE.start())..=f64::from(*ALPHA_RANGE.end()),
        )?;
        within(
            "search.max_len_a",
            self.max_len_a.into(),
            0.0..=MAX_LEN_A.into(),
        )?;
        if self.max_len_b > MAX_LEN_B {
            return bad(format!(
                "search.max_len_b = {} must be at most {MAX_LEN_B}",
                self.max_len_b
            ));
        }
        if self.max_len_a < 1.0 && self.max_len_b == 0 {
            return bad(format!(
                "search.max_len_a = {} and search.max_len_b = 0 leave a one-token source no target token (max_len_a · length + max_len_b < 1); raise max_len_b",
                self.max_len_a
            ));
        }
        Ok(())
    }
}

impl RnnConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive(
            "model.rnn",
            &[
                ("embedding", self.embedding),
                ("hidden", self.hidden),
                ("decoder_hidden", self.decoder_hidden()),
                ("encoder_layers", self.encoder_layers),
                ("decoder_layers", self.decoder_layers),
                ("attention_size", self.attention_size),
            ],
        )?;
        probability("model.rnn.dropout", self.dropout)?;
        let (dirs, dk) = (self.annotation_size() / self.hidden, self.annotation_size());
        if self.attention == AttentionScore::Dot && dk != self.decoder_hidden() {
            return bad(format!(
                "model.rnn.attention = \"dot\" scores sᵀh, so the decoder hidden size ({}) must equal the encoder output size ({dk} = {dirs} × {}); set model.rnn.decoder_hidden = {dk}",
                self.decoder_hidden(),
                self.hidden,
            ));
        }
        if self.decoder_init == DecoderInit::Identity
            && (dk != self.decoder_hidden() || self.encoder_layers != self.decoder_layers)
        {
            return bad(format!(
                "model.rnn.decoder_init = \"identity\" starts decoder layer l from encoder layer l's final states, so the layers must match (encoder {}, decoder {}) and the decoder hidden size ({}) must equal {dk} = {dirs} × {}",
                self.encoder_layers,
                self.decoder_layers,
                self.decoder_hidden(),
                self.hidden,
            ));
        }
        Ok(())
    }
}

impl TransformerConfig {
    /// The attention-weight dropout: `attention_dropout`, else `dropout`.
    pub fn attention_dropout(&self) -> f32 {
        self.attention_dropout.unwrap_or(self.dropout)
    }

    pub(super) fn validate(&self, data: &DataConfig) -> Result<(), ConfigError> {
        positive(
            "model.transformer",
            &[
                ("d_model", self.d_model),
                ("heads", self.heads),
                ("ff_size", self.ff_size),
                ("encoder_layers", self.encoder_layers),
                ("decoder_layers", self.decoder_layers),
                ("max_positions", self.max_positions),
            ],
        )?;
        if !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "model.transformer.heads = {} does not divide model.transformer.d_model = {}; choose a head count that divides it",
                self.heads, self.d_model
            ));
        }
        probability("model.transformer.dropout", self.dropout)?;
        probability(
            "model.transformer.attention_dropout",
            self.attention_dropout(),
        )?;
        if self.shared_embeddings && !data.joint_vocab {
            return bad("model.transformer.shared_embeddings = true needs data.joint_vocab = true (one vocabulary for both sides)".into());
        }
        if self.max_positions < data.max_len + 1 {
            return bad(format!(
                "model.transformer.max_positions = {} is shorter than data.max_len + 1 = {} (target plus <s>); raise it",
                self.max_positions,
                data.max_len + 1
            ));
        }
        Ok(())
    }
}

impl CaptionerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive(
            "model.captioner",
            &[
                ("embedding", self.embedding),
                ("hidden", self.hidden),
                ("attention_size", self.attention_size),
            ],
        )?;
        probability("model.captioner.dropout", self.dropout)
    }
}
