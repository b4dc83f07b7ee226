//! After captioner training: the best checkpoint captions the test images with `search.beam`,
//! scored by exact-caption accuracy and BLEU; the hypotheses go to `test.hyp.txt`, and for digit
//! strips the first test strips are written as PNG (`test-strips/`) and the summary measures where
//! the attention looks (see [`attention_moves`]). Everything lands in `summary.json`.

use super::captioner::{Captioner, ImageRows};
use super::images::{write_png, Image};
use super::trainer::{describe, max_words};
use super::{CaptionSet, Strip};
use crate::config::Config;
use crate::data::tokenizer::Tokenizer;
use crate::metrics::bleu::corpus_bleu;
use crate::search::Hypothesis;
use crate::train::checkpoint::{write_summary, TrainerState};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Test strips written as PNG into the run directory (inputs for `attend caption`).
const SAMPLE_STRIPS: usize = 8;

/// What a finished captioner run reports (also `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CaptionSummary {
    pub name: String,
    pub model: String,
    /// Share of test images whose caption is exactly the reference.
    pub test_exact: f64,
    pub test_bleu: f64,
    pub test_images: usize,
    pub dev_exact: f64,
    pub dev_bleu: f64,
    pub best_step: usize,
    pub steps: usize,
    pub train_seconds: f64,
    pub params: usize,
    pub threads: usize,
    pub beam: usize,
    pub train_images: usize,
    /// Digit strips: share of test strips whose attention centroid moves strictly left to right
    /// from word to word.
    pub attention_left_to_right: Option<f64>,
    /// Digit strips: share of test digits whose word's attention centroid lies on that digit.
    pub attention_on_digit: Option<f64>,
}

/// Loads the best checkpoint, captions the test images, writes and returns the summary.
pub fn evaluate(
    config: &Config,
    dir: &Path,
    model: &Captioner,
    vocab: &Tokenizer,
    test: &CaptionSet,
    state: &TrainerState<(f64, f64)>,
    train_images: usize,
) -> Result<CaptionSummary> {
    model.params().load(&dir.join("best.safetensors"))?;
    let beam = config.search.beam;
    let hyps = ImageRows {
        model,
        images: &test.images,
    }
    .caption_all(beam, config.search.alpha, max_words(config));
    let (test_exact, test_bleu) = score(&hyps, vocab, &test.captions)?;
    let text: Vec<String> = hyps.iter().map(|h| vocab.decode(&h.ids)).collect();
    std::fs::write(dir.join("test.hyp.txt"), text.join("\n") + "\n")?;
    let moves = (!test.strips.is_empty()).then(|| {
        attention_moves(
            &hyps,
            &test.strips,
            model.grid(),
            config.caption.image_width,
        )
    });
    if !test.strips.is_empty() {
        write_samples(dir, test, SAMPLE_STRIPS)?;
    }
    let (dev_exact, dev_bleu) = state.best_score.unwrap_or_default();
    let summary = CaptionSummary {
        name: config.name.clone(),
        model: describe(config),
        test_exact,
        test_bleu,
        test_images: test.len(),
        dev_exact,
        dev_bleu,
        best_step: state.best_step,
        steps: state.step,
        train_seconds: state.train_seconds,
        params: model.params().count(),
        threads: tensor::threads::threads(),
        beam,
        train_images,
        attention_left_to_right: moves.map(|m| m.0),
        attention_on_digit: moves.map(|m| m.1),
    };
    write_summary(dir, &summary, state.step)?;
    Ok(summary)
}

/// Exact-caption accuracy (a share in [0, 1]) and corpus BLEU of hypotheses against references.
pub fn score(hyps: &[Hypothesis], vocab: &Tokenizer, refs: &[String]) -> Result<(f64, f64)> {
    let text: Vec<String> = hyps.iter().map(|h| vocab.decode(&h.ids)).collect();
    let exact = text
        .iter()
        .zip(refs)
        .filter(|(h, r)| h.split_whitespace().eq(r.split_whitespace()))
        .count();
    let bleu = corpus_bleu(&text, refs)?.score;
    Ok((exact as f64 / refs.len().max(1) as f64, bleu))
}

/// Where the attention looks on digit strips. The centroid of a word's weights is
/// `x̄ = Σ_i α_i x_i` over the grid cells, `x_i` the pixel column of cell i's centre. Returns
/// (share of strips whose centroids strictly increase from word to word, with at least two words;
/// share of digits whose word — the k-th word for the k-th digit — has its centroid on the digit).
pub fn attention_moves(
    hyps: &[Hypothesis],
    strips: &[Strip],
    (gh, gw): (usize, usize),
    image_width: usize,
) -> (f64, f64) {
    let cell = image_width as f32 / gw as f32;
    let (mut monotone, mut on_digit, mut digits) = (0, 0, 0);
    for (h, strip) in hyps.iter().zip(strips) {
        let words = h.ids.len().min(h.attention.len());
        let centroids: Vec<f32> = h.attention[..words]
            .iter()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, w)| w * ((i % gw) as f32 + 0.5) * cell)
                    .sum::<f32>()
            })
            .collect();
        debug_assert!(h.attention.iter().all(|a| a.len() == gh * gw));
        if words >= 2 && centroids.windows(2).all(|p| p[1] > p[0]) {
            monotone += 1;
        }
        for (k, &left) in strip.left.iter().enumerate() {
            digits += 1;
            if let Some(&x) = centroids.get(k) {
                if x >= left as f32 && x < (left + super::digits::SIDE) as f32 {
                    on_digit += 1;
                }
            }
        }
    }
    (
        monotone as f64 / strips.len().max(1) as f64,
        on_digit as f64 / digits.max(1) as f64,
    )
}

/// Writes the first `count` test images as `DIR/test-strips/NNN.png` with their captions in
/// `DIR/test-strips/captions.tsv`.
fn write_samples(dir: &Path, set: &CaptionSet, count: usize) -> Result<()> {
    let out = dir.join("test-strips");
    std::fs::create_dir_all(&out)?;
    let [_, c, h, w] = set
        .images
        .shape()
        .try_into()
        .context("images are [N, C, H, W]")?;
    let mut tsv = String::new();
    for i in 0..count.min(set.len()) {
        let name = format!("{i:03}.png");
        let image = Image {
            channels: c,
            height: h,
            width: w,
            data: set.images.select_rows(&[i]).into_data(),
        };
        write_png(&out.join(&name), &image)?;
        tsv.push_str(&format!("{name}\t{}\n", set.captions[i]));
    }
    std::fs::write(out.join("captions.tsv"), tsv)?;
    Ok(())
}
