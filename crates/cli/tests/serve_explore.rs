//! The explorer at `GET /explore`, driven in headless Chromium with the keyboard: type a sentence,
//! press Enter, step through the decoding with ← and →, switch layer (↑ ↓), head ([ ]) and
//! attention (m). At every step the weights the page shows must equal what `attend explain --json`
//! (the binary, run apart) prints for that step.
//!
//! Needs Debian's `chromium` (.ci/run installs it); elsewhere the tests say why they skip. With
//! `ATTEND_SCREENSHOT_DIR=docs` they also write `explore-rnn.png` and `explore-transformer.png`.

mod browser_support;
mod serve_support;

use attend::show::explain::Explanation;
use attend_cli::serve::limits::Limits;
use browser_support::*;
use serde_json::json;
use serve_support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `attend explain --json --model DIR SENTENCE` prints.
fn explain_json(model: &Path, sentence: &str) -> Explanation {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(["explain", "--json", "--model"])
        .arg(model)
        .arg(sentence)
        .output()
        .expect("attend explain runs");
    assert!(
        out.status.success(),
        "attend explain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("explain --json prints an Explanation")
}

/// Types `sentence` into the box and presses Enter; waits until step 1 is drawn.
fn type_and_explain(b: &Page1, sentence: &str) {
    b.click("#source");
    b.type_text(sentence);
    b.press("Enter");
    b.wait_for(
        "document.getElementById('step-no').textContent.startsWith('1 of')",
        Duration::from_secs(60),
    );
}

/// The weights of the rows of table `id` (`data-weight`, full precision).
fn shown_weights(b: &Page1, table: &str) -> Vec<f64> {
    numbers(&b.eval(&format!(
        "Array.from(document.querySelectorAll('#{table} tbody tr')).map(r => Number(r.dataset.weight))"
    )))
}

/// The step the page shows, counted from 0.
fn shown_step(b: &Page1) -> usize {
    let s = b.eval("document.getElementById('step-no').textContent");
    let n: usize = s
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    n - 1
}

/// Writes the page's screenshot to `$ATTEND_SCREENSHOT_DIR/name` when that is set.
fn keep_screenshot(b: &Page1, name: &str) {
    if let Some(dir) = std::env::var_os("ATTEND_SCREENSHOT_DIR") {
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, b.screenshot()).unwrap();
        eprintln!("screenshot written to {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rnn_view_shows_the_weights_of_explain_at_every_step() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let sentence = "12 7 33 5 41 18 26 9";
    let model = tiny_model();
    let want = explain_json(model, sentence);
    let rnn = want
        .rnn
        .clone()
        .expect("an RNN explanation carries its internals");
    let server = start(1, Limits::default()).await;
    let url = server.url("/explore");
    tokio::task::spawn_blocking(move || {
        let b = Page1::open(chromium, &url, 1100, 900);
        type_and_explain(&b, sentence);
        assert_eq!(
            b.eval("document.getElementById('translation').textContent"),
            json!(want.translation)
        );
        assert_eq!(
            b.eval("document.getElementById('transformer-view').hidden"),
            json!(true)
        );
        let formula = b.eval("document.getElementById('rnn-formula').textContent");
        assert!(
            formula.as_str().unwrap().starts_with("e_j = vᵀ tanh"),
            "{formula}"
        );
        let last = want.steps.len() - 1;
        // Forward through every step with →, one past the end (stays on the last), then back.
        for t in 0..=last + 1 {
            let t = t.min(last);
            assert_eq!(shown_step(&b), t);
            let step = &want.steps[t];
            assert_eq!(
                b.eval("document.getElementById('emitted').textContent"),
                json!(step.emitted)
            );
            assert_close(&shown_weights(&b, "rnn-table"), &step.weights, 1e-7, "weights");
            let scores = numbers(&b.eval(
                "Array.from(document.querySelectorAll('#rnn-table tbody tr')).map(r => Number(r.dataset.score))",
            ));
            assert_close(&scores, &step.scores, 1e-6, "scores");
            // The context drawn is the weighted sum of the values drawn (float32 rounding).
            let err = b.eval("Number(document.getElementById('context-check').dataset.error)");
            assert!(err.as_f64().unwrap() < 1e-4, "context error {err}");
            assert_eq!(
                b.eval("document.getElementById('state').width"),
                json!(3 * rnn.steps[t].state.len())
            );
            b.press("ArrowRight");
        }
        b.press("ArrowLeft");
        assert_eq!(shown_step(&b), last.saturating_sub(1));
        b.press("Home");
        assert_eq!(shown_step(&b), 0);
        b.press("ArrowRight");
        keep_screenshot(&b, "explore-rnn.png");
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transformer_view_follows_the_keys_through_steps_layers_heads_and_masks() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let sentence = "4 19 8 30 2";
    let model = tiny_transformer();
    let want = explain_json(model, sentence);
    let tf = want.transformer.clone().expect("per-layer maps");
    let (layers, heads) = (tf.cross.len(), tf.heads);
    assert!(layers >= 2 && heads >= 2, "{layers} layers, {heads} heads");
    let server = start_model(model, 1, Limits::default(), Duration::from_secs(30)).await;
    let url = server.url("/explore");
    tokio::task::spawn_blocking(move || {
        let b = Page1::open(chromium, &url, 1100, 900);
        type_and_explain(&b, sentence);
        assert_eq!(
            b.eval("document.getElementById('rnn-view').hidden"),
            json!(true)
        );
        let layer = |b: &Page1| {
            let no = |id: &str| -> usize {
                let s = b.eval(&format!("document.getElementById('{id}').textContent"));
                s.as_str().unwrap().split(' ').next().unwrap().parse::<usize>().unwrap() - 1
            };
            (no("layer-no"), no("head-no"))
        };
        // At first: step 1, the last layer, head 1, cross-attention.
        assert_eq!(layer(&b), (layers - 1, 0));
        assert_eq!(
            b.eval("document.querySelectorAll('#heads canvas').length"),
            json!(heads)
        );
        let check = |b: &Page1, maps: &[Vec<Vec<Vec<f32>>>], what: &str| {
            let (l, h) = layer(b);
            let t = shown_step(b);
            assert_close(
                &shown_weights(b, "tf-table"),
                &maps[l][h][t],
                1e-7,
                &format!("{what} layer {l} head {h} step {t}"),
            );
        };
        check(&b, &tf.cross, "cross");
        b.press("]");
        assert_eq!(layer(&b), (layers - 1, 1));
        check(&b, &tf.cross, "cross");
        b.press("ArrowUp");
        assert_eq!(layer(&b), (layers - 2, 1));
        check(&b, &tf.cross, "cross");
        b.press("ArrowRight");
        assert_eq!(shown_step(&b), 1);
        check(&b, &tf.cross, "cross");
        // Decoder self-attention: the causal mask hides the keys after step t.
        b.press("m");
        check(&b, &tf.decoder_self, "decoder self");
        let masks = b.eval(
            "Array.from(document.querySelectorAll('#tf-table tbody tr')).map(r => r.children[3].textContent)",
        );
        let t = shown_step(&b);
        let want_masks: Vec<&str> = (0..want.steps.len())
            .map(|j| if j > t { "−∞" } else { "0" })
            .collect();
        assert_eq!(masks, json!(want_masks));
        b.press("[");
        b.press("ArrowDown");
        assert_eq!(layer(&b), (layers - 1, 0));
        check(&b, &tf.decoder_self, "decoder self");
        b.press("m");
        keep_screenshot(&b, "explore-transformer.png");
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_token_sentence_is_explained_and_drawn() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    let sentence: Vec<String> = (0..60).map(|i| ((i * 7) % 51).to_string()).collect();
    let sentence = sentence.join(" ");
    let server = start(1, Limits::default()).await;
    let url = server.url("/explore");
    tokio::task::spawn_blocking(move || {
        let b = Page1::open(chromium, &url, 1100, 900);
        type_and_explain(&b, &sentence);
        assert_eq!(
            b.eval("document.querySelectorAll('#rnn-table tbody tr').length"),
            json!(60)
        );
        // How long drawing one step took, for the record (no limit asserted).
        let ms = b.eval("Number(document.getElementById('status').dataset.drawMs)");
        eprintln!("60-token sentence: first step drawn in {ms} ms");
        let steps = b.eval("document.querySelectorAll('#target-tokens .tgt-tok').length");
        let t0 = std::time::Instant::now();
        b.press("End");
        eprintln!(
            "60-token sentence, {steps} steps: End key to last step drawn in {:?}",
            t0.elapsed()
        );
        assert_eq!(shown_step(&b) + 1, steps.as_u64().unwrap() as usize);
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}
