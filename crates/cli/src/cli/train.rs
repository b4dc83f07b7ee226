//! `attend train [CONFIG.toml] [--out DIR] [--set key=value]… [--resume | --evaluate]`
//!
//! `--resume` continues an interrupted run: its training, or its final evaluation when it was
//! killed during that. `--evaluate` evaluates a run whose training ended again, without training.

use super::progress::Bar;
use anyhow::Result;
use attend::caption::trainer::evaluate_captioner_run;
use attend::caption::{train_captioner, CaptionSummary};
use attend::config::{Config, ModelKind};
use attend::show::alignment::alignment_text;
use attend::train::progress::Quiet;
use attend::train::trainer::{evaluate_run, train, Summary, TrainOptions};
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
        progress: if a.quiet { &Quiet } else { &bar },
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
        evaluate_run(&cfg, &out, opts.progress)?
    } else {
        train(&cfg, &opts)?
    };
    print_summary(&summary, &out);
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
