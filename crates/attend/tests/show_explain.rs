//! The explanation prints scores, softmax weights, bars and the top tokens for every step,
//! and serialises to JSON with the same numbers.

use attend::show::{explain_text, ExplainStep, ShowError};

/// softmax computed in f64, the reference for the weights.
fn softmax(scores: &[f32]) -> Vec<f32> {
    let m = scores
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
    let e: Vec<f64> = scores.iter().map(|&s| (f64::from(s) - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// "black cat" → "chat noir", as the seed notes tell it: "chat" looks at "cat", "noir" at "black".
fn steps() -> Vec<ExplainStep> {
    let src: Vec<String> = ["black", "cat", "</s>"].map(String::from).into();
    [
        ("chat", [0.2f32, 2.5, -1.0]),
        ("noir", [2.0, 0.1, -0.5]),
        ("</s>", [-1.0, 0.0, 3.0]),
    ]
    .iter()
    .enumerate()
    .map(|(i, (word, scores))| ExplainStep {
        step: i + 1,
        emitted: word.to_string(),
        source_tokens: src.clone(),
        scores: scores.to_vec(),
        weights: softmax(scores),
    })
    .collect()
}

#[test]
fn text_shows_each_step_with_numbers_bars_and_top_tokens() {
    let text = explain_text(&steps(), 2).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Per step: a header, a column header, three tokens, the top line.
    assert_eq!(lines.len(), 3 * 6);
    assert_eq!(lines[0], "step 1 → \"chat\"");
    assert_eq!(lines[1], "  source    score  weight");
    let w = softmax(&[0.2, 2.5, -1.0]);
    // cat: score 2.5, weight 0.8846 → 141.5 of 160 eighths → 142 = 17 full blocks and ¾ (▊).
    assert!((w[1] - 0.88460).abs() < 1e-4, "{}", w[1]);
    assert_eq!(
        lines[3],
        format!("  cat       2.500   0.885  {}▊", "█".repeat(17))
    );
    assert!(
        lines[2].starts_with("  black     0.200   0.089  █▊"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[5], "  top: cat 0.885, black 0.089");
    assert_eq!(lines[6], "step 2 → \"noir\"");
    assert!(lines[11].starts_with("  top: black "), "{}", lines[11]);
    assert!(lines[17].starts_with("  top: </s> "), "{}", lines[17]);
}

#[test]
fn top_orders_by_weight_and_breaks_ties_by_position() {
    let s = ExplainStep {
        step: 1,
        emitted: "x".into(),
        source_tokens: ["a", "b", "c", "d"].map(String::from).into(),
        scores: vec![0.0; 4],
        weights: vec![0.25, 0.25, 0.4, 0.1],
    };
    assert_eq!(s.top(3), [2, 0, 1]);
    assert_eq!(s.top(10), [2, 0, 1, 3]);
}

#[test]
fn json_carries_the_same_weights_summing_to_one() {
    let steps = steps();
    let json = serde_json::to_string(&steps).unwrap();
    let back: Vec<ExplainStep> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, steps);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    for step in value.as_array().unwrap() {
        let sum: f64 = step["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert_eq!(step["source_tokens"][1], "cat");
    }
    assert_eq!(value[0]["emitted"], "chat");
}

#[test]
fn accented_tokens_keep_the_columns_aligned() {
    let s = ExplainStep {
        step: 1,
        emitted: "château".into(),
        source_tokens: ["castle", "écrit"].map(String::from).into(),
        scores: vec![1.0, 0.0],
        weights: softmax(&[1.0, 0.0]),
    };
    let text = explain_text(&[s], 1).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Weight columns start at the same character in every row.
    let col = |l: &str| l.chars().position(|c| c == '.').unwrap();
    assert_eq!(col(lines[2]), col(lines[3]));
    assert_eq!(lines[0], "step 1 → \"château\"");
}

#[test]
fn inconsistent_steps_are_errors() {
    let mut s = steps().remove(0);
    s.weights.pop();
    assert!(matches!(
        explain_text(&[s], 1).unwrap_err(),
        ShowError::Shape {
            expected: 3,
            got: 2,
            ..
        }
    ));
    let mut s = steps().remove(0);
    s.weights = vec![0.5, 0.5, 0.5];
    let e = explain_text(&[s], 1).unwrap_err();
    assert!(e.to_string().contains("sum to 1.5"), "{e}");
    let mut s = steps().remove(0);
    s.scores[0] = f32::NAN;
    assert!(matches!(
        explain_text(&[s], 1).unwrap_err(),
        ShowError::NotFinite { index: 0, .. }
    ));
    assert!(matches!(
        explain_text(&[], 1).unwrap_err(),
        ShowError::Empty(_)
    ));
}
