//! `attend serve --model DIR [--addr 127.0.0.1:8080] [--workers N] [--max-chars N] [--queue N]`:
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
    /// On SIGINT/SIGTERM, seconds to wait for the requests in flight before closing them.
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
