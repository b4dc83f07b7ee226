//! Stopping `attend serve`: on SIGINT or SIGTERM the server stops accepting, closes its idle
//! connections, and gives the requests in flight at most `--grace` seconds; then it stops whatever
//! is still running.
//!
//! ```text
//! Serving ──signal──► Draining ──all answered, workers idle──► stopped
//!                        │ (queue closed: new requests 503; idle connections closed)
//!                        └──grace over──► Stopped: queued requests 503 (never started),
//!                                         requests being decoded 503, FLUSH to write them, stopped
//! ```
//! The workers are threads that cannot be interrupted mid-batch; at the hard stop they are left to
//! finish their batch on their own (the process exits without waiting for them), so a full queue
//! or a long decode never keeps the server alive past `grace` plus [`FLUSH`].

use super::AppState;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinSet;

/// Where the server is in its life; connections and request handlers watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Serving,
    /// Shutdown signalled: no new requests, the ones in flight finish.
    Draining,
    /// The grace period is over: every request still open is answered 503.
    Stopped,
}

/// After the grace period, how long the 503 answers may take to be written before the connections
/// left are dropped.
pub const FLUSH: Duration = Duration::from_millis(500);

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

/// Runs the shutdown once accepting has stopped: the requests in flight on `connections` get
/// `grace` to be answered; then the rest are answered 503 and, after [`FLUSH`], dropped.
pub(super) async fn drain(state: &AppState, mut connections: JoinSet<()>, grace: Duration) {
    state.pool.close();
    state.stage.send_replace(Stage::Draining);
    let settled = async {
        while connections.join_next().await.is_some() {}
        state.pool.finished().await;
    };
    if tokio::time::timeout(grace, settled).await.is_ok() {
        return;
    }
    let in_flight = state.in_flight.load(Ordering::SeqCst);
    let never_started = state.pool.abandon();
    state.stage.send_replace(Stage::Stopped);
    eprintln!(
        "attend serve: {in_flight} requests still open {grace:?} after the shutdown signal \
         ({never_started} never started); answering them 503 and stopping"
    );
    let _ = tokio::time::timeout(FLUSH, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}
