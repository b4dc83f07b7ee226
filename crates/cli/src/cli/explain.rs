//! `attend explain --model DIR "black cat" [--json] [--top K]`: what the attention did at every
//! decoder step of a greedy translation: each source token's score, the softmax weights as numbers
//! and bars, the most attended tokens, and the word emitted.

use anyhow::Result;
use attend::data::normalize::normalize;
use attend::show::explain::{explain, ScoreSource};
use attend::show::explain_text;
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
    let ex = explain(&*loaded.model, &loaded.vocabs, &sentence, max_len)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ex)?);
        return Ok(());
    }
    println!("source       {}", ex.source);
    println!("tokens       {}", ex.source_tokens.join(" · "));
    println!("translation  {}", ex.translation);
    if ex.scores_from == ScoreSource::LogWeights {
        println!(
            "(this model has no single score function: its heads are averaged, and the scores \
             shown are ln of the averaged weights)"
        );
    }
    println!();
    print!("{}", explain_text(&ex.steps, a.top)?);
    Ok(())
}
