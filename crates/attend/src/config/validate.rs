//! Values that parse but make no sense for a model: zero sizes, probabilities outside [0, 1),
//! shapes that do not fit together. Each message names the key as it is written in the file.

use super::model::{AttentionScore, CaptionerConfig, RnnConfig, TransformerConfig};
use super::{ConfigError, DataConfig};

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

/// A dropout probability must be in [0, 1).
fn probability(key: &str, p: f32) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        bad(format!("{key} = {p} must be in [0, 1)"))
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
