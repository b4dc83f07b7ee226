//! `attend explain`: every step's weights are the model's own (equal to greedy search's
//! `Hypothesis::attention`), are the softmax of the printed scores, and sum to 1; the text and JSON
//! forms say the same; a model without attention is a clear error. A Transformer's explanation
//! carries every layer's and head's scores and weights and shows the chosen view of them.

mod cli_support;

use attend::search::greedy;
use attend::show::explain::{explain, explain_view, Explanation, ScoreSource};
use attend::show::HeadView;
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
    // The mean of the last layer's heads: the weights search records.
    let last = Some(HeadView {
        layer: 2,
        head: None,
    });
    for sentence in SENTENCES {
        let src = loaded.vocabs.src.encode(sentence).unwrap();
        let ex = explain_view(
            &*loaded.model,
            &loaded.vocabs,
            sentence,
            loaded.config.max_output_len(src.len()),
            last,
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

/// Checks every layer's and head's record of a Transformer explanation: one row per step over the
/// source tokens, weights = softmax(scores) summing to 1.
fn check_heads(ex: &Explanation, layers: usize, heads: usize) {
    let cross = ex
        .cross_attention
        .as_ref()
        .expect("a Transformer has heads");
    assert_eq!(
        (cross.layers.len(), cross.d_k, cross.alignment_layer),
        (layers, 4, 1)
    );
    for (l, layer) in cross.layers.iter().enumerate() {
        assert_eq!(layer.heads.len(), heads);
        for (h, head) in layer.heads.iter().enumerate() {
            assert_eq!(head.scores.len(), ex.steps.len());
            assert_eq!(head.weights.len(), ex.steps.len());
            for (e, w) in head.scores.iter().zip(&head.weights) {
                assert_eq!((e.len(), w.len()), (ex.source_tokens.len(), e.len()));
                let sum: f64 = w.iter().map(|&x| x as f64).sum();
                assert!((sum - 1.0).abs() < 1e-5, "layer {l} head {h} sums to {sum}");
                for (x, p) in w.iter().zip(softmax(e)) {
                    assert!(
                        (*x as f64 - p).abs() < 1e-6,
                        "layer {l} head {h}: {x} vs {p}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_transformer_is_explained_layer_by_layer_and_head_by_head() {
    let dir = tiny_run(&out_dir("explain-heads"), "transformer", "none", 9);
    let loaded = load(&dir);
    let (layers, heads) = (2, 2);
    for sentence in SENTENCES {
        let src = loaded.vocabs.src.encode(sentence).unwrap();
        let max_len = loaded.config.max_output_len(src.len());
        let ex = explain(&*loaded.model, &loaded.vocabs, sentence, max_len).unwrap();
        // By default the alignment view: the mean of the penultimate layer's heads.
        assert_eq!(
            ex.view,
            Some(HeadView {
                layer: 1,
                head: None
            })
        );
        assert_eq!(ex.scores_from, ScoreSource::LogWeights);
        check_heads(&ex, layers, heads);
        let first = &ex.cross_attention.as_ref().unwrap().layers[0];
        for (i, step) in ex.steps.iter().enumerate() {
            for (j, &w) in step.weights.iter().enumerate() {
                let mean = first.heads.iter().map(|h| h.weights[i][j]).sum::<f32>() / heads as f32;
                assert!(
                    (w - mean).abs() < 1e-6,
                    "step {i} token {j}: {w} vs mean {mean}"
                );
            }
            for (w, r) in step.weights.iter().zip(softmax(&step.scores)) {
                assert!((*w as f64 - r).abs() < 1e-6);
            }
        }
        // One head: its own scaled dot-product scores and weights, the same translation.
        for (layer, head) in [(1, 2), (2, 1)] {
            let view = HeadView {
                layer,
                head: Some(head),
            };
            let one = explain_view(
                &*loaded.model,
                &loaded.vocabs,
                sentence,
                max_len,
                Some(view),
            )
            .unwrap();
            assert_eq!(one.scores_from, ScoreSource::ScaledDot);
            assert_eq!((one.view, &one.translation), (Some(view), &ex.translation));
            assert_eq!(one.cross_attention, ex.cross_attention);
            let record = &ex.cross_attention.as_ref().unwrap().layers[layer - 1].heads[head - 1];
            for (i, step) in one.steps.iter().enumerate() {
                assert_eq!(step.scores, record.scores[i]);
                assert_eq!(step.weights, record.weights[i]);
            }
        }
    }
}

#[test]
fn json_carries_every_layer_and_head_and_text_names_the_view() {
    let dir = tiny_run(&out_dir("explain-heads-json"), "transformer", "none", 12);
    let model = dir.to_str().unwrap();
    let sentence = "a black cat is in the café";
    let args = [
        "explain", "--model", model, sentence, "--layer", "2", "--head", "1",
    ];
    let json = ok(&attend(&[&args[..], &["--json"]].concat(), ""));
    let ex: Explanation = serde_json::from_str(&json).expect("JSON parses");
    check_heads(&ex, 2, 2);
    assert_eq!(
        ex.view,
        Some(HeadView {
            layer: 2,
            head: Some(1)
        })
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let w = &value["cross_attention"]["layers"][1]["heads"][0]["weights"][0];
    assert_eq!(w.as_array().unwrap().len(), ex.source_tokens.len());
    let text = ok(&attend(&args, ""));
    assert!(
        text.contains("cross-attention of layer 2, head 1 (of 2 layers × 2 heads)")
            && text.contains("d_k = 4"),
        "{text}"
    );
    let text = ok(&attend(&["explain", "--model", model, sentence], ""));
    assert!(
        text.contains("layer 1, mean of 2 heads (of 2 layers), the alignment view"),
        "{text}"
    );
    // An RNN's JSON has no Transformer fields.
    let rnn = tiny_run(&out_dir("explain-heads-rnn"), "rnn", "additive", 3);
    let json = ok(&attend(
        &[
            "explain",
            "--model",
            rnn.to_str().unwrap(),
            "black cat",
            "--json",
        ],
        "",
    ));
    assert!(
        !json.contains("cross_attention") && !json.contains("\"view\""),
        "{json}"
    );
}

#[test]
fn a_layer_or_head_that_does_not_exist_is_a_clear_error() {
    let dir = tiny_run(&out_dir("explain-heads-bad"), "transformer", "none", 2);
    let model = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        fails(&attend(
            &[&["explain", "--model", model, "black cat"][..], extra].concat(),
            "",
        ))
    };
    let err = run(&["--layer", "3"]);
    assert!(
        err.contains("layer 3 does not exist") && err.contains("1 to 2"),
        "{err}"
    );
    let err = run(&["--layer", "0"]);
    assert!(err.contains("layer 0 does not exist"), "{err}");
    let err = run(&["--head", "3"]);
    assert!(
        err.contains("head 3 does not exist") && err.contains("1 to 2"),
        "{err}"
    );
    let rnn = tiny_run(&out_dir("explain-heads-bad-rnn"), "rnn", "additive", 2);
    let err = fails(&attend(
        &[
            "explain",
            "--model",
            rnn.to_str().unwrap(),
            "black cat",
            "--head",
            "1",
        ],
        "",
    ));
    assert!(err.contains("RNN with a single attention"), "{err}");
}
