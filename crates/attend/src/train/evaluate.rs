//! After translation training: the best checkpoint translates the test set with `search.beam`,
//! and the run gets its report: `test.hyp.txt`, test BLEU and chrF, `curves.png` (training loss
//! and dev BLEU over steps), `attention.png` (one test sentence's attention heat map), sample
//! translations with the word alignment of the drawn one, and `summary.json`.

use super::checkpoint::{write_summary, TrainerState};
use super::trainer::{describe, Prepared};
use crate::config::Config;
use crate::data::tokenizer::Tokenizer;
use crate::metrics::{bleu::corpus_bleu, chrf::corpus_chrf};
use crate::models::Seq2Seq;
use crate::search::{attended_source, Hypothesis};
use crate::show::alignment::{word_alignment, WordLink};
use crate::show::plots::{hypothesis_heat_map, training_curves};
use crate::show::Picture;
use crate::translate::translate_ids;
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a finished run reports (also written to `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub model: String,
    pub test_bleu: f64,
    pub test_chrf: f64,
    pub test_sentences: usize,
    pub dev_bleu: f64,
    pub best_step: usize,
    pub steps: usize,
    pub train_seconds: f64,
    pub params: usize,
    pub threads: usize,
    pub beam: usize,
    pub train_pairs: usize,
    pub skipped_pairs: usize,
    /// `curves.png`: training loss and dev BLEU over steps.
    pub curves: PathBuf,
    /// `attention.png`: the heat map of one sample's attention (models with attention).
    pub attention_picture: Option<PathBuf>,
    /// The first test sentences and their translations.
    pub samples: Vec<Sample>,
}

/// Test sentences shown at the end of training.
const SAMPLES: usize = 5;

/// A test sentence, its reference and the model's translation.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub source: String,
    pub reference: String,
    pub translation: String,
    /// For each target word, the source word it attended to most; only for the drawn sample.
    pub alignment: Vec<WordLink>,
}

/// Loads the best checkpoint, translates the test set, prints and writes the summary.
pub fn evaluate(
    config: &Config,
    dir: &Path,
    model: &dyn Seq2Seq,
    prep: &Prepared,
    state: &TrainerState<f64>,
    dropped_long: usize,
) -> Result<Summary> {
    model.params().load(&dir.join("best.safetensors"))?;
    let beam = config.search.beam;
    let hyps: Vec<Hypothesis> =
        translate_ids(model, &prep.test_src, config, beam, config.search.alpha);
    let hyp_text: Vec<String> = hyps
        .iter()
        .map(|h| prep.vocabs.tgt.decode(&h.ids))
        .collect();
    let refs: Vec<String> = prep
        .corpora
        .test
        .pairs
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    std::fs::write(dir.join("test.hyp.txt"), hyp_text.join("\n") + "\n")?;
    let curves = dir.join("curves.png");
    let title = format!("{}: {}", config.name, describe(config));
    training_curves(title, &state.loss_history, &state.score_history)?.save(&curves)?;
    let mut samples: Vec<Sample> = (0..refs.len().min(SAMPLES))
        .map(|i| Sample {
            source: prep.corpora.test.pairs[i].0.clone(),
            reference: refs[i].clone(),
            translation: hyp_text[i].clone(),
            alignment: Vec::new(),
        })
        .collect();
    // The drawn sample: the first with attention, preferably 4 to 15 source tokens long (a readable picture).
    let drawn = (0..samples.len())
        .filter(|&i| !hyps[i].attention.is_empty())
        .min_by_key(|&i| (!(4..=15).contains(&prep.test_src[i].len()), i));
    let attention_picture = match drawn {
        Some(i) => {
            let (v, src, h) = (&prep.vocabs, &prep.test_src[i], &hyps[i]);
            let raw = |t: &Tokenizer, ids: &[u32]| -> Vec<String> {
                ids.iter().map(|&id| t.token(id)).collect()
            };
            // Words align to source words: the columns of an appended `</s>` are left out.
            let rows: Vec<Vec<f32>> = h
                .attention
                .iter()
                .map(|r| r[..src.len()].to_vec())
                .collect();
            samples[i].alignment = word_alignment(&raw(&v.src, src), &raw(&v.tgt, &h.ids), &rows)?;
            let path = dir.join("attention.png");
            let read = attended_source(model, src);
            hypothesis_heat_map(&samples[i].source, &v.src, &v.tgt, &read, h)?.save(&path)?;
            Some(path)
        }
        None => None,
    };
    let summary = Summary {
        name: config.name.clone(),
        model: describe(config),
        test_bleu: corpus_bleu(&hyp_text, &refs)?.score,
        test_chrf: corpus_chrf(&hyp_text, &refs)?,
        test_sentences: refs.len(),
        dev_bleu: state.best_score.unwrap_or(0.0),
        best_step: state.best_step,
        steps: state.step,
        train_seconds: state.train_seconds,
        params: model.params().count(),
        threads: tensor::threads::threads(),
        beam,
        train_pairs: prep.train.len(),
        skipped_pairs: dropped_long + prep.corpora.train.skipped_empty,
        curves,
        attention_picture,
        samples,
    };
    write_summary(dir, &summary, state.step)?;
    Ok(summary)
}
