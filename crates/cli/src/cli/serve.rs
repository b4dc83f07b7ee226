//! `attend serve --model DIR [--addr 127.0.0.1:8080] [--workers N] [--max-chars N] [--queue N]
//! [--max-connections N] [--idle-timeout S] [--header-timeout S] [--body-timeout S] [--grace S]`:
//! the HTTP API and the attention page (see [`crate::serve`]).

use crate::serve::limits::Limits;
use crate::serve::{shutdown_signal, ServeOptions, Service};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serve translations over HTTP, with a page that shows the attention.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Run directory written by `attend train`.
    #[arg(long)]
    model: PathBuf,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// Address to listen on (use 0.0.0.0:PORT to accept other machines; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Inference threads, each with its own copy of the model (default: 2).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Most characters in one text; longer ones get 413.
    #[arg(long, default_value_t = Limits::default().max_chars)]
    max_chars: usize,
    /// Most texts in one request; more get 413.
    #[arg(long, default_value_t = Limits::default().max_texts)]
    max_texts: usize,
    /// Most requests waiting for a worker; beyond it, 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().queue)]
    queue: usize,
    /// Most sentences a worker decodes together (waiting requests are merged up to this).
    #[arg(long, default_value_t = Limits::default().max_batch)]
    max_batch: usize,
    /// Most connections open at once; beyond it the one idle the longest is closed, and when
    /// every one is busy with a request a new one gets 503.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may wait without sending a request before it is closed.
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Seconds a request's headers may take from their first byte; then the connection is closed.
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout: u64,
    /// Seconds a request's body may take after its headers; then it gets 408.
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout: u64,
    /// On SIGINT/SIGTERM, seconds the requests in flight get to finish; then the server answers
    /// 503 to the ones left (queued or being decoded) and exits.
    #[arg(long, default_value_t = 30.0)]
    grace: f64,
}

pub fn run(a: ServeArgs) -> Result<()> {
    if !(a.grace.is_finite() && a.grace >= 0.0) {
        bail!("--grace must be a number of seconds ≥ 0");
    }
    let opts = ServeOptions {
        model: a.model,
        checkpoint: a.checkpoint,
        workers: a.workers,
        limits: Limits {
            max_chars: a.max_chars,
            max_texts: a.max_texts,
            queue: a.queue,
            max_batch: a.max_batch,
            max_connections: a.max_connections,
            idle_timeout: Duration::from_secs(a.idle_timeout),
            header_timeout: Duration::from_secs(a.header_timeout),
            body_timeout: Duration::from_secs(a.body_timeout),
            ..Limits::default()
        },
        grace: Duration::from_secs_f64(a.grace),
    };
    let service = Service::start(&opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.addr)
            .await
            .with_context(|| format!("cannot listen on {}", a.addr))?;
        let addr = listener.local_addr()?;
        let info = service.info();
        eprintln!(
            "attend serve: {} ({} {}, {} parameters) with {} workers, listening on http://{addr}",
            opts.model.display(),
            info.kind,
            info.attention,
            info.params,
            opts.workers
        );
        service
            .serve(listener, shutdown_signal(), opts.grace)
            .await?;
        eprintln!("attend serve: stopped");
        Ok(())
    })
}
