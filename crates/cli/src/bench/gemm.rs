//! `attend bench gemm`: the machine's single-precision matrix-product ceiling, as the engine's
//! `gemm` reaches it — the yardstick of the attention benchmark (the fused kernel's forward is
//! measured as a share of it, in the same run).
//!
//! `C = A · B` with `A [n, n]`, `B [n, n]` uniform in `[−1, 1)`, `C` overwritten, `2·n³` FLOPs per
//! product; 3 warm-up products, then `max(20, enough to fill min_time)` timed ones.

use super::{busy_processes, busy_since, cpu_count, cpu_model, time_steps, BenchError};
use serde_json::{json, Value};
use tensor::kernels::gemm;
use tensor::{Rng, Tensor};

/// One gemm measurement: size `n`, threads, least timed duration in seconds.
#[derive(Clone, Debug)]
pub struct GemmBench {
    pub size: usize,
    pub threads: usize,
    pub min_time: f64,
}

/// Runs the measurement and returns one JSON object (`bench = "sgemm"`, `impl = "attend"`).
pub fn bench_gemm(cfg: &GemmBench) -> Result<Value, BenchError> {
    let n = cfg.size;
    if n == 0 {
        return Err(BenchError::Shape(vec![n, n, n]));
    }
    if cfg.threads == 0 {
        return Err(BenchError::Threads);
    }
    if !(cfg.min_time.is_finite() && cfg.min_time >= 0.0) {
        return Err(BenchError::MinTime(cfg.min_time));
    }
    tensor::threads::set_threads(cfg.threads);
    let mut rng = Rng::new(0);
    let a = Tensor::uniform(&[n, n], -1.0, 1.0, &mut rng);
    let b = Tensor::uniform(&[n, n], -1.0, 1.0, &mut rng);
    let mut c = vec![0.0f32; n * n];
    let busy_before = busy_processes();
    let t = time_steps(
        || gemm::matmul(&mut c, a.data(), b.data(), n, n, n, false, false, false),
        3,
        20,
        cfg.min_time,
    );
    let flops = 2.0 * (n as f64).powi(3);
    let busy = busy_since(busy_before);
    Ok(json!({
        "bench": "sgemm",
        "impl": "attend",
        "attend": env!("CARGO_PKG_VERSION"),
        "size": n,
        "threads": tensor::threads::threads(),
        "min_ms": t.min_ms,
        "median_ms": t.median_ms,
        "max_ms": t.max_ms,
        "reps": t.reps,
        "gflops_median": flops / (t.median_ms * 1e-3) / 1e9,
        "gflops_best": flops / (t.min_ms * 1e-3) / 1e9,
        "foreign_cpu": t.foreign_cpu,
        "cpu": cpu_model(),
        "nproc": cpu_count(),
        "busy_procs": busy,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_product_reports_its_rate_and_bad_requests_are_errors() {
        let cfg = GemmBench {
            size: 16,
            threads: 1,
            min_time: 0.0,
        };
        let v = bench_gemm(&cfg).expect("runs");
        assert_eq!(v["bench"], "sgemm");
        assert!(v["gflops_median"].as_f64().expect("number") > 0.0);
        assert!(bench_gemm(&GemmBench {
            size: 0,
            ..cfg.clone()
        })
        .is_err());
        assert!(bench_gemm(&GemmBench {
            min_time: -1.0,
            ..cfg
        })
        .is_err());
    }
}
