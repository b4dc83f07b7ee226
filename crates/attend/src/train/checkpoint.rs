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
//! point resumes from one consistent (parameters, optimizer, state) triple; `--resume` finishes
//! the steps after the commit, and drops the `log.jsonl` lines written after that checkpoint, so
//! no step is logged twice. `summary.json` is written last: a run whose training ended without it
//! was killed during its final evaluation, and `--resume` runs only that evaluation.
//! [`crash_point`] lets the crash test stop the process between any two of these writes.

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

/// What `attend train` was asked to do with a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Start a new run in a directory without one.
    Fresh,
    /// Continue the run in the directory: its training if it was interrupted, else its final
    /// evaluation if that was interrupted (no `summary.json`).
    Resume,
    /// Evaluate the finished run in the directory again, without training.
    Evaluate,
}

impl Open {
    /// [`Open::Resume`] or [`Open::Fresh`].
    pub fn resuming(resume: bool) -> Open {
        if resume {
            Open::Resume
        } else {
            Open::Fresh
        }
    }
}

/// What the run in a directory needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Next {
    /// Training (from step 0, or from the last checkpoint when resuming).
    Train,
    /// Only the final evaluation: training has ended.
    Evaluate,
}

/// Whether the run a state describes has ended its training under `config`: it reached
/// `train.max_steps`, stopped early, or spent `train.max_minutes`.
pub fn training_ended<S>(state: &TrainerState<S>, config: &Config) -> bool {
    let t = &config.train;
    state.stopped_early
        || state.step >= t.max_steps
        || (t.max_minutes > 0.0 && state.train_seconds > t.max_minutes * 60.0)
}

/// Prepares `dir` for a run and says what it needs next. A fresh run needs a directory without
/// one (no `state.json`; a `log.jsonl` there is dropped) and writes `config.toml`; `resume` and `evaluate` need a run (`state.json`) and write
/// nothing here: a resumed run rewrites `config.toml` (with any `--set` applied, e.g. a larger
/// `train.max_steps`) only once its checkpoint has loaded, so a failed `--resume` leaves the
/// directory as it was. A resumed run whose training ended needs its final evaluation unless it
/// has its `summary.json`; then it is refused, as there is nothing left to do.
pub fn open_run(dir: &Path, config: &Config, open: Open) -> Result<Next> {
    let holds_run = dir.join("state.json").exists();
    if open == Open::Fresh {
        if holds_run {
            bail!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // A log without state.json is that of a run killed before its first checkpoint.
        let log = dir.join("log.jsonl");
        if log.exists() {
            std::fs::remove_file(&log).with_context(|| format!("removing {}", log.display()))?;
        }
        write_config(dir, config)?;
        return Ok(Next::Train);
    }
    if !holds_run {
        bail!(
            "{} holds no run to continue or evaluate (no state.json)",
            dir.display()
        );
    }
    let state: TrainerState<serde_json::Value> = read_state(dir)?;
    let ended = training_ended(&state, config);
    let finished = ended && dir.join("summary.json").exists();
    match open {
        Open::Resume if finished => bail!(
            "{}: the run already finished at step {}{}; raise train.max_steps (--set train.max_steps=N) or train.max_minutes to continue it, or evaluate it again with --evaluate",
            dir.display(),
            state.step,
            if state.stopped_early { " (early stopping)" } else { "" }
        ),
        Open::Evaluate if !ended => bail!(
            "{}: training has not ended (step {} of {}); continue it with --resume",
            dir.display(),
            state.step,
            config.train.max_steps
        ),
        _ if ended => {
            complete_commit(dir, state.step)?;
            Ok(Next::Evaluate)
        }
        _ => Ok(Next::Train),
    }
}

/// The line a run starts with when it reopens a directory: what it does there.
pub fn opening_line(config: &Config, dir: &Path, open: Open, next: Next) -> Option<String> {
    let what = match (open, next) {
        (Open::Fresh, _) => return None,
        (_, Next::Train) => "resuming",
        (_, Next::Evaluate) => "training has ended: evaluating",
    };
    Some(format!("{what} {} in {}", config.name, dir.display()))
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
/// `state.json` (the commit), then `complete_commit`.
pub fn save_checkpoint<S: Serialize>(
    dir: &Path,
    params: &Params,
    adam: &Adam,
    state: &TrainerState<S>,
) -> Result<()> {
    let step = state.step;
    let (weights, optim) = checkpoint_files(dir, step);
    std::fs::create_dir_all(dir.join("checkpoint"))?;
    params.save(&weights)?;
    crash_point("params", step);
    save_tensors(&adam.state_tensors(), &optim)?;
    crash_point("optimizer", step);
    write_json(&dir.join("state.json"), state)?;
    crash_point("state", step);
    complete_commit(dir, step)
}

/// The part of a checkpoint after its commit: points `last.safetensors` at the committed step's
/// parameters and removes the files of other steps. Idempotent, so that resuming a run killed
/// half-way through it finishes it.
fn complete_commit(dir: &Path, step: usize) -> Result<()> {
    let (weights, optim) = checkpoint_files(dir, step);
    if !weights.exists() {
        bail!(
            "{}: the checkpoint of step {step} named by state.json is missing",
            weights.display()
        );
    }
    let last = dir.join("last.safetensors");
    let tmp = dir.join("last.safetensors.link");
    let _ = std::fs::remove_file(&tmp);
    // A hard link shares the bytes just written; a copy where the file system has no links.
    if std::fs::hard_link(&weights, &tmp).is_err() {
        std::fs::copy(&weights, &tmp)?;
    }
    std::fs::rename(&tmp, &last)?;
    crash_point("link", step);
    for entry in std::fs::read_dir(dir.join("checkpoint"))? {
        let path = entry?.path();
        if path != weights && path != optim {
            std::fs::remove_file(&path)?;
        }
    }
    crash_point("cleanup", step);
    Ok(())
}

/// Loads the last checkpoint into `params` and `adam`, then completes its commit (see
/// `complete_commit`), writes `config` as the run's `config.toml` and cuts `log.jsonl` back to
/// the checkpoint's step. Nothing is written when the checkpoint does not load.
pub fn load_checkpoint<S: DeserializeOwned>(
    dir: &Path,
    config: &Config,
    params: &Params,
    adam: &mut Adam,
) -> Result<TrainerState<S>> {
    let state: TrainerState<S> = read_checkpoint(dir, params, adam)?;
    complete_commit(dir, state.step)?;
    write_config(dir, config)?;
    truncate_log(&dir.join("log.jsonl"), state.step)?;
    Ok(state)
}

/// Loads the last checkpoint into `params` and `adam` and returns its state, writing nothing: the
/// other ranks of a data-parallel job, once rank 0 has loaded it with [`load_checkpoint`].
pub fn read_checkpoint<S: DeserializeOwned>(
    dir: &Path,
    params: &Params,
    adam: &mut Adam,
) -> Result<TrainerState<S>> {
    let state: TrainerState<S> = read_state(dir)?;
    let (weights, optim) = checkpoint_files(dir, state.step);
    params.load(&weights)?;
    adam.load_state(&load_tensors(&optim)?)
        .context("resuming: optimizer state does not match the model")?;
    Ok(state)
}

/// Writes `summary.json`, the last file of a run: its presence marks the run finished.
pub fn write_summary<T: Serialize>(dir: &Path, summary: &T, step: usize) -> Result<()> {
    crash_point("evaluation", step);
    write_json(&dir.join("summary.json"), summary)
}

/// The environment variable of the crash test's hook: `POINT:STEP`.
pub const CRASH_AT: &str = "ATTEND_CRASH_AT";

/// The exit status of a process stopped by [`crash_point`].
pub const CRASH_EXIT: i32 = 86;

/// The crash test's hook, for testing only: when the environment holds `ATTEND_CRASH_AT=POINT:STEP`
/// the process exits at once, leaving the run directory as a kill at that moment would. The
/// points, in the order a validation reaches them: `best` (after `best.safetensors`), `log`
/// (after the `log.jsonl` line), `params`, `optimizer`, `state` (after each file of the
/// checkpoint), `link` (after `last.safetensors`), `cleanup` (after other steps' files are
/// removed), and `evaluation` (the final evaluation done but `summary.json` not yet written).
pub fn crash_point(point: &str, step: usize) {
    let Some(at) = std::env::var_os(CRASH_AT) else {
        return;
    };
    if at.to_str() == Some(format!("{point}:{step}").as_str()) {
        eprintln!("{CRASH_AT}: stopping at {point}:{step}");
        std::process::exit(CRASH_EXIT);
    }
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
