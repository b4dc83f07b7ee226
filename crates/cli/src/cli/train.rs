//! `attend train [CONFIG.toml] [--out DIR] [--set key=value]… [--resume | --evaluate]`
//!
//! `--resume` continues an interrupted run: its training, or its final evaluation when it was
//! killed during that. `--evaluate` evaluates a run whose training ended again, without training.
//! Started by an MPI launcher (`mpirun -np N attend train …`, built with the `mpi` feature), the
//! processes train one model data-parallel; see docs/distributed.md.

use super::progress::Bar;
use anyhow::{bail, Result};
use attend::caption::trainer::evaluate_captioner_run;
use attend::caption::{train_captioner, CaptionSummary};
use attend::config::{Config, ModelKind};
use attend::show::alignment::alignment_text;
use attend::train::collective::{Collective, Single};
use attend::train::progress::Quiet;
use attend::train::trainer::{evaluate_run, train_rank, Summary, TrainOptions};
use std::path::{Path, PathBuf};

/// Train a model (with no CONFIG: English→French, bi-GRU + additive attention, bundled data).
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Experiment config (TOML); see configs/.
    config: Option<PathBuf>,
    /// Run directory (default: runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a config key, e.g. --set train.max_steps=500 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Continue the interrupted run in --out (its training, or its interrupted final evaluation).
    #[arg(long)]
    resume: bool,
    /// Evaluate the run in --out, whose training ended, on the test set again without training;
    /// --set search.… applies to this evaluation only (config.toml is not rewritten).
    #[arg(long, conflicts_with = "resume")]
    evaluate: bool,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: TrainArgs) -> Result<()> {
    #[cfg(feature = "mpi")]
    let mpi = attend::train::mpi::Mpi::from_launcher()?;
    #[cfg(feature = "mpi")]
    if let Some(mpi) = &mpi {
        // A rank that fails alone must not leave the others waiting: its error, then the job ends.
        if let Err(e) = run_as(a, mpi) {
            eprintln!("error: rank {}: {e:#}", mpi.rank());
            mpi.abort(1);
        }
        return Ok(());
    }
    #[cfg(not(feature = "mpi"))]
    refuse_launcher()?;
    run_as(a, &Single)
}

/// Trains (or evaluates) as one rank of `comm`.
fn run_as(a: TrainArgs, comm: &dyn Collective) -> Result<()> {
    if comm.size() > 1 && a.evaluate {
        bail!("--evaluate runs in one process: start it without mpirun");
    }
    let cfg = match (&a.config, a.resume || a.evaluate, &a.out) {
        // Resuming and evaluating read the run's own config.
        (None, true, Some(dir)) => Config::load(Some(&dir.join("config.toml")), &a.sets)?,
        _ => Config::load(a.config.as_deref(), &a.sets)?,
    };
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let bar = Bar::new();
    let opts = TrainOptions {
        out: out.clone(),
        resume: a.resume,
        // Rank 0 speaks for a data-parallel job.
        progress: if a.quiet || comm.rank() > 0 {
            &Quiet
        } else {
            &bar
        },
        comm,
    };
    if cfg.model.kind() == ModelKind::Captioner {
        let s = if a.evaluate {
            evaluate_captioner_run(&cfg, &out, opts.progress)?
        } else {
            train_captioner(&cfg, &opts)?
        };
        print_caption_summary(&s, &out);
        return Ok(());
    }
    let summary = if a.evaluate {
        Some(evaluate_run(&cfg, &out, opts.progress)?)
    } else {
        train_rank(&cfg, &opts)?
    };
    if let Some(summary) = summary {
        print_summary(&summary, &out);
    }
    Ok(())
}

/// Without the `mpi` feature, processes started by an MPI launcher would each train alone into
/// the same directory: refused.
#[cfg(not(feature = "mpi"))]
fn refuse_launcher() -> Result<()> {
    for var in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        if let Some(n) = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            if n > 1 {
                bail!("started by an MPI launcher ({var}={n}), but this binary was built without the `mpi` feature: rebuild with `cargo build --release -p attend-cli --features mpi` (docs/distributed.md)");
            }
        }
    }
    Ok(())
}

fn print_caption_summary(s: &CaptionSummary, dir: &Path) {
    println!("model      {} ({} parameters)", s.model, s.params);
    println!(
        "trained    {} steps in {:.0} s ({} threads); best dev exact {:.1}% at step {}",
        s.steps,
        s.train_seconds,
        s.threads,
        100.0 * s.dev_exact,
        s.best_step
    );
    println!(
        "test       exact {:.1}%  BLEU {:.2}  ({} images, beam {})",
        100.0 * s.test_exact,
        s.test_bleu,
        s.test_images,
        s.beam
    );
    if let (Some(lr), Some(on)) = (s.attention_left_to_right, s.attention_on_digit) {
        println!(
            "attention  centroid moves left to right on {:.1}% of test strips; on the digit for {:.1}% of digits",
            100.0 * lr,
            100.0 * on
        );
    }
    println!("run        {}", dir.display());
}

fn print_summary(s: &Summary, dir: &Path) {
    println!("model      {} ({} parameters)", s.model, s.params);
    println!(
        "trained    {} steps in {:.0} s ({} threads); best dev BLEU {:.2} at step {}",
        s.steps, s.train_seconds, s.threads, s.dev_bleu, s.best_step
    );
    println!(
        "test       BLEU {:.2}  chrF {:.2}  ({} sentences, beam {})",
        s.test_bleu, s.test_chrf, s.test_sentences, s.beam
    );
    for (k, x) in s.samples.iter().enumerate() {
        println!("sample {}   {}", k + 1, x.source);
        println!("  ref      {}", x.reference);
        println!("  hyp      {}", x.translation);
    }
    if let Some(k) = s.samples.iter().position(|x| !x.alignment.is_empty()) {
        println!(
            "alignment  sample {}: each target word ← the source word it attended to most",
            k + 1
        );
        for line in alignment_text(&s.samples[k].alignment).lines() {
            println!("  {line}");
        }
    }
    if let Some(p) = &s.attention_picture {
        println!("attention  {}", p.display());
    }
    println!("curves     {}", s.curves.display());
    println!("run        {}", dir.display());
}
