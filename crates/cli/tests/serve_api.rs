//! `attend serve` over real HTTP on a loopback port: every route, every bad request, overload,
//! 200 concurrent clients, graceful shutdown, and the binary itself (SIGTERM) — answers compared
//! with `translate_text` / `attend translate`.

mod serve_support;

use attend_cli::serve::limits::Limits;
use serve_support::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_model_page_and_unknown_routes() {
    let server = start(1, Limits::default()).await;
    let c = client();
    let h = get(&c, &server.url("/health")).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json["status"], "ok");
    assert_eq!(h.json["workers"], 1);
    assert_eq!(h.json["queued"], 0);

    let m = get(&c, &server.url("/model")).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["kind"], "rnn");
    assert_eq!(m.json["cell"], "lstm");
    assert_eq!(m.json["attention"], "additive");
    assert_eq!(m.json["corpus"], "reverse");
    assert_eq!(m.json["checkpoint"], "best");
    assert!(m.json["params"].as_u64().unwrap() > 10_000);
    assert_eq!(m.json["src_vocab"], 55); // 51 integers + 4 special tokens
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_model().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(m.json["bleu"], summary["test_bleu"]);
    assert_eq!(m.json["summary"], summary);

    let page = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    for needle in [
        "id=\"source\"",
        "id=\"translation\"",
        "id=\"heatmap\"",
        "/translate",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    // Self-contained: nothing loaded from another host.
    for outside in ["src=\"http", "href=\"http", "@import", "url(http", "//cdn"] {
        assert!(!html.contains(outside), "the page loads {outside}…");
    }

    let nf = get(&c, &server.url("/nope")).await;
    assert_eq!(nf.status, 404);
    assert!(nf.json["error"]
        .as_str()
        .unwrap()
        .contains("POST /translate"));
    let wrong = get(&c, &server.url("/translate")).await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.json["error"].is_string());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_requests_answer_what_translate_text_gives() {
    let texts = sentences(6, 11);
    let greedy = expected(tiny_model(), &texts, 1);
    let beam4 = expected(tiny_model(), &texts, 4);
    // The model has learned the task: a short sentence comes out reversed.
    let short = expected(tiny_model(), &["12 7 33 5".to_string()], 1);
    assert_eq!(short[0].translation, "5 33 7 12");
    assert_eq!(greedy[0].target_tokens.last().unwrap(), "</s>");

    let server = start(2, Limits::default()).await;
    let c = client();
    let url = server.url("/translate");
    // {"text"}: the model's default beam (1 for this run).
    let a = post(
        &c,
        &url,
        serde_json::json!({ "text": texts[0] }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_same(&a.json, &greedy[0]);
    let a = post(
        &c,
        &url,
        serde_json::json!({ "text": texts[1], "beam": 4 }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_same(&a.json, &beam4[1]);
    // {"texts"}: one answer per text, in order.
    let a = post(
        &c,
        &url,
        serde_json::json!({ "texts": texts, "beam": 4 }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    let list = a.json["translations"].as_array().unwrap();
    assert_eq!(list.len(), texts.len());
    for (got, want) in list.iter().zip(&beam4) {
        assert_same(got, want);
    }
    // An empty text translates to nothing (no crash, no attention rows).
    let a = post(&c, &url, r#"{"text": ""}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["translation"], "");
    assert_eq!(a.json["attention"], serde_json::json!([]));
    // Unknown words become <unk> and still translate.
    let a = post(&c, &url, r#"{"text": "7 banana 9"}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["source_tokens"][1], "<unk>");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_and_a_json_error() {
    let limits = Limits {
        max_chars: 40,
        max_texts: 3,
        ..Limits::default()
    };
    let body_limit = limits.max_body_bytes();
    let server = start(1, limits).await;
    let c = client();
    let url = server.url("/translate");
    let long = "1 ".repeat(30);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"text\": \"1 2".into(), 400, "not a valid request"),
        ("not json at all".into(), 400, "not a valid request"),
        ("".into(), 400, "not a valid request"),
        ("{}".into(), 400, "missing field"),
        (r#"{"beam": 2}"#.into(), 400, "missing field"),
        (r#"{"text": 12}"#.into(), 400, "invalid type"),
        (r#"{"texts": "1 2"}"#.into(), 400, "invalid type"),
        (
            r#"{"text": "1", "colour": "red"}"#.into(),
            400,
            "unknown field",
        ),
        (r#"{"text": "1", "texts": ["2"]}"#.into(), 400, "not both"),
        (r#"{"texts": []}"#.into(), 400, "empty"),
        (r#"{"text": "1", "beam": 0}"#.into(), 400, "between 1"),
        (r#"{"text": "1", "beam": 1000}"#.into(), 400, "between 1"),
        (format!(r#"{{"text": "{long}"}}"#), 413, "at most 40"),
        (
            r#"{"texts": ["1", "2", "3", "4"]}"#.into(),
            413,
            "at most 3",
        ),
        (
            format!(r#"{{"text": "{}"}}"#, "9".repeat(body_limit + 10)),
            413,
            "bytes",
        ),
    ];
    for (body, status, needle) in &cases {
        let a = post(&c, &url, body.clone()).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(a.status, *status, "{shown}: {}", a.json);
        let msg = a.json["error"].as_str().expect("an \"error\" string");
        assert!(msg.contains(needle), "{shown}: {msg}");
    }
    // Invalid UTF-8 is malformed JSON too.
    let a = post(&c, &url, vec![b'{', 0xff, 0xfe, b'}']).await;
    assert_eq!(a.status, 400);
    // After all that the server still translates.
    let a = post(&c, &url, r#"{"text": "1 2 3"}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["translation"], "3 2 1");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_recovers() {
    let limits = Limits {
        queue: 1,
        max_batch: 1,
        ..Limits::default()
    };
    let server = start(1, limits).await;
    let c = client();
    let url = server.url("/translate");
    // Heavy requests (20 sentences, beam 8) from 40 clients at once: one decodes, one waits,
    // the others are refused at once.
    let heavy = serde_json::json!({ "texts": sentences(20, 5), "beam": 8 }).to_string();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (c, url, body) = (c.clone(), url.clone(), heavy.clone());
            tokio::spawn(async move { post(&c, &url, body).await })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let a = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("answered within 120 s")
            .unwrap();
        match a.status {
            200 => ok += 1,
            503 => {
                busy += 1;
                assert_eq!(a.retry_after.as_deref(), Some("1"));
                assert!(a.json["error"].as_str().unwrap().contains("busy"));
            }
            s => panic!("unexpected status {s}: {}", a.json),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} answered, {busy} refused");
    assert_eq!(ok + busy, 40);
    // Not wedged: the queue drained and a new request is served.
    let a = post(&c, &url, r#"{"text": "4 5"}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["translation"], "5 4");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_mixing_good_and_bad_requests() {
    let texts = sentences(40, 23);
    let greedy = expected(tiny_model(), &texts, 1);
    let beam4 = expected(tiny_model(), &texts, 4);
    let limits = Limits {
        queue: 256,
        max_chars: 100,
        ..Limits::default()
    };
    let server = start(2, limits).await;
    let c = client();
    let url = server.url("/translate");
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (c, url) = (c.clone(), url.clone());
            let t = i % texts.len();
            let body = match i % 5 {
                0 => format!("{{\"text\": \"{}", texts[t]), // malformed
                1 => serde_json::json!({ "text": "7 ".repeat(60) }).to_string(), // 120 chars > 100
                2 => serde_json::json!({ "text": texts[t] }).to_string(),
                3 => serde_json::json!({ "text": texts[t], "beam": 4 }).to_string(),
                _ => serde_json::json!({ "texts": [texts[t], texts[(t + 1) % texts.len()]] })
                    .to_string(),
            };
            tokio::spawn(async move { (i, post(&c, &url, body).await) })
        })
        .collect();
    let mut counts = [0usize; 5];
    for task in tasks {
        let (i, a) = tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("every client answered within 300 s")
            .unwrap();
        let t = i % texts.len();
        match i % 5 {
            0 => assert_eq!(a.status, 400),
            1 => assert_eq!(a.status, 413),
            2 => {
                assert_eq!(a.status, 200, "{}", a.json);
                assert_same(&a.json, &greedy[t]);
            }
            3 => {
                assert_eq!(a.status, 200, "{}", a.json);
                assert_same(&a.json, &beam4[t]);
            }
            _ => {
                assert_eq!(a.status, 200, "{}", a.json);
                let list = a.json["translations"].as_array().unwrap();
                assert_same(&list[0], &greedy[t]);
                assert_same(&list[1], &greedy[(t + 1) % texts.len()]);
            }
        }
        counts[i % 5] += 1;
    }
    assert_eq!(counts, [40; 5]);
    eprintln!(
        "200 clients answered in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let h = get(&c, &server.url("/health")).await;
    assert_eq!(h.json["in_flight"], 0);
    assert_eq!(h.json["queued"], 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let texts = sentences(24, 31);
    let want = expected(tiny_model(), &texts, 8);
    let mut server = start(1, Limits::default()).await;
    let c = client();
    let url = server.url("/translate");
    let body = serde_json::json!({ "texts": texts, "beam": 8 }).to_string();
    let request = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move { post(&c, &url, body).await })
    };
    // Wait (at most 10 s) until the server holds the request, then ask it to stop.
    let health = server.url("/health");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = get(&c, &health).await;
        if h.json["in_flight"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.begin_stop();
    let a = tokio::time::timeout(Duration::from_secs(120), request)
        .await
        .expect("answered within 120 s")
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.json);
    for (got, w) in a.json["translations"].as_array().unwrap().iter().zip(&want) {
        assert_same(got, w);
    }
    let addr = server.addr;
    server.join().await.unwrap();
    // Stopped: nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalled_mid_request_cannot_hold_shutdown_past_the_grace() {
    let mut server = start_with_grace(1, Limits::default(), Duration::from_secs(1)).await;
    // The headers promise 100 bytes of body; 10 come, then nothing.
    let mut stalled = std::net::TcpStream::connect(server.addr).unwrap();
    let head = "POST /translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{\"text\": ";
    stalled.write_all(head.as_bytes()).unwrap();
    // A request served on another connection after that one was opened.
    let a = post(&client(), &server.url("/translate"), r#"{"text": "1 2"}"#).await;
    assert_eq!(a.status, 200);
    let t0 = Instant::now();
    server.begin_stop();
    server.join().await.unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(20),
        "stopped after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transformer_answers_every_layer_and_head_when_asked() {
    let dir = tiny_transformer();
    let texts = sentences(3, 61);
    let want = expected(dir, &texts, 1);
    let server = start_model(dir, 1, Limits::default(), Duration::from_secs(30)).await;
    let c = client();
    let m = get(&c, &server.url("/model")).await;
    assert_eq!(m.json["kind"], "transformer");
    assert_eq!(m.json["attention"], "multi-head");
    assert_eq!(m.json["heads"], 4);
    assert_eq!(m.json["embedding"], 32);
    let url = server.url("/translate");
    // Without "layers": the averaged map only, as for any model.
    let a = post(
        &c,
        &url,
        serde_json::json!({ "text": texts[0] }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.json.get("layers").is_none());
    assert_same(&a.json, &want[0]);
    let a = post(
        &c,
        &url,
        serde_json::json!({ "texts": texts, "layers": true }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    for (got, w) in a.json["translations"].as_array().unwrap().iter().zip(&want) {
        assert_same(got, w);
        let layers: Vec<Vec<Vec<Vec<f32>>>> =
            serde_json::from_value(got["layers"].clone()).expect("[layers][heads][T][S]");
        assert_eq!(layers.len(), 2);
        let (rows, cols) = (w.attention.len(), w.source_tokens.len());
        for heads in &layers {
            assert_eq!(heads.len(), 4);
            for map in heads {
                assert_eq!(map.len(), rows);
                for row in map {
                    assert_eq!(row.len(), cols);
                    let sum: f32 = row.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-4, "row sums to {sum}");
                }
            }
        }
        // The search's map is the last layer's, averaged over heads (recomputed teacher-forced).
        let last = &layers[1];
        for r in 0..rows {
            for s in 0..cols {
                let mean = last.iter().map(|h| h[r][s]).sum::<f32>() / 4.0;
                assert!(
                    (mean - w.attention[r][s]).abs() < 1e-4,
                    "row {r}, col {s}: mean of heads {mean}, search {}",
                    w.attention[r][s]
                );
            }
        }
    }
    server.stop().await.unwrap();
}

/// The `attend` binary: `attend serve` answers as `attend translate` prints, and SIGTERM stops it
/// cleanly (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_like_attend_translate_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_attend");
    let dir = tiny_model();
    let texts = sentences(8, 47);
    let mut translate = Command::new(bin)
        .args(["translate", "--model"])
        .arg(dir)
        .args(["--beam", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    translate
        .stdin
        .take()
        .unwrap()
        .write_all((texts.join("\n") + "\n").as_bytes())
        .unwrap();
    let printed = translate.wait_with_output().unwrap();
    assert!(printed.status.success());
    let printed: Vec<String> = String::from_utf8(printed.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(printed.len(), texts.len());

    let mut serve = Binary::start(dir, &["--workers", "1"], None);
    let c = client();
    let a = post(
        &c,
        &serve.url("/translate"),
        serde_json::json!({ "texts": texts, "beam": 4 }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    let got: Vec<&str> = a.json["translations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["translation"].as_str().unwrap())
        .collect();
    assert_eq!(got, printed);

    let (status, _) = serve.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let rest = serve.rest_of_stderr();
    assert!(rest.contains("stopped"), "{rest}");
}
