//! `train`: `attend train` from Python. The config is a TOML file or a dict with the same keys
//! (handed over as JSON), `sets` are `--set key=value` overrides; the run's progress goes to a
//! Python callable on the calling thread, and Ctrl-C stops the run with a checkpoint that
//! `resume=True` continues.

use crate::engine_error;
use crate::run::run;
use anyhow::Context;
use attend::caption::trainer::train_captioner;
use attend::config::{Config, ModelKind};
use attend::train::progress::Progress;
use attend::train::trainer::{train as train_run, TrainOptions};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

/// What a run reports, in the order it happens; `progress(kind, a, b)` gets
/// `("say", line, None)`, `("start", done, total)`, `("advance", step, status)`, `("finish", None, None)`.
enum Event {
    Say(String),
    Start(usize, usize),
    Advance(usize, String),
    Finish,
}

/// The run's [`Progress`], sent to the calling thread; asks it to stop after Ctrl-C.
struct Forward<'a> {
    events: &'a Sender<Event>,
    stop: &'a AtomicBool,
}

impl Progress for Forward<'_> {
    fn say(&self, line: &str) {
        // The calling thread outlives the run, so the channel is open while the run reports.
        let _ = self.events.send(Event::Say(line.to_string()));
    }

    fn start(&self, done: usize, total: usize) {
        let _ = self.events.send(Event::Start(done, total));
    }

    fn advance(&self, step: usize, status: &str) {
        let _ = self.events.send(Event::Advance(step, status.to_string()));
    }

    fn finish(&self) {
        let _ = self.events.send(Event::Finish);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Trains (or with `resume`, continues) the run in `out` and returns its summary as JSON (the
/// `summary.json` it writes). `config` is a TOML file, `config_json` a whole config as JSON;
/// with neither, the bundled English→French config (or, resuming, the run's own).
#[pyfunction]
#[pyo3(signature = (out, config = None, config_json = None, sets = Vec::new(), resume = false, progress = None))]
pub fn train(
    py: Python<'_>,
    out: PathBuf,
    config: Option<PathBuf>,
    config_json: Option<String>,
    sets: Vec<String>,
    resume: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let cfg = load_config(
        config.as_deref(),
        config_json.as_deref(),
        &sets,
        resume,
        &out,
    )
    .map_err(engine_error)?;
    let on_event = |py: Python<'_>, e: Event| -> PyResult<()> {
        let Some(progress) = &progress else {
            return Ok(());
        };
        let args = match e {
            Event::Say(line) => ("say", line.into_pyobject(py)?.into_any(), py.None()),
            Event::Start(done, total) => (
                "start",
                done.into_pyobject(py)?.into_any(),
                total.into_pyobject(py)?.into_any().unbind(),
            ),
            Event::Advance(step, status) => (
                "advance",
                step.into_pyobject(py)?.into_any(),
                status.into_pyobject(py)?.into_any().unbind(),
            ),
            Event::Finish => ("finish", py.None().into_bound(py), py.None()),
        };
        progress.call1(py, args)?;
        Ok(())
    };
    run(
        py,
        |stop, events| {
            let forward = Forward { events, stop };
            let opts = TrainOptions {
                out: out.clone(),
                resume,
                progress: &forward,
                // One process: Python trains on this machine's threads.
                comm: &attend::train::collective::Single,
            };
            let summary = if cfg.model.kind() == ModelKind::Captioner {
                serde_json::to_string(&train_captioner(&cfg, &opts)?)?
            } else {
                serde_json::to_string(&train_run(&cfg, &opts)?)?
            };
            Ok::<_, anyhow::Error>(summary)
        },
        on_event,
    )?
    .map_err(engine_error)
}

/// The run's config: a file or JSON (a table with the TOML file's keys), with the overrides;
/// resuming without either reads the run's own `config.toml`, as `attend train --resume` does.
fn load_config(
    path: Option<&Path>,
    json: Option<&str>,
    sets: &[String],
    resume: bool,
    out: &Path,
) -> anyhow::Result<Config> {
    match (path, json) {
        (Some(_), Some(_)) => anyhow::bail!("give the config as a file or as a dict, not both"),
        (None, Some(json)) => {
            let value: serde_json::Value = serde_json::from_str(json).context("the config dict")?;
            let table = toml::Value::try_from(value)
                .context("the config dict cannot be written as TOML (a None value?)")?;
            let text = toml::to_string(&table).context("the config dict")?;
            Ok(Config::parse(&text, "the config dict", sets)?)
        }
        (None, None) if resume => Ok(Config::load(Some(&out.join("config.toml")), sets)?),
        (path, None) => Ok(Config::load(path, sets)?),
    }
}
