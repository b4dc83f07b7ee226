//! `attend bench translate`: translation of a text file with a run directory's model, timed as
//! `benches/ct2_marian.py` times CTranslate2 on the same weights (`benches/vs-ct2-marian.sh` runs
//! both).
//!
//! ```text
//! untimed:  load the run; each input line normalised and tokenized (the run's source tokenizer)
//! one pass: the lines in file order, in batches of `batch`; each batch one `translate_ids` call
//!           (the run's search: beam, length penalty, style), at most `max_len` tokens a sentence
//! timed:    `warmup` passes, then `reps` passes, each timed whole (encoder and search included)
//! tokens/s: output tokens of one pass (`</s>` not counted) ÷ the pass's time
//! ```
//! CTranslate2's side is the same: the same token sequences (read from this command's `--output`),
//! the same batches, one `translate_batch` call per batch, the same beam and limit.

use super::model_bench::{extend, prepare_process, round1, summary};
use super::{busy_processes, busy_since, cpu_count, cpu_model, load_average, peak_rss_mb};
use super::{current_rss_mb, time_steps};
use attend::data::normalize::normalize;
use attend::search::Hypothesis;
use attend::train::checkpoint::load_model;
use attend::translate::{check_sources, translate_ids};
use serde_json::{json, Value};
use std::path::PathBuf;

/// What can be wrong with a translation benchmark request.
#[derive(Debug, thiserror::Error)]
pub enum TranslateBenchError {
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--model {dir}: {reason}")]
    Model { dir: String, reason: String },
    #[error("--input {path}: {reason}")]
    Input { path: String, reason: String },
    #[error("--output {path}: {reason}")]
    Output { path: String, reason: String },
}

/// One translation measurement.
#[derive(Clone, Debug)]
pub struct TranslateBench {
    /// Run directory (e.g. `attend import marian DIR --out RUN`).
    pub model: PathBuf,
    /// Text, one sentence a line.
    pub input: PathBuf,
    /// Sentences per `translate_ids` call.
    pub batch: usize,
    /// Beam size (1 = greedy).
    pub beam: usize,
    /// Most output tokens a sentence, `</s>` included.
    pub max_len: usize,
    /// Untimed passes.
    pub warmup: usize,
    /// Timed passes.
    pub reps: usize,
    /// JSON lines `{"source": [pieces], "output": [pieces]}` of the last pass, one per input line.
    pub output: Option<PathBuf>,
}

/// Runs the measurement and returns its JSON object (`bench = "translate"`, `impl = "attend"`).
pub fn bench_translate(cfg: &TranslateBench) -> Result<Value, TranslateBenchError> {
    for (name, v) in [
        ("batch", cfg.batch),
        ("beam", cfg.beam),
        ("max-len", cfg.max_len),
        ("reps", cfg.reps),
    ] {
        if v == 0 {
            return Err(TranslateBenchError::Zero(name));
        }
    }
    let threads = tensor::threads::threads();
    prepare_process(threads);
    let model_error = |reason: String| TranslateBenchError::Model {
        dir: cfg.model.display().to_string(),
        reason,
    };
    let input_error = |reason: String| TranslateBenchError::Input {
        path: cfg.input.display().to_string(),
        reason,
    };
    let loaded = load_model(&cfg.model, "best").map_err(|e| model_error(format!("{e:#}")))?;
    let mut config = loaded.config.clone();
    config.search.max_len_a = 0.0;
    config.search.max_len_b = cfg.max_len;
    let alpha = config.search.alpha;
    let text = std::fs::read_to_string(&cfg.input).map_err(|e| input_error(e.to_string()))?;
    let mut sources = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = normalize(line);
        let ids = loaded
            .vocabs
            .src
            .encode(&line)
            .map_err(|e| input_error(format!("line {}: {e}", i + 1)))?;
        if ids.is_empty() {
            return Err(input_error(format!("line {} is empty", i + 1)));
        }
        sources.push(ids);
    }
    if sources.is_empty() {
        return Err(input_error("no lines".into()));
    }
    check_sources(&*loaded.model, &sources).map_err(|e| input_error(e.to_string()))?;
    let model = &*loaded.model;
    let mut last: Vec<Hypothesis> = Vec::new();
    let busy = busy_processes();
    let timings = time_steps(
        || {
            last = sources
                .chunks(cfg.batch)
                .flat_map(|b| translate_ids(model, b, &config, cfg.beam, alpha))
                .collect();
        },
        cfg.warmup,
        cfg.reps,
        0.0,
    );
    let tokens: usize = last.iter().map(|h| h.ids.len()).sum();
    if let Some(path) = &cfg.output {
        let pieces = |tok: &attend::data::tokenizer::Tokenizer, ids: &[u32]| -> Vec<String> {
            ids.iter().map(|&id| tok.token(id)).collect()
        };
        let lines: String = sources
            .iter()
            .zip(&last)
            .map(|(src, h)| {
                let line = json!({
                    "source": pieces(&loaded.vocabs.src, src),
                    "output": pieces(&loaded.vocabs.tgt, &h.ids),
                });
                format!("{line}\n")
            })
            .collect();
        std::fs::write(path, lines).map_err(|e| TranslateBenchError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let mut obj = serde_json::Map::new();
    extend(
        &mut obj,
        json!({
            "bench": "translate",
            "impl": "attend",
            "attend": env!("CARGO_PKG_VERSION"),
            "model": cfg.model.display().to_string(),
            "params": model.params().count(),
            "threads": threads,
            "beam": cfg.beam,
            "batch": cfg.batch,
            "max_len": cfg.max_len,
            "sentences": sources.len(),
            "source_tokens": sources.iter().map(Vec::len).sum::<usize>(),
            "output_tokens": tokens,
            "warmup": cfg.warmup,
        }),
    );
    extend(&mut obj, summary(&timings, tokens));
    extend(
        &mut obj,
        json!({
            "rss_mb": round1(current_rss_mb()),
            "peak_rss_mb": round1(peak_rss_mb()),
            "foreign_cpu": timings.foreign_cpu,
            "busy_procs": busy_since(busy),
            "cpu": cpu_model(),
            "cpu_count": cpu_count(),
            "load_average": load_average(),
        }),
    );
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attend::import::{marian, write_run};
    use attend::translate::translate_text;
    use std::path::Path;

    /// The tied test fixture imported into a fresh directory, and a scratch directory beside it.
    fn imported(name: &str) -> (PathBuf, PathBuf) {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../attend/tests/fixtures/marian/tied/marian");
        let dir = std::env::temp_dir().join(format!(
            "attend-bench-translate-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let run = dir.join("run");
        write_run(marian::read(&fixture).expect("reads"), &run).expect("imports");
        (dir, run)
    }

    fn bench(run: &Path, input: &Path, output: Option<PathBuf>) -> TranslateBench {
        TranslateBench {
            model: run.to_path_buf(),
            input: input.to_path_buf(),
            batch: 2,
            beam: 4,
            max_len: 40,
            warmup: 0,
            reps: 1,
            output,
        }
    }

    #[test]
    fn the_output_is_the_runs_translation_and_the_tokens_are_counted() {
        let (dir, run) = imported("output");
        let lines = [
            "Are you sure you want to clear map labels?",
            "The cat sat on the mat.",
            "Closed Dwarven Doors",
            "Chaotic Bonus:",
            "Show all terrain types.",
        ];
        let input = dir.join("input.txt");
        std::fs::write(&input, lines.join("\n")).expect("writes");
        let out = dir.join("out.jsonl");
        let obj = bench_translate(&bench(&run, &input, Some(out.clone()))).expect("runs");
        let loaded = load_model(&run, "best").expect("loads");
        let sentences: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let (text, hyps) = translate_text(
            &*loaded.model,
            &loaded.vocabs,
            &sentences,
            &loaded.config,
            4,
            loaded.config.search.alpha,
        )
        .expect("translates");
        let written: Vec<Value> = std::fs::read_to_string(&out)
            .expect("output")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(written.len(), lines.len());
        let mut tokens = 0;
        for ((w, h), t) in written.iter().zip(&hyps).zip(&text) {
            let pieces: Vec<String> = w["output"]
                .as_array()
                .expect("pieces")
                .iter()
                .map(|p| p.as_str().expect("piece").to_string())
                .collect();
            let ids: Vec<u32> = pieces
                .iter()
                .map(|p| loaded.vocabs.tgt.token_id(p).expect("a target piece"))
                .collect();
            assert_eq!(ids, h.ids, "{t}");
            assert!(!w["source"].as_array().expect("pieces").is_empty());
            tokens += ids.len();
        }
        assert!(tokens > lines.len(), "translations of several tokens");
        assert_eq!(obj["output_tokens"], tokens);
        assert_eq!(obj["sentences"], lines.len());
        assert_eq!(obj["impl"], "attend");
        assert_eq!(obj["n"], 1);
        assert!(obj["tokens_per_s_median"].as_f64().expect("number") > 0.0);
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn bad_requests_name_the_flag_and_the_line() {
        let (dir, run) = imported("errors");
        let input = dir.join("input.txt");
        std::fs::write(&input, "A line.\n\nAnother line.\n").expect("writes");
        let err = bench_translate(&bench(&run, &input, None)).expect_err("an empty line");
        assert!(err.to_string().contains("line 2 is empty"), "{err}");
        assert!(err.to_string().contains("input.txt"), "{err}");
        let mut zero = bench(&run, &input, None);
        zero.batch = 0;
        let err = bench_translate(&zero).expect_err("batch 0");
        assert!(matches!(err, TranslateBenchError::Zero("batch")), "{err}");
        let missing = bench(&dir.join("nowhere"), &input, None);
        let err = bench_translate(&missing).expect_err("no run");
        assert!(err.to_string().contains("nowhere"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }
}
