//! The page at `GET /`, driven in headless Chromium as a person would: type a sentence, press the
//! button, see the translation and the heat map, hover a target token and see its source tokens
//! light up with their weights. Chromium is steered through the `headless_chrome` crate
//! (`browser_support`).
//!
//! Needs Debian's `chromium` (.ci/run installs it); elsewhere the test says why it skips. With
//! `ATTEND_SCREENSHOT=path.png` it also writes the screenshot (the README's docs/serve-screenshot.png).

mod browser_support;
mod serve_support;

use attend_cli::serve::limits::Limits;
use browser_support::*;
use serde_json::json;
use serve_support::*;
use std::path::PathBuf;
use std::time::Duration;

/// Clicks into the text box, types `sentence`, presses the button and waits for the heat map.
fn type_and_translate(b: &Page1, sentence: &str) {
    b.click("#source");
    b.type_text(sentence);
    assert_eq!(
        b.eval("document.getElementById('source').value"),
        json!(sentence)
    );
    b.click("#go");
    b.wait_for(
        "document.querySelectorAll('#heatmap td.cell').length > 0",
        Duration::from_secs(30),
    );
}

/// The weights the heat map shows, row by row (from each cell's title, 3 decimals).
fn shown_map(b: &Page1) -> Vec<Vec<f64>> {
    let v = b.eval(
        "Array.from(document.querySelectorAll('#heatmap tbody tr')).map(r => \
         Array.from(r.querySelectorAll('td.cell')).map(c => Number(c.title.split(': ').pop())))",
    );
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_a_sentence_shows_the_translation_and_an_interactive_heat_map() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let sentence = "12 7 33 5 41 18 26 9".to_string();
    let want = expected(tiny_model(), std::slice::from_ref(&sentence), 1).remove(0);
    let server = start(1, Limits::default()).await;
    let url = server.url("/");
    let screenshot_to = std::env::var_os("ATTEND_SCREENSHOT").map(PathBuf::from);

    let checked = tokio::task::spawn_blocking(move || {
        let (width, height) = (1000, 860);
        let b = Page1::open(chromium, &url, width, height);
        let model_line = b.eval("document.getElementById('model').textContent");
        assert!(
            model_line.as_str().unwrap().contains("additive attention"),
            "{model_line}"
        );

        type_and_translate(&b, &sentence);
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
        b.hover(&format!("#target-tokens .tgt-tok:nth-child({})", k + 1));
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
        let shown = numbers(&shown);
        assert_eq!(shown.len(), cols);
        for (s, w) in shown.iter().zip(&want.attention[k]) {
            assert!((s - *w as f64).abs() <= 5e-4, "shown {s}, attention {w}");
        }
        assert_map(&shown_map(&b), &want.attention);
        let coloured = b.eval(
            "Array.from(document.querySelectorAll('#source-tokens .src-tok')).filter(e => e.style.background !== '').length",
        );
        assert_eq!(coloured, json!(cols));

        let png_bytes = b.screenshot();
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
        let b = Page1::open(chromium, &url, 1000, 860);
        type_and_translate(&b, &sentence);
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
        assert_map(&shown_map(&b), &attention);
        // Choose a head, then a layer, as with the two menus.
        let choose = |b: &Page1, id: &str, value: &str| {
            b.eval(&format!(
                "(() => {{ const s = document.getElementById('{id}'); s.focus(); s.value = '{value}'; \
                 s.dispatchEvent(new Event('change')); return true; }})()"
            ));
        };
        choose(&b, "head", "2");
        assert_map(&shown_map(&b), &layers[1][2]);
        choose(&b, "layer", "0");
        assert_map(&shown_map(&b), &layers[0][2]);
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}
