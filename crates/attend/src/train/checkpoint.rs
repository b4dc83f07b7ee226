//! A run directory: everything needed to translate with, or resume, a trained model.
//!
//! ```text
//! DIR/config.toml                         the full configuration of the run
//! DIR/src_tokenizer.json                  tokenizers (tokenizers-crate JSON; the captioner has
//! DIR/tgt_tokenizer.json                  only the target one)
//! DIR/best.safetensors                    parameters with the best dev score
//! DIR/last.safetensors                    parameters at the last checkpoint
//! DIR/checkpoint/STEP.safetensors         the checkpoint's parameters, for --resume
//! DIR/checkpoint/STEP.optim.safetensors   the checkpoint's optimizer moments and step
//! DIR/state.json                          trainer position (step, epoch, batch), best score, patience
//! DIR/log.jsonl                           one JSON object per validation
//! DIR/summary.json                        final test scores and run facts
//! ```
//!
//! A checkpoint is one atomic unit. Every file is written atomically (temp file, fsync, rename),
//! and `state.json` is the commit: the parameters and the optimizer state are first written under
//! names that carry their step, then `state.json` names that step, and only then are the files of
//! other steps removed and `last.safetensors` pointed at the new parameters. A run killed at any
//! point resumes from one consistent (parameters, optimizer, state) triple; `--resume` also drops
//! the `log.jsonl` lines written after that checkpoint, so no step is logged twice.

use super::optimizer::Adam;
use super::schedule::Schedule;
use crate::config::Config;
use crate::data::tokenizer::Vocabs;
use crate::models::{self, Seq2Seq};
use crate::nn::params::{atomic_write, load_tensors, save_tensors, Params};
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the trainer is; saved with every checkpoint. `S` is the task's dev score (translation:
/// BLEU; captioning: exact-caption share, then BLEU).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainerState<S> {
    /// Optimizer steps done.
    pub step: usize,
    /// Current epoch (0-based) and the number of its batches already trained on.
    pub epoch: u64,
    pub batch_in_epoch: usize,
    /// Best dev score so far (none before the first validation) and the step it was reached.
    pub best_score: Option<S>,
    pub best_step: usize,
    /// Validations since the best one.
    pub bad_validations: usize,
    /// Current learning rate (the plateau schedule changes it).
    pub lr: f32,
    /// Training seconds so far, over the first run and every resume.
    pub train_seconds: f64,
    /// (step, mean training loss) ten times per validation interval, for the training curves.
    pub loss_history: Vec<(usize, f32)>,
    /// (step, dev score) per validation.
    pub score_history: Vec<(usize, S)>,
    /// Whether early stopping ended the run (patience ran out).
    pub stopped_early: bool,
    /// The learning-rate schedule with its own state (the plateau schedule's best and patience).
    pub schedule: Schedule,
}

impl<S> TrainerState<S> {
    /// The state before the first step.
    pub fn new(lr: f32, schedule: Schedule) -> TrainerState<S> {
        TrainerState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_score: None,
            best_step: 0,
            bad_validations: 0,
            lr,
            train_seconds: 0.0,
            loss_history: Vec::new(),
            score_history: Vec::new(),
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

/// Reads `DIR/state.json`, the position of the run's last checkpoint.
pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<TrainerState<S>> {
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

/// Prepares `dir` for a run: a fresh run needs a directory without one, `resume` one with a
/// checkpoint. Writes `config.toml`: on `--resume` the caller passes the run's own config (with any
/// `--set` applied, e.g. a larger `train.max_steps`), so the directory describes the whole run.
pub fn open_run(dir: &Path, config: &Config, resume: bool) -> Result<()> {
    let holds_run = dir.join("state.json").exists();
    if resume && !holds_run {
        bail!(
            "--resume: {} holds no interrupted run (no state.json)",
            dir.display()
        );
    }
    if !resume && holds_run {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_config(dir, config)
}

/// `DIR/checkpoint/STEP.safetensors` and `DIR/checkpoint/STEP.optim.safetensors`.
fn checkpoint_files(dir: &Path, step: usize) -> (PathBuf, PathBuf) {
    let d = dir.join("checkpoint");
    (
        d.join(format!("{step}.safetensors")),
        d.join(format!("{step}.optim.safetensors")),
    )
}

/// Writes a checkpoint as one unit: parameters and optimizer state under the step's names, then
/// `state.json` (the commit), then `last.safetensors` and the removal of other steps' files.
pub fn save_checkpoint<S: Serialize>(
    dir: &Path,
    params: &Params,
    adam: &Adam,
    state: &TrainerState<S>,
) -> Result<()> {
    let (weights, optim) = checkpoint_files(dir, state.step);
    std::fs::create_dir_all(dir.join("checkpoint"))?;
    params.save(&weights)?;
    save_tensors(&adam.state_tensors(), &optim)?;
    write_json(&dir.join("state.json"), state)?;
    let last = dir.join("last.safetensors");
    let tmp = dir.join("last.safetensors.link");
    let _ = std::fs::remove_file(&tmp);
    // A hard link shares the bytes just written; a copy where the file system has no links.
    if std::fs::hard_link(&weights, &tmp).is_err() {
        std::fs::copy(&weights, &tmp)?;
    }
    std::fs::rename(&tmp, &last)?;
    for entry in std::fs::read_dir(dir.join("checkpoint"))? {
        let path = entry?.path();
        if path != weights && path != optim {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Loads the last checkpoint into `params` and `adam`, and cuts `log.jsonl` back to its step.
pub fn load_checkpoint<S: DeserializeOwned>(
    dir: &Path,
    params: &Params,
    adam: &mut Adam,
) -> Result<TrainerState<S>> {
    let state: TrainerState<S> = read_state(dir)?;
    let (weights, optim) = checkpoint_files(dir, state.step);
    params.load(&weights)?;
    adam.load_state(&load_tensors(&optim)?)
        .context("resuming: optimizer state does not match the model")?;
    truncate_log(&dir.join("log.jsonl"), state.step)?;
    Ok(state)
}

/// Keeps the lines of `log.jsonl` up to and including `step`: a run killed after logging a
/// validation but before its checkpoint logs that step again when resumed.
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    if kept.len() != text.len() {
        atomic_write(path, kept.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
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
