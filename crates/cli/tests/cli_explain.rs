//! `attend explain`: every step's weights are the model's own (equal to greedy search's
//! `Hypothesis::attention`), are the softmax of the printed scores, and sum to 1; the text and JSON
//! forms say the same; a model without attention is a clear error.

mod cli_support;

use attend::search::greedy;
use attend::show::explain::{explain, Explanation, ScoreSource};
use cli_support::{attend, fails, load, ok, out_dir, tiny_run};

const SENTENCES: [&str; 3] = [
    "black cat",
    "where is the green tree",
    "a black cat is in the café",
];

/// softmax in f64, the plain reference.
fn softmax(scores: &[f32]) -> Vec<f64> {
    let m = scores
        .iter()
        .fold(f64::NEG_INFINITY, |m, &s| m.max(s as f64));
    let e: Vec<f64> = scores.iter().map(|&s| (s as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

/// Checks an explanation against greedy search on the same model and against softmax(scores).
fn check_against_greedy(ex: &Explanation, loaded: &attend::train::checkpoint::LoadedModel) {
    let src = loaded.vocabs.src.encode(&ex.source).unwrap();
    let max_len = loaded.config.max_output_len(src.len());
    let hyp = greedy(&*loaded.model, &src, &[src.len()], src.len(), max_len).remove(0);
    assert_eq!(ex.translation, loaded.vocabs.tgt.decode(&hyp.ids));
    assert_eq!(ex.steps.len(), hyp.attention.len(), "{}", ex.source);
    assert_eq!(ex.source_tokens.len(), src.len());
    for (step, (s, a)) in ex.steps.iter().zip(&hyp.attention).enumerate() {
        assert_eq!(s.step, step + 1);
        assert_eq!(&s.weights, a, "step {} weights equal greedy's", s.step);
        assert_eq!(&s.scores, &hyp.scores[step], "step {} scores", s.step);
        let sum: f64 = s.weights.iter().map(|&w| w as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5, "step {} sums to {sum}", s.step);
        for (w, r) in s.weights.iter().zip(softmax(&s.scores)) {
            assert!((*w as f64 - r).abs() < 1e-6, "weight {w} vs softmax {r}");
        }
        let emitted = match hyp.ids.get(step) {
            Some(&id) => loaded
                .vocabs
                .tgt
                .token(id)
                .trim_start_matches('▁')
                .to_string(),
            None => "</s>".to_string(),
        };
        assert_eq!(s.emitted, emitted);
    }
}

#[test]
fn weights_are_greedys_and_the_softmax_of_the_scores() {
    for (k, attention) in ["additive", "general"].into_iter().enumerate() {
        let dir = tiny_run(
            &out_dir(&format!("explain-{attention}")),
            "rnn",
            attention,
            3 + k as u64,
        );
        let loaded = load(&dir);
        for sentence in SENTENCES {
            let src = loaded.vocabs.src.encode(sentence).unwrap();
            let ex = explain(
                &*loaded.model,
                &loaded.vocabs,
                sentence,
                loaded.config.max_output_len(src.len()),
            )
            .unwrap();
            assert_eq!(ex.scores_from, ScoreSource::Model);
            assert_eq!(
                ex.source_tokens.last().map(String::as_str),
                Some(sentence.rsplit(' ').next().unwrap())
            );
            check_against_greedy(&ex, &loaded);
        }
    }
}

#[test]
fn a_transformer_is_explained_with_its_head_averaged_weights() {
    let dir = tiny_run(&out_dir("explain-transformer"), "transformer", "none", 9);
    let loaded = load(&dir);
    for sentence in SENTENCES {
        let src = loaded.vocabs.src.encode(sentence).unwrap();
        let ex = explain(
            &*loaded.model,
            &loaded.vocabs,
            sentence,
            loaded.config.max_output_len(src.len()),
        )
        .unwrap();
        // No single score function: the scores are ln α, whose softmax is α again.
        assert_eq!(ex.scores_from, ScoreSource::LogWeights);
        let max_len = loaded.config.max_output_len(src.len());
        let hyp = greedy(&*loaded.model, &src, &[src.len()], src.len(), max_len).remove(0);
        assert!(hyp.scores.is_empty());
        assert_eq!(ex.steps.len(), hyp.attention.len());
        for (s, a) in ex.steps.iter().zip(&hyp.attention) {
            assert_eq!(&s.weights, a);
            for (w, r) in s.weights.iter().zip(softmax(&s.scores)) {
                assert!((*w as f64 - r).abs() < 1e-6, "weight {w} vs softmax {r}");
            }
        }
    }
}

#[test]
fn json_output_is_the_models_weights() {
    let dir = tiny_run(&out_dir("explain-json"), "rnn", "additive", 11);
    let loaded = load(&dir);
    for sentence in SENTENCES {
        let out = attend(
            &[
                "explain",
                "--model",
                dir.to_str().unwrap(),
                sentence,
                "--json",
            ],
            "",
        );
        let ex: Explanation = serde_json::from_str(&ok(&out)).expect("JSON parses");
        assert_eq!(ex.source, sentence);
        check_against_greedy(&ex, &loaded);
    }
}

#[test]
fn text_output_shows_scores_weights_bars_top_tokens_and_words() {
    let dir = tiny_run(&out_dir("explain-text"), "rnn", "additive", 5);
    let loaded = load(&dir);
    let sentence = "the summer café";
    let text = ok(&attend(
        &[
            "explain",
            "--model",
            dir.to_str().unwrap(),
            sentence,
            "--top",
            "2",
        ],
        "",
    ));
    let src = loaded.vocabs.src.encode(sentence).unwrap();
    let ex = explain(
        &*loaded.model,
        &loaded.vocabs,
        sentence,
        loaded.config.max_output_len(src.len()),
    )
    .unwrap();
    assert!(text.contains(&format!("translation  {}", ex.translation)));
    assert!(text.contains("tokens       the · summer · café"), "{text}");
    for s in &ex.steps {
        assert!(
            text.contains(&format!("step {} → \"{}\"", s.step, s.emitted)),
            "{text}"
        );
        // the café row: token, score to 3 decimals, weight to 3 decimals, then the bar
        let row = format!("café   {:>8.3} {:>7.3}", s.scores[2], s.weights[2]);
        assert!(text.contains(&row), "missing {row:?} in\n{text}");
        let top = s.top(2);
        let line = format!(
            "  top: {} {:.3}, {} {:.3}",
            s.source_tokens[top[0]], s.weights[top[0]], s.source_tokens[top[1]], s.weights[top[1]]
        );
        assert!(text.contains(&line), "missing {line:?}");
    }
    assert!(
        text.contains('█') || text.contains('▏') || text.contains('▎'),
        "bars drawn"
    );
}

#[test]
fn bad_requests_are_clear_errors() {
    let none = tiny_run(&out_dir("explain-none"), "rnn", "none", 1);
    let err = fails(&attend(
        &["explain", "--model", none.to_str().unwrap(), "black cat"],
        "",
    ));
    assert!(err.contains("no attention"), "{err}");
    let with = tiny_run(&out_dir("explain-empty"), "rnn", "additive", 1);
    let err = fails(&attend(
        &["explain", "--model", with.to_str().unwrap(), "   "],
        "",
    ));
    assert!(err.contains("no tokens"), "{err}");
    let err = fails(&attend(
        &[
            "explain",
            "--model",
            with.to_str().unwrap(),
            "cat",
            "--top",
            "0",
        ],
        "",
    ));
    assert!(err.contains("--top"), "{err}");
    let err = fails(&attend(
        &["explain", "--model", "/nonexistent/run", "cat"],
        "",
    ));
    assert!(err.contains("no such model directory"), "{err}");
}
