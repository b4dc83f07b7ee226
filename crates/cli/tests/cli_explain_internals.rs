//! What the explorer page shows beyond the weights, as `attend explain --json` carries it: for an
//! RNN every step's decoder state, query, keys, values and context, from which the scores and the
//! context are recomputed here in float64 (each score function); for a Transformer every layer's
//! and head's cross- and decoder self-attention, whose last-layer head average is each step's
//! weights, with the causal triangle, and the positional encodings.

mod cli_support;

use attend::attention::position::sinusoidal_table;
use attend::show::explain::{explain, Explanation};
use cli_support::{attend, load, ok, out_dir, tiny_run};

const SENTENCES: [&str; 3] = [
    "black cat",
    "where is the green tree",
    "a black cat is in the café",
];

fn explained(dir: &std::path::Path, sentence: &str) -> Explanation {
    let loaded = load(dir);
    let src = loaded.vocabs.src.encode(sentence).unwrap();
    let max_len = loaded.config.max_output_len(src.len());
    explain(&*loaded.model, &loaded.vocabs, sentence, max_len).unwrap()
}

/// The plain `[rows][cols]` matrix of a parameter.
fn matrix(dir: &std::path::Path, name: &str) -> Vec<Vec<f64>> {
    let loaded = load(dir);
    let w = loaded.model.params().get(name).expect(name).to_tensor();
    let cols = w.dim(1);
    w.data()
        .chunks(cols)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
}

#[test]
fn rnn_scores_and_contexts_follow_from_the_recorded_internals() {
    for (k, attention) in ["additive", "dot", "general"].into_iter().enumerate() {
        let dir = tiny_run(
            &out_dir(&format!("internals-{attention}")),
            "rnn",
            attention,
            21 + k as u64,
        );
        for sentence in SENTENCES {
            let ex = explained(&dir, sentence);
            let rnn = ex
                .rnn
                .as_ref()
                .expect("an RNN with attention has internals");
            assert_eq!(rnn.score, attention);
            let n = ex.source_tokens.len();
            assert_eq!((rnn.values.len(), rnn.keys.len()), (n, n));
            assert_eq!(rnn.steps.len(), ex.steps.len());
            assert_eq!(rnn.v.is_some(), attention == "additive");
            for (t, (step, inside)) in ex.steps.iter().zip(&rnn.steps).enumerate() {
                let what = format!("{attention} {sentence:?} step {}", t + 1);
                match attention {
                    "dot" => assert_eq!(inside.query, inside.state, "{what}: q = s"),
                    "general" => {
                        // q = W s, W = attn.w.weight [Dk, H]
                        for (row, q) in matrix(&dir, "attn.w.weight").iter().zip(&inside.query) {
                            let ws: f64 = row
                                .iter()
                                .zip(&inside.state)
                                .map(|(w, s)| w * *s as f64)
                                .sum();
                            close(*q as f64, ws, 1e-5, &format!("{what}: W s"));
                        }
                    }
                    _ => {
                        for (row, q) in matrix(&dir, "attn.w_q.weight").iter().zip(&inside.query) {
                            let ws: f64 = row
                                .iter()
                                .zip(&inside.state)
                                .map(|(w, s)| w * *s as f64)
                                .sum();
                            close(*q as f64, ws, 1e-5, &format!("{what}: W_q s"));
                        }
                    }
                }
                for j in 0..n {
                    let (q, key) = (&inside.query, &rnn.keys[j]);
                    assert_eq!(q.len(), key.len(), "{what}: query and key widths");
                    let e: f64 = match &rnn.v {
                        Some(v) => (0..q.len())
                            .map(|i| v[i] as f64 * (q[i] as f64 + key[i] as f64).tanh())
                            .sum(),
                        None => q.iter().zip(key).map(|(a, b)| *a as f64 * *b as f64).sum(),
                    };
                    close(step.scores[j] as f64, e, 1e-4, &format!("{what}: e_{j}"));
                }
                for (i, c) in inside.context.iter().enumerate() {
                    let sum: f64 = (0..n)
                        .map(|j| step.weights[j] as f64 * rnn.values[j][i] as f64)
                        .sum();
                    close(*c as f64, sum, 1e-5, &format!("{what}: c_{i}"));
                }
            }
            // The decoder state moves on from step to step.
            if ex.steps.len() > 1 {
                assert_ne!(rnn.steps[0].state, rnn.steps[1].state);
            }
        }
    }
}

#[test]
fn transformer_maps_hold_every_layer_and_head_and_the_causal_triangle() {
    let dir = tiny_run(&out_dir("internals-transformer"), "transformer", "none", 9);
    let loaded = load(&dir);
    let d = loaded.model.as_transformer().unwrap().spec().d_model;
    for sentence in SENTENCES {
        let ex = explained(&dir, sentence);
        assert!(ex.rnn.is_none());
        let tf = ex.transformer.as_ref().expect("a Transformer has its maps");
        let (steps, n) = (ex.steps.len(), ex.source_tokens.len());
        assert_eq!((tf.heads, tf.d_k), (2, d / 2));
        assert_eq!((tf.cross.len(), tf.decoder_self.len()), (2, 2));
        for l in 0..2 {
            for h in 0..tf.heads {
                for t in 0..steps {
                    let (cross, own) = (&tf.cross[l][h][t], &tf.decoder_self[l][h][t]);
                    assert_eq!((cross.len(), own.len()), (n, steps));
                    for row in [cross, own] {
                        let sum: f32 = row.iter().sum();
                        assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
                    }
                    assert!(own[t + 1..].iter().all(|&w| w == 0.0), "causal: {own:?}");
                }
            }
        }
        // The mean over the viewed layer's heads (by default the alignment layer) is each step's
        // weights (the cached decoding's).
        let layer = ex.view.as_ref().expect("a Transformer's view").layer - 1;
        for (t, step) in ex.steps.iter().enumerate() {
            for j in 0..n {
                let mean: f32 =
                    (0..tf.heads).map(|h| tf.cross[layer][h][t][j]).sum::<f32>() / tf.heads as f32;
                assert!(
                    (mean - step.weights[j]).abs() < 1e-5,
                    "{mean} vs {}",
                    step.weights[j]
                );
            }
        }
        // The tiny config's positions are the sinusoidal table.
        let table = sinusoidal_table(n.max(steps), d);
        assert_eq!(tf.positions.len(), n.max(steps));
        for (row, want) in tf.positions.iter().zip(table.data().chunks(d)) {
            assert_eq!(row.as_slice(), want);
        }
    }
}

#[test]
fn json_carries_the_internals() {
    let dir = tiny_run(&out_dir("internals-json"), "rnn", "general", 4);
    let out = ok(&attend(
        &[
            "explain",
            "--json",
            "--model",
            dir.to_str().unwrap(),
            "black cat",
        ],
        "",
    ));
    let from_cli: Explanation = serde_json::from_str(&out).unwrap();
    assert_eq!(from_cli, explained(&dir, "black cat"));
    let raw: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(raw["rnn"]["score"], "general");
    assert!(raw.get("transformer").is_none());
    assert!(raw["rnn"].get("v").is_none());
}
