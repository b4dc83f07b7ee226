//! What clients cannot do to `attend serve`, over real sockets on loopback: hold it down with
//! connections that send nothing (idle, or headers never finished) until its file descriptors run
//! out, trickle their headers or bodies for ever, or keep it from stopping after SIGTERM.
//!
//! The bounds on time asserted here are the ones the server promises (a good request answered
//! within a second, a connection closed after its timeout, the process gone after `--grace`), each
//! with a generous margin.

mod serve_support;

use attend_cli::serve::limits::Limits;
use serve_support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Headers of a request that never end (no blank line).
const HALF_HEADERS: &str = "POST /translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/";

/// Headers of a request whose body (100 bytes promised) never comes.
const NO_BODY: &str = "POST /translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                       content-length: 100\r\n\r\n{\"text\": ";

fn open(addr: &str, first: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(first.as_bytes()).unwrap();
    s
}

/// Reads until the server closes the connection (at most `limit`); returns what it sent and when
/// it closed (`None`: still open after `limit`).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return (String::from_utf8_lossy(&got).into(), None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into(), Some(t0.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into(), Some(t0.elapsed())),
        }
    }
}

/// A request for `4 5` on a new connection, and how long it took from the connect.
async fn good_request(addr: &str) -> (Answer, Duration) {
    let t0 = Instant::now();
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = c
        .post(format!("http://{addr}/translate"))
        .body(r#"{"text": "4 5"}"#)
        .send()
        .await
        .expect("the good request is answered within 5 s");
    let status = r.status().as_u16();
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let took = t0.elapsed();
    (
        Answer {
            status,
            retry_after: None,
            json,
        },
        took,
    )
}

/// More idle and half-sent connections than `--max-connections` (default 256), against a
/// process allowed 300 file descriptors: without a limit they take every descriptor and the good
/// request is never accepted; with it the connections idle the longest make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_quiet_connections_than_the_limit_leave_room_for_a_good_request() {
    let mut serve = Binary::start(tiny_model(), &["--workers", "1"], Some(300));
    let quiet: Vec<TcpStream> = (0..400)
        .map(|i| open(&serve.addr, if i % 2 == 0 { "" } else { HALF_HEADERS }))
        .collect();
    let (a, took) = good_request(&serve.addr).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["translation"], "5 4");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    eprintln!("good request answered in {took:?} beside 400 quiet connections");
    // The oldest quiet connections were closed to make room.
    let mut first = quiet.into_iter().next().unwrap();
    assert!(read_until_closed(&mut first, Duration::from_secs(5))
        .1
        .is_some());
    let (status, _) = serve.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
}

fn limits(max_connections: usize, idle: u64, header: u64, body: u64) -> Limits {
    Limits {
        max_connections,
        idle_timeout: Duration::from_secs(idle),
        header_timeout: Duration::from_secs(header),
        body_timeout: Duration::from_secs(body),
        ..Limits::default()
    }
}

/// Asserts that `s` is closed between `at` and `at` + 5 s from now, and returns what it was sent.
fn closed_after(mut s: TcpStream, at: Duration, what: &str) -> String {
    let (got, closed) = read_until_closed(&mut s, at + Duration::from_secs(5));
    let closed = closed.unwrap_or_else(|| panic!("{what}: still open {:?} later", at * 2));
    assert!(
        closed + Duration::from_millis(100) >= at,
        "{what}: closed after {closed:?}, before its timeout {at:?}"
    );
    eprintln!("{what}: closed after {closed:?} (timeout {at:?})");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_sent_and_trickling_connections_are_closed_after_their_timeouts() {
    let server = start(1, limits(64, 3, 1, 2)).await;
    let addr = server.addr.to_string();
    let idle = open(&addr, "");
    let half = open(&addr, HALF_HEADERS);
    // Headers trickled one byte every 200 ms (7 s in all): the header clock runs from their first
    // byte, so the connection is closed long before they are complete.
    let trickle = std::thread::spawn({
        let mut s = open(&addr, "P");
        move || {
            let t0 = Instant::now();
            let rest = b"OST /translate HTTP/1.1\r\nhost: x\r\nx-a: b\r\n";
            let sent = rest
                .iter()
                .take_while(|&&b| {
                    std::thread::sleep(Duration::from_millis(200));
                    s.write_all(&[b]).is_ok()
                })
                .count();
            (sent, rest.len(), t0.elapsed())
        }
    });
    let no_body = open(&addr, NO_BODY);
    // A keep-alive connection that was answered, then went quiet.
    let mut answered = open(
        &addr,
        "POST /translate HTTP/1.1\r\nhost: x\r\ncontent-length: 15\r\n\r\n{\"text\": \"4 5\"}",
    );
    let t0 = Instant::now();
    let mut head = [0u8; 12];
    answered.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let checks = [
        std::thread::spawn(move || closed_after(half, Duration::from_secs(1), "half-sent headers")),
        std::thread::spawn(move || closed_after(idle, Duration::from_secs(3), "idle connection")),
        std::thread::spawn(move || closed_after(no_body, Duration::from_secs(2), "stalled body")),
        std::thread::spawn(move || {
            let at = Duration::from_secs(3).saturating_sub(t0.elapsed());
            closed_after(answered, at, "answered, then idle")
        }),
    ];
    let sent: Vec<String> = checks.into_iter().map(|c| c.join().unwrap()).collect();
    // Only the stalled body gets an answer: 408, naming the flag.
    assert!(sent[0].is_empty() && sent[1].is_empty());
    assert!(sent[2].starts_with("HTTP/1.1 408"), "{}", sent[2]);
    assert!(sent[2].contains("--body-timeout"), "{}", sent[2]);
    let (written, total, cut) = trickle.join().unwrap();
    eprintln!("trickled headers: cut after {written} of {total} bytes, {cut:?}");
    assert!(written < total, "the trickled headers were all taken");
    assert!(
        cut >= Duration::from_secs(1) && cut < Duration::from_secs(6),
        "trickled headers cut after {cut:?}"
    );
    // The server still serves.
    let (a, _) = good_request(&addr).await;
    assert_eq!(a.json["translation"], "5 4");
    server.stop().await.unwrap();
}

/// A request whose headers are complete and whose body stalls after 10 of its 100 bytes; returned
/// once the server is reading that body (it has answered `100 Continue`), so the connection is
/// busy with a request.
fn stalled_body(addr: &str) -> TcpStream {
    let mut s = open(
        addr,
        "POST /translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: 100\r\nexpect: 100-continue\r\n\r\n",
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("100 Continue within 10 s");
        got.push(byte[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 100"), "{got:?}");
    s.write_all(b"{\"text\": ").unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_connection_busy_a_new_one_is_refused_at_once_then_served() {
    let server = start(1, limits(3, 60, 10, 2)).await;
    let addr = server.addr.to_string();
    let busy: Vec<TcpStream> = (0..3).map(|_| stalled_body(&addr)).collect();
    let t0 = Instant::now();
    let mut refused = open(&addr, "");
    let (got, closed) = read_until_closed(&mut refused, Duration::from_secs(1));
    let took = t0.elapsed();
    assert!(closed.is_some(), "still open after {took:?}");
    // It sent nothing, so the answer is not lost to a reset: 503, then closed.
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("retry-after: 1") && got.contains("--max-connections"));
    eprintln!("refused in {took:?}");
    // The stalled bodies time out (408) and free their places.
    for mut s in busy {
        let (got, _) = read_until_closed(&mut s, Duration::from_secs(10));
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    }
    let (a, _) = good_request(&addr).await;
    assert_eq!(a.status, 200);
    server.stop().await.unwrap();
}

/// SIGTERM with one request being decoded and 64 waiting (about 10 s of work): the process is
/// gone within the grace period plus a small margin, and every client gets an answer, 503 for the
/// requests the grace period could not finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_queue_stops_within_the_grace_period() {
    let grace = Duration::from_secs(1);
    let mut serve = Binary::start(
        tiny_model(),
        &[
            "--workers",
            "1",
            "--queue",
            "64",
            "--max-batch",
            "1",
            "--max-texts",
            "256",
            "--grace",
            "1",
        ],
        None,
    );
    let c = client();
    let url = serve.url("/translate");
    let heavy = serde_json::json!({ "texts": sentences(256, 7), "beam": 16 }).to_string();
    let tasks: Vec<_> = (0..65)
        .map(|_| {
            let (c, url, body) = (c.clone(), url.clone(), heavy.clone());
            tokio::spawn(async move { post(&c, &url, body).await })
        })
        .collect();
    // Wait (at most 30 s) until the queue is full.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = get(&c, &serve.url("/health")).await;
        if h.json["queued"] == 64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never filled: {}",
            h.json
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, took) = serve.terminate(Duration::from_secs(300));
    assert!(status.success(), "exit status {status}");
    let (mut done, mut unavailable) = (0, 0);
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            200 => done += 1,
            // Stopped by the shutdown, or refused before it (the queue was full).
            503 => {
                let error = a.json["error"].as_str().unwrap();
                assert!(
                    error.contains("stopped") || error.contains("busy"),
                    "{error}"
                );
                unavailable += 1;
            }
            s => panic!("status {s}: {}", a.json),
        }
    }
    eprintln!(
        "stopped {took:?} after SIGTERM (grace {grace:?}): {done} answered, {unavailable} 503"
    );
    assert!(
        took < grace + Duration::from_secs(2),
        "stopped {took:?} after SIGTERM, grace {grace:?}"
    );
    assert!(unavailable >= 32, "only {unavailable} of 65 answered 503");
    let rest = serve.rest_of_stderr();
    assert!(rest.contains("answering them 503"), "{rest}");
}
