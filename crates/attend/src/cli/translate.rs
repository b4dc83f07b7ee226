//! `attend translate --model DIR [--beam K] [--alpha A] [--ids]`: stdin lines → stdout translations.

use crate::train::checkpoint::load_model;
use crate::translate::{translate_ids, translate_text};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Translate lines from stdin, one translation per line on stdout.
#[derive(clap::Args)]
pub struct TranslateArgs {
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
}

pub fn run(a: TranslateArgs) -> Result<()> {
    let loaded = load_model(&a.model, &a.checkpoint)?;
    let beam = a.beam.unwrap_or(loaded.config.search.beam);
    if beam == 0 {
        bail!("--beam must be at least 1");
    }
    let alpha = a.alpha.unwrap_or(loaded.config.search.alpha);
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .enumerate()
        .map(|(i, l)| l.with_context(|| format!("stdin line {}: not valid UTF-8 text", i + 1)))
        .collect::<Result<_>>()?;
    let mut out = std::io::stdout().lock();
    if a.ids {
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
