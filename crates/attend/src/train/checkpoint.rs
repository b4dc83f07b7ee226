//! A run directory: everything needed to translate with, or resume, a trained model.
//!
//! ```text
//! DIR/config.toml            the full configuration of the run
//! DIR/src_tokenizer.json     tokenizers (tokenizers-crate JSON)
//! DIR/tgt_tokenizer.json
//! DIR/best.safetensors       parameters with the best dev BLEU
//! DIR/last.safetensors       parameters at the last validation
//! DIR/last.optim.safetensors optimizer moments and step, for --resume
//! DIR/state.json             trainer position (step, epoch, batch), best score, patience
//! DIR/log.jsonl              one JSON object per validation
//! DIR/summary.json           final test scores and run facts
//! ```
//! Every file is written atomically (temp file, fsync, rename); `state.json` is written last, so a
//! run interrupted mid-save resumes from the previous consistent state.

use super::schedule::Schedule;
use crate::config::Config;
use crate::data::tokenizer::Vocabs;
use crate::models::{self, Seq2Seq};
use crate::nn::params::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the trainer is; saved with every `last` checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Current epoch (0-based) and the number of its batches already trained on.
    pub epoch: u64,
    pub batch_in_epoch: usize,
    /// Best dev BLEU so far and the step it was reached.
    pub best_bleu: f64,
    pub best_step: usize,
    /// Validations since the best one.
    pub bad_validations: usize,
    /// Current learning rate (the plateau schedule changes it).
    pub lr: f32,
    /// Training seconds so far (all sessions).
    pub train_seconds: f64,
    /// (step, mean training loss) ten times per validation interval, for the training curves.
    pub loss_history: Vec<(usize, f32)>,
    /// (step, dev BLEU) per validation.
    pub bleu_history: Vec<(usize, f64)>,
    /// Whether early stopping ended the run (patience ran out).
    pub stopped_early: bool,
    /// The learning-rate schedule with its own state (the plateau schedule's best and patience).
    pub schedule: Schedule,
}

impl TrainerState {
    /// The state before the first step.
    pub fn new(lr: f32, schedule: Schedule) -> TrainerState {
        TrainerState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_bleu: 0.0,
            best_step: 0,
            bad_validations: 0,
            lr,
            train_seconds: 0.0,
            loss_history: Vec::new(),
            bleu_history: Vec::new(),
            stopped_early: false,
            schedule,
        }
    }
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    atomic_write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("state.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: corrupt trainer state", path.display()))
}

/// Saves the configuration a run was started with.
pub fn write_config(dir: &Path, config: &Config) -> Result<()> {
    let text = toml::to_string_pretty(config)?;
    atomic_write(&dir.join("config.toml"), text.as_bytes()).context("writing config.toml")
}

/// A trained model loaded from a run directory.
pub struct LoadedModel {
    pub config: Config,
    pub vocabs: Vocabs,
    pub model: Box<dyn Seq2Seq>,
}

/// Loads `DIR/{which}.safetensors` (`best` or `last`) with its config and tokenizers.
pub fn load_model(dir: &Path, which: &str) -> Result<LoadedModel> {
    if !dir.is_dir() {
        bail!(
            "{}: no such model directory (train one with `attend train --out DIR`)",
            dir.display()
        );
    }
    let config = Config::load(Some(&dir.join("config.toml")), &[])?;
    let vocabs =
        Vocabs::load(dir).with_context(|| format!("{}: loading tokenizers", dir.display()))?;
    let model = models::build(&config, vocabs.src.vocab_size(), vocabs.tgt.vocab_size(), 0)?;
    let weights = dir.join(format!("{which}.safetensors"));
    model.params().load(&weights)?;
    Ok(LoadedModel {
        config,
        vocabs,
        model,
    })
}
