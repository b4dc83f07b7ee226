//! The length chart renders one line per model with a legend, and the same numbers as a table.

mod show_support;

use attend::show::{LengthChart, LengthSeries, Picture, ShowError};
use show_support::{decode_png, out_path, svg_texts};

fn chart() -> LengthChart {
    let buckets: Vec<String> = ["1-10", "11-20", "21-30", "31-40", "41-50", "51+"]
        .map(String::from)
        .into();
    LengthChart::new(
        "BLEU by source length, en → es",
        buckets,
        vec![40, 120, 150, 90, 40, 12],
        vec![
            LengthSeries {
                model: "rnn".into(),
                bleu: vec![18.0, 15.5, 11.0, 7.5, 5.0, 3.0],
            },
            LengthSeries {
                model: "rnn+attention".into(),
                bleu: vec![21.0, 20.0, 19.0, 17.0, 16.5, 15.0],
            },
            LengthSeries {
                model: "transformer".into(),
                bleu: vec![24.0, 23.5, 23.0, 22.0, 21.0, 20.5],
            },
        ],
    )
    .unwrap()
}

#[test]
fn png_draws_one_coloured_line_per_model() {
    let c = chart();
    let path = out_path("length.png");
    c.save(&path).unwrap();
    let png = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((png.width, png.height), c.size().unwrap());
    for colour in [(0, 114, 178), (213, 94, 0), (0, 158, 115)] {
        assert!(png.count(colour) > 300, "line of colour {colour:?}");
    }
}

#[test]
fn svg_has_buckets_legend_and_axes() {
    let path = out_path("length.svg");
    chart().save(&path).unwrap();
    let texts = svg_texts(&std::fs::read_to_string(&path).unwrap());
    for t in [
        "1-10",
        "11-20",
        "21-30",
        "31-40",
        "41-50",
        "51+",
        "rnn",
        "rnn+attention",
        "transformer",
        "BLEU",
        "source sentence length (words)",
        "BLEU by source length, en → es",
    ] {
        assert_eq!(texts.iter().filter(|x| *x == t).count(), 1, "{t:?} once");
    }
}

#[test]
fn markdown_lists_every_bucket_and_model() {
    let md = chart().markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 2 + 6);
    assert_eq!(
        lines[0],
        "| source length | sentences | rnn | rnn+attention | transformer |"
    );
    assert_eq!(lines[7], "| 51+ | 12 | 3.00 | 15.00 | 20.50 |");
}

#[test]
fn a_single_bucket_still_draws() {
    let c = LengthChart::new(
        "",
        vec!["1-10".into()],
        vec![5],
        vec![LengthSeries {
            model: "rnn".into(),
            bleu: vec![12.0],
        }],
    )
    .unwrap();
    let texts = svg_texts(&c.svg_string().unwrap());
    assert_eq!(texts.iter().filter(|t| *t == "1-10").count(), 1);
    let png = decode_png(&c.png_bytes().unwrap());
    assert!(png.count((0, 114, 178)) > 20, "the single point is drawn");
}

#[test]
fn bad_data_is_an_error() {
    let one = |bleu: Vec<f32>| {
        vec![LengthSeries {
            model: "m".into(),
            bleu,
        }]
    };
    let b = || vec!["1-10".to_string(), "11-20".to_string()];
    let e = LengthChart::new("", b(), vec![1, 2], one(vec![1.0])).unwrap_err();
    assert!(
        matches!(
            e,
            ShowError::Shape {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"m\""), "{e}");
    let e = LengthChart::new("", b(), vec![1], one(vec![1.0, 2.0])).unwrap_err();
    assert!(matches!(e, ShowError::Shape { .. }), "{e}");
    let e = LengthChart::new("", b(), vec![1, 2], one(vec![1.0, f32::INFINITY])).unwrap_err();
    assert!(matches!(e, ShowError::NotFinite { .. }), "{e}");
    assert!(matches!(
        LengthChart::new("", vec![], vec![], one(vec![])).unwrap_err(),
        ShowError::Empty(_)
    ));
    assert!(matches!(
        LengthChart::new("", b(), vec![1, 2], vec![]).unwrap_err(),
        ShowError::Empty(_)
    ));
}
