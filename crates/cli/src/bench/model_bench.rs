//! The protocol the peers' model benchmarks share (`seq2seq_bench.py`, `transformer_bench.py`),
//! for any [`Seq2Seq`] model: synthetic data, the timed training step, fixed-length greedy
//! decoding, and the JSON fields every measurement carries.
//!
//! Data: B = 64, S = T = 24, no padding, source tokens uniform in `[4, V)`, target = the reversed
//! source, a pool of 8 seeded batches cycled.
//!
//! - training: one step = zero_grad + teacher-forced forward (decoder input `[BOS, y_1 .. y_23]`) +
//!   mean cross-entropy over all B·T labels `y_1 .. y_24` (no label smoothing) + backward + Adam
//!   (lr 1e-3, β = (0.9, 0.999), ε = 1e-8, no weight decay, no clipping); 3 warm-up steps, 20 timed;
//!   tokens/s = B·T / step time.
//! - greedy decoding: encode, then exactly 24 argmax steps from BOS with the EOS logit masked to −∞
//!   at every step, without the tape; 3 warm-up calls, 20 timed; tokens/s = B·24 / call time
//!   (encoder included).

use super::{
    busy_processes, busy_since, cpu_count, cpu_model, current_rss_mb, load_average, peak_rss_mb,
    time_steps, Timings,
};
use attend::allocator::{retain_freed_memory, serve_large_blocks_from_the_heap};
use attend::data::batcher::Batch;
use attend::data::tokenizer::{BOS, EOS};
use attend::models::Seq2Seq;
use attend::search::greedy::argmax;
use attend::train::optimizer::{Adam, AdamConfig};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use tensor::{Rng, Var};

/// Learning rate of the peers' Adam.
const LR: f32 = 1e-3;

/// What can be wrong with a model benchmark request.
#[derive(Debug, thiserror::Error)]
pub enum ModelBenchError {
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

/// What to time: training steps, greedy decoding calls, or both (decoding first, as the peers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    Train,
    Decode,
    Both,
}

impl BenchMode {
    pub fn decodes(self) -> bool {
        matches!(self, BenchMode::Decode | BenchMode::Both)
    }

    pub fn trains(self) -> bool {
        matches!(self, BenchMode::Train | BenchMode::Both)
    }
}

/// The work of one model measurement, independent of the model (defaults: the peers').
#[derive(Clone, Debug)]
pub struct Protocol {
    pub mode: BenchMode,
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
    /// Source and target vocabulary size (separate tables of this size).
    pub vocab: usize,
    /// Distinct synthetic training batches, cycled.
    pub pool: usize,
    pub seed: u64,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol {
            mode: BenchMode::Both,
            steps: 20,
            warmup: 3,
            decode_reps: 20,
            threads: tensor::threads::threads(),
            batch: 64,
            src_len: 24,
            tgt_len: 24,
            vocab: 8000,
            pool: 8,
            seed: 1234,
        }
    }
}

impl Protocol {
    /// Checks the protocol's sizes and the model's (`model_sizes`: flag name and value, each ≥ 1).
    pub fn validate(&self, model_sizes: &[(&'static str, usize)]) -> Result<(), ModelBenchError> {
        let sizes = [
            ("steps", self.steps),
            ("decode-reps", self.decode_reps),
            ("threads", self.threads),
            ("batch", self.batch),
            ("src-len", self.src_len),
            ("tgt-len", self.tgt_len),
            ("pool", self.pool),
        ];
        if let Some((name, _)) = sizes.iter().chain(model_sizes).find(|(_, v)| *v == 0) {
            return Err(ModelBenchError::Zero(name));
        }
        if self.vocab < 5 {
            return Err(ModelBenchError::Vocab(self.vocab));
        }
        if self.tgt_len > self.src_len {
            return Err(ModelBenchError::Lengths {
                src: self.src_len,
                tgt: self.tgt_len,
            });
        }
        Ok(())
    }
}

/// Sets up the process as every model measurement needs: `threads` engine threads, and freed memory
/// kept for reuse (see [`allocator`](attend::allocator)).
pub fn prepare_process(threads: usize) {
    retain_freed_memory();
    serve_large_blocks_from_the_heap();
    tensor::threads::set_threads(threads);
}

/// `n` synthetic batches: sources uniform in `[4, V)`, targets the reversed source (its first
/// `tgt_len` tokens), decoder input `[BOS, y_1 .. y_{T−1}]`, labels `y_1 .. y_T`, no padding.
pub fn make_pool(p: &Protocol, n: usize, seed: u64) -> Vec<Batch> {
    let mut rng = Rng::new(seed);
    let (b, s, t) = (p.batch, p.src_len, p.tgt_len);
    (0..n)
        .map(|_| {
            let src: Vec<u32> = (0..b * s)
                .map(|_| (4 + rng.below(p.vocab - 4)) as u32)
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

/// Greedy decoding as the peers do it: exactly `steps` argmax steps from BOS, EOS never chosen.
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

/// Times greedy decoding of one seeded batch (`seed + 1`, as the peers) and returns `fields`
/// (the common fields, `bench`, …) completed with the timings.
pub fn run_decode(model: &dyn Seq2Seq, p: &Protocol, fields: Map<String, Value>) -> Value {
    let pool = make_pool(p, 1, p.seed + 1);
    let b = &pool[0];
    let busy = busy_processes();
    let timings = time_steps(
        || {
            greedy_fixed_length(model, &b.src, &b.src_len, b.src_max, p.tgt_len);
        },
        p.warmup,
        p.decode_reps,
        0.0,
    );
    let mut obj = fields;
    extend(&mut obj, summary(&timings, p.batch * p.tgt_len));
    extend(
        &mut obj,
        json!({
            "decode_steps": p.tgt_len,
            "reps": timings.reps,
            "warmup": p.warmup,
            "rss_mb": round1(current_rss_mb()),
            "peak_rss_mb_so_far": round1(peak_rss_mb()),
            "peak_rss_mb": round1(peak_rss_mb()),
            "foreign_cpu": timings.foreign_cpu,
            "busy_procs": busy_since(busy),
        }),
    );
    Value::Object(obj)
}

/// Times training steps over the pool and returns `fields` completed with the timings and the first
/// and last loss. `dropout`: the generator dropout draws from (`None`: the model has no dropout).
pub fn run_train(
    model: &dyn Seq2Seq,
    p: &Protocol,
    fields: Map<String, Value>,
    mut dropout: Option<Rng>,
) -> Value {
    let pool = make_pool(p, p.pool, p.seed);
    let params: Vec<Var> = model.params().vars();
    let mut opt = Adam::new(params, AdamConfig::default());
    let mut losses = Vec::with_capacity(p.warmup + p.steps);
    let mut i = 0;
    let busy = busy_processes();
    let timings = time_steps(
        || {
            let b = &pool[i % pool.len()];
            i += 1;
            model.params().zero_grad();
            let loss = model
                .logits(b, dropout.as_mut())
                .cross_entropy(&b.tgt_out, None, 0.0);
            loss.backward();
            opt.step(LR);
            losses.push(loss.item());
        },
        p.warmup,
        p.steps,
        0.0,
    );
    let mut obj = fields;
    extend(&mut obj, summary(&timings, p.batch * p.tgt_len));
    extend(
        &mut obj,
        json!({
            "steps": timings.reps,
            "warmup": p.warmup.max(1),
            "loss_first": losses.first().copied().unwrap_or(f32::NAN),
            "loss_last": losses.last().copied().unwrap_or(f32::NAN),
            "rss_mb": round1(current_rss_mb()),
            "peak_rss_mb": round1(peak_rss_mb()),
            "foreign_cpu": timings.foreign_cpu,
            "busy_procs": busy_since(busy),
        }),
    );
    Value::Object(obj)
}

/// A protocol small enough for unit tests: 2 timed steps, batches of 3, lengths 5 → 4, V = 11.
#[cfg(test)]
pub(crate) fn tiny_protocol() -> Protocol {
    Protocol {
        steps: 2,
        warmup: 1,
        decode_reps: 2,
        threads: 1,
        batch: 3,
        src_len: 5,
        tgt_len: 4,
        vocab: 11,
        pool: 2,
        ..Protocol::default()
    }
}

/// The fields every measurement carries (the peers' `common`): `impl = "attend"`, the model's name
/// and parameter count, the protocol's shapes, `sizes` (the model's own, an object), the machine.
pub fn common_fields(
    p: &Protocol,
    model: &str,
    params: usize,
    rss_before: f64,
    sizes: Value,
) -> Map<String, Value> {
    let mut obj = Map::new();
    extend(
        &mut obj,
        json!({
            "impl": "attend",
            "attend": env!("CARGO_PKG_VERSION"),
            "model": model,
            "params": params,
            "batch": p.batch,
            "src_len": p.src_len,
            "tgt_len": p.tgt_len,
            "vocab": p.vocab,
        }),
    );
    extend(&mut obj, sizes);
    extend(
        &mut obj,
        json!({
            "threads": tensor::threads::threads(),
            "cpu": cpu_model(),
            "nproc": cpu_count(),
            "rss_mb_before_model": round1(rss_before),
            "loadavg_1m_start": (load_average() * 100.0).round() / 100.0,
        }),
    );
    obj
}

/// The peers' `summarize`: per-repetition times and throughput at the median, best and worst.
pub(crate) fn summary(t: &Timings, tokens: usize) -> Value {
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

/// Adds the fields of the object `more` to `obj` (a non-object adds nothing).
pub fn extend(obj: &mut Map<String, Value>, more: Value) {
    if let Value::Object(m) = more {
        obj.extend(m);
    }
}

/// `x` rounded to one decimal (the JSON's MB fields).
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Protocol {
        Protocol {
            batch: 3,
            src_len: 5,
            tgt_len: 4,
            vocab: 11,
            ..Protocol::default()
        }
    }

    #[test]
    fn pool_targets_are_the_reversed_source() {
        for b in make_pool(&tiny(), 2, 9) {
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
    fn bad_protocols_are_errors() {
        let zero = Protocol { steps: 0, ..tiny() };
        assert!(matches!(
            zero.validate(&[]),
            Err(ModelBenchError::Zero("steps"))
        ));
        assert!(matches!(
            tiny().validate(&[("emb", 0)]),
            Err(ModelBenchError::Zero("emb"))
        ));
        let long = Protocol {
            tgt_len: 6,
            ..tiny()
        };
        assert!(matches!(
            long.validate(&[]),
            Err(ModelBenchError::Lengths { .. })
        ));
        let vocab = Protocol { vocab: 4, ..tiny() };
        assert!(matches!(
            vocab.validate(&[]),
            Err(ModelBenchError::Vocab(4))
        ));
        assert!(tiny().validate(&[("emb", 4)]).is_ok());
    }

    #[test]
    fn common_fields_hold_the_protocol_and_the_sizes() {
        let c = common_fields(&tiny(), "m", 42, 1.25, json!({"d_model": 8}));
        assert_eq!(c["impl"], "attend");
        assert_eq!(c["model"], "m");
        assert_eq!(c["params"], 42);
        assert_eq!(c["vocab"], 11);
        assert_eq!(c["d_model"], 8);
        assert_eq!(c["rss_mb_before_model"], 1.3);
    }
}
