//! Training the captioner: `attend train CONFIG` with `model.kind = "captioner"`.
//!
//! The loop is the translation trainer's, on images: shuffled fixed-size batches → loss (cross-
//! entropy + optional doubly stochastic penalty) → backward → clip → Adam with the configured
//! schedule; every `train.valid_every` steps the dev images are captioned greedily and the best dev
//! exact-caption accuracy (then BLEU) is kept as `best.safetensors`. At the end the test images are
//! captioned with `search.beam` and scored. A run directory holds:
//!
//! ```text
//! DIR/config.toml  DIR/tgt_tokenizer.json  DIR/best.safetensors  DIR/last.safetensors
//! DIR/log.jsonl    DIR/summary.json        DIR/test.hyp.txt      DIR/test-strips/NNN.png (digits)
//! ```
//!
//! For digit strips the summary also measures where the attention looks (see [`attention_moves`]).

use super::captioner::{Captioner, ImageRows};
use super::digits::DigitBank;
use super::images::{read_image_tsv, write_png, Image};
use super::{CaptionSet, Strip};
use crate::config::{Config, CorpusName, ModelConfig, ModelKind};
use crate::data::batcher::Batch;
use crate::data::corpus::Split;
use crate::data::tokenizer::{Tokenizer, TokenizerKind, Vocabs};
use crate::metrics::bleu::corpus_bleu;
use crate::search::Hypothesis;
use crate::train::checkpoint::{write_config, write_json};
use crate::train::optimizer::{clip_grad_norm, Adam, AdamConfig};
use crate::train::trainer::{schedule, TrainOptions};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tensor::Rng;

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

/// One validation, a line of `log.jsonl`.
#[derive(Debug, Serialize)]
struct Validation {
    step: usize,
    train_loss: f32,
    dev_exact: f64,
    dev_bleu: f64,
    lr: f32,
    images_per_s: f64,
    elapsed_s: f64,
}

/// The three splits of the configured data set (`data.corpus`).
pub fn load_sets(config: &Config) -> Result<[CaptionSet; 3]> {
    let c = &config.caption;
    match config.data.corpus {
        CorpusName::MnistStrips => {
            let bank = DigitBank::load()?;
            let seed = config.train.seed;
            Ok([
                bank.strips(c, Split::Train, c.strips[0], seed)?,
                bank.strips(c, Split::Dev, c.strips[1], seed)?,
                bank.strips(c, Split::Test, c.strips[2], seed)?,
            ])
        }
        CorpusName::ImageTsv => {
            let d = &config.data;
            let root = (!c.image_root.is_empty()).then(|| PathBuf::from(&c.image_root));
            let read = |path: &str| -> Result<CaptionSet> {
                if path.is_empty() {
                    bail!("data.corpus = \"image-tsv\" needs data.train, data.dev and data.test (TSV files: image path, caption)");
                }
                Ok(read_image_tsv(
                    Path::new(path),
                    root.as_deref(),
                    (d.src_col, d.tgt_col),
                    (c.channels, c.image_height, c.image_width),
                )?)
            };
            Ok([read(&d.train)?, read(&d.dev)?, read(&d.test)?])
        }
        other => bail!(
            "data.corpus = {:?} cannot be captioned; use \"mnist-strips\" or \"image-tsv\"",
            other.name()
        ),
    }
}

/// Trains the captioner a config describes into `opts.out` and evaluates it on the test images.
pub fn train_captioner(config: &Config, opts: &TrainOptions) -> Result<CaptionSummary> {
    let dir = &opts.out;
    let say = |m: &str| {
        if !opts.quiet {
            eprintln!("{m}");
        }
    };
    if opts.resume {
        bail!("--resume is not available for the captioner; start a new run with another --out");
    }
    if dir.join("summary.json").exists() || dir.join("best.safetensors").exists() {
        bail!(
            "{} already holds a run; choose another --out",
            dir.display()
        );
    }
    config.caption.validate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_config(dir, config)?;
    let [train, dev, test] = load_sets(config)?;
    say(&format!(
        "data: {} train / {} dev / {} test images of {}×{}",
        train.len(),
        dev.len(),
        test.len(),
        config.caption.image_height,
        config.caption.image_width
    ));
    let vocab = Tokenizer::train(
        &TokenizerKind::Word {
            min_freq: 1,
            max_size: config.data.vocab_size,
        },
        &train.captions,
    )?;
    vocab.save(dir.join(Vocabs::TGT_FILE))?;
    let encoded: Vec<Vec<u32>> = train
        .captions
        .iter()
        .map(|c| vocab.encode(c))
        .collect::<Result<_, _>>()?;
    let usable: Vec<usize> = (0..train.len())
        .filter(|&i| !encoded[i].is_empty() && encoded[i].len() <= config.data.max_len)
        .collect();
    if usable.is_empty() {
        bail!(
            "no training caption has 1 to data.max_len = {} words",
            config.data.max_len
        );
    }
    let model = Captioner::new(config, vocab.vocab_size(), config.train.seed)?;
    let params = model.params();
    say(&format!(
        "model: {} ({} parameters, vocabulary {})",
        describe(config),
        params.count(),
        vocab.vocab_size()
    ));

    let t = &config.train;
    // The parameter handles, collected once for the optimizer and for clipping at every step.
    let vars = params.vars();
    let mut adam = Adam::new(
        vars.clone(),
        AdamConfig {
            weight_decay: t.weight_decay,
            decoupled_weight_decay: t.weight_decay > 0.0,
            ..AdamConfig::default()
        },
    );
    let mut sched = schedule(config);
    let mut log = std::fs::File::create(dir.join("log.jsonl"))?;
    let batch_size = config.caption.batch_size.min(usable.len());
    let max_words = max_words(config);
    let started = Instant::now();
    let (mut best, mut best_step) = ((-1.0, -1.0), 0);
    let (mut loss_sum, mut loss_n, mut interval) = (0.0f64, 0usize, Instant::now());
    let mut order: Vec<usize> = Vec::new();
    let mut step = 0;
    while step < t.max_steps {
        if order.len() < batch_size {
            order = shuffled(&usable, t.seed ^ step as u64);
        }
        let rows: Vec<usize> = order.split_off(order.len() - batch_size);
        let images = train.images.select_rows(&rows);
        let pairs: Vec<(&[u32], &[u32])> =
            rows.iter().map(|&i| (&[][..], &encoded[i][..])).collect();
        let batch = Batch::new(&pairs, rows);
        let lr = sched.lr(step + 1);
        let mut rng = Rng::new(t.seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (loss, ce) = model.loss(
            &images,
            &batch,
            config.caption.doubly_stochastic,
            Some(&mut rng),
        );
        if !ce.is_finite() {
            bail!(
                "training diverged at step {} (loss {ce}); lower train.lr or set train.clip",
                step + 1
            );
        }
        params.zero_grad();
        loss.backward();
        drop(loss);
        if t.clip > 0.0 {
            clip_grad_norm(&vars, t.clip);
        }
        adam.step(lr);
        step += 1;
        loss_sum += f64::from(ce);
        loss_n += 1;
        let out_of_time =
            t.max_minutes > 0.0 && started.elapsed().as_secs_f64() > t.max_minutes * 60.0;
        let last = step >= t.max_steps || out_of_time;
        if step.is_multiple_of(t.valid_every) || last {
            let hyps = ImageRows {
                model: &model,
                images: &dev.images,
            }
            .caption_all(1, 0.0, max_words);
            let (exact, bleu) = score(&hyps, &vocab, &dev.captions)?;
            let improved = (exact, bleu) > best;
            if improved {
                (best, best_step) = ((exact, bleu), step);
                params.save(&dir.join("best.safetensors"))?;
            }
            sched.on_validation(exact);
            let v = Validation {
                step,
                train_loss: (loss_sum / loss_n.max(1) as f64) as f32,
                dev_exact: exact,
                dev_bleu: bleu,
                lr,
                images_per_s: (loss_n * batch_size) as f64 / interval.elapsed().as_secs_f64(),
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            writeln!(log, "{}", serde_json::to_string(&v)?)?;
            say(&format!(
                "step {:>6}  train loss {:.3}  dev exact {:.1}%  dev BLEU {:.2}{}  lr {:.2e}  {:.0} images/s",
                v.step,
                v.train_loss,
                100.0 * exact,
                bleu,
                if improved { " *" } else { "" },
                lr,
                v.images_per_s
            ));
            (loss_sum, loss_n, interval) = (0.0, 0, Instant::now());
            if out_of_time {
                break;
            }
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    params.save(&dir.join("last.safetensors"))?;
    params.load(&dir.join("best.safetensors"))?;
    let beam = config.search.beam;
    let hyps = ImageRows {
        model: &model,
        images: &test.images,
    }
    .caption_all(beam, config.search.alpha, max_words);
    let (test_exact, test_bleu) = score(&hyps, &vocab, &test.captions)?;
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
        write_samples(dir, &test, SAMPLE_STRIPS)?;
    }
    let summary = CaptionSummary {
        name: config.name.clone(),
        model: describe(config),
        test_exact,
        test_bleu,
        test_images: test.len(),
        dev_exact: best.0,
        dev_bleu: best.1,
        best_step,
        steps: step,
        train_seconds,
        params: params.count(),
        threads: tensor::threads::threads(),
        beam,
        train_images: usable.len(),
        attention_left_to_right: moves.map(|m| m.0),
        attention_on_digit: moves.map(|m| m.1),
    };
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Most words a caption may have when decoding: the longest training caption allowed, plus one.
pub fn max_words(config: &Config) -> usize {
    config.data.max_len + 1
}

/// `items` in a seeded random order.
fn shuffled(items: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
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

/// A one-line description, e.g. "CNN 16-32-64 → 4×20 grid → LSTM 128 + additive attention".
pub fn describe(config: &Config) -> String {
    let c = &config.caption;
    let (gh, gw) = c.grid();
    let chans: Vec<String> = c.conv_channels.iter().map(|x| x.to_string()).collect();
    format!(
        "CNN {} → {gh}×{gw} grid → LSTM {} + additive attention",
        chans.join("-"),
        match &config.model {
            ModelConfig::Captioner(m) => m.hidden,
            _ => 0,
        }
    )
}

/// A trained captioner loaded from a run directory.
pub struct LoadedCaptioner {
    pub config: Config,
    pub vocab: Tokenizer,
    pub model: Captioner,
}

/// Loads `DIR/{which}.safetensors` (`best` or `last`) with its config and caption vocabulary.
pub fn load_captioner(dir: &Path, which: &str) -> Result<LoadedCaptioner> {
    if !dir.is_dir() {
        bail!(
            "{}: no such model directory (train one with `attend train configs/caption-digits.toml --out DIR`)",
            dir.display()
        );
    }
    let config = Config::load(Some(&dir.join("config.toml")), &[])?;
    if config.model.kind() != ModelKind::Captioner {
        bail!(
            "{}: model.kind = {:?} is not an image captioner",
            dir.display(),
            config.model.kind().name()
        );
    }
    let vocab = Tokenizer::load(dir.join(Vocabs::TGT_FILE))
        .with_context(|| format!("{}: loading the caption vocabulary", dir.display()))?;
    let model = Captioner::new(&config, vocab.vocab_size(), 0)?;
    model
        .params()
        .load(&dir.join(format!("{which}.safetensors")))?;
    Ok(LoadedCaptioner {
        config,
        vocab,
        model,
    })
}
