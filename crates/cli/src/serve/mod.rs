//! `attend serve`: translations over HTTP, with a page that shows the attention.
//!
//! ```text
//! GET  /           the page (self-contained HTML: text box, translation, attention heat map)
//! GET  /health     {"status": "ok", "workers": N, "queued": q, "in_flight": r}
//! GET  /model      ModelInfo: kind, sizes, languages, BLEU from summary.json
//! POST /translate  {"text": ".."} or {"texts": [..]}, optional "beam", "alpha" → see [`api`]
//! ```
//! The HTTP side runs on tokio and only parses, queues and waits; decoding runs on dedicated
//! worker threads, each with its own copy of the model ([`worker`]), so CPU work never holds up
//! the accept loop. Limits ([`limits`]) turn overload into 413/503 answers instead of memory or
//! latency; shutdown (SIGINT/SIGTERM) stops accepting, finishes the requests in flight, then stops
//! the workers.
//!
//! Scale-out: the server keeps no state between requests, so several `attend serve` processes can
//! stand behind any load balancer.

pub mod api;
pub mod limits;
pub mod queue;
pub mod worker;

use api::{ApiError, ModelInfo, TranslateRequest, Translations};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use limits::Limits;
use queue::Job;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use worker::WorkerPool;

/// The page served at `/`: one HTML file with its script and style inside (no network needed).
const PAGE: &str = include_str!("page.html");

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
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.state.limits.max_body_bytes()))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, finishes the
    /// requests in flight (for at most `grace`) and stops the workers once their queue is done.
    pub async fn serve<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
        grace: Duration,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (signalled, mut heard) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled.send(true);
        });
        let deadline = async move {
            let _ = heard.wait_for(|&s| s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server.into_future() => served?,
            _ = deadline => eprintln!(
                "attend serve: requests still open {grace:?} after the shutdown signal; closing them"
            ),
        }
        let state = self.state;
        tokio::task::spawn_blocking(move || state.pool.shutdown())
            .await
            .map_err(std::io::Error::other)
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "workers": s.pool.workers(),
        "queued": s.pool.queued(),
        "in_flight": s.in_flight.load(Ordering::SeqCst),
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

async fn translate(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
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
    let _counted = InFlight::enter(&s.in_flight);
    let info = &s.pool.info;
    let (reply, answer) = oneshot::channel();
    s.pool.submit(Job {
        texts: req.texts,
        beam: req.beam.unwrap_or(info.beam).max(1),
        alpha: req.alpha.unwrap_or(info.alpha),
        layers: req.layers,
        reply,
    })?;
    let mut out = answer
        .await
        .map_err(|_| ApiError::internal("the worker stopped before answering"))??;
    Ok(if req.single {
        match out.pop() {
            Some(t) => Json(t).into_response(),
            None => return Err(ApiError::internal("the worker answered nothing")),
        }
    } else {
        Json(Translations { translations: out }).into_response()
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; try GET /, GET /health, GET /model or POST /translate")
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed; /translate takes POST, the others GET".into(),
        retry_after: None,
    }
}
