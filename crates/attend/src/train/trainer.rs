//! Training a translation model: `attend train CONFIG` for the RNN encoder-decoders and the
//! Transformer. This file is the translation [`Task`] of the shared loop ([`train_loop`]):
//! batches from the length-bucketing batcher, label-smoothed cross-entropy as the loss, and at
//! each validation the dev loss per token and greedy dev BLEU (the score). After the loop,
//! [`evaluate`] scores the best checkpoint on the test set; [`evaluate_run`] does only that, for
//! a run whose training ended.

use super::checkpoint::{open_run, opening_line, read_state, Next, Open};
use super::collective::{from_lead, Single};
use super::data::{load_corpora, Corpora};
use super::evaluate::evaluate;
pub use super::evaluate::{Sample, Summary};
use super::progress::Progress;
pub use super::run_loop::TrainOptions;
use super::run_loop::{train_loop, Interval, Task};
use super::schedule::{Mode, Plateau, Schedule};
use crate::config::{AttentionScore, Cell, Config, ModelConfig, ScheduleName, TokenizerName};
use crate::data::batcher::{Batch, Batcher, BatcherConfig};
use crate::data::tokenizer::{TokenizerKind, Vocabs, PAD};
use crate::metrics::bleu::corpus_bleu;
use crate::models::{self, Seq2Seq};
use crate::nn::params::Params;
use crate::translate::translate_ids;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use tensor::ops::cross_entropy::nll_sum;
use tensor::{Rng, Var};

/// One validation, a line of `log.jsonl`.
#[derive(Debug, Serialize)]
struct Validation {
    step: usize,
    epoch: u64,
    train_loss: f32,
    dev_loss: f64,
    dev_ppl: f64,
    dev_bleu: f64,
    lr: f32,
    tokens_per_s: f64,
    elapsed_s: f64,
}

/// Encoded corpora and the tokenizers.
pub struct Prepared {
    pub vocabs: Vocabs,
    pub corpora: Corpora,
    pub train: Vec<(Vec<u32>, Vec<u32>)>,
    pub dev: Vec<(Vec<u32>, Vec<u32>)>,
    pub test_src: Vec<Vec<u32>>,
}

/// Loads the corpora and trains (or, when resuming, loads) the tokenizers.
pub fn prepare(
    config: &Config,
    dir: &Path,
    resume: bool,
    log: &mut dyn FnMut(&str),
) -> Result<Prepared> {
    let corpora = load_corpora(config)?;
    let skipped =
        corpora.train.skipped_empty + corpora.dev.skipped_empty + corpora.test.skipped_empty;
    log(&format!(
        "data: {} train / {} dev / {} test pairs ({} empty lines skipped)",
        corpora.train.pairs.len(),
        corpora.dev.pairs.len(),
        corpora.test.pairs.len(),
        skipped
    ));
    let vocabs = if resume {
        Vocabs::load(dir).context("resuming: loading the run's tokenizers")?
    } else {
        let kind = match config.data.tokenizer {
            TokenizerName::Word => TokenizerKind::Word {
                min_freq: 1,
                max_size: config.data.vocab_size,
            },
            TokenizerName::Bpe => TokenizerKind::Bpe {
                vocab_size: config.data.vocab_size,
            },
        };
        let v = Vocabs::train(&kind, &corpora.train.pairs, config.data.joint_vocab)?;
        v.save(dir)?;
        v
    };
    let encode = |pairs: &[(String, String)]| -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
        pairs
            .iter()
            .map(|(s, t)| Ok((vocabs.src.encode(s)?, vocabs.tgt.encode(t)?)))
            .collect()
    };
    let train = encode(&corpora.train.pairs)?;
    let dev = encode(&corpora.dev.pairs)?;
    let test_src = corpora
        .test
        .pairs
        .iter()
        .map(|(s, _)| vocabs.src.encode(s))
        .collect::<Result<_, _>>()?;
    log(&format!(
        "vocabulary: {} source / {} target tokens",
        vocabs.src.vocab_size(),
        vocabs.tgt.vocab_size()
    ));
    Ok(Prepared {
        vocabs,
        corpora,
        train,
        dev,
        test_src,
    })
}

/// Trains the model a config describes into `opts.out` and evaluates it on the test set. With
/// `opts.resume` it continues the run there: its training from the last checkpoint, or only its
/// final evaluation when training ended but the evaluation was interrupted.
pub fn train(config: &Config, opts: &TrainOptions) -> Result<Summary> {
    train_rank(config, opts)?.context("only rank 0 of a data-parallel job evaluates the run")
}

/// [`train`] as one rank of the data-parallel job `opts.comm` (see
/// [`super::collective`]): rank 0 opens and writes the run directory, validates, evaluates on the
/// test set and returns the summary; the other ranks train on their shards and return `None`.
pub fn train_rank(config: &Config, opts: &TrainOptions) -> Result<Option<Summary>> {
    train_or_evaluate(config, opts, Open::resuming(opts.resume))
}

/// Evaluates the run in `dir`, whose training ended, on the test set again without training: its
/// best checkpoint with `config`'s search settings. Rewrites the run's test outputs and
/// `summary.json`, not its `config.toml`.
pub fn evaluate_run(config: &Config, dir: &Path, progress: &dyn Progress) -> Result<Summary> {
    let opts = TrainOptions {
        out: dir.to_path_buf(),
        resume: true,
        progress,
        comm: &Single,
    };
    train_or_evaluate(config, &opts, Open::Evaluate)?
        .context("the evaluation of a run ends with its summary")
}

/// Opens the run directory as `open` asks, trains if the run needs it, and evaluates.
/// In a data-parallel job, rank 0 opens the directory and writes the tokenizers before the other
/// ranks read them, and evaluates alone (the others return `None`).
fn train_or_evaluate(config: &Config, opts: &TrainOptions, open: Open) -> Result<Option<Summary>> {
    let (dir, comm) = (&opts.out, opts.comm);
    let lead = comm.rank() == 0;
    let mut say = |m: &str| opts.progress.say(m);
    let next = from_lead(comm, || {
        let next = open_run(dir, config, open)?;
        if let Some(line) = opening_line(config, dir, open, next) {
            say(&line);
        }
        Ok(next)
    })?;
    let resume = open != Open::Fresh;
    let mut lead_prep = None;
    from_lead(comm, || {
        lead_prep = Some(prepare(config, dir, resume, &mut say)?);
        Ok(())
    })?;
    let prep = match lead_prep {
        Some(prep) => prep,
        // The other ranks load the tokenizers rank 0 has trained or loaded.
        None => prepare(config, dir, true, &mut |_| {})?,
    };
    let model = models::build(
        config,
        prep.vocabs.src.vocab_size(),
        prep.vocabs.tgt.vocab_size(),
        config.train.seed,
    )?;
    say(&format!(
        "model: {} ({} parameters)",
        describe(config),
        model.params().count()
    ));

    let t = &config.train;
    let batcher = Batcher::new(
        prep.train.clone(),
        BatcherConfig {
            token_budget: t.token_budget,
            max_len: config.data.max_len,
            seed: t.seed,
        },
    )?;
    if batcher.dropped_long > 0 {
        say(&format!(
            "skipped {} training pairs longer than {} tokens",
            batcher.dropped_long, config.data.max_len
        ));
    }
    // Every dev pair is kept, however long: the budget grows to fit the longest.
    let dev_max = prep
        .dev
        .iter()
        .map(|(s, t)| s.len().max(t.len()))
        .max()
        .unwrap_or(1);
    let dev_batcher = Batcher::new(
        prep.dev.clone(),
        BatcherConfig {
            token_budget: t.token_budget.max(dev_max + 1),
            max_len: dev_max,
            seed: 0,
        },
    )?;
    let dev_batches = dev_batcher.sequential();
    let task = Translation {
        config,
        prep: &prep,
        model: &*model,
        batcher,
        dev_batches,
    };
    let state = match next {
        Next::Train => train_loop(&task, config, schedule(config), opts)?,
        Next::Evaluate if lead => read_state(dir)?,
        Next::Evaluate => return Ok(None),
    };
    if !lead {
        return Ok(None);
    }
    evaluate(
        config,
        dir,
        &*model,
        &prep,
        &state,
        task.batcher.dropped_long,
    )
    .map(Some)
}

/// Translation as the loop sees it.
struct Translation<'a> {
    config: &'a Config,
    prep: &'a Prepared,
    model: &'a dyn Seq2Seq,
    batcher: Batcher,
    dev_batches: Vec<Batch>,
}

/// What a translation validation measures: (dev loss per token, dev BLEU).
type DevLossBleu = (f64, f64);

impl Task for Translation<'_> {
    type Batch = Batch;
    type Dev = DevLossBleu;
    type Score = f64;
    const UNIT: &'static str = "tok";
    const SCORE: &'static str = "BLEU";

    fn params(&self) -> &Params {
        self.model.params()
    }

    fn epoch(&self, epoch: u64) -> Vec<Batch> {
        self.batcher.epoch(epoch)
    }

    fn loss(&self, batch: &Batch, rng: &mut Rng) -> (Var, f32) {
        let loss = self.model.logits(batch, Some(rng)).cross_entropy(
            &batch.tgt_out,
            Some(PAD),
            self.config.train.label_smoothing,
        );
        let value = loss.item();
        (loss, value)
    }

    fn size(&self, batch: &Batch) -> usize {
        batch.tgt_tokens()
    }

    fn validate(&self) -> Result<(f64, DevLossBleu)> {
        let (dev_loss, dev_bleu) = validate(self.model, self.prep, &self.dev_batches, self.config)?;
        Ok((dev_bleu, (dev_loss, dev_bleu)))
    }

    fn log_line(&self, &(dev_loss, dev_bleu): &DevLossBleu, at: &Interval) -> Result<String> {
        Ok(serde_json::to_string(&Validation {
            step: at.step,
            epoch: at.epoch,
            train_loss: at.train_loss,
            dev_loss,
            dev_ppl: dev_loss.exp(),
            dev_bleu,
            lr: at.lr,
            tokens_per_s: at.rate,
            elapsed_s: at.elapsed_s,
        })?)
    }

    fn progress_line(&self, &(dev_loss, dev_bleu): &DevLossBleu, at: &Interval) -> String {
        format!(
            "step {:>6}  train loss {:.3}  dev loss {:.3}  ppl {:.2}  dev BLEU {:.2}{}  lr {:.2e}  {:.0} tok/s",
            at.step, at.train_loss, dev_loss, dev_loss.exp(), dev_bleu, if at.improved { " *" } else { "" }, at.lr, at.rate
        )
    }

    fn show_score(&self, bleu: f64) -> String {
        format!("BLEU {bleu:.2}")
    }

    /// The batch's rows split evenly; the loss is a mean over target tokens, so a part weighs
    /// its share of them.
    fn shard(&self, batch: &Batch, part: usize, parts: usize) -> Result<Option<(Batch, f32)>> {
        let shard = batch.shard(part, parts);
        if shard.batch_size == 0 {
            return Ok(None);
        }
        let w = shard.tgt_tokens() as f32 / batch.tgt_tokens() as f32;
        Ok(Some((shard, w)))
    }
}

/// The learning-rate schedule a config names. `noam` uses `train.lr` as its factor and the model
/// width as `d_model`; `plateau` halves the rate after a validation without a better dev BLEU.
pub fn schedule(config: &Config) -> Schedule {
    let t = &config.train;
    match t.schedule {
        ScheduleName::Noam => Schedule::Noam {
            d_model: match &config.model {
                ModelConfig::Transformer(m) => m.d_model,
                ModelConfig::Rnn(m) => m.hidden,
                ModelConfig::Captioner(m) => m.hidden,
            },
            warmup: t.warmup,
            factor: t.lr,
        },
        ScheduleName::InverseSqrt => Schedule::InverseSqrt {
            lr: t.lr,
            warmup: t.warmup,
        },
        ScheduleName::Plateau => {
            Schedule::Plateau(Plateau::new(t.lr, 0.5, 0, t.lr / 64.0, Mode::Max))
        }
        ScheduleName::Constant => Schedule::Constant { lr: t.lr },
    }
}

/// Dev loss (per token, unsmoothed) and greedy dev BLEU.
fn validate(
    model: &dyn Seq2Seq,
    prep: &Prepared,
    dev_batches: &[Batch],
    config: &Config,
) -> Result<(f64, f64)> {
    let (mut nll, mut n) = (0.0, 0);
    tensor::no_grad(|| {
        for b in dev_batches {
            let logits = model.logits(b, None);
            let (s, c) = nll_sum(&logits.value(), &b.tgt_out, Some(PAD));
            nll += s;
            n += c;
        }
    });
    let limit = match config.train.valid_sentences {
        0 => prep.dev.len(),
        k => k.min(prep.dev.len()),
    };
    let src: Vec<Vec<u32>> = prep.dev[..limit].iter().map(|(s, _)| s.clone()).collect();
    let hyps = translate_ids(model, &src, config, 1, 0.0);
    let hyp_text: Vec<String> = hyps
        .iter()
        .map(|h| prep.vocabs.tgt.decode(&h.ids))
        .collect();
    let refs: Vec<String> = prep.corpora.dev.pairs[..limit]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    Ok((nll / n.max(1) as f64, corpus_bleu(&hyp_text, &refs)?.score))
}

/// A one-line description of the model, e.g. "bi-GRU 1×256 → GRU 1×256 + additive attention".
pub fn describe(config: &Config) -> String {
    let m = match &config.model {
        ModelConfig::Rnn(m) => m,
        ModelConfig::Transformer(_) => return "Transformer".to_string(),
        ModelConfig::Captioner(_) => return crate::caption::trainer::describe(config),
    };
    let cell = match m.cell {
        Cell::Gru => "GRU",
        Cell::Lstm => "LSTM",
    };
    let bi = if m.bidirectional { "bi-" } else { "" };
    let att = match m.attention {
        AttentionScore::None => "no attention",
        AttentionScore::Additive => "additive attention",
        AttentionScore::Dot => "dot attention",
        AttentionScore::General => "general attention",
    };
    format!(
        "{bi}{cell} {}×{} → {cell} {}×{} + {att}",
        m.encoder_layers,
        m.hidden,
        m.decoder_layers,
        m.decoder_hidden()
    )
}
