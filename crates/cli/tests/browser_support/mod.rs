//! Shared by the browser tests (`serve_page.rs`, `serve_explore.rs`): headless Chromium driven
//! through the `headless_chrome` crate (DevTools protocol over a WebSocket), with the system's
//! Debian `chromium` — the crate's `fetch` feature, which downloads a browser, stays off.
//!
//! Without a `chromium` on `PATH` the tests say why and skip, except under CI (`CI` set), where
//! .ci/run installs it and a missing browser is a failure.

#![allow(dead_code)] // each test binary uses its own part of this module

use headless_chrome::protocol::cdp::{Emulation, Page};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `chromium` (or `chromium-browser`) on `PATH`; `None` (and a note) where it is missing outside CI.
pub fn find_chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing; .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium to run this test)");
    }
    found
}

/// Headless Chromium with one page of a fixed size.
pub struct Page1 {
    /// Kept alive for as long as the page is used (dropping it ends the browser).
    _browser: Browser,
    pub tab: Arc<Tab>,
}

impl Page1 {
    /// Starts `chromium` and opens `url` in a page of `width`×`height` CSS pixels, then waits until
    /// the page has shown the model's description (`#model` no longer says "loading").
    pub fn open(chromium: PathBuf, url: &str, width: u32, height: u32) -> Page1 {
        let args: Vec<&OsStr> = [
            "--disable-gpu",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--hide-scrollbars",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions::default_builder()
            .path(Some(chromium))
            .headless(true)
            .sandbox(false)
            .window_size(Some((width, height)))
            .idle_browser_timeout(Duration::from_secs(300))
            .args(args)
            .build()
            .expect("launch options");
        let browser = Browser::new(options).expect("chromium starts");
        let tab = browser.new_tab().expect("a page");
        tab.set_default_timeout(Duration::from_secs(60));
        tab.call_method(Emulation::SetDeviceMetricsOverride {
            width,
            height,
            device_scale_factor: 1.0,
            mobile: false,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        })
        .expect("page size");
        tab.navigate_to(url)
            .and_then(|t| t.wait_until_navigated())
            .expect("the page loads");
        let page = Page1 {
            _browser: browser,
            tab,
        };
        page.wait_for(
            "document.readyState === 'complete' && document.getElementById('model') !== null \
             && !document.getElementById('model').textContent.startsWith('loading')",
            Duration::from_secs(20),
        );
        page
    }

    /// Evaluates a JavaScript expression in the page and returns its value (JSON: the page
    /// serialises it, so that arrays and objects come back as values, not as references).
    pub fn eval(&self, expr: &str) -> Value {
        let r = self
            .tab
            .evaluate(&format!("JSON.stringify(({expr}))"), true)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        match r.value {
            Some(Value::String(s)) => {
                serde_json::from_str(&s).unwrap_or_else(|e| panic!("{expr}: {e}"))
            }
            _ => Value::Null,
        }
    }

    /// Polls `expr` every 50 ms until it is true (at most `limit`).
    pub fn wait_for(&self, expr: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.eval(expr) != json!(true) {
            assert!(Instant::now() < deadline, "waited {limit:?} for {expr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the element `selector` matches (at its centre, as a mouse would).
    pub fn click(&self, selector: &str) {
        self.tab
            .find_element(selector)
            .and_then(|e| e.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Moves the mouse over the element `selector` matches.
    pub fn hover(&self, selector: &str) {
        self.tab
            .find_element(selector)
            .and_then(|e| e.move_mouse_over().map(|_| ()))
            .unwrap_or_else(|e| panic!("hover {selector}: {e}"));
    }

    /// Types `text` as key presses into the focused element.
    pub fn type_text(&self, text: &str) {
        self.tab.type_str(text).expect("typing");
    }

    /// Presses one key (`"ArrowRight"`, `"Enter"`, `"]"`, …).
    pub fn press(&self, key: &str) {
        self.tab
            .press_key(key)
            .unwrap_or_else(|e| panic!("key {key}: {e}"));
    }

    /// A PNG screenshot of the page's viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        self.tab
            .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("a screenshot")
    }
}

/// Every cell of `got` within `tol` of `want`.
pub fn assert_close(got: &[f64], want: &[f32], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - *b as f64).abs() <= tol,
            "{what}[{k}]: shown {a}, expected {b}"
        );
    }
}

/// `v` (a JSON array of numbers) as floats.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}
