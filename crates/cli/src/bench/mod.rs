//! Benchmarks that do exactly the work of the peer scripts (PyTorch, CTranslate2) and print the same
//! JSON fields, so that both sides can be compared row by row (`benches/vs-peers.sh`).
//!
//! This file holds the measurement protocol the peers share: each repetition timed separately,
//! min / median / max over them, and two noise indicators — `foreign_cpu`, the share of the whole
//! machine's CPU used by *other* processes during the timed region (from `/proc/stat` minus this
//! process's own time; 0 = quiet, 0.5 = one of 2 cores busy), and `busy_procs`, compilers seen
//! running before or after.

pub mod attention;
pub mod gemm;
pub mod model_bench;
pub mod seq2seq;
mod torch_check;
pub mod transformer;
pub mod translate;

use std::time::Instant;

/// Compile-heavy process names that make a measurement suspect (the peers' list).
const BUSY_NAMES: [&str; 9] = [
    "rustc", "cargo", "cc1", "cc1plus", "ld", "ld.lld", "rust-lld", "make", "cmake",
];

/// Errors of the benchmark commands.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad benchmark shape {0:?}: every size must be at least 1 (e.g. --shape 32,8,64,64)")]
    Shape(Vec<usize>),
    #[error("--threads must be at least 1")]
    Threads,
    #[error("--min-time must be a finite number of seconds ≥ 0, got {0}")]
    MinTime(f64),
}

/// Per-repetition times, summarized as the peers do.
#[derive(Clone, Debug)]
pub struct Timings {
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    pub reps: usize,
    pub foreign_cpu: f64,
}

/// Runs `step` `warmup` times (at least once), then `max(reps, ⌈min_time / last warm-up⌉)` times
/// (at most 100 000), timing every call separately, and watches the machine's CPU meanwhile.
pub fn time_steps(mut step: impl FnMut(), warmup: usize, reps: usize, min_time: f64) -> Timings {
    let mut last = 0.0;
    for _ in 0..warmup.max(1) {
        let t0 = Instant::now();
        step();
        last = t0.elapsed().as_secs_f64();
    }
    let reps = reps
        .max((min_time / last.max(1e-6)).ceil() as usize)
        .min(100_000);
    let mut ms = Vec::with_capacity(reps);
    let before = CpuSnapshot::now();
    for _ in 0..reps {
        let t0 = Instant::now();
        step();
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let after = CpuSnapshot::now();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    Timings {
        min_ms: ms[0],
        median_ms: median,
        max_ms: ms[n - 1],
        reps: n,
        foreign_cpu: foreign_cpu(&before, &after),
    }
}

/// Machine busy time and this process's CPU time, in clock ticks, at one instant.
struct CpuSnapshot {
    at: Instant,
    machine_busy: u64,
    own: u64,
}

impl CpuSnapshot {
    fn now() -> CpuSnapshot {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system irq softirq steal
        let machine_busy = [0, 1, 2, 5, 6, 7]
            .iter()
            .map(|&i| v.get(i).copied().unwrap_or(0))
            .sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<u64> = own_stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // After the command name: utime and stime are the 12th and 13th fields (all threads).
        let own = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        CpuSnapshot {
            at: Instant::now(),
            machine_busy,
            own,
        }
    }
}

/// Share of the whole machine's CPU used by other processes between two snapshots (rounded to
/// 0.001 as the peers do).
fn foreign_cpu(a: &CpuSnapshot, b: &CpuSnapshot) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64();
    if dt <= 0.0 {
        return 0.0;
    }
    let other =
        b.machine_busy.saturating_sub(a.machine_busy) as f64 - b.own.saturating_sub(a.own) as f64;
    // SAFETY: sysconf only reads system constants.
    let (tick, cpus) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as f64,
        )
    };
    let share = (other / (dt * tick.max(1.0) * cpus.max(1.0))).max(0.0);
    (share * 1000.0).round() / 1000.0
}

/// Names of compile-heavy processes running now.
pub fn busy_processes() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| BUSY_NAMES.contains(&n.as_str()))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The compile-heavy processes seen `before` the measurement or running now, sorted, once each.
pub fn busy_since(mut before: Vec<String>) -> Vec<String> {
    before.extend(busy_processes());
    before.sort();
    before.dedup();
    before
}

/// The CPU's model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Processors online (Python's `os.cpu_count()`).
pub fn cpu_count() -> usize {
    // SAFETY: sysconf only reads a system constant.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

/// One-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

/// Peak resident memory of this process in MB (`VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Current resident memory of this process in MB (`VmRSS`).
pub fn current_rss_mb() -> f64 {
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
