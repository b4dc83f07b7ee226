//! The page at `GET /`, driven in headless Chromium as a person would: type a sentence, press the
//! button, see the translation and the heat map, hover a target token and see its source tokens
//! light up with their weights. Chromium is steered over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ending in NUL on fds 3 and 4), so no driver is needed.
//!
//! Needs Debian's `chromium` (.ci/run installs it); elsewhere the test says why it skips. With
//! `ATTEND_SCREENSHOT=path.png` it also writes the screenshot (the README's docs/serve-screenshot.png).

mod serve_support;

use attend_cli::serve::limits::Limits;
use serde_json::{json, Value};
use serve_support::*;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for one DevTools answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// `fd` duplicated to a number ≥ 10 with close-on-exec, so the child's `dup2` onto 3 and 4 can
/// neither be a no-op nor overwrite the other end.
fn high_fd(fd: &impl AsRawFd) -> OwnedFd {
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    assert!(raw >= 10, "fcntl(F_DUPFD_CLOEXEC) failed");
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Headless Chromium with a DevTools session on one page.
struct Browser {
    child: Child,
    to: std::io::PipeWriter,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    profile: PathBuf,
}

impl Browser {
    fn launch(bin: &Path, width: u32, height: u32) -> Browser {
        static LAUNCHED: AtomicUsize = AtomicUsize::new(0);
        // Under cargo's scratch directory, one name per launch: a profile that the browser's
        // helper processes still write to as it is removed is replaced by the next run.
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-chromium-{}",
            env!("CARGO_CRATE_NAME"),
            LAUNCHED.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let (child_in, to) = std::io::pipe().unwrap();
        let (from, child_out) = std::io::pipe().unwrap();
        let (fd3, fd4) = (high_fd(&child_in), high_fd(&child_out));
        drop((child_in, child_out));
        let (r3, r4) = (fd3.as_raw_fd(), fd4.as_raw_fd());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        // its shared-memory files (--disable-dev-shm-usage) go to TMPDIR: into the profile too
        .env("TMPDIR", &profile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r3, 3) < 0 || libc::dup2(r4, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        drop((fd3, fd4));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        let Ok(v) = serde_json::from_slice::<Value>(&buf) else {
                            return;
                        };
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            session: None,
            profile,
        }
    }

    /// Opens `url` in a new page of `width`×`height` pixels and waits until the page has shown the
    /// model's description.
    fn open(&mut self, url: &str, width: u32, height: u32) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            "document.readyState === 'complete' && document.getElementById('model') !== null \
             && !document.getElementById('model').textContent.startsWith('loading')",
            Duration::from_secs(20),
        );
    }

    /// Clicks into the text box, types `sentence`, presses the button and waits for the heat map.
    fn type_and_translate(&mut self, sentence: &str) {
        let source = self.centre("#source");
        self.mouse("mousePressed", source);
        self.mouse("mouseReleased", source);
        self.call("Input.insertText", json!({ "text": sentence }));
        assert_eq!(
            self.eval("document.getElementById('source').value"),
            json!(sentence)
        );
        let button = self.centre("#go");
        self.mouse("mousePressed", button);
        self.mouse("mouseReleased", button);
        self.wait_for(
            "document.querySelectorAll('#heatmap td.cell').length > 0",
            Duration::from_secs(30),
        );
    }

    /// The weights the heat map shows, row by row (from each cell's title, 3 decimals).
    fn shown_map(&mut self) -> Vec<Vec<f64>> {
        let v = self.eval(
            "Array.from(document.querySelectorAll('#heatmap tbody tr')).map(r => \
             Array.from(r.querySelectorAll('td.cell')).map(c => Number(c.title.split(': ').pop())))",
        );
        serde_json::from_value(v).unwrap()
    }

    /// Sends a DevTools command (to the page session once attached) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("chromium reads its pipe");
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{method}: no answer from chromium ({e})"));
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method}: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("{expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 50 ms until it is true (at most `limit`).
    fn wait_for(&mut self, expr: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.eval(expr) != json!(true) {
            assert!(Instant::now() < deadline, "waited {limit:?} for {expr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The centre of the element `selector` matches, in page pixels.
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let r = self.eval(&format!(
            "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
    }

    fn mouse(&mut self, kind: &str, (x, y): (f64, f64)) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_known_strings() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_a_sentence_shows_the_translation_and_an_interactive_heat_map() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing; .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium to run this test)");
        return;
    };
    let sentence = "12 7 33 5 41 18 26 9".to_string();
    let want = expected(tiny_model(), std::slice::from_ref(&sentence), 1).remove(0);
    let server = start(1, Limits::default()).await;
    let url = server.url("/");
    let screenshot_to = std::env::var_os("ATTEND_SCREENSHOT").map(PathBuf::from);

    let checked = tokio::task::spawn_blocking(move || {
        let (width, height) = (1000, 860);
        let mut b = Browser::launch(&chromium, width, height);
        b.open(&url, width, height);
        let model_line = b.eval("document.getElementById('model').textContent");
        assert!(
            model_line.as_str().unwrap().contains("additive attention"),
            "{model_line}"
        );

        b.type_and_translate(&sentence);
        // An RNN has one map: no layer/head switch.
        assert_eq!(
            b.eval("getComputedStyle(document.getElementById('layer-switch')).display === 'none'"),
            json!(true)
        );

        // The translation and a heat map of [target tokens × source tokens] cells.
        assert_eq!(
            b.eval("document.getElementById('translation').textContent"),
            json!(want.translation)
        );
        let (rows, cols) = (want.attention.len(), want.source_tokens.len());
        assert_eq!(
            b.eval("document.querySelectorAll('#heatmap tbody tr').length"),
            json!(rows)
        );
        assert_eq!(
            b.eval("document.querySelectorAll('#heatmap td.cell').length"),
            json!(rows * cols)
        );
        assert_eq!(
            b.eval("document.querySelectorAll('#target-tokens .tgt-tok').length"),
            json!(want.target_tokens.len())
        );

        // Hover the third target token: the source tokens show its attention row.
        let k = 2;
        let token = b.centre(&format!("#target-tokens .tgt-tok:nth-child({})", k + 1));
        b.mouse("mouseMoved", token);
        b.wait_for(
            "document.querySelector('#heatmap tbody tr.active') !== null",
            Duration::from_secs(5),
        );
        assert_eq!(
            b.eval(
                "Array.from(document.querySelectorAll('#heatmap tbody tr')).findIndex(r => r.classList.contains('active'))"
            ),
            json!(k)
        );
        let shown = b.eval(
            "Array.from(document.querySelectorAll('#source-tokens .src-tok')).map(e => Number(e.dataset.weight))",
        );
        let shown: Vec<f64> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(shown.len(), cols);
        for (s, w) in shown.iter().zip(&want.attention[k]) {
            assert!((s - *w as f64).abs() <= 5e-4, "shown {s}, attention {w}");
        }
        assert_map(&b.shown_map(), &want.attention);
        let coloured = b.eval(
            "Array.from(document.querySelectorAll('#source-tokens .src-tok')).filter(e => e.style.background !== '').length",
        );
        assert_eq!(coloured, json!(cols));

        let shot = b.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png_bytes = base64_decode(shot["data"].as_str().unwrap());
        let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
        let info = decoder.read_info().expect("a PNG").info().clone();
        assert_eq!((info.width, info.height), (width, height));
        png_bytes
    })
    .await
    .unwrap();
    if let Some(path) = screenshot_to {
        std::fs::write(&path, &checked).unwrap();
        eprintln!("screenshot written to {}", path.display());
    }
    server.stop().await.unwrap();
}

/// Every cell of `got` within 5e-4 of `want` (the page shows 3 decimals).
fn assert_map(got: &[Vec<f64>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(w) {
            assert!((a - *b as f64).abs() <= 5e-4, "shown {a}, expected {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transformer_page_switches_between_layers_and_heads() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing; .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium to run this test)");
        return;
    };
    let dir = tiny_transformer();
    let sentence = "4 19 8 30 2".to_string();
    let server = start_model(dir, 1, Limits::default(), Duration::from_secs(30)).await;
    // What the page should show: the server's own per-layer, per-head maps.
    let a = post(
        &client(),
        &server.url("/translate"),
        json!({ "text": sentence, "layers": true }).to_string(),
    )
    .await;
    assert_eq!(a.status, 200);
    let attention: Vec<Vec<f32>> = serde_json::from_value(a.json["attention"].clone()).unwrap();
    let layers: Vec<Vec<Vec<Vec<f32>>>> = serde_json::from_value(a.json["layers"].clone()).unwrap();
    let url = server.url("/");
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch(&chromium, 1000, 860);
        b.open(&url, 1000, 860);
        b.type_and_translate(&sentence);
        assert_eq!(
            b.eval("getComputedStyle(document.getElementById('layer-switch')).display === 'none'"),
            json!(false)
        );
        assert_eq!(
            b.eval("Array.from(document.getElementById('layer').options).map(o => o.text)"),
            json!(["1", "2 (last)"])
        );
        assert_eq!(
            b.eval("document.getElementById('head').options.length"),
            json!(5)
        );
        // At first: the last layer, mean of the heads = the search's map.
        assert_map(&b.shown_map(), &attention);
        // Choose a head, then a layer, as with the two menus.
        let choose = |b: &mut Browser, id: &str, value: &str| {
            b.eval(&format!(
                "(() => {{ const s = document.getElementById('{id}'); s.focus(); s.value = '{value}'; \
                 s.dispatchEvent(new Event('change')); return true; }})()"
            ));
        };
        choose(&mut b, "head", "2");
        assert_map(&b.shown_map(), &layers[1][2]);
        choose(&mut b, "layer", "0");
        assert_map(&b.shown_map(), &layers[0][2]);
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}
