//! `attend bench seq2seq`: the work of `../shared/peers/seq2seq_bench.py` on attend's RNN
//! encoder-decoder (built through [`models::build`](crate::models::build), so it is the product's
//! model), printing the peer's JSON fields.
//!
//! The model: V = 8000 (separate source and target vocabularies), E = H = A = 256, a 1-layer
//! bidirectional GRU encoder, a bridge, and a 1-layer GRU decoder with Bahdanau attention and input
//! feeding (or, `--no-attention`, without attention: the bridge only initialises the decoder).
//! Data: B = 64, S = T = 24, no padding, source tokens uniform in `[4, V)`, target = the reversed
//! source, a pool of 8 seeded batches cycled.
//!
//! - training: one step = zero_grad + teacher-forced forward (decoder input `[BOS, y_1 .. y_23]`) +
//!   mean cross-entropy over all B·T labels `y_1 .. y_24` (no label smoothing) + backward + Adam
//!   (lr 1e-3, β = (0.9, 0.999), ε = 1e-8, no weight decay, no clipping); 3 warm-up steps, 20 timed;
//!   tokens/s = B·T / step time.
//! - greedy decoding: encode, then exactly 24 argmax steps from BOS with the EOS logit masked to −∞
//!   at every step, without the tape; 3 warm-up calls, 20 timed; tokens/s = B·24 / call time.

use super::{
    busy_processes, cpu_count, cpu_model, load_average, peak_rss_mb, retain_freed_memory,
    time_steps, Timings,
};
use crate::config::Config;
use crate::data::batcher::Batch;
use crate::data::tokenizer::{BOS, EOS};
use crate::models::{build, Seq2Seq};
use crate::search::greedy::argmax;
use crate::train::optimizer::{Adam, AdamConfig};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use tensor::{Rng, Var};

/// Learning rate of the peer's Adam.
const LR: f32 = 1e-3;

/// What can be wrong with a seq2seq benchmark request.
#[derive(Debug, thiserror::Error)]
pub enum Seq2SeqBenchError {
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "--vocab must be at least 5 (ids 0..3 are reserved, tokens are drawn from [4, V)), got {0}"
    )]
    Vocab(usize),
    #[error(
        "--tgt-len ({tgt}) must not exceed --src-len ({src}): the target is the reversed source"
    )]
    Lengths { src: usize, tgt: usize },
    #[error("building the model: {0}")]
    Model(String),
}

/// What to time: training steps, greedy decoding calls, or both (decoding first, as the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seq2SeqMode {
    Train,
    Decode,
    Both,
}

/// One seq2seq measurement (defaults: the peer's).
#[derive(Clone, Debug)]
pub struct Seq2SeqBench {
    /// Bahdanau attention with input feeding (`true`), or the classic encoder-decoder.
    pub attention: bool,
    pub mode: Seq2SeqMode,
    /// Timed training steps.
    pub steps: usize,
    /// Untimed warm-up steps / decoding calls.
    pub warmup: usize,
    /// Timed greedy-decoding calls.
    pub decode_reps: usize,
    pub threads: usize,
    pub batch: usize,
    pub src_len: usize,
    pub tgt_len: usize,
    pub vocab: usize,
    pub emb: usize,
    pub hidden: usize,
    pub attn_dim: usize,
    /// Distinct synthetic training batches, cycled.
    pub pool: usize,
    pub seed: u64,
}

impl Default for Seq2SeqBench {
    fn default() -> Seq2SeqBench {
        Seq2SeqBench {
            attention: true,
            mode: Seq2SeqMode::Both,
            steps: 20,
            warmup: 3,
            decode_reps: 20,
            threads: tensor::threads::threads(),
            batch: 64,
            src_len: 24,
            tgt_len: 24,
            vocab: 8000,
            emb: 256,
            hidden: 256,
            attn_dim: 256,
            pool: 8,
            seed: 1234,
        }
    }
}

impl Seq2SeqBench {
    fn validate(&self) -> Result<(), Seq2SeqBenchError> {
        let sizes = [
            ("steps", self.steps),
            ("decode-reps", self.decode_reps),
            ("threads", self.threads),
            ("batch", self.batch),
            ("src-len", self.src_len),
            ("tgt-len", self.tgt_len),
            ("emb", self.emb),
            ("hidden", self.hidden),
            ("attn-dim", self.attn_dim),
            ("pool", self.pool),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Seq2SeqBenchError::Zero(name));
        }
        if self.vocab < 5 {
            return Err(Seq2SeqBenchError::Vocab(self.vocab));
        }
        if self.tgt_len > self.src_len {
            return Err(Seq2SeqBenchError::Lengths {
                src: self.src_len,
                tgt: self.tgt_len,
            });
        }
        Ok(())
    }

    /// The model's config: the product's RNN encoder-decoder at the peer's sizes, no dropout.
    fn config(&self) -> Result<Config, Seq2SeqBenchError> {
        let attention = if self.attention { "additive" } else { "none" };
        let sets = [
            "model.kind=\"rnn\"".to_string(),
            "model.cell=\"gru\"".to_string(),
            format!("model.embedding={}", self.emb),
            format!("model.hidden={}", self.hidden),
            format!("model.decoder_hidden={}", self.hidden),
            "model.encoder_layers=1".to_string(),
            "model.decoder_layers=1".to_string(),
            "model.bidirectional=true".to_string(),
            format!("model.attention=\"{attention}\""),
            format!("model.attention_size={}", self.attn_dim),
            "model.dropout=0.0".to_string(),
        ];
        Config::load(None, &sets).map_err(|e| Seq2SeqBenchError::Model(e.to_string()))
    }
}

/// Runs the measurement(s) and returns one JSON object per mode with the peer's fields
/// (`impl = "attend"`): decoding first, then training.
pub fn bench_seq2seq(cfg: &Seq2SeqBench) -> Result<Vec<Value>, Seq2SeqBenchError> {
    cfg.validate()?;
    retain_freed_memory();
    serve_large_blocks_from_the_heap();
    tensor::threads::set_threads(cfg.threads);
    let rss_before = current_rss_mb();
    let model = build(&cfg.config()?, cfg.vocab, cfg.vocab, cfg.seed)
        .map_err(|e| Seq2SeqBenchError::Model(e.to_string()))?;
    let common = common_fields(cfg, model.params().count(), rss_before);
    let mut out = Vec::new();
    if matches!(cfg.mode, Seq2SeqMode::Decode | Seq2SeqMode::Both) {
        out.push(run_decode(model.as_ref(), cfg, &common));
    }
    if matches!(cfg.mode, Seq2SeqMode::Train | Seq2SeqMode::Both) {
        out.push(run_train(model.as_ref(), cfg, &common));
    }
    Ok(out)
}

/// Makes glibc serve even the largest blocks from the heap instead of fresh `mmap`s.
///
/// The logits and their gradient (`[B·T, V]` = 1536 × 8000 floats, 49 MB each) exceed glibc's
/// largest mmap threshold (32 MB), so [`retain_freed_memory`] cannot keep them: every training step
/// would map, page-fault (zeroing 4 KB at a time) and unmap them. With mmap disabled they come from
/// the heap and are reused, since the trim threshold keeps freed heap memory in the process
/// (measured: ~750 page faults per training step remain).
fn serve_large_blocks_from_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the measured work.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

/// `n` synthetic batches: sources uniform in `[4, V)`, targets the reversed source (its first
/// `tgt_len` tokens), decoder input `[BOS, y_1 .. y_{T−1}]`, labels `y_1 .. y_T`, no padding.
pub fn make_pool(cfg: &Seq2SeqBench, n: usize, seed: u64) -> Vec<Batch> {
    let mut rng = Rng::new(seed);
    let (b, s, t) = (cfg.batch, cfg.src_len, cfg.tgt_len);
    (0..n)
        .map(|_| {
            let src: Vec<u32> = (0..b * s)
                .map(|_| (4 + rng.below(cfg.vocab - 4)) as u32)
                .collect();
            let mut tgt_in = Vec::with_capacity(b * t);
            let mut tgt_out = Vec::with_capacity(b * t);
            for row in src.chunks_exact(s) {
                let rev: Vec<u32> = row.iter().rev().take(t).copied().collect();
                tgt_in.push(BOS);
                tgt_in.extend_from_slice(&rev[..t - 1]);
                tgt_out.extend_from_slice(&rev);
            }
            Batch {
                src,
                src_len: vec![s; b],
                tgt_in,
                tgt_out,
                tgt_len: vec![t; b],
                batch_size: b,
                src_max: s,
                tgt_max: t,
                indices: (0..b).collect(),
            }
        })
        .collect()
}

/// Greedy decoding as the peer does it: exactly `steps` argmax steps from BOS, EOS never chosen.
/// Returns the emitted ids, `[rows, steps]` row-major.
pub fn greedy_fixed_length(
    model: &dyn Seq2Seq,
    src: &[u32],
    src_len: &[usize],
    src_max: usize,
    steps: usize,
) -> Vec<u32> {
    tensor::no_grad(|| {
        let rows = src_len.len();
        let mut dec = model.begin(src, src_len, src_max);
        let mut prev = vec![BOS; rows];
        let mut out = vec![0; rows * steps];
        for t in 0..steps {
            let mut logits = dec.step(&prev).logits; // [rows, V]
            let v = logits.dim(-1);
            // Row by row, spread over the threads (as torch's argmax is).
            logits
                .data_mut()
                .par_chunks_mut(v)
                .zip(prev.par_iter_mut())
                .for_each(|(row, p)| {
                    row[EOS as usize] = f32::NEG_INFINITY;
                    *p = argmax(row).0;
                });
            for (r, &p) in prev.iter().enumerate() {
                out[r * steps + t] = p;
            }
        }
        out
    })
}

fn run_decode(model: &dyn Seq2Seq, cfg: &Seq2SeqBench, common: &Map<String, Value>) -> Value {
    let pool = make_pool(cfg, 1, cfg.seed + 1);
    let b = &pool[0];
    let busy = busy_processes();
    let timings = time_steps(
        || {
            greedy_fixed_length(model, &b.src, &b.src_len, b.src_max, cfg.tgt_len);
        },
        cfg.warmup,
        cfg.decode_reps,
        0.0,
    );
    let mut obj = common.clone();
    obj.insert("bench".into(), "seq2seq_decode_greedy".into());
    extend(&mut obj, summary(&timings, cfg.batch * cfg.tgt_len));
    extend(
        &mut obj,
        json!({
            "decode_steps": cfg.tgt_len,
            "reps": timings.reps,
            "warmup": cfg.warmup,
            "rss_mb": round1(current_rss_mb()),
            "peak_rss_mb_so_far": round1(peak_rss_mb()),
            "peak_rss_mb": round1(peak_rss_mb()),
            "foreign_cpu": timings.foreign_cpu,
            "busy_procs": merged_busy(busy),
        }),
    );
    Value::Object(obj)
}

fn run_train(model: &dyn Seq2Seq, cfg: &Seq2SeqBench, common: &Map<String, Value>) -> Value {
    let pool = make_pool(cfg, cfg.pool, cfg.seed);
    let params: Vec<Var> = model.params().vars();
    let mut opt = Adam::new(params, AdamConfig::default());
    let mut losses = Vec::with_capacity(cfg.warmup + cfg.steps);
    let mut i = 0;
    let busy = busy_processes();
    let timings = time_steps(
        || {
            let b = &pool[i % pool.len()];
            i += 1;
            model.params().zero_grad();
            let loss = model.logits(b, None).cross_entropy(&b.tgt_out, None, 0.0);
            loss.backward();
            opt.step(LR);
            losses.push(loss.item());
        },
        cfg.warmup,
        cfg.steps,
        0.0,
    );
    let mut obj = common.clone();
    obj.insert("bench".into(), "seq2seq_train".into());
    extend(&mut obj, summary(&timings, cfg.batch * cfg.tgt_len));
    extend(
        &mut obj,
        json!({
            "steps": timings.reps,
            "warmup": cfg.warmup.max(1),
            "loss_first": losses.first().copied().unwrap_or(f32::NAN),
            "loss_last": losses.last().copied().unwrap_or(f32::NAN),
            "rss_mb": round1(current_rss_mb()),
            "peak_rss_mb": round1(peak_rss_mb()),
            "foreign_cpu": timings.foreign_cpu,
            "busy_procs": merged_busy(busy),
        }),
    );
    Value::Object(obj)
}

/// The fields every measurement carries (the peer's `common`).
fn common_fields(cfg: &Seq2SeqBench, params: usize, rss_before: f64) -> Map<String, Value> {
    let model = if cfg.attention {
        "seq2seq_attn"
    } else {
        "seq2seq_noattn"
    };
    let v = json!({
        "impl": "attend",
        "attend": env!("CARGO_PKG_VERSION"),
        "model": model,
        "params": params,
        "batch": cfg.batch,
        "src_len": cfg.src_len,
        "tgt_len": cfg.tgt_len,
        "vocab": cfg.vocab,
        "emb": cfg.emb,
        "hidden": cfg.hidden,
        "attn_dim": cfg.attn_dim,
        "threads": tensor::threads::threads(),
        "cpu": cpu_model(),
        "nproc": cpu_count(),
        "rss_mb_before_model": round1(rss_before),
        "loadavg_1m_start": (load_average() * 100.0).round() / 100.0,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// The peer's `summarize`: per-repetition times and throughput at the median, best and worst.
fn summary(t: &Timings, tokens: usize) -> Value {
    let tokens = tokens as f64;
    json!({
        "step_ms_min": t.min_ms,
        "step_ms_median": t.median_ms,
        "step_ms_max": t.max_ms,
        "n": t.reps,
        "tokens_per_s_median": tokens / (t.median_ms * 1e-3),
        "tokens_per_s_best": tokens / (t.min_ms * 1e-3),
        "tokens_per_s_worst": tokens / (t.max_ms * 1e-3),
    })
}

fn extend(obj: &mut Map<String, Value>, more: Value) {
    if let Value::Object(m) = more {
        obj.extend(m);
    }
}

fn merged_busy(mut before: Vec<String>) -> Vec<String> {
    before.extend(busy_processes());
    before.sort();
    before.dedup();
    before
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Current resident memory of this process in MB (`VmRSS`).
fn current_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Seq2SeqBench {
        Seq2SeqBench {
            steps: 2,
            warmup: 1,
            decode_reps: 2,
            threads: 1,
            batch: 3,
            src_len: 5,
            tgt_len: 4,
            vocab: 11,
            emb: 4,
            hidden: 3,
            attn_dim: 2,
            pool: 2,
            ..Seq2SeqBench::default()
        }
    }

    #[test]
    fn pool_targets_are_the_reversed_source() {
        let cfg = tiny();
        for b in make_pool(&cfg, 2, 9) {
            for r in 0..3 {
                let src = &b.src[r * 5..(r + 1) * 5];
                let out = &b.tgt_out[r * 4..(r + 1) * 4];
                let inp = &b.tgt_in[r * 4..(r + 1) * 4];
                assert!(src.iter().all(|&x| (4..11).contains(&x)));
                assert_eq!(out, &[src[4], src[3], src[2], src[1]]);
                assert_eq!(inp, &[BOS, src[4], src[3], src[2]]);
            }
        }
    }

    #[test]
    fn both_modes_report_the_peer_fields() {
        for attention in [true, false] {
            let cfg = Seq2SeqBench {
                attention,
                ..tiny()
            };
            let out = bench_seq2seq(&cfg).expect("runs");
            assert_eq!(out.len(), 2);
            assert_eq!(out[0]["bench"], "seq2seq_decode_greedy");
            assert_eq!(out[1]["bench"], "seq2seq_train");
            for o in &out {
                assert_eq!(o["impl"], "attend");
                assert!(o["tokens_per_s_median"].as_f64().expect("number") > 0.0);
                assert!(o["step_ms_min"].as_f64() <= o["step_ms_max"].as_f64());
            }
            let first = out[1]["loss_first"].as_f64().expect("loss");
            // Uniform predictions over 11 tokens at the start.
            assert!((first - 11f64.ln()).abs() < 0.5, "loss_first {first}");
        }
    }

    #[test]
    fn greedy_never_emits_eos_and_runs_all_steps() {
        let cfg = tiny();
        let model = build(&cfg.config().expect("config"), 11, 11, 3).expect("model");
        let b = &make_pool(&cfg, 1, 4)[0];
        let ids = greedy_fixed_length(model.as_ref(), &b.src, &b.src_len, b.src_max, 7);
        assert_eq!(ids.len(), 3 * 7);
        assert!(ids.iter().all(|&y| y != EOS && y < 11));
    }

    #[test]
    fn bad_requests_are_errors() {
        let zero = Seq2SeqBench { steps: 0, ..tiny() };
        assert!(matches!(
            bench_seq2seq(&zero),
            Err(Seq2SeqBenchError::Zero("steps"))
        ));
        let long = Seq2SeqBench {
            tgt_len: 6,
            ..tiny()
        };
        assert!(matches!(
            bench_seq2seq(&long),
            Err(Seq2SeqBenchError::Lengths { .. })
        ));
        let vocab = Seq2SeqBench { vocab: 4, ..tiny() };
        assert!(bench_seq2seq(&vocab).is_err());
    }
}
