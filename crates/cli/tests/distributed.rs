//! Data-parallel training over MPI (feature `mpi`, docs/distributed.md), with the launcher CI
//! installs (Open MPI's `mpirun`); `.ci/run` runs it as
//! `cargo test --release -p attend-cli --features mpi --test distributed`.
//!
//! - Two ranks for k steps end with the parameters of one process on the same global batches, for
//!   the RNN with attention and for the Transformer (tolerance: see [`TOLERANCE`]).
//! - A rank killed with SIGKILL ends the job with a non-zero status within the timeout, and
//!   `--resume` continues the run from its last checkpoint to the end.
//! - A rank that hangs (SIGSTOP) makes the others give up after `ATTEND_COMM_TIMEOUT` seconds
//!   with an error that says so.
#![cfg(feature = "mpi")]

mod cli_support;

use attend::nn::params::load_tensors;
use cli_support::out_dir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Largest |θ₂ − θ₁| allowed between the parameters of two ranks and of one process after
/// [`STEPS`] steps. The two compute the same sums in another order (each rank pads its shard to
/// its own longest row, the batch's loss is summed from two means, the gradient from two
/// halves), so they differ by float32 rounding, about 1e-7 relative per operation. Adam turns a
/// gradient into a step of about `lr` per element whatever its size, and a rounding difference
/// moves that step by a like fraction of `lr`: after 4 steps at lr 3e-3 the parameters differ by
/// about 1e-6 here. 1e-4 is under a twentieth of the distance the parameters travel (checked
/// below), so a wrong weighting or a lost shard fails.
///
/// One exception: the key biases of attention (`in_proj_bias[d..2d]`). Softmax over the keys is
/// shift-invariant (`q·(k + b) = q·k + q·b` for every key of a query), so their exact gradient is
/// zero and what the engine computes is rounding noise, which Adam normalises into steps of up to
/// `lr` in either direction. They are held to [`STEPS`] × lr instead, and they do not change
/// what the model computes: the dev losses of the two runs agree to 1e-5 (relative).
const TOLERANCE: f32 = 1e-4;

/// The learning rate of the equivalence runs.
const LR: f32 = 3e-3;

/// Optimizer steps of the equivalence runs.
const STEPS: usize = 4;

/// The tiny reverse-task runs: no dropout (the two ranks draw other masks than one process).
fn run_sets(model: &str, steps: usize) -> Vec<String> {
    let mut sets: Vec<String> = vec![
        "data.reverse_sizes=[600, 40, 40]".into(),
        format!("train.max_steps={steps}"),
        format!("train.valid_every={steps}"),
        "train.token_budget=600".into(),
        format!("train.lr={LR}"),
    ];
    let model_sets: &[&str] = match model {
        "rnn" => &[
            "model.rnn.hidden=16",
            "model.rnn.decoder_hidden=32",
            "model.rnn.embedding=16",
            "model.rnn.attention_size=16",
            "model.rnn.dropout=0.0",
        ],
        _ => &[
            "model.transformer.d_model=16",
            "model.transformer.ff_size=32",
            "model.transformer.heads=2",
            // Steps of the RNN's size (the config's warm-up would make the first ones tiny).
            "train.schedule=\"constant\"",
            "train.warmup=0",
        ],
    };
    sets.extend(model_sets.iter().map(|s| s.to_string()));
    sets
}

fn config_path(model: &str) -> PathBuf {
    let name = match model {
        "rnn" => "reverse.toml",
        _ => "reverse-transformer.toml",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

/// `attend train` arguments: the config (or `--resume`), `--out DIR`, `--set`s.
fn train_args(config: Option<&Path>, dir: &Path, sets: &[String]) -> Vec<String> {
    let mut args = vec!["train".to_string()];
    match config {
        Some(c) => args.push(c.display().to_string()),
        None => args.push("--resume".into()),
    }
    args.extend(["--quiet".into(), "--out".into(), dir.display().to_string()]);
    for s in sets {
        args.extend(["--set".into(), s.clone()]);
    }
    args
}

/// `mpirun` when it is installed; otherwise the test says why it does not run.
fn mpirun() -> Option<Command> {
    let found = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIPPED: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
        return None;
    }
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        // Containers often forbid the cross-process memory copies of the shared-memory transport.
        .args(["--mca", "btl_vader_single_copy_mechanism", "none"])
        .arg(env!("CARGO_BIN_EXE_attend"))
        .env("ATTEND_THREADS", "1");
    Some(cmd)
}

/// One process, no launcher.
fn alone(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(args)
        .env("ATTEND_THREADS", "1")
        .output()
        .unwrap()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The largest element-wise difference between two parameter files: (over the parameters whose
/// gradient is not zero by construction, over the attention key biases; see [`TOLERANCE`]).
fn max_diff(a: &Path, b: &Path) -> (f32, f32) {
    let (a, b) = (load_tensors(a).unwrap(), load_tensors(b).unwrap());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same parameters"
    );
    let (mut other, mut key_bias) = (0.0f32, 0.0f32);
    for (name, t) in &a {
        let d = t.numel() / 3;
        for (i, (x, y)) in t.data().iter().zip(b[name].data()).enumerate() {
            if name.ends_with("in_proj_bias") && (d..2 * d).contains(&i) {
                key_bias = key_bias.max((x - y).abs());
            } else {
                other = other.max((x - y).abs());
            }
        }
    }
    (other, key_bias)
}

/// The dev loss of the last validation in `log.jsonl`.
fn dev_loss(dir: &Path) -> f64 {
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    last["dev_loss"].as_f64().unwrap()
}

fn two_ranks_equal_one_process(model: &str) {
    let Some(mut mpi) = mpirun() else { return };
    let root = out_dir(&format!("distributed-{model}"));
    let config = config_path(model);
    let sets = run_sets(model, STEPS);
    let (one, two, first) = (root.join("one"), root.join("two"), root.join("first"));
    check(
        &alone(&train_args(Some(&config), &one, &sets)),
        "one process",
    );
    let out = mpi
        .args(train_args(Some(&config), &two, &sets))
        .output()
        .unwrap();
    check(&out, "mpirun -np 2");
    check(
        &alone(&train_args(Some(&config), &first, &run_sets(model, 1))),
        "one step",
    );
    let weights = |d: &Path| d.join("last.safetensors");
    let (diff, key_bias) = max_diff(&weights(&one), &weights(&two));
    let (travelled, _) = max_diff(&weights(&one), &weights(&first));
    let (loss_one, loss_two) = (dev_loss(&one), dev_loss(&two));
    println!("{model}: max |two ranks − one process| = {diff:e} (attention key biases: {key_bias:e}); steps 1 → {STEPS} moved the parameters by up to {travelled:e}; dev loss {loss_one} vs {loss_two}");
    assert!(diff <= TOLERANCE, "{model}: {diff} > {TOLERANCE}");
    assert!(
        key_bias <= STEPS as f32 * LR,
        "{model}: key biases {key_bias}"
    );
    assert!(
        (loss_one - loss_two).abs() <= 1e-5 * loss_one,
        "{model}: dev loss {loss_one} vs {loss_two}"
    );
    assert!(
        travelled > 20.0 * TOLERANCE,
        "{model}: training moved too little to compare"
    );
    // Rank 0 alone wrote the run and printed its summary.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("test       BLEU").count(), 1, "{stdout}");
    assert!(two.join("summary.json").exists());
}

#[test]
fn two_ranks_equal_one_process_rnn_with_attention() {
    two_ranks_equal_one_process("rnn");
}

#[test]
fn two_ranks_equal_one_process_transformer() {
    two_ranks_equal_one_process("transformer");
}

/// The pid of the rank `rank` among the children of `mpirun` (Open MPI sets its rank in their
/// environment).
fn rank_pid(launcher: u32, rank: usize) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name: state, ppid, …
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let is_rank = environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes());
        (ppid == launcher && is_rank).then_some(pid)
    })
}

/// A long run under `mpirun` that has written its first checkpoint, and its rank 1.
fn started_long_run(dir: &Path, timeout_s: &str) -> Option<(Child, u32)> {
    let mut mpi = mpirun()?;
    let mut sets = run_sets("rnn", 100_000);
    sets[2] = "train.valid_every=5".into();
    let child = mpi
        .args(train_args(Some(&config_path("rnn")), dir, &sets))
        .env("ATTEND_COMM_TIMEOUT", timeout_s)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.join("state.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rank1 = rank_pid(child.id(), 1).expect("rank 1 is a child of mpirun");
    Some((child, rank1))
}

/// Waits at most `limit` for the launcher to end; its status and stderr.
fn ended_within(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status, err);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the job still runs {} s after a rank died", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: a plain kill(2) of a process this test started (through mpirun).
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn killed_rank_ends_the_job_and_resume_continues() {
    let dir = out_dir("distributed-kill");
    let Some((child, rank1)) = started_long_run(&dir, "60") else {
        return;
    };
    signal(rank1, libc::SIGKILL);
    let (status, stderr) = ended_within(child, Duration::from_secs(60));
    assert!(!status.success(), "the job must fail: {stderr}");
    println!("after SIGKILL of rank 1: {status}; launcher said:\n{stderr}");
    // The run continues from its last checkpoint, on two ranks again, to 10 steps past it.
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let step = serde_json::from_str::<serde_json::Value>(&state).unwrap()["step"]
        .as_u64()
        .unwrap();
    let end = step + 10;
    let Some(mut mpi) = mpirun() else { return };
    let out = mpi
        .args(train_args(None, &dir, &[format!("train.max_steps={end}")]))
        .output()
        .unwrap();
    check(&out, "--resume on two ranks");
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["step"].as_u64(), Some(end));
    assert!(dir.join("summary.json").exists());
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "no step logged twice: {steps:?}"
    );
    assert_eq!(steps.last(), Some(&end));
}

#[test]
fn hung_rank_ends_the_job_after_the_timeout() {
    let dir = out_dir("distributed-hang");
    let Some((child, rank1)) = started_long_run(&dir, "3") else {
        return;
    };
    signal(rank1, libc::SIGSTOP);
    let (status, stderr) = ended_within(child, Duration::from_secs(60));
    // The launcher may not end a stopped process: let it go.
    signal(rank1, libc::SIGKILL);
    assert!(!status.success(), "the job must fail: {stderr}");
    assert!(
        stderr.contains("rank 0: no answer from the other ranks for 3 s"),
        "{stderr}"
    );
}
