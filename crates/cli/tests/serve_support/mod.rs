//! Shared by the `serve_*` tests: a tiny trained model, an in-process server on a loopback port,
//! a real HTTP client, and the answers `translate_text` gives (what `attend translate` prints).

#![allow(dead_code)] // each test binary uses its own part of this module

use attend::config::Config;
use attend::train::checkpoint::load_model;
use attend::train::trainer::{train, TrainOptions};
use attend::translate::translate_text;
use attend_cli::serve::api::Translation;
use attend_cli::serve::limits::Limits;
use attend_cli::serve::worker::translation;
use attend_cli::serve::{ServeOptions, Service};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where a model trained once per test binary lives: under cargo's scratch directory for
/// integration tests (`target/tmp`), one per binary and model, replaced by the next run — not a
/// new directory in the system's temp directory on every run (a static is never dropped, so a
/// per-process directory could not be removed).
fn scratch(model: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{model}", env!("CARGO_CRATE_NAME")))
}

/// A reverse-task model (integers 0–50, target = source reversed) trained for a few hundred steps
/// into [`scratch`], once per test binary: enough to translate confidently. With
/// `ATTEND_SERVE_MODEL=DIR` a reverse run trained elsewhere is used instead (for the README's
/// screenshot; the tests of serve_api.rs expect the tiny model's sizes).
pub fn tiny_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ATTEND_SERVE_MODEL") {
            return PathBuf::from(dir);
        }
        let dir = scratch("serve-model");
        let _ = std::fs::remove_dir_all(&dir);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/reverse.toml");
        let sets: Vec<String> = [
            "data.reverse_sizes=[4000, 50, 50]",
            "data.max_len=12",
            "model.rnn.embedding=32",
            "model.rnn.hidden=32",
            "model.rnn.decoder_hidden=64",
            "model.rnn.attention_size=32",
            "train.max_steps=400",
            "train.valid_every=400",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let config = Config::load(Some(&path), &sets).expect("configs/reverse.toml parses");
        let opts = TrainOptions {
            out: dir.clone(),
            resume: false,
            progress: &attend::train::progress::Quiet,
            comm: &attend::train::collective::Single,
        };
        train(&config, &opts).expect("the tiny model trains");
        dir
    })
}

/// A 2+2-layer, 4-head Transformer on the reverse task (configs/reverse-transformer.toml, smaller
/// and shorter), trained once per test binary into [`scratch`].
pub fn tiny_transformer() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("serve-transformer");
        let _ = std::fs::remove_dir_all(&dir);
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/reverse-transformer.toml");
        let sets: Vec<String> = [
            "data.reverse_sizes=[2000, 20, 20]",
            "data.max_len=12",
            "model.transformer.d_model=32",
            "model.transformer.ff_size=64",
            "train.max_steps=150",
            "train.warmup=50",
            "train.valid_every=150",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let config =
            Config::load(Some(&path), &sets).expect("configs/reverse-transformer.toml parses");
        let opts = TrainOptions {
            out: dir.clone(),
            resume: false,
            progress: &attend::train::progress::Quiet,
            comm: &attend::train::collective::Single,
        };
        train(&config, &opts).expect("the tiny Transformer trains");
        dir
    })
}

/// Sentences of the reverse task, lengths 1–10.
pub fn sentences(n: usize, seed: u64) -> Vec<String> {
    let mut rng = tensor::Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = 1 + rng.below(10);
            (0..len)
                .map(|_| rng.below(51).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// What `translate_text` (and so `attend translate`) gives for each sentence alone.
pub fn expected(dir: &Path, texts: &[String], beam: usize) -> Vec<Translation> {
    let m = load_model(dir, "best").expect("the model loads");
    let alpha = m.config.search.alpha;
    texts
        .iter()
        .map(|t| {
            let (_, hyps) = translate_text(
                &*m.model,
                &m.vocabs,
                std::slice::from_ref(t),
                &m.config,
                beam,
                alpha,
            )
            .expect("translates");
            let src = m.vocabs.src.encode(t).expect("encodes");
            translation(&m.vocabs, &src, &hyps[0])
        })
        .collect()
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts graceful shutdown and waits (at most 60 s) for the server to stop.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the server stops within 60 s")
            .expect("the server task did not panic")
    }

    /// Starts graceful shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn join(self) -> std::io::Result<()> {
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the server stops within 60 s")
            .expect("the server task did not panic")
    }
}

/// Starts the service on 127.0.0.1 with a free port (30 s of grace at shutdown).
pub async fn start(workers: usize, limits: Limits) -> Running {
    start_with_grace(workers, limits, Duration::from_secs(30)).await
}

pub async fn start_with_grace(workers: usize, limits: Limits, grace: Duration) -> Running {
    start_model(tiny_model(), workers, limits, grace).await
}

/// Starts the service for the run in `model`.
pub async fn start_model(model: &Path, workers: usize, limits: Limits, grace: Duration) -> Running {
    let opts = ServeOptions {
        model: model.to_path_buf(),
        checkpoint: "best".into(),
        workers,
        limits,
        grace,
    };
    let service = tokio::task::spawn_blocking(move || Service::start(&opts))
        .await
        .unwrap()
        .expect("the service starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service.serve(
        listener,
        async {
            let _ = stopped.await;
        },
        grace,
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// An HTTP client that never goes through a proxy (every address here is loopback).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// An answer: status, `Retry-After` if any, and the body as JSON.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: serde_json::Value,
}

pub async fn post(client: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) -> Answer {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    answer(r).await
}

pub async fn get(client: &reqwest::Client, url: &str) -> Answer {
    answer(client.get(url).send().await.expect("the server answers")).await
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.expect("a body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    Answer {
        status,
        retry_after,
        json,
    }
}

/// Checks a translation from the server against the expected one: the same text and tokens, the
/// same attention within 1e-5, each attention row a distribution over the source tokens.
pub fn assert_same(got: &serde_json::Value, want: &Translation) {
    let got: Translation = serde_json::from_value(got.clone()).expect("a Translation");
    assert_eq!(got.translation, want.translation);
    assert_eq!(got.source_tokens, want.source_tokens);
    assert_eq!(got.target_tokens, want.target_tokens);
    assert_eq!(got.attention.len(), want.attention.len());
    assert_eq!(got.attention.len(), got.target_tokens.len());
    for (g, w) in got.attention.iter().zip(&want.attention) {
        assert_eq!(g.len(), got.source_tokens.len());
        let sum: f32 = g.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "attention row sums to {sum}");
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-5, "attention {a} vs {b}");
        }
    }
}

/// `attend serve` as a child process on a free loopback port.
pub struct Binary {
    pub child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Binary {
    /// Starts `attend serve --addr 127.0.0.1:0 --model DIR ARGS…` and waits for its address. With
    /// `max_files`, the process may hold at most that many file descriptors (`RLIMIT_NOFILE`).
    pub fn start(model: &Path, args: &[&str], max_files: Option<u64>) -> Binary {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_attend"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--model"])
            .arg(model)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(n) = max_files {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // Safety: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("attend serve starts");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on http://")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim()
            .to_string();
        Binary {
            child,
            addr,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (at most `limit`, then kills it and fails) for the process to
    /// exit; returns its status and how long it took.
    pub fn terminate(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let t0 = std::time::Instant::now();
        // Safety: a plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, t0.elapsed());
            }
            if t0.elapsed() > limit {
                self.child.kill().unwrap();
                panic!("attend serve did not stop within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the process wrote to stderr after its first line (read to its end: call after exit).
    pub fn rest_of_stderr(&mut self) -> String {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        rest
    }
}

impl Drop for Binary {
    /// A failed test does not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
