//! The training loop: batches → loss → backward → clip → Adam, validation with early stopping,
//! `best`/`last` checkpoints, resume, and the final test evaluation.

use super::checkpoint::{read_state, write_config, write_json, TrainerState};
use super::data::{load_corpora, Corpora};
use super::optimizer::{clip_grad_norm, Adam, AdamConfig};
use super::schedule::{Mode, Plateau, Schedule};
use crate::config::{AttentionScore, Cell, Config, ModelConfig, ScheduleName, TokenizerName};
use crate::data::batcher::{Batch, Batcher, BatcherConfig};
use crate::data::tokenizer::{Tokenizer, TokenizerKind, Vocabs, PAD};
use crate::metrics::{bleu::corpus_bleu, chrf::corpus_chrf};
use crate::models::{self, Seq2Seq};
use crate::nn::params::{load_tensors, save_tensors};
use crate::search::Hypothesis;
use crate::show::alignment::{word_alignment, WordLink};
use crate::show::plots::{hypothesis_heat_map, training_curves};
use crate::show::Picture;
use crate::translate::translate_ids;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tensor::ops::cross_entropy::nll_sum;
use tensor::Rng;

/// Options from the command line.
pub struct TrainOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// Print progress (a bar on a terminal, lines otherwise).
    pub quiet: bool,
}

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

/// Trains the model a config describes into `opts.out` and evaluates it on the test set.
pub fn train(config: &Config, opts: &TrainOptions) -> Result<Summary> {
    let dir = &opts.out;
    let mut say = |m: &str| {
        if !opts.quiet {
            eprintln!("{m}");
        }
    };
    if opts.resume {
        if !dir.join("state.json").exists() {
            bail!(
                "--resume: {} holds no interrupted run (no state.json)",
                dir.display()
            );
        }
    } else if dir.join("state.json").exists() {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // On --resume the caller passes the run's own config.toml (with any --set applied, e.g. a
    // larger train.max_steps); it is written back so the directory describes the whole run.
    write_config(dir, config)?;
    if opts.resume {
        say(&format!("resuming {} from {}", config.name, dir.display()));
    }
    let prep = prepare(config, dir, opts.resume, &mut say)?;
    let model = models::build(
        config,
        prep.vocabs.src.vocab_size(),
        prep.vocabs.tgt.vocab_size(),
        config.train.seed,
    )?;
    let params = model.params();
    say(&format!(
        "model: {} ({} parameters)",
        describe(config),
        params.count()
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
    let mut state = TrainerState::new(t.lr, schedule(config));
    if opts.resume {
        state = read_state(dir)?;
        params.load(&dir.join("last.safetensors"))?;
        adam.load_state(&load_tensors(&dir.join("last.optim.safetensors"))?)
            .context("resuming: optimizer state does not match the model")?;
        if state.stopped_early || state.step >= t.max_steps {
            bail!(
                "{}: the run already finished at step {}{}; raise train.max_steps (--set train.max_steps=N) to continue it",
                dir.display(),
                state.step,
                if state.stopped_early { " (early stopping)" } else { "" }
            );
        }
        say(&format!(
            "resumed at step {} (epoch {}, best dev BLEU {:.2})",
            state.step, state.epoch, state.best_bleu
        ));
    }
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log.jsonl"))?;

    let started = Instant::now();
    let seconds_before = state.train_seconds;
    let bar = progress_bar(t.max_steps, opts.quiet);
    bar.set_position(state.step as u64);
    let (mut loss_sum, mut loss_n, mut tokens) = (0.0f64, 0usize, 0usize);
    // The loss curve gets a point ten times per validation interval (and at every validation).
    let curve_every = (t.valid_every / 10).max(1);
    let (mut curve_sum, mut curve_n) = (0.0f64, 0usize);
    let mut interval_start = Instant::now();
    let mut epoch_batches = batcher.epoch(state.epoch);
    while state.step < t.max_steps && !state.stopped_early {
        if state.batch_in_epoch >= epoch_batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            epoch_batches = batcher.epoch(state.epoch);
        }
        let batch = &epoch_batches[state.batch_in_epoch];
        let lr = state.schedule.lr(state.step + 1);
        // Dropout masks come from a generator seeded by the step, so a resumed run draws the same.
        let mut rng =
            Rng::new(t.seed ^ (state.step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let loss = model.logits(batch, Some(&mut rng)).cross_entropy(
            &batch.tgt_out,
            Some(PAD),
            t.label_smoothing,
        );
        let loss_value = loss.item();
        if !loss_value.is_finite() {
            bail!("training diverged at step {} (loss {loss_value}); lower train.lr or set train.clip", state.step + 1);
        }
        params.zero_grad();
        loss.backward();
        drop(loss);
        if t.clip > 0.0 {
            clip_grad_norm(&vars, t.clip);
        }
        adam.step(lr);
        state.step += 1;
        state.batch_in_epoch += 1;
        state.lr = lr;
        loss_sum += loss_value as f64;
        loss_n += 1;
        tokens += batch.tgt_tokens();
        let tok_s = tokens as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(state.step as u64);
        bar.set_message(format!(
            "loss {:.3} · {:.0} tok/s",
            loss_sum / loss_n as f64,
            tok_s
        ));

        let out_of_time = t.max_minutes > 0.0
            && started.elapsed().as_secs_f64() + seconds_before > t.max_minutes * 60.0;
        let last = state.step >= t.max_steps || out_of_time;
        let validating = state.step.is_multiple_of(t.valid_every) || last;
        (curve_sum, curve_n) = (curve_sum + loss_value as f64, curve_n + 1);
        if state.step.is_multiple_of(curve_every) || validating {
            let mean = (curve_sum / curve_n as f64) as f32;
            state.loss_history.push((state.step, mean));
            (curve_sum, curve_n) = (0.0, 0);
        }
        if validating {
            let train_loss = (loss_sum / loss_n.max(1) as f64) as f32;
            let (dev_loss, dev_bleu) = validate(&*model, &prep, &dev_batches, config)?;
            state.bleu_history.push((state.step, dev_bleu));
            let improved = dev_bleu > state.best_bleu || state.best_step == 0;
            if improved {
                state.best_bleu = dev_bleu;
                state.best_step = state.step;
                state.bad_validations = 0;
                params.save(&dir.join("best.safetensors"))?;
            } else {
                state.bad_validations += 1;
            }
            state.schedule.on_validation(dev_bleu);
            let v = Validation {
                step: state.step,
                epoch: state.epoch,
                train_loss,
                dev_loss,
                dev_ppl: dev_loss.exp(),
                dev_bleu,
                lr,
                tokens_per_s: tok_s,
                elapsed_s: seconds_before + started.elapsed().as_secs_f64(),
            };
            writeln!(log_file, "{}", serde_json::to_string(&v)?)?;
            say_line(&bar, opts.quiet, format!(
                "step {:>6}  train loss {:.3}  dev loss {:.3}  ppl {:.2}  dev BLEU {:.2}{}  lr {:.2e}  {:.0} tok/s",
                v.step, v.train_loss, v.dev_loss, v.dev_ppl, v.dev_bleu, if improved { " *" } else { "" }, lr, tok_s
            ));
            let patience_out = t.patience > 0 && state.bad_validations >= t.patience;
            if patience_out {
                say_line(
                    &bar,
                    opts.quiet,
                    format!(
                        "early stopping: no better dev BLEU in {} validations",
                        t.patience
                    ),
                );
            }
            state.stopped_early = patience_out;
            state.train_seconds = seconds_before + started.elapsed().as_secs_f64();
            params.save(&dir.join("last.safetensors"))?;
            save_tensors(&adam.state_tensors(), &dir.join("last.optim.safetensors"))?;
            write_json(&dir.join("state.json"), &state)?;
            (loss_sum, loss_n, tokens) = (0.0, 0, 0);
            interval_start = Instant::now();
        }
        if out_of_time {
            break;
        }
    }
    bar.finish_and_clear();
    evaluate(config, dir, &*model, &prep, &state, batcher.dropped_long)
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

/// Prints a line above the progress bar (or plainly when stderr is not a terminal).
fn say_line(bar: &ProgressBar, quiet: bool, line: String) {
    if quiet {
        return;
    }
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(steps: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps · {msg} · ETA {eta}")
            .expect("valid template"),
    );
    bar
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

/// Loads the best checkpoint, translates the test set, prints and writes the summary.
fn evaluate(
    config: &Config,
    dir: &Path,
    model: &dyn Seq2Seq,
    prep: &Prepared,
    state: &TrainerState,
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
    training_curves(title, &state.loss_history, &state.bleu_history)?.save(&curves)?;
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
            samples[i].alignment =
                word_alignment(&raw(&v.src, src), &raw(&v.tgt, &h.ids), &h.attention)?;
            let path = dir.join("attention.png");
            hypothesis_heat_map(&samples[i].source, &v.src, &v.tgt, src, h)?.save(&path)?;
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
        dev_bleu: state.best_bleu,
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
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
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
