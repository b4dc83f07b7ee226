//! The connections of `attend serve`: an accept loop that keeps at most `max_connections` open and
//! closes the ones that send nothing, so that clients cannot hold the server down by opening
//! connections and keeping them quiet (idle keep-alive, headers never finished) until its file
//! descriptors run out.
//!
//! ```text
//! accept ─► Open::admit ─┬─ room, or made by closing the connection idle the longest ─► task: hyper HTTP/1
//!                        └─ every connection busy with a request ─► 503, closed at once (request unread)
//! ```
//! A connection is always in one [`Phase`]; every phase but `Busy` has a deadline, past which the
//! connection is dropped (no request is being handled on it then, so nothing is lost):
//!
//! | phase  | since                                   | deadline                           |
//! |--------|-----------------------------------------|------------------------------------|
//! | `Idle` | the connection opened, or its last answer | `idle_timeout`                   |
//! | `Head` | the first byte of a request             | `header_timeout`                   |
//! | `Busy` | its headers were complete               | none here; the handler bounds the body (408) |
//!
//! hyper's own `header_read_timeout` runs from the moment a connection is ready for a request, so
//! it cannot tell an idle keep-alive connection from one trickling its headers; the bytes read
//! (`Watched`) tell the phases apart. HTTP itself stays hyper's: this file only decides when a
//! connection may open and when it must close.

use super::limits::Limits;
use super::shutdown::Stage;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a connection is doing, as far as its deadline and eviction are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request since this instant.
    Idle(Instant),
    /// A request's headers arriving, since their first byte.
    Head(Instant),
    /// A request being handled (its body read, its translation computed, its answer written).
    Busy,
}

impl Phase {
    /// When a connection in this phase is closed, `None` while a request is handled.
    fn deadline(self, limits: &Limits) -> Option<Instant> {
        match self {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_timeout),
            Phase::Busy => None,
        }
    }
}

/// One open connection, shared by its task (which moves its phase) and the accept loop (which may
/// ask it to close to make room).
#[derive(Debug)]
pub struct Slot {
    phase: watch::Sender<Phase>,
    evicted: AtomicBool,
    evict: Notify,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            phase: watch::Sender::new(Phase::Idle(Instant::now())),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Bytes arrived: on an idle connection they start a request's headers.
    fn heard(&self) {
        self.phase.send_if_modified(|p| match p {
            Phase::Idle(_) => {
                *p = Phase::Head(Instant::now());
                true
            }
            _ => false,
        });
    }

    /// Its headers are complete: the request is handed to the router.
    fn busy(&self) {
        self.phase.send_replace(Phase::Busy);
    }

    /// The answer is made: the connection waits for the next request.
    fn answered(&self) {
        self.phase.send_replace(Phase::Idle(Instant::now()));
    }

    fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }
}

/// The open connections, oldest first, and how many may be open.
#[derive(Debug)]
pub struct Open {
    slots: Mutex<Vec<Arc<Slot>>>,
    max: usize,
}

impl Open {
    pub fn new(max: usize) -> Arc<Open> {
        Arc::new(Open {
            slots: Mutex::new(Vec::new()),
            max,
        })
    }

    /// The slots; nothing panics while they are held, so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection. At the limit, the connection idle the longest (waiting for a
    /// request, or for the rest of its headers) is asked to close and the new one takes its place;
    /// `None` when every connection is busy with a request.
    pub fn admit(self: &Arc<Open>) -> Option<Place> {
        let mut slots = self.lock();
        let live = slots.iter().filter(|s| !s.is_evicted()).count();
        if live >= self.max {
            let (_, victim) = slots
                .iter()
                .filter(|s| !s.is_evicted())
                .filter_map(|s| match s.phase() {
                    Phase::Idle(since) | Phase::Head(since) => Some((since, s)),
                    Phase::Busy => None,
                })
                .min_by_key(|(since, _)| *since)?;
            victim.evicted.store(true, Ordering::SeqCst);
            victim.evict.notify_one();
        }
        let slot = Arc::new(Slot::new());
        slots.push(Arc::clone(&slot));
        Some(Place {
            open: Arc::clone(self),
            slot,
        })
    }

    /// Connections open, those asked to close included.
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

/// A connection's place in [`Open`], given back when its task ends or is aborted.
#[derive(Debug)]
pub struct Place {
    open: Arc<Open>,
    pub slot: Arc<Slot>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.open.lock().retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

/// Accepts connections on `listener` until `stop` completes, each placed in `open` and served on a
/// task of `tasks`. Running out of file descriptors pauses accepting for 100 ms instead of
/// spinning; an error of the listener itself is returned.
pub async fn accept(
    listener: TcpListener,
    stop: impl Future<Output = ()>,
    open: &Arc<Open>,
    tasks: &mut JoinSet<()>,
    router: &Router,
    limits: &Limits,
    stage: &watch::Receiver<Stage>,
) -> io::Result<()> {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => match open.admit() {
                    Some(place) => {
                        let served = serve(tcp, place, router.clone(), limits.clone(), stage.clone());
                        tasks.spawn(served);
                    }
                    None => refuse(&tcp, limits.max_connections),
                },
                Err(e) if is_transient(&e) => {}
                Err(e) if is_exhaustion(&e) => {
                    eprintln!("attend serve: cannot accept a connection ({e}); retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The client's own trouble: it left before its connection was accepted.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Out of descriptors or memory: it passes as connections close.
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Answers 503 without reading the request, and closes the connection (by dropping it).
fn refuse(tcp: &TcpStream, max: usize) {
    let body = serde_json::json!({
        "error": format!(
            "all {max} connections (--max-connections) are busy with requests; retry shortly"
        )
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer takes the answer whole; if not, the client sees the close.
    let _ = tcp.try_write(answer.as_bytes());
}

/// What woke a connection's task.
enum Event {
    /// Its phase moved (a new deadline).
    Moved,
    /// Its deadline passed.
    Expired,
    /// It is asked to close: to make room, or because the server is stopping.
    Close,
}

/// Serves one connection with hyper until it ends, passes its deadline, or is asked to close.
async fn serve(
    tcp: TcpStream,
    place: Place,
    router: Router,
    limits: Limits,
    mut stage: watch::Receiver<Stage>,
) {
    let slot = Arc::clone(&place.slot);
    let mut phase = slot.phase.subscribe();
    let router = TowerToHyperService::new(router);
    let handler = {
        let slot = Arc::clone(&slot);
        service_fn(move |req: hyper::Request<Incoming>| {
            slot.busy();
            let answer = router.call(req);
            let slot = Arc::clone(&slot);
            async move {
                let answer = answer.await;
                slot.answered();
                answer
            }
        })
    };
    let io = TokioIo::new(Watched {
        io: tcp,
        slot: Arc::clone(&slot),
    });
    let conn = http1::Builder::new().serve_connection(io, handler);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = phase.borrow_and_update().deadline(&limits);
        let event = tokio::select! {
            // A client's protocol error or reset ends only its own connection.
            _ = conn.as_mut() => return,
            _ = expire(deadline) => Event::Expired,
            _ = phase.changed() => Event::Moved,
            _ = slot.evict.notified(), if !closing => Event::Close,
            changed = stage.changed(), if !closing => match changed {
                Ok(()) if *stage.borrow() == Stage::Serving => Event::Moved,
                _ => Event::Close,
            },
        };
        let busy = slot.phase() == Phase::Busy;
        match event {
            Event::Moved => {}
            Event::Expired | Event::Close if !busy => return,
            Event::Expired => {}
            Event::Close => {
                // Finish the request being handled, then close.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Completes at `deadline`, never without one.
async fn expire(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A TCP stream that tells its slot when bytes arrive.
struct Watched {
    io: TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.heard();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_connection_idle_longest_makes_room_and_busy_ones_never_do() {
        let open = Open::new(2);
        let a = open.admit().unwrap();
        let b = open.admit().unwrap();
        b.slot.busy();
        // Full: `a` (idle) is asked to close, the newcomer takes its place.
        let c = open.admit().unwrap();
        assert!(a.slot.is_evicted());
        assert!(!b.slot.is_evicted() && !c.slot.is_evicted());
        assert_eq!(open.count(), 3, "`a` counts until its task has closed it");
        // Every live connection busy: refused.
        c.slot.busy();
        assert!(open.admit().is_none());
        drop(a);
        assert_eq!(open.count(), 2);
        assert!(open.admit().is_none());
        // `b` answered and waits again: it makes room.
        b.slot.answered();
        let d = open.admit().unwrap();
        assert!(b.slot.is_evicted() && !d.slot.is_evicted());
    }

    #[test]
    fn half_sent_headers_make_room_like_idle_connections_oldest_first() {
        let open = Open::new(2);
        let a = open.admit().unwrap();
        let b = open.admit().unwrap();
        b.slot.heard();
        assert!(matches!(b.slot.phase(), Phase::Head(_)));
        // More bytes of the same headers do not restart their clock.
        let first = b.slot.phase();
        b.slot.heard();
        assert_eq!(b.slot.phase(), first);
        a.slot.busy();
        let _c = open.admit().unwrap();
        assert!(b.slot.is_evicted() && !a.slot.is_evicted());
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(7),
            header_timeout: Duration::from_secs(3),
            ..Limits::default()
        };
        let t = Instant::now();
        assert_eq!(
            Phase::Idle(t).deadline(&limits),
            Some(t + Duration::from_secs(7))
        );
        assert_eq!(
            Phase::Head(t).deadline(&limits),
            Some(t + Duration::from_secs(3))
        );
        assert_eq!(Phase::Busy.deadline(&limits), None);
    }
}
