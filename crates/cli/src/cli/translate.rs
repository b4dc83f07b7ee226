//! `attend translate --model DIR [--beam K] [--alpha A] [--ids] [--plot DIR]`: stdin lines →
//! stdout translations; with `--plot`, the attention of every line as pictures.

use anyhow::{bail, Context, Result};
use attend::config::{AttentionScore, ModelConfig};
use attend::search::Hypothesis;
use attend::show::plots::{plot_transformer_layers, plot_translation, teacher_forced_input};
use attend::train::checkpoint::{load_model, LoadedModel};
use attend::translate::{check_sources, translate_ids};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

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
    /// Write a heat map of each line's attention into DIR (line-N.png/.svg, N from 1); for a
    /// Transformer also every layer and head, and grids, under DIR/line-N/.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

pub fn run(a: TranslateArgs) -> Result<()> {
    let loaded = load_model(&a.model, &a.checkpoint)?;
    let beam = a.beam.unwrap_or(loaded.config.search.beam);
    if beam == 0 {
        bail!("--beam must be at least 1");
    }
    let alpha = a.alpha.unwrap_or(loaded.config.search.alpha);
    let no_attention = matches!(
        &loaded.config.model,
        ModelConfig::Rnn(m) if m.attention == AttentionScore::None
    );
    if a.plot.is_some() && no_attention {
        bail!("--plot: this model has no attention (model.rnn.attention = \"none\"), so there is nothing to draw");
    }
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .enumerate()
        .map(|(i, l)| l.with_context(|| format!("stdin line {}: not valid UTF-8 text", i + 1)))
        .collect::<Result<_>>()?;
    let src = if a.ids {
        let v = loaded.vocabs.src.vocab_size() as u32;
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| parse_ids(l, v).with_context(|| format!("stdin line {}", i + 1)))
            .collect::<Result<Vec<_>>>()?
    } else {
        lines
            .iter()
            .map(|l| loaded.vocabs.src.encode(l))
            .collect::<Result<Vec<_>, _>>()?
    };
    check_sources(&*loaded.model, &src)?;
    let hyps = translate_ids(&*loaded.model, &src, &loaded.config, beam, alpha);
    let mut out = std::io::stdout().lock();
    for h in &hyps {
        if a.ids {
            let s: Vec<String> = h.ids.iter().map(|i| i.to_string()).collect();
            writeln!(out, "{}", s.join(" "))?;
        } else {
            writeln!(out, "{}", loaded.vocabs.tgt.decode(&h.ids))?;
        }
    }
    if let Some(dir) = &a.plot {
        plot(dir, &loaded, &lines, &src, &hyps)?;
    }
    Ok(())
}

/// Writes the pictures of `--plot DIR` and names the directory on stderr.
fn plot(
    dir: &Path,
    loaded: &LoadedModel,
    lines: &[String],
    src: &[Vec<u32>],
    hyps: &[Hypothesis],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // The layer/head maps are the Transformer's own (an RNN has only the cross-attention).
    let transformer = loaded.model.as_transformer();
    let mut files = 0;
    for (i, ((line, ids), h)) in lines.iter().zip(src).zip(hyps).enumerate() {
        if ids.is_empty() {
            eprintln!("line {}: empty, nothing to plot", i + 1);
            continue;
        }
        files += plot_translation(dir, i + 1, &loaded.vocabs, line, ids, h)?.len();
        if let Some(t) = transformer {
            let tgt_in = teacher_forced_input(h);
            let maps = t.attention_maps(ids, &[ids.len()], ids.len(), &tgt_in, tgt_in.len())?;
            files +=
                plot_transformer_layers(dir, i + 1, &loaded.vocabs, line, ids, h, &maps)?.len();
        }
    }
    eprintln!("wrote {files} pictures to {}", dir.display());
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
