//! BLEU and chrF against golden values from sacreBLEU 2.6.0 (fixtures made by
//! `tests/fixtures/bleu/make_fixtures.py` with `../shared/peers/bleu.py`; no Python needed here).

use std::path::PathBuf;

use attend::metrics::bleu::{corpus_bleu, sentence_bleu};
use attend::metrics::chrf::{corpus_chrf, sentence_chrf};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bleu")
}

/// Lines as Python's `for line in f: line.rstrip("\n")` gives them.
fn read_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

fn cases() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    let all: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .filter(|(name, _)| !name.starts_with('_'))
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn every_fixture_case_is_present() {
    let names: Vec<String> = cases().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "identical",
        "edits",
        "empty_lines",
        "punctuation",
        "short_hyp",
        "bible_es",
        "tiny",
        "no_match",
        "unicode_spaces",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing case {expected}"
        );
    }
}

#[test]
fn corpus_bleu_equals_sacrebleu() {
    for (name, want) in cases() {
        let hyps = read_lines(&format!("{name}.hyp"));
        let refs = read_lines(&format!("{name}.ref"));
        let got = corpus_bleu(&hyps, &refs).unwrap();
        // bleu.py rounds to 4 decimals (bp to 6).
        assert!(
            (got.score - f(&want["bleu"])).abs() < 1e-4,
            "{name}: BLEU {} vs {}",
            got.score,
            want["bleu"]
        );
        for (n, p) in want["bleu_precisions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert!(
                (got.precisions[n] - f(p)).abs() < 1e-4,
                "{name}: p{} {} vs {p}",
                n + 1,
                got.precisions[n]
            );
        }
        assert!(
            (got.bp - f(&want["bleu_bp"])).abs() < 1e-6,
            "{name}: bp {} vs {}",
            got.bp,
            want["bleu_bp"]
        );
        assert_eq!(
            got.sys_len as u64,
            want["sys_len"].as_u64().unwrap(),
            "{name}: sys_len"
        );
        assert_eq!(
            got.ref_len as u64,
            want["ref_len"].as_u64().unwrap(),
            "{name}: ref_len"
        );
    }
}

#[test]
fn corpus_chrf_equals_sacrebleu() {
    for (name, want) in cases() {
        let hyps = read_lines(&format!("{name}.hyp"));
        let refs = read_lines(&format!("{name}.ref"));
        let got = corpus_chrf(&hyps, &refs).unwrap();
        assert!(
            (got - f(&want["chrf"])).abs() < 1e-4,
            "{name}: chrF {got} vs {}",
            want["chrf"]
        );
    }
}

#[test]
fn sentence_scores_equal_sacrebleu() {
    let mut checked = 0;
    for (name, want) in cases() {
        let hyps = read_lines(&format!("{name}.hyp"));
        let refs = read_lines(&format!("{name}.ref"));
        let bleu = want["sentence_bleu"].as_array().unwrap();
        let chrf = want["sentence_chrf"].as_array().unwrap();
        assert_eq!((bleu.len(), chrf.len()), (hyps.len(), hyps.len()), "{name}");
        for (i, (h, r)) in hyps.iter().zip(&refs).enumerate() {
            let b = sentence_bleu(h, r).score;
            assert!(
                (b - f(&bleu[i])).abs() < 1e-9,
                "{name} line {}: BLEU {b} vs {}",
                i + 1,
                bleu[i]
            );
            let c = sentence_chrf(h, r);
            assert!(
                (c - f(&chrf[i])).abs() < 1e-9,
                "{name} line {}: chrF {c} vs {}",
                i + 1,
                chrf[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} sentences checked");
}
