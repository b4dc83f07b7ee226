//! `attend explain --model DIR "black cat" [--json] [--top K] [--layer L] [--head H]`: what the
//! attention did at every decoder step of a greedy translation: each source token's score, the
//! softmax weights as numbers and bars, the most attended tokens, and the word emitted. For a
//! Transformer the steps show one decoder layer's cross-attention, one head (its scores
//! q·k/√d_k) or the mean of its heads; `--json` carries every layer and head.

use anyhow::{anyhow, bail, Result};
use attend::data::normalize::normalize;
use attend::show::explain::{explain_view, Explanation, ScoreSource};
use attend::show::{explain_text, HeadView};
use attend::train::checkpoint::load_model;
use std::path::PathBuf;

/// Explain a translation step by step: scores, softmax weights, top tokens, emitted word.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Run directory written by `attend train` (a model with attention).
    #[arg(long)]
    model: PathBuf,
    /// The sentence to translate and explain.
    sentence: String,
    /// Print the steps as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Number of most attended source tokens named per step (at least 1).
    #[arg(long, default_value_t = 3, value_parser = super::checks::at_least_one())]
    top: usize,
    /// Transformer: the decoder layer whose cross-attention the steps show, from 1 (default: the
    /// penultimate, whose head average aligns best).
    #[arg(long, value_name = "L")]
    layer: Option<usize>,
    /// Transformer: the head the steps show, from 1, with its scores q·k/√d_k (default: the mean
    /// of the layer's heads).
    #[arg(long, value_name = "H")]
    head: Option<usize>,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best", value_parser = super::checks::CHECKPOINTS)]
    checkpoint: String,
}

pub fn run(a: ExplainArgs) -> Result<()> {
    let loaded = load_model(&a.model, &a.checkpoint)?;
    // The same text normalisation as `translate`, `serve` and training (an all-space sentence is
    // empty and refused by `explain`).
    let sentence = normalize(&a.sentence);
    let words = loaded.vocabs.src.encode(&sentence)?.len();
    let max_len = loaded.config.max_output_len(words);
    let view = match (a.layer, a.head, loaded.model.as_transformer()) {
        (None, None, _) => None,
        (layer, head, Some(t)) => {
            let spec = t.spec();
            let view = HeadView::choose(layer, head, spec.decoder_layers, spec.heads);
            Some(view.map_err(|e| anyhow!("--layer / --head: {e}"))?)
        }
        (_, _, None) => bail!(
            "--layer / --head: this model is an RNN with a single attention; layers and heads \
             belong to a Transformer, leave them out"
        ),
    };
    let ex = explain_view(&*loaded.model, &loaded.vocabs, &sentence, max_len, view)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ex)?);
        return Ok(());
    }
    println!("source       {}", ex.source);
    println!("tokens       {}", ex.source_tokens.join(" · "));
    println!("translation  {}", ex.translation);
    if let Some(line) = view_line(&ex) {
        println!("{line}");
    }
    println!();
    print!("{}", explain_text(&ex.steps, a.top)?);
    Ok(())
}

/// What a Transformer's steps show, in words.
fn view_line(ex: &Explanation) -> Option<String> {
    let (view, cross) = (ex.view?, ex.cross_attention.as_ref()?);
    let heads = cross.layers.first().map_or(0, |l| l.heads.len());
    let layers = cross.layers.len();
    let what = view.describe(heads);
    Some(match ex.scores_from {
        ScoreSource::ScaledDot => format!(
            "attention    cross-attention of {what} (of {layers} layers × {heads} heads): \
             scores q·k/√d_k with d_k = {}, weights their softmax",
            cross.d_k
        ),
        _ => format!(
            "attention    cross-attention of {what} (of {layers} layers){}: the heads' weights \
             averaged, so the scores shown are ln of the mean weights; --head H shows one head's \
             q·k/√d_k",
            if view.head.is_none() && view.layer == cross.alignment_layer {
                ", the alignment view"
            } else {
                ""
            }
        ),
    })
}
