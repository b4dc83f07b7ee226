//! `attend translate --model DIR [--beam K] [--alpha A] [--ids] [--plot DIR [--layer L]
//! [--head H]] [--max-input-tokens N]`: stdin lines → stdout translations, one output line per
//! input line; with `--plot`, the attention of every line as pictures (for a Transformer, line-N
//! shows one view of its cross-attention: by default the alignment view, the mean of the heads of
//! the penultimate decoder layer).
//!
//! Each text line is normalised first ([`normalize`]: whitespace runs collapsed, ends trimmed), so
//! `1  2   3 ` translates as `1 2 3`, and an empty or all-space line gives an empty output line.
//! A line longer than `--max-input-tokens` is not translated: its output line is left empty (the
//! output stays line-aligned with the input), stderr names it, and the command exits with an error
//! once every other line is written.

use anyhow::{anyhow, bail, Context, Result};
use attend::config::{AttentionScore, ModelConfig};
use attend::data::normalize::normalize;
use attend::models::Seq2Seq;
use attend::search::Hypothesis;
use attend::show::plots::{
    plot_head_view, plot_transformer_layers, plot_translation, teacher_forced_input,
};
use attend::show::HeadView;
use attend::train::checkpoint::{load_model, LoadedModel};
use attend::translate::{max_source_tokens, translate_ids};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Translate lines from stdin, one translation per line on stdout.
#[derive(clap::Args)]
pub struct TranslateArgs {
    /// Run directory written by `attend train`.
    #[arg(long)]
    model: PathBuf,
    /// Beam size, 1 (greedy) to 16 (default: the run's search.beam).
    #[arg(long, value_parser = super::checks::beam())]
    beam: Option<usize>,
    /// Length-penalty exponent, 0 to 10 (default: the run's search.alpha).
    #[arg(long, value_parser = super::checks::alpha)]
    alpha: Option<f32>,
    /// Longest input line, in source tokens (default: what the model reads, a Transformer's
    /// positional table or 1024 tokens for an RNN). A longer line gets an empty output line and
    /// an error on stderr, and the command exits non-zero after translating the others.
    #[arg(long, value_name = "N", value_parser = super::checks::at_least_one())]
    max_input_tokens: Option<usize>,
    /// Read and write space-separated token ids instead of text.
    #[arg(long)]
    ids: bool,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best", value_parser = super::checks::CHECKPOINTS)]
    checkpoint: String,
    /// Write a heat map of each line's attention into DIR (line-N.png/.svg, N from 1); for a
    /// Transformer also every layer and head, and grids, under DIR/line-N/.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// With --plot, Transformer: the decoder layer of line-N's map, from 1 (default: the
    /// penultimate, whose head average aligns best).
    #[arg(long, value_name = "L", requires = "plot")]
    layer: Option<usize>,
    /// With --plot, Transformer: the head of line-N's map, from 1 (default: the mean of the
    /// layer's heads).
    #[arg(long, value_name = "H", requires = "plot")]
    head: Option<usize>,
}

pub fn run(a: TranslateArgs) -> Result<()> {
    let loaded = load_model(&a.model, &a.checkpoint)?;
    let beam = a.beam.unwrap_or(loaded.config.search.beam);
    let limit = input_limit(a.max_input_tokens, &*loaded.model)?;
    let alpha = a.alpha.unwrap_or(loaded.config.search.alpha);
    let no_attention = matches!(
        &loaded.config.model,
        ModelConfig::Rnn(m) if m.attention == AttentionScore::None
    );
    if a.plot.is_some() && no_attention {
        bail!("--plot: this model has no attention (model.rnn.attention = \"none\"), so there is nothing to draw");
    }
    let view = plot_view(a.layer, a.head, &*loaded.model)?;
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = l.with_context(|| format!("stdin line {}: not valid UTF-8 text", i + 1))?;
            Ok(if a.ids { l } else { normalize(&l) })
        })
        .collect::<Result<_>>()?;
    let mut too_long = Vec::new();
    let mut src = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let ids = source_ids(line, a.ids, limit, &loaded)
            .with_context(|| format!("stdin line {}", i + 1))?;
        match ids {
            Some(ids) => src.push(ids),
            None => {
                eprintln!(
                    "line {}: more than --max-input-tokens = {limit} source tokens; not translated, its output line is left empty",
                    i + 1
                );
                too_long.push(i + 1);
                src.push(Vec::new());
            }
        }
    }
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
        plot(dir, &loaded, &lines, &src, &hyps, view)?;
    }
    if !too_long.is_empty() {
        let shown: Vec<String> = too_long.iter().take(10).map(|n| n.to_string()).collect();
        bail!(
            "{} of {} lines had more than --max-input-tokens = {limit} source tokens and were left untranslated (empty output lines): line {}{}; split them, or raise --max-input-tokens",
            too_long.len(),
            lines.len(),
            shown.join(", "),
            if too_long.len() > shown.len() { ", …" } else { "" }
        );
    }
    Ok(())
}

/// The input bound: `--max-input-tokens`, else the model's own limit. A Transformer cannot read
/// past its positional table, so a larger flag is refused for it.
fn input_limit(flag: Option<usize>, model: &dyn Seq2Seq) -> Result<usize> {
    let most = max_source_tokens(model);
    match flag {
        None => Ok(most),
        Some(n) if n > most && model.as_transformer().is_some() => bail!(
            "--max-input-tokens = {n}: this Transformer reads at most {most} source tokens (model.transformer.max_positions); give at most {most}"
        ),
        Some(n) => Ok(n),
    }
}

/// The source ids of one (normalised) line, or `None` when it has more than `limit` tokens. Every
/// space-separated word is at least one token, so a line with more than `limit` words is refused
/// before the tokenizer spends memory on it.
fn source_ids(
    line: &str,
    ids: bool,
    limit: usize,
    loaded: &LoadedModel,
) -> Result<Option<Vec<u32>>> {
    if line.split_whitespace().nth(limit).is_some() {
        return Ok(None);
    }
    let src = if ids {
        parse_ids(line, loaded.vocabs.src.vocab_size() as u32)?
    } else {
        loaded.vocabs.src.encode(line)?
    };
    Ok((src.len() <= limit).then_some(src))
}

/// The view of a Transformer's line-N map (`--layer`, `--head`); `None` for an RNN, which has
/// no layers or heads to choose.
fn plot_view(
    layer: Option<usize>,
    head: Option<usize>,
    model: &dyn Seq2Seq,
) -> Result<Option<HeadView>> {
    match model.as_transformer() {
        Some(t) => {
            let spec = t.spec();
            let view = HeadView::choose(layer, head, spec.decoder_layers, spec.heads);
            Ok(Some(view.map_err(|e| anyhow!("--layer / --head: {e}"))?))
        }
        None if layer.is_some() || head.is_some() => bail!(
            "--layer / --head: this model is an RNN with a single attention; layers and heads \
             belong to a Transformer, leave them out"
        ),
        None => Ok(None),
    }
}

/// Writes the pictures of `--plot DIR` and names the directory on stderr. A Transformer's line-N
/// map shows `view` of its cross-attention; an RNN's the weights the search recorded.
fn plot(
    dir: &Path,
    loaded: &LoadedModel,
    lines: &[String],
    src: &[Vec<u32>],
    hyps: &[Hypothesis],
    view: Option<HeadView>,
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
        let (Some(t), Some(view)) = (transformer, view) else {
            files += plot_translation(dir, i + 1, &loaded.vocabs, line, ids, h)?.len();
            continue;
        };
        let tgt_in = teacher_forced_input(h);
        let maps = t.attention_maps(ids, &[ids.len()], ids.len(), &tgt_in, tgt_in.len())?;
        let read = t.encoder_input(ids);
        let vocabs = &loaded.vocabs;
        files += plot_head_view(dir, i + 1, vocabs, line, &read, h, &maps, view)?.len();
        files += plot_transformer_layers(dir, i + 1, vocabs, line, &read, h, &maps)?.len();
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
