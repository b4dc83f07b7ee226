//! Training the captioner: `attend train CONFIG` with `model.kind = "captioner"`.
//!
//! This file is the captioning [`Task`] of the shared loop ([`train_loop`]): shuffled fixed-size
//! batches of images, the loss cross-entropy + optional doubly stochastic penalty, and at each
//! validation the dev images captioned greedily, scored by exact-caption accuracy then BLEU (the
//! best is kept as `best.safetensors`). The loop brings checkpoints and `--resume`. After it,
//! [`evaluate`] captions the test images with `search.beam`; [`evaluate_captioner_run`] does only
//! that, for a run whose training ended. A run directory holds:
//!
//! ```text
//! DIR/config.toml  DIR/tgt_tokenizer.json  DIR/best.safetensors  DIR/last.safetensors
//! DIR/checkpoint/  DIR/state.json          DIR/log.jsonl         DIR/summary.json
//! DIR/test.hyp.txt DIR/test-strips/NNN.png (digits)
//! ```

use super::captioner::{Captioner, ImageRows};
use super::digits::DigitBank;
pub use super::evaluate::{attention_moves, CaptionSummary};
use super::evaluate::{evaluate, score};
use super::images::read_image_tsv;
use super::CaptionSet;
use crate::config::{Config, CorpusName, ModelConfig, ModelKind};
use crate::data::batcher::Batch;
use crate::data::corpus::Split;
use crate::data::tokenizer::{Tokenizer, TokenizerKind, Vocabs};
use crate::nn::params::Params;
use crate::train::checkpoint::{open_run, opening_line, read_state, Next, Open};
use crate::train::collective::Single;
use crate::train::progress::Progress;
use crate::train::run_loop::{train_loop, Interval, Task};
use crate::train::trainer::{schedule, TrainOptions};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tensor::{Rng, Var};

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
/// With `opts.resume` it continues the run there: its training from the last checkpoint, or only
/// its final evaluation when training ended but the evaluation was interrupted.
pub fn train_captioner(config: &Config, opts: &TrainOptions) -> Result<CaptionSummary> {
    if opts.comm.size() > 1 {
        bail!("the captioner trains in one process; data-parallel training (mpirun) is for the translation models");
    }
    train_or_evaluate(config, opts, Open::resuming(opts.resume))
}

/// Evaluates the captioner run in `dir`, whose training ended, on the test images again without
/// training: its best checkpoint with `config`'s search settings. Rewrites the run's test outputs
/// and `summary.json`, not its `config.toml`.
pub fn evaluate_captioner_run(
    config: &Config,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<CaptionSummary> {
    let opts = TrainOptions {
        out: dir.to_path_buf(),
        resume: true,
        progress,
        comm: &Single,
    };
    train_or_evaluate(config, &opts, Open::Evaluate)
}

/// Opens the run directory as `open` asks, trains if the run needs it, and evaluates.
fn train_or_evaluate(config: &Config, opts: &TrainOptions, open: Open) -> Result<CaptionSummary> {
    let dir = &opts.out;
    let say = |m: &str| opts.progress.say(m);
    config.caption.validate()?;
    let next = open_run(dir, config, open)?;
    if let Some(line) = opening_line(config, dir, open, next) {
        say(&line);
    }
    let resume = open != Open::Fresh;
    let [train, dev, test] = load_sets(config)?;
    say(&format!(
        "data: {} train / {} dev / {} test images of {}×{}",
        train.len(),
        dev.len(),
        test.len(),
        config.caption.image_height,
        config.caption.image_width
    ));
    let vocab_file = dir.join(Vocabs::TGT_FILE);
    let vocab = if resume {
        Tokenizer::load(&vocab_file).context("resuming: loading the run's caption vocabulary")?
    } else {
        let v = Tokenizer::train(
            &TokenizerKind::Word {
                min_freq: 1,
                max_size: config.data.vocab_size,
            },
            &train.captions,
        )?;
        v.save(&vocab_file)?;
        v
    };
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
    say(&format!(
        "model: {} ({} parameters, vocabulary {})",
        describe(config),
        model.params().count(),
        vocab.vocab_size()
    ));
    let task = Captioning {
        config,
        model: &model,
        train: &train,
        dev: &dev,
        vocab: &vocab,
        batch_size: config.caption.batch_size.min(usable.len()),
        encoded,
        usable,
    };
    let state = match next {
        Next::Train => train_loop(&task, config, schedule(config), opts)?,
        Next::Evaluate => read_state(dir)?,
    };
    evaluate(
        config,
        dir,
        &model,
        &vocab,
        &test,
        &state,
        task.usable.len(),
    )
}

/// Captioning as the loop sees it.
struct Captioning<'a> {
    config: &'a Config,
    model: &'a Captioner,
    train: &'a CaptionSet,
    dev: &'a CaptionSet,
    vocab: &'a Tokenizer,
    /// Caption ids of every training image.
    encoded: Vec<Vec<u32>>,
    /// Training images whose caption has 1 to `data.max_len` words.
    usable: Vec<usize>,
    batch_size: usize,
}

/// Dev exact-caption accuracy (a share in [0, 1]) and dev BLEU.
type ExactBleu = (f64, f64);

impl Task for Captioning<'_> {
    /// The training images (rows) of a batch.
    type Batch = Vec<usize>;
    type Dev = ExactBleu;
    type Score = ExactBleu;
    const UNIT: &'static str = "images";
    const SCORE: &'static str = "exact-caption accuracy";

    fn params(&self) -> &Params {
        self.model.params()
    }

    /// An epoch is one seeded shuffle of the usable images, cut into `batch_size` batches from its
    /// end; the images left over (fewer than a batch) wait for the next shuffle.
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let (n, b) = (self.usable.len(), self.batch_size);
        let batches = n / b;
        let first_step = epoch * batches as u64;
        let order = shuffled(&self.usable, self.config.train.seed ^ first_step);
        (0..batches)
            .map(|j| order[n - (j + 1) * b..n - j * b].to_vec())
            .collect()
    }

    fn loss(&self, rows: &Vec<usize>, rng: &mut Rng) -> (Var, f32) {
        let images = self.train.images.select_rows(rows);
        let pairs: Vec<(&[u32], &[u32])> = rows
            .iter()
            .map(|&i| (&[][..], &self.encoded[i][..]))
            .collect();
        let batch = Batch::new(&pairs, rows.clone());
        self.model.loss(
            &images,
            &batch,
            self.config.caption.doubly_stochastic,
            Some(rng),
        )
    }

    fn size(&self, rows: &Vec<usize>) -> usize {
        rows.len()
    }

    fn validate(&self) -> Result<(ExactBleu, ExactBleu)> {
        let hyps = ImageRows {
            model: self.model,
            images: &self.dev.images,
        }
        .caption_all(1, 0.0, max_words(self.config));
        let dev = score(&hyps, self.vocab, &self.dev.captions)?;
        Ok((dev, dev))
    }

    fn log_line(&self, &(dev_exact, dev_bleu): &ExactBleu, at: &Interval) -> Result<String> {
        Ok(serde_json::to_string(&Validation {
            step: at.step,
            train_loss: at.train_loss,
            dev_exact,
            dev_bleu,
            lr: at.lr,
            images_per_s: at.rate,
            elapsed_s: at.elapsed_s,
        })?)
    }

    fn progress_line(&self, &(exact, bleu): &ExactBleu, at: &Interval) -> String {
        format!(
            "step {:>6}  train loss {:.3}  dev exact {:.1}%  dev BLEU {:.2}{}  lr {:.2e}  {:.0} images/s",
            at.step,
            at.train_loss,
            100.0 * exact,
            bleu,
            if at.improved { " *" } else { "" },
            at.lr,
            at.rate
        )
    }

    fn show_score(&self, (exact, bleu): ExactBleu) -> String {
        format!("exact {:.1}%, BLEU {bleu:.2}", 100.0 * exact)
    }
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

/// A one-line description, e.g. "CNN 16-32-64 → 4×20 grid → LSTM 128 + additive attention"
/// ("CNN 16-32-64 + self-attention 16 → …" with the grid's self-attention block).
pub fn describe(config: &Config) -> String {
    let c = &config.caption;
    let (gh, gw) = c.grid();
    let chans: Vec<String> = c.conv_channels.iter().map(|x| x.to_string()).collect();
    let block = if c.self_attention {
        format!(" + self-attention {}", c.self_attention_size)
    } else {
        String::new()
    };
    format!(
        "CNN {}{block} → {gh}×{gw} grid → LSTM {} + additive attention",
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
