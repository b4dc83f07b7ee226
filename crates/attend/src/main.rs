//! The `attend` command line: train, translate, score, explain, report, bench.

use anyhow::{bail, Context, Result};
use attend::config::Config;
use attend::metrics::{bleu::corpus_bleu, chrf::corpus_chrf};
use attend::train::checkpoint::load_model;
use attend::train::trainer::{train, TrainOptions};
use attend::translate::{translate_ids, translate_text};
use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "attend",
    version,
    about = "Attention-based sequence-to-sequence learning: train, translate, and see the attention"
)]
struct Cli {
    /// Threads for the kernels (default: all cores; also ATTEND_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (with no CONFIG: English→French, bi-GRU + additive attention, bundled data).
    Train {
        /// Experiment config (TOML); see configs/.
        config: Option<PathBuf>,
        /// Run directory (default: runs/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a config key, e.g. --set train.max_steps=500 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Continue the interrupted run in --out.
        #[arg(long)]
        resume: bool,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Translate lines from stdin, one translation per line on stdout.
    Translate {
        /// Run directory written by `attend train`.
        #[arg(long)]
        model: PathBuf,
        /// Beam size (default: the run's search.beam; 1 = greedy).
        #[arg(long)]
        beam: Option<usize>,
        /// Length-penalty exponent (default: the run's search.alpha).
        #[arg(long)]
        alpha: Option<f32>,
        /// Read and write space-separated token ids instead of text.
        #[arg(long)]
        ids: bool,
        /// Checkpoint to use: best or last.
        #[arg(long, default_value = "best")]
        checkpoint: String,
    },
    /// BLEU and chrF of a hypothesis file against a reference file (sacreBLEU defaults), as JSON.
    Score {
        #[arg(long)]
        hyp: PathBuf,
        #[arg(long = "ref")]
        reference: PathBuf,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        tensor::threads::set_threads(n);
    }
    match cli.command {
        Command::Train {
            config,
            out,
            sets,
            resume,
            quiet,
        } => {
            let cfg = match (&config, resume, &out) {
                // Resuming reads the run's own config.
                (None, true, Some(dir)) => Config::load(Some(&dir.join("config.toml")), &sets)?,
                _ => Config::load(config.as_deref(), &sets)?,
            };
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
            let summary = train(
                &cfg,
                &TrainOptions {
                    out: out.clone(),
                    resume,
                    quiet,
                },
            )?;
            print_summary(&summary, &out)
        }
        Command::Translate {
            model,
            beam,
            alpha,
            ids,
            checkpoint,
        } => {
            let loaded = load_model(&model, &checkpoint)?;
            let beam = beam.unwrap_or(loaded.config.search.beam);
            let alpha = alpha.unwrap_or(loaded.config.search.alpha);
            let stdin = std::io::stdin();
            let lines: Vec<String> = stdin
                .lock()
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    l.with_context(|| format!("stdin line {}: not valid UTF-8 text", i + 1))
                })
                .collect::<Result<_>>()?;
            let mut out = std::io::stdout().lock();
            if ids {
                let v = loaded.vocabs.src.vocab_size() as u32;
                let src = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| parse_ids(l, v).with_context(|| format!("stdin line {}", i + 1)))
                    .collect::<Result<Vec<_>>>()?;
                for h in translate_ids(&*loaded.model, &src, &loaded.config, beam, alpha) {
                    let s: Vec<String> = h.ids.iter().map(|i| i.to_string()).collect();
                    writeln!(out, "{}", s.join(" "))?;
                }
            } else {
                let (text, _) = translate_text(
                    &*loaded.model,
                    &loaded.vocabs,
                    &lines,
                    &loaded.config,
                    beam,
                    alpha,
                )?;
                for t in text {
                    writeln!(out, "{t}")?;
                }
            }
            Ok(())
        }
        Command::Score { hyp, reference } => {
            let read = |p: &PathBuf| -> Result<Vec<String>> {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Ok(text.lines().map(str::to_string).collect())
            };
            let (h, r) = (read(&hyp)?, read(&reference)?);
            if h.len() != r.len() {
                bail!(
                    "{} has {} lines but {} has {}; they must be line-aligned",
                    hyp.display(),
                    h.len(),
                    reference.display(),
                    r.len()
                );
            }
            let bleu = corpus_bleu(&h, &r)?;
            let json = serde_json::json!({
                "bleu": bleu.score,
                "chrf": corpus_chrf(&h, &r)?,
                "precisions": bleu.precisions,
                "bp": bleu.bp,
                "sys_len": bleu.sys_len,
                "ref_len": bleu.ref_len,
                "sentences": h.len(),
            });
            println!("{json}");
            Ok(())
        }
    }
}

/// Space-separated token ids, each below the vocabulary size.
fn parse_ids(line: &str, vocab: u32) -> Result<Vec<u32>> {
    line.split_whitespace()
        .map(|t| {
            let id: u32 = t
                .parse()
                .with_context(|| format!("{t:?} is not a token id"))?;
            if id >= vocab {
                bail!("token id {id} is outside the vocabulary (size {vocab})");
            }
            Ok(id)
        })
        .collect()
}

fn print_summary(s: &attend::train::trainer::Summary, dir: &std::path::Path) -> Result<()> {
    println!("model      {} ({} parameters)", s.model, s.params);
    println!(
        "trained    {} steps in {:.0} s ({} threads); best dev BLEU {:.2} at step {}",
        s.steps, s.train_seconds, s.threads, s.dev_bleu, s.best_step
    );
    println!(
        "test       BLEU {:.2}  chrF {:.2}  ({} sentences, beam {})",
        s.test_bleu, s.test_chrf, s.test_sentences, s.beam
    );
    println!("run        {}", dir.display());
    Ok(())
}
