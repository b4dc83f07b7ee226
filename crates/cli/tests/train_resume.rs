//! `attend train --resume` never loses a run. The crash test stops tiny seeded runs (translation
//! and captioning) at every checkpoint-write boundary and during the final evaluation (through
//! the `ATTEND_CRASH_AT` hook), and kills them with SIGKILL at random moments; after each stop
//! `--resume` carries the run to the end, and its weights, validations and test scores are those
//! of an uninterrupted run, with no step logged twice. A `--resume` that fails leaves the run
//! directory byte for byte as it was, and `--evaluate` scores a finished run again without
//! training.

mod cli_support;

use attend::nn::params::load_tensors;
use attend::train::checkpoint::{CRASH_AT, CRASH_EXIT};
use cli_support::{attend, fails, ok, out_dir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tiny translation run: 30 steps, a validation and a checkpoint every 10.
const TRANSLATION: [&str; 10] = [
    "configs/reverse.toml",
    "data.reverse_sizes=[600, 40, 40]",
    "train.max_steps=30",
    "train.valid_every=10",
    "model.rnn.hidden=16",
    "model.rnn.decoder_hidden=32",
    "model.rnn.embedding=16",
    "model.rnn.attention_size=16",
    "model.rnn.dropout=0.1",
    "search.beam=2",
];

/// A tiny captioning run: 30 steps on 256 strips in batches of 16 (resumes start mid-epoch).
const CAPTIONING: [&str; 16] = [
    "configs/caption-digits.toml",
    "caption.image_height=28",
    "caption.image_width=56",
    "caption.min_digits=1",
    "caption.max_digits=2",
    "caption.strips=[256, 16, 16]",
    "caption.conv_channels=[4, 8]",
    "caption.batch_size=16",
    "model.captioner.embedding=8",
    "model.captioner.hidden=24",
    "model.captioner.attention_size=12",
    "model.captioner.dropout=0.1",
    "train.lr=0.01",
    "train.max_steps=30",
    "train.valid_every=10",
    "search.beam=2",
];

/// The command line of a fresh run of `run` (config, then `--set`s) into `dir`.
fn fresh_args(run: &[&str], dir: &Path) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = vec![
        "train".to_string(),
        root.join(run[0]).display().to_string(),
        "--quiet".into(),
        "--out".into(),
        dir.display().to_string(),
    ];
    for set in &run[1..] {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    args
}

/// The command line that continues the run in `dir`: `--resume` once it has a checkpoint,
/// otherwise (killed before its first one) a fresh start.
fn continue_args(run: &[&str], dir: &Path) -> Vec<String> {
    if dir.join("state.json").exists() {
        let d = dir.display().to_string();
        ["train", "--quiet", "--resume", "--out", &d]
            .map(String::from)
            .into()
    } else {
        fresh_args(run, dir)
    }
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_attend"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// Runs to the end; panics with stderr otherwise.
fn finish(args: &[String]) {
    let out = command(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The log lines of a run without their timings, keyed by step (a step logged twice panics).
fn validations(dir: &Path) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
    {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let m = v.as_object_mut().unwrap();
        for timing in ["elapsed_s", "tokens_per_s", "images_per_s"] {
            m.remove(timing);
        }
        let step = m["step"].as_u64().unwrap();
        assert!(
            out.insert(step, v).is_none(),
            "{}: step {step} logged twice",
            dir.display()
        );
    }
    out
}

/// `summary.json` without the fields that name the directory or time the run.
fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for key in ["train_seconds", "curves", "attention_picture"] {
        v.as_object_mut().unwrap().remove(key);
    }
    v
}

/// Panics unless the finished run in `dir` is the uninterrupted run `base`: the same final and
/// best weights, validations and test scores, and one checkpoint left.
fn assert_same_run(base: &Path, dir: &Path, what: &str) {
    for file in ["last.safetensors", "best.safetensors"] {
        let (a, b) = (
            load_tensors(&base.join(file)),
            load_tensors(&dir.join(file)),
        );
        assert!(a.unwrap() == b.unwrap(), "{what}: {file} differs");
    }
    assert_eq!(validations(base), validations(dir), "{what}: log.jsonl");
    assert_eq!(summary(base), summary(dir), "{what}: summary.json");
    let count = |d: &Path| std::fs::read_dir(d.join("checkpoint")).unwrap().count();
    assert_eq!(count(dir), 2, "{what}: one checkpoint's two files");
}

/// The validations of `base` whose score was a new best (those that write `best.safetensors`).
fn improving_steps(base: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(base.join("state.json")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    let numbers = |v: &Value| -> Vec<f64> {
        match v {
            Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
            x => vec![x.as_f64().unwrap()],
        }
    };
    let mut best: Option<Vec<f64>> = None;
    let mut steps = Vec::new();
    for entry in state["score_history"].as_array().unwrap() {
        let score = numbers(&entry[1]);
        if best
            .as_ref()
            .is_none_or(|b| score.partial_cmp(b) == Some(std::cmp::Ordering::Greater))
        {
            steps.push(entry[0].as_u64().unwrap());
            best = Some(score);
        }
    }
    steps
}

/// Stops `run` at every boundary of the checkpoints of steps 20 and 30 and during the final
/// evaluation, resumes each, and compares with `base`; returns the number of stops.
fn stop_at_every_boundary(run: &[&str], base: &Path, name: &str) -> usize {
    let improving = improving_steps(base);
    let mut points: Vec<(&str, u64)> = Vec::new();
    for step in [20, 30] {
        if improving.contains(&step) {
            points.push(("best", step));
        }
        for p in ["log", "params", "optimizer", "state", "link", "cleanup"] {
            points.push((p, step));
        }
    }
    points.push(("evaluation", 30));
    for &(point, step) in &points {
        let dir = out_dir(&format!("{name}-{point}-{step}"));
        let out = command(&fresh_args(run, &dir))
            .env(CRASH_AT, format!("{point}:{step}"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(CRASH_EXIT),
            "{point}:{step} not reached"
        );
        finish(&continue_args(run, &dir));
        assert_same_run(base, &dir, &format!("{name} stopped at {point}:{step}"));
    }
    points.len()
}

/// Runs `run` with SIGKILLs at random moments (up to three per run, each within the duration
/// of an uninterrupted run), resuming after each, `runs` times; compares each with `base`.
/// Returns the number of kills that landed.
fn kill_at_random(run: &[&str], base: &Path, took: Duration, name: &str, runs: usize) -> usize {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // xorshift64*: the delays need no more than a seeded stream.
    let mut x = seed | 1;
    let mut next = move |bound: u128| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) as u128 % bound) as u64
    };
    let mut kills = 0;
    for r in 0..runs {
        let dir = out_dir(&format!("{name}-random-{r}"));
        let mut args = fresh_args(run, &dir);
        for _ in 0..3 {
            let mut child = command(&args).spawn().unwrap();
            let delay = Duration::from_millis(next(took.as_millis().max(1)));
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
            args = continue_args(run, &dir);
        }
        if !dir.join("summary.json").exists() {
            finish(&args);
        }
        assert_same_run(base, &dir, &format!("{name} random run {r} (seed {seed})"));
    }
    kills
}

/// The whole crash test for one task; prints its figures.
fn crash_test(run: &[&str], name: &str) {
    let started = Instant::now();
    let base = out_dir(&format!("{name}-uninterrupted"));
    finish(&fresh_args(run, &base));
    let took = started.elapsed();
    let stops = stop_at_every_boundary(run, &base, name);
    let kills = kill_at_random(run, &base, took, name, 3);
    println!(
        "{name}: {stops} crash points and {kills} random kills, each resumed to the uninterrupted result; {:.1} s (one run {:.1} s)",
        started.elapsed().as_secs_f64(),
        took.as_secs_f64()
    );
}

#[test]
fn translation_survives_every_crash() {
    crash_test(&TRANSLATION, "crash-translation");
}

#[test]
fn captioning_survives_every_crash() {
    crash_test(&CAPTIONING, "crash-captioning");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn failed_resume_changes_nothing_and_evaluate_does_not_train() {
    let dir = out_dir("resume-failed");
    let mut run = TRANSLATION.to_vec();
    run[2] = "train.max_steps=20";
    finish(&fresh_args(&run, &dir));
    let d = dir.to_str().unwrap();
    let before = snapshot(&dir);
    // Finished: nothing left to resume.
    let err = fails(&attend(&["train", "--quiet", "--resume", "--out", d], ""));
    assert!(err.contains("already finished at step 20"), "{err}");
    // More steps, but a model the checkpoint does not fit: refused, and nothing is rewritten.
    let args = [
        "--set",
        "train.max_steps=30",
        "--set",
        "model.rnn.hidden=24",
    ];
    let err = fails(&attend(
        &[&["train", "--quiet", "--resume", "--out", d][..], &args].concat(),
        "",
    ));
    assert!(err.contains("has shape"), "{err}");
    assert!(
        snapshot(&dir) == before,
        "a failed --resume changed the run directory"
    );

    // Evaluated again with another beam: a new summary, the same weights, log and config.
    let out = attend(
        &[
            "train",
            "--evaluate",
            "--quiet",
            "--out",
            d,
            "--set",
            "search.beam=1",
        ],
        "",
    );
    assert!(ok(&out).contains("beam 1"));
    assert_eq!(summary(&dir)["beam"], 1);
    let after = snapshot(&dir);
    for file in [
        "config.toml",
        "state.json",
        "log.jsonl",
        "best.safetensors",
        "last.safetensors",
    ] {
        assert!(
            after[&dir.join(file)] == before[&dir.join(file)],
            "{file} changed"
        );
    }
}
