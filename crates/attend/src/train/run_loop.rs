//! The training loop, once for every task. A [`Task`] (translation, captioning) supplies its
//! batches, its loss and its validation; [`train_loop`] owns everything else:
//!
//! ```text
//! for step s = 1, 2, …:   batch (epoch e, batch b) ─► loss(batch, rng_s) ─► backward
//!                           ─► clip ‖g‖ ≤ train.clip ─► Adam with lr = schedule(s)
//!   every train.valid_every steps, and at the last one:
//!     validate ─► best.safetensors if the score is the best ─► schedule, early stopping
//!     ─► log.jsonl line ─► checkpoint (parameters, optimizer, state: one atomic unit)
//! ```
//!
//! Dropout draws from `rng_s`, a generator seeded by `train.seed` and the step, and the batch of
//! a step is a function of (seed, epoch, batch), so a run resumed from a checkpoint continues
//! bit-identically. In a data-parallel job ([`TrainOptions::comm`], see [`super::collective`])
//! every rank runs this loop on its shard of each batch, with a generator that also depends on its
//! rank; the summed gradients, the step and the stop are the same on every rank, and rank 0 alone
//! validates, prints and writes the run directory. `train.max_minutes` counts the first run and every resume together. Test
//! evaluation, pictures and summaries are the task's, after the loop.

use super::checkpoint::{
    crash_point, load_checkpoint, read_checkpoint, save_checkpoint, TrainerState,
};
use super::collective::{from_lead, reduce_gradients, Collective};
use super::optimizer::{clip_grad_norm, Adam, AdamConfig};
use super::progress::Progress;
use super::schedule::Schedule;
use crate::config::Config;
use crate::nn::params::Params;
use anyhow::{bail, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tensor::{Rng, Var};

/// Where a run goes and how it reports.
pub struct TrainOptions<'a> {
    /// The run directory.
    pub out: PathBuf,
    /// Continue the interrupted run in `out`.
    pub resume: bool,
    /// Receives the run's lines and steps ([`super::progress::Quiet`] for none).
    pub progress: &'a dyn Progress,
    /// The ranks of the job ([`super::collective::Single`]: this process alone).
    pub comm: &'a dyn Collective,
}

/// A dev score: the larger the better; it picks `best.safetensors` and drives early stopping.
pub trait Score: Copy + PartialOrd + Serialize + DeserializeOwned {
    /// The number the plateau schedule watches.
    fn primary(self) -> f64;
}

/// Dev BLEU.
impl Score for f64 {
    fn primary(self) -> f64 {
        self
    }
}

/// Two measures compared in order (the captioner's exact-caption share, then BLEU).
impl Score for (f64, f64) {
    fn primary(self) -> f64 {
        self.0
    }
}

/// The interval that ends at a validation, as the task's log and progress lines report it.
pub struct Interval {
    pub step: usize,
    pub epoch: u64,
    /// Mean training loss over the interval.
    pub train_loss: f32,
    pub lr: f32,
    /// Batch items ([`Task::size`]) per second over the interval.
    pub rate: f64,
    /// Training seconds so far, over the first run and every resume.
    pub elapsed_s: f64,
    /// Whether the validation's score is the best so far.
    pub improved: bool,
}

/// What a task supplies to the loop.
pub trait Task {
    /// One training batch (or what builds it).
    type Batch;
    /// What a validation measures.
    type Dev;
    type Score: Score;
    /// What the progress bar counts per second ("tok", "images").
    const UNIT: &'static str;
    /// The name of the dev score in messages ("BLEU").
    const SCORE: &'static str;

    /// The trained parameters.
    fn params(&self) -> &Params;
    /// The batches of epoch `epoch`, in training order (a function of the seed and the epoch).
    fn epoch(&self, epoch: u64) -> Vec<Self::Batch>;
    /// (loss to minimise, training loss to report), dropout drawn from `rng`.
    fn loss(&self, batch: &Self::Batch, rng: &mut Rng) -> (Var, f32);
    /// Items in a batch, for the throughput ([`Task::UNIT`]).
    fn size(&self, batch: &Self::Batch) -> usize;
    /// Measures the model on the dev set.
    fn validate(&self) -> Result<(Self::Score, Self::Dev)>;
    /// A `log.jsonl` line.
    fn log_line(&self, dev: &Self::Dev, at: &Interval) -> Result<String>;
    /// The line printed at a validation.
    fn progress_line(&self, dev: &Self::Dev, at: &Interval) -> String;
    /// A score in words, e.g. "BLEU 31.20".
    fn show_score(&self, score: Self::Score) -> String;
    /// Part `part` of `parts` of a batch for data-parallel training and its weight `w`, such that
    /// the batch's loss is `Σ_part w · loss(part)`; `None` for an empty part. By default a task
    /// does not train data-parallel.
    fn shard(
        &self,
        _batch: &Self::Batch,
        _part: usize,
        _parts: usize,
    ) -> Result<Option<(Self::Batch, f32)>> {
        bail!("this task does not train data-parallel (on more than one rank)")
    }
}

/// Trains `task` into `opts.out` (resuming its checkpoint with `opts.resume`) until
/// `train.max_steps`, `train.max_minutes` or early stopping; returns the final trainer state.
/// The caller has opened the directory ([`super::checkpoint::open_run`]), which refuses to resume
/// a run whose training ended. In a data-parallel job rank 0 has opened it before the others
/// start, and the others read the checkpoint only after rank 0 has loaded it.
pub fn train_loop<T: Task>(
    task: &T,
    config: &Config,
    schedule: Schedule,
    opts: &TrainOptions,
) -> Result<TrainerState<T::Score>> {
    let (t, dir, comm) = (&config.train, &opts.out, opts.comm);
    let lead = comm.rank() == 0;
    // The parameter handles, collected once for the optimizer and for clipping at every step.
    let params = task.params();
    let vars = params.vars();
    let mut adam = Adam::new(
        vars.clone(),
        AdamConfig {
            weight_decay: t.weight_decay,
            decoupled_weight_decay: t.weight_decay > 0.0,
            ..AdamConfig::default()
        },
    );
    let mut state = TrainerState::new(t.lr, schedule);
    if opts.resume {
        // Rank 0 completes the checkpoint's commit; then every other rank reads it.
        from_lead(comm, || {
            state = load_checkpoint(dir, config, params, &mut adam)?;
            Ok(())
        })?;
        if !lead {
            state = read_checkpoint(dir, params, &mut adam)?;
        }
        let best = state.best_score.map(|s| task.show_score(s));
        opts.progress.say(&format!(
            "resumed at step {} (epoch {}, best dev {})",
            state.step,
            state.epoch,
            best.unwrap_or_default()
        ));
    }
    let mut log_file = match lead {
        true => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("log.jsonl"))?,
        ),
        false => None,
    };

    let started = Instant::now();
    let seconds_before = state.train_seconds;
    let progress = opts.progress;
    progress.start(state.step, t.max_steps);
    let (mut loss_sum, mut loss_n, mut items) = (0.0f64, 0usize, 0usize);
    // The loss curve gets a point ten times per validation interval (and at every validation).
    let curve_every = (t.valid_every / 10).max(1);
    let (mut curve_sum, mut curve_n) = (0.0f64, 0usize);
    let mut interval_start = Instant::now();
    // Seconds spent exchanging gradients (data-parallel only).
    let mut comm_seconds = 0.0;
    let out_of_minutes = || {
        t.max_minutes > 0.0
            && started.elapsed().as_secs_f64() + seconds_before > t.max_minutes * 60.0
    };
    let mut epoch_batches = task.epoch(state.epoch);
    while state.step < t.max_steps && !state.stopped_early {
        if state.batch_in_epoch >= epoch_batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            epoch_batches = task.epoch(state.epoch);
        }
        let batch = &epoch_batches[state.batch_in_epoch];
        let lr = state.schedule.lr(state.step + 1);
        // Dropout masks come from a generator seeded by the step (and the rank), so a resumed run
        // draws the same.
        let mut rng = Rng::new(
            t.seed
                ^ (state.step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (comm.rank() as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        params.zero_grad();
        let (loss_value, out_of_time) = if comm.size() == 1 {
            let (loss, value) = task.loss(batch, &mut rng);
            if !value.is_finite() {
                bail!(
                    "training diverged at step {} (loss {value}); lower train.lr or set train.clip",
                    state.step + 1
                );
            }
            loss.backward();
            (value, out_of_minutes())
        } else {
            let (mut weighted_loss, mut w) = (0.0, 0.0);
            if let Some((shard, weight)) = task.shard(batch, comm.rank(), comm.size())? {
                let (loss, value) = task.loss(&shard, &mut rng);
                loss.backward();
                (weighted_loss, w) = (value * weight, weight);
            }
            // The batch's loss, and whether any rank is out of time, travel with the gradients.
            let mut extra = [weighted_loss, if out_of_minutes() { 1.0 } else { 0.0 }];
            let exchange = Instant::now();
            reduce_gradients(comm, &vars, w, &mut extra);
            comm_seconds += exchange.elapsed().as_secs_f64();
            if !extra[0].is_finite() {
                bail!(
                    "training diverged at step {} (loss {}); lower train.lr or set train.clip",
                    state.step + 1,
                    extra[0]
                );
            }
            (extra[0], extra[1] > 0.0)
        };
        if t.clip > 0.0 {
            clip_grad_norm(&vars, t.clip);
        }
        adam.step(lr);
        state.step += 1;
        state.batch_in_epoch += 1;
        state.lr = lr;
        loss_sum += loss_value as f64;
        loss_n += 1;
        items += task.size(batch);
        let rate = items as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
        progress.advance(
            state.step,
            &format!(
                "loss {:.3} · {:.0} {}/s",
                loss_sum / loss_n as f64,
                rate,
                T::UNIT
            ),
        );

        let last = state.step >= t.max_steps || out_of_time;
        let validating = state.step.is_multiple_of(t.valid_every) || last;
        (curve_sum, curve_n) = (curve_sum + loss_value as f64, curve_n + 1);
        if state.step.is_multiple_of(curve_every) || validating {
            let mean = (curve_sum / curve_n as f64) as f32;
            state.loss_history.push((state.step, mean));
            (curve_sum, curve_n) = (0.0, 0);
        }
        if validating {
            let train_loss = (loss_sum / loss_n.max(1) as f64) as f32;
            // Rank 0 validates and checkpoints; every rank continues from its state.
            state = from_lead(comm, || {
                let (score, dev) = task.validate()?;
                state.score_history.push((state.step, score));
                let improved = state.best_score.is_none_or(|best| score > best);
                if improved {
                    state.best_score = Some(score);
                    state.best_step = state.step;
                    state.bad_validations = 0;
                    params.save(&dir.join("best.safetensors"))?;
                    crash_point("best", state.step);
                } else {
                    state.bad_validations += 1;
                }
                state.schedule.on_validation(score.primary());
                let at = Interval {
                    step: state.step,
                    epoch: state.epoch,
                    train_loss,
                    lr,
                    rate,
                    elapsed_s: seconds_before + started.elapsed().as_secs_f64(),
                    improved,
                };
                let log = log_file.as_mut().expect("rank 0 holds the log");
                writeln!(log, "{}", task.log_line(&dev, &at)?)?;
                crash_point("log", state.step);
                progress.say(&task.progress_line(&dev, &at));
                let patience_out = t.patience > 0 && state.bad_validations >= t.patience;
                if patience_out {
                    progress.say(&format!(
                        "early stopping: no better dev {} in {} validations",
                        T::SCORE,
                        t.patience
                    ));
                }
                state.stopped_early = patience_out;
                state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
                save_checkpoint(dir, params, &adam, &state)?;
                Ok(state.clone())
            })?;
            (loss_sum, loss_n, items) = (0.0, 0, 0);
            interval_start = Instant::now();
        }
        if out_of_time {
            break;
        }
        if progress.stop_requested() && state.step < t.max_steps && !state.stopped_early {
            state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
            save_checkpoint(dir, params, &adam, &state)?;
            progress.finish();
            bail!(
                "training stopped on request at step {}; its checkpoint is saved in {}: resume to continue",
                state.step,
                dir.display()
            );
        }
    }
    progress.finish();
    if comm.size() > 1 {
        let total = started.elapsed().as_secs_f64();
        progress.say(&format!(
            "data-parallel: {} ranks; exchanging gradients took {comm_seconds:.1} s of rank 0's {total:.1} s ({:.1}%)",
            comm.size(),
            100.0 * comm_seconds / total.max(1e-9)
        ));
    }
    Ok(state)
}
