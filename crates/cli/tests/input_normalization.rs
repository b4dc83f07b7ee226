//! One text normalisation at every edge: `attend translate`, `attend explain`, the server's JSON
//! API and the training corpus reader all collapse whitespace runs and trim the ends, so
//! `12  7   33 5 ` reads exactly as `12 7 33 5` everywhere, and a line of spaces is an empty input.

mod cli_support;
mod serve_support;

use attend::data::corpus::read_tsv;
use attend::train::checkpoint::load_model;
use attend_cli::serve::limits::Limits;
use cli_support::{attend, ok};
use serve_support::{assert_same, client, expected, post, start, tiny_model};

const CLEAN: &str = "12 7 33 5";
const SPACED: &str = "  12  7\t\t33 \u{a0}5 ";

#[test]
fn translate_reads_spaced_lines_as_clean_ones_and_keeps_blank_lines_aligned() {
    let model = tiny_model().to_str().unwrap();
    let input = format!("{CLEAN}\n{SPACED}\n   \n\n{CLEAN}  \n");
    let out = ok(&attend(&["translate", "--model", model], &input));
    let lines: Vec<&str> = out.lines().collect();
    // The model has learned the task, so the clean line comes out reversed.
    assert_eq!(lines, ["5 33 7 12", "5 33 7 12", "", "", "5 33 7 12"]);
}

#[test]
fn explain_reads_a_spaced_sentence_as_the_clean_one() {
    let model = tiny_model().to_str().unwrap();
    let json = |sentence: &str| -> serde_json::Value {
        let out = ok(&attend(
            &["explain", "--model", model, "--json", sentence],
            "",
        ));
        serde_json::from_str(&out).unwrap()
    };
    let (clean, spaced) = (json(CLEAN), json(SPACED));
    assert_eq!(clean["source_tokens"], spaced["source_tokens"]);
    assert_eq!(spaced["source_tokens"].as_array().unwrap().len(), 4);
    assert_eq!(clean["translation"], "5 33 7 12");
    assert_eq!(clean, spaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reads_spaced_texts_as_clean_ones() {
    let want = &expected(tiny_model(), &[CLEAN.to_string()], 1)[0];
    let server = start(1, Limits::default()).await;
    let c = client();
    let url = server.url("/translate");
    let a = post(&c, &url, serde_json::json!({ "text": SPACED }).to_string()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_same(&a.json, want);
    // A text of spaces is the empty text: an empty translation, as `translate` prints.
    let a = post(&c, &url, r#"{"texts": ["   ", "\t"]}"#).await;
    assert_eq!(a.status, 200, "{}", a.json);
    for t in a.json["translations"].as_array().unwrap() {
        assert_eq!(t["translation"], "");
        assert_eq!(t["source_tokens"], serde_json::json!([]));
    }
    server.stop().await.unwrap();
}

#[test]
fn training_pairs_are_normalised_as_they_are_read() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("input-normalization");
    std::fs::create_dir_all(&dir).unwrap();
    let tsv = dir.join("spaced.tsv");
    // Tabs separate the columns here, so the spaced source has none.
    let spaced = SPACED.replace('\t', " ");
    std::fs::write(
        &tsv,
        format!("{spaced}\t5  33 7   12\n   \t 1\n{CLEAN}\t5 33 7 12\n"),
    )
    .unwrap();
    let corpus = read_tsv(&tsv, 0, 1, false).unwrap();
    let pair = (CLEAN.to_string(), "5 33 7 12".to_string());
    assert_eq!(corpus.pairs, [pair.clone(), pair]);
    assert_eq!(corpus.skipped_empty, 1, "the all-space source is empty");
    // And so the tokens a model is trained on are those `translate` gives it.
    let m = load_model(tiny_model(), "best").unwrap();
    assert_eq!(
        m.vocabs.src.encode(&corpus.pairs[0].0).unwrap(),
        m.vocabs.src.encode(CLEAN).unwrap()
    );
}
