//! `attend serve`: translations over HTTP, with a page that shows the attention.
//!
//! ```text
//! GET  /           the page (self-contained HTML: text box, translation, attention heat map)
//! GET  /explore    the attention explorer (self-contained HTML): one decoder step at a time
//! GET  /health     {"status": "ok", "workers": N, "queued": q, "in_flight": r, "connections": c}
//! GET  /model      ModelInfo: kind, sizes, languages, BLEU from summary.json
//! POST /translate  {"text": ".."} or {"texts": [..]}, optional "beam", "alpha" → see [`api`]
//! POST /explain    {"text": ".."} → the JSON of `attend explain --json` for that sentence
//! ```
//! The HTTP side runs on tokio and only parses, queues and waits; decoding runs on dedicated
//! worker threads, each with its own copy of the model ([`worker`]), so CPU work never holds up
//! the accept loop. Limits ([`limits`]) turn overload into 413/503 answers instead of memory or
//! latency; the accept loop ([`connections`]) bounds the connections open and closes the ones
//! that send nothing in time; shutdown (SIGINT/SIGTERM, [`shutdown`]) stops accepting, finishes the
//! requests in flight within `--grace`, then stops whatever is left.
//!
//! Scale-out: the server keeps no state between requests, so several `attend serve` processes can
//! stand behind any load balancer.

pub mod api;
pub mod connections;
pub mod limits;
pub mod queue;
pub mod shutdown;
pub mod worker;

pub use shutdown::shutdown_signal;

use api::{ApiError, ModelInfo, TranslateRequest, Translations};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use connections::Open;
use limits::Limits;
use queue::Job;
use shutdown::Stage;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use worker::WorkerPool;

/// The page served at `/`: one HTML file with its script and style inside (no network needed).
const PAGE: &str = include_str!("page.html");

/// The explorer served at `/explore`, self-contained as the page.
const EXPLORER: &str = include_str!("explore.html");

/// How to start the service.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Run directory written by `attend train`.
    pub model: PathBuf,
    /// `best` or `last`.
    pub checkpoint: String,
    /// Worker threads, each with its own copy of the model.
    pub workers: usize,
    pub limits: Limits,
    /// After the shutdown signal, how long to wait for requests in flight (a client that stalls
    /// mid-request must not keep the server alive for ever).
    pub grace: Duration,
}

struct AppState {
    pool: WorkerPool,
    limits: Limits,
    /// Requests queued or being decoded.
    in_flight: AtomicUsize,
    stage: watch::Sender<Stage>,
    /// The connections open.
    open: Arc<Open>,
}

/// A loaded translation service, ready to serve on a listener.
pub struct Service {
    state: Arc<AppState>,
}

impl Service {
    /// Checks the options and loads the model on every worker (blocking: call it before serving).
    pub fn start(opts: &ServeOptions) -> anyhow::Result<Service> {
        opts.limits.validate()?;
        if opts.workers == 0 {
            anyhow::bail!("--workers must be at least 1");
        }
        let pool = WorkerPool::start(
            &opts.model,
            &opts.checkpoint,
            opts.workers,
            opts.limits.queue,
            opts.limits.max_batch,
        )?;
        Ok(Service {
            state: Arc::new(AppState {
                pool,
                limits: opts.limits.clone(),
                in_flight: AtomicUsize::new(0),
                stage: watch::Sender::new(Stage::Serving),
                open: Open::new(opts.limits.max_connections),
            }),
        })
    }

    /// What `GET /model` answers.
    pub fn info(&self) -> &ModelInfo {
        &self.state.pool.info
    }

    /// The routes, for serving or for driving in-process.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/health", get(health))
            .route("/model", get(model))
            .route("/translate", post(translate))
            .route("/explore", get(explorer))
            .route("/explain", post(explain))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.state.limits.max_body_bytes()))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, finishes the
    /// requests in flight (for at most `grace`; see [`shutdown`]) and returns. An error of the
    /// listener itself also ends serving, after the same shutdown.
    pub async fn serve<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
        grace: Duration,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut connections = JoinSet::new();
        let accepted = connections::accept(
            listener,
            shutdown,
            &self.state.open,
            &mut connections,
            &self.router(),
            &self.state.limits,
            &self.state.stage.subscribe(),
        )
        .await;
        shutdown::drain(&self.state, connections, grace).await;
        accepted
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn explorer() -> Html<&'static str> {
    Html(EXPLORER)
}

async fn health(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "workers": s.pool.workers(),
        "queued": s.pool.queued(),
        "in_flight": s.in_flight.load(Ordering::SeqCst),
        "connections": s.open.count(),
    }))
}

async fn model(State(s): State<Arc<AppState>>) -> Json<ModelInfo> {
    Json(s.pool.info.clone())
}

/// Counts a request as in flight for as long as it lives (the client may leave early).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> InFlight<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /translate`; once the shutdown grace is over ([`Stage::Stopped`]) it answers 503 at once,
/// whatever it was waiting for.
async fn translate(State(s): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    until_stopped(&s, answer(&s, req, false)).await
}

/// `POST /explain`: one sentence explained step by step, as `attend explain --json` prints it.
async fn explain(State(s): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    until_stopped(&s, answer(&s, req, true)).await
}

/// `answer`, or 503 at once when the shutdown grace is over ([`Stage::Stopped`]).
async fn until_stopped(
    s: &AppState,
    answer: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let mut stage = s.stage.subscribe();
    tokio::select! {
        answer = answer => answer,
        _ = stage.wait_for(|&st| st == Stage::Stopped) => Err(ApiError::unavailable(
            "the server stopped before answering: its shutdown grace period is over",
        )),
    }
}

/// Reads the body (for at most `--body-timeout`: 408 after it), queues the job (a translation,
/// or with `explain` an explanation of one text) and waits for it.
async fn answer(s: &AppState, req: Request, explain: bool) -> Result<Response, ApiError> {
    let read = tokio::time::timeout(s.limits.body_timeout, Bytes::from_request(req, &())).await;
    let Ok(body) = read else {
        return Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {:?} (--body-timeout)",
                s.limits.body_timeout
            ),
            retry_after: None,
        });
    };
    let body = body.map_err(|r: BytesRejection| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the request body is over {} bytes (--max-chars × --max-texts)",
                s.limits.max_body_bytes()
            ))
        } else {
            ApiError::bad_request(format!(
                "could not read the request body: {}",
                r.body_text()
            ))
        }
    })?;
    let req = TranslateRequest::parse(&body, &s.limits)?;
    if explain && !req.single {
        return Err(ApiError::bad_request(
            "/explain explains one sentence: send {\"text\": \"...\"}",
        ));
    }
    let _counted = InFlight::enter(&s.in_flight);
    let info = &s.pool.info;
    let (reply, answered) = oneshot::channel();
    s.pool.submit(Job {
        texts: req.texts,
        beam: req.beam.unwrap_or(info.beam).max(1),
        alpha: req.alpha.unwrap_or(info.alpha),
        layers: req.layers,
        explain,
        reply,
    })?;
    let mut out = answered
        .await
        .map_err(|_| ApiError::internal("the worker stopped before answering"))??;
    Ok(if explain {
        match out.pop().and_then(|t| t.explanation) {
            Some(ex) => Json(ex).into_response(),
            None => return Err(ApiError::internal("the worker answered no explanation")),
        }
    } else if req.single {
        match out.pop() {
            Some(t) => Json(t).into_response(),
            None => return Err(ApiError::internal("the worker answered nothing")),
        }
    } else {
        Json(Translations { translations: out }).into_response()
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such route; try GET /, GET /explore, GET /health, GET /model, POST /translate or \
         POST /explain",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed; /translate and /explain take POST, the others GET".into(),
        retry_after: None,
    }
}
