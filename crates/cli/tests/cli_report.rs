//! `attend report length`: sentences bucketed by source words, corpus BLEU per bucket per model
//! (checked against BLEU computed by hand on each bucket), a table and a line chart.

mod cli_support;

use attend::metrics::bleu::corpus_bleu;
use attend::show::Picture;
use attend::translate::translate_text;
use attend_cli::report::length::{length_study, parse_buckets, Translations};
use cli_support::{attend, fails, load, ok, out_dir, pairs, png_size, svg_texts, tiny_run};

fn pair(s: &str, t: &str) -> (String, String) {
    (s.to_string(), t.to_string())
}

#[test]
fn bleu_per_bucket_equals_bleu_of_the_buckets_sentences() {
    let test = vec![
        pair("a b", "x y z w"),                               // 2 words
        pair("a b c", "the cat sat on the mat"),              // 3
        pair("a b c d e", "un chat noir est là"),             // 5
        pair("a b c d e f g", "one two three four five six"), // 7
    ];
    let perfect = Translations {
        model: "perfect".into(),
        hypotheses: test.iter().map(|(_, r)| r.clone()).collect(),
    };
    let mixed = Translations {
        model: "mixed".into(),
        hypotheses: vec![
            "x y z w".into(),
            "the cat sat on a mat".into(),
            "nothing alike here".into(),
            "one two three four five six".into(),
        ],
    };
    let buckets = parse_buckets("0-3,3-6,6-").unwrap();
    let study = length_study("t", &test, &[perfect, mixed.clone()], &buckets).unwrap();
    assert_eq!(study.outside, 0);
    assert!(study.empty_buckets.is_empty());
    let md = study.chart.markdown();
    // bucket 1-3 holds sentences 0 and 1; 4-6 holds 2; 7+ holds 3
    let b13 = corpus_bleu(&mixed.hypotheses[..2], &[&test[0].1, &test[1].1])
        .unwrap()
        .score;
    let b46 = corpus_bleu(&mixed.hypotheses[2..3], &[&test[2].1])
        .unwrap()
        .score;
    assert!(b13 > 0.0 && b13 < 100.0 && b46 == 0.0);
    for line in [
        format!("| 1-3 | 2 | 100.00 | {b13:.2} |"),
        format!("| 4-6 | 1 | 100.00 | {b46:.2} |"),
        "| 7+ | 1 | 100.00 | 100.00 |".to_string(),
    ] {
        assert!(md.contains(&line), "missing {line:?} in\n{md}");
    }
    // Empty buckets are left out and named; sentences outside every bucket are counted.
    let buckets = parse_buckets("0-3,10-20").unwrap();
    let study = length_study("t", &test, &[mixed], &buckets).unwrap();
    assert_eq!(study.empty_buckets, ["11-20"]);
    assert_eq!(study.outside, 2);
}

#[test]
fn the_command_writes_table_and_chart_of_every_model() {
    let models = out_dir("report-models");
    let a = tiny_run(&models.join("attention"), "rnn", "additive", 1);
    let b = tiny_run(&models.join("plain"), "rnn", "none", 2);
    let data = models.join("test.tsv");
    let tsv: String = pairs().iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    std::fs::write(&data, tsv).unwrap();
    let out = out_dir("report-out");
    let models_arg = format!("{},{}", a.display(), b.display());
    let stdout = ok(&attend(
        &[
            "report",
            "length",
            "--models",
            &models_arg,
            "--data",
            data.to_str().unwrap(),
            "--buckets",
            "0-3,3-6,6-",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    ));
    // The same study through the library: the files hold exactly its numbers.
    let test = pairs();
    let sources: Vec<String> = test.iter().map(|(s, _)| s.clone()).collect();
    let systems: Vec<Translations> = [("attention", &a), ("plain", &b)]
        .iter()
        .map(|(name, dir)| {
            let m = load(dir);
            let (hypotheses, _) =
                translate_text(&*m.model, &m.vocabs, &sources, &m.config, 1, 0.0).unwrap();
            Translations {
                model: name.to_string(),
                hypotheses,
            }
        })
        .collect();
    let title = "BLEU by source length: test.tsv";
    let study = length_study(
        title,
        &test,
        &systems,
        &parse_buckets("0-3,3-6,6-").unwrap(),
    )
    .unwrap();
    let md = std::fs::read_to_string(out.join("length.md")).unwrap();
    assert!(md.contains(&study.chart.markdown()), "{md}");
    assert!(stdout.contains(&study.chart.markdown()));
    assert!(
        md.contains("| 1-3 | 2 |") && md.contains("| 4-6 | 2 |") && md.contains("| 7+ | 2 |"),
        "{md}"
    );
    assert_eq!(
        png_size(&out.join("length.png")),
        study.chart.size().unwrap()
    );
    let (texts, size) = svg_texts(&out.join("length.svg"));
    assert_eq!(size, study.chart.size().unwrap());
    for t in ["attention", "plain", "1-3", "4-6", "7+"] {
        assert!(texts.contains(&t.to_string()), "label {t} in {texts:?}");
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let a = tiny_run(&out_dir("report-bad-model"), "rnn", "additive", 1);
    let out = out_dir("report-bad");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "length",
            "--models",
            a.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fails(&attend(&args, ""))
    };
    assert!(run(&["--data", "en-es-bible", "--buckets", "10-5"]).contains("--buckets"));
    assert!(run(&["--data", "no-such-corpus"]).contains("neither a file nor a bundled corpus"));
    assert!(run(&["--data", "en-es-bible", "--split", "holdout"]).contains("unknown split"));
    assert!(run(&["--data", "en-es-bible", "--names", "x,y"]).contains("--names"));
}
