//! `attend bench attention`: the work of the PyTorch peer `sdpa_bench.py`, on attend's fused kernel.
//!
//! Q, K, V independent N(0, 1) of shape `[B, H, T, d]`, scale `1/√d`, no mask but the optional
//! causal one. Forward alone runs without the tape (`no_grad`, as PyTorch's `inference_mode`);
//! forward+backward resets the gradients of Q, K, V, runs the forward and back-propagates a fixed
//! random output gradient. 3 warm-up calls, then `max(20, enough to fill min_time)` timed calls.
//! FLOPs as the peer counts them: forward `4·B·H·T²·d`, backward 2.5× that, halved when causal.

use super::{
    busy_processes, busy_since, cpu_count, cpu_model, load_average, peak_rss_mb, time_steps,
    BenchError,
};
use attend::allocator::retain_freed_memory;
use serde_json::{json, Value};
use tensor::ops::flash_attention::flash_attention;
use tensor::{Rng, Tensor, Var};

/// Minimum timed repetitions and untimed warm-up calls (the peer's defaults).
const REPS: usize = 20;
const WARMUP: usize = 3;

/// What to time: the forward alone, or forward + backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fwd,
    FwdBwd,
}

impl Mode {
    /// The peer's name for the mode (`fwd`, `fwdbwd`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fwd => "fwd",
            Mode::FwdBwd => "fwdbwd",
        }
    }
}

/// One attention measurement: shape `[batch, heads, seq, head_dim]`, mask, pass, threads and the
/// least timed duration in seconds (the peer's `--min-time`, default 1.0).
#[derive(Clone, Debug)]
pub struct AttentionBench {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
    pub mode: Mode,
    pub threads: usize,
    pub min_time: f64,
}

/// Runs the measurement and returns one JSON object with the peer's fields (`impl = "attend"`).
pub fn bench_attention(cfg: &AttentionBench) -> Result<Value, BenchError> {
    let shape = [cfg.batch, cfg.heads, cfg.seq, cfg.head_dim];
    if shape.contains(&0) {
        return Err(BenchError::Shape(shape.to_vec()));
    }
    if cfg.threads == 0 {
        return Err(BenchError::Threads);
    }
    if !(cfg.min_time.is_finite() && cfg.min_time >= 0.0) {
        return Err(BenchError::MinTime(cfg.min_time));
    }
    retain_freed_memory();
    tensor::threads::set_threads(cfg.threads);
    let busy_before = busy_processes();
    let load_before = load_average();

    let mut rng = Rng::new(0);
    let mut input = || Tensor::randn(&shape, 0.0, 1.0, &mut rng);
    let scale = 1.0 / (cfg.head_dim as f32).sqrt();
    let causal = cfg.causal;
    let timings = match cfg.mode {
        Mode::Fwd => {
            let (q, k, v) = (
                Var::constant(input()),
                Var::constant(input()),
                Var::constant(input()),
            );
            time_steps(
                || {
                    tensor::no_grad(|| flash_attention(&q, &k, &v, causal, None, scale, None));
                },
                WARMUP,
                REPS,
                cfg.min_time,
            )
        }
        Mode::FwdBwd => {
            let (q, k, v) = (
                Var::parameter(input()),
                Var::parameter(input()),
                Var::parameter(input()),
            );
            let grad_out = input();
            time_steps(
                || {
                    for x in [&q, &k, &v] {
                        x.zero_grad();
                    }
                    let out = flash_attention(&q, &k, &v, causal, None, scale, None);
                    out.backward_with(grad_out.clone());
                },
                WARMUP,
                REPS,
                cfg.min_time,
            )
        }
    };

    let (b, h, t, d) = (
        cfg.batch as f64,
        cfg.heads as f64,
        cfg.seq as f64,
        cfg.head_dim as f64,
    );
    let mut flops = 4.0 * b * h * t * t * d;
    if cfg.mode == Mode::FwdBwd {
        flops *= 3.5;
    }
    if causal {
        flops *= 0.5;
    }
    let busy = busy_since(busy_before);
    Ok(json!({
        "bench": "sdpa",
        "mode": cfg.mode.name(),
        "batch": cfg.batch,
        "heads": cfg.heads,
        "seq": cfg.seq,
        "head_dim": cfg.head_dim,
        "causal": causal,
        "min_ms": timings.min_ms,
        "median_ms": timings.median_ms,
        "max_ms": timings.max_ms,
        "reps": timings.reps,
        "gflops_median": flops / (timings.median_ms * 1e-3) / 1e9,
        "gflops_best": flops / (timings.min_ms * 1e-3) / 1e9,
        "gflop_counted": flops / 1e9,
        "backend": "flash",
        "foreign_cpu": timings.foreign_cpu,
        "impl": "attend",
        "attend": env!("CARGO_PKG_VERSION"),
        "threads": tensor::threads::threads(),
        "cpu": cpu_model(),
        "nproc": cpu_count(),
        "dtype": "float32",
        "warmup": WARMUP,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_1m_before": (load_before * 100.0).round() / 100.0,
        "busy_procs": busy,
    }))
}
