//! Training curves render loss and BLEU panels; bad series are errors.

mod show_support;

use attend::show::{Picture, ShowError, TrainingCurves};
use show_support::{decode_png, out_path, svg_texts};

fn curves() -> TrainingCurves {
    let loss: Vec<(u64, f32)> = (1..=200)
        .map(|s| (s * 10, 6.0 / (1.0 + s as f32 / 20.0) + 1.5))
        .collect();
    let bleu: Vec<(u64, f32)> = (1..=8)
        .map(|k| (k * 250, 30.0 * (1.0 - (-(k as f32) / 3.0).exp())))
        .collect();
    TrainingCurves::new("rnn+attention, en → fr", loss, bleu).unwrap()
}

#[test]
fn png_has_both_panels() {
    let c = curves();
    let path = out_path("curves.png");
    c.save(&path).unwrap();
    let png = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((png.width, png.height), (900, 680));
    // Loss in blue (top half), BLEU in green (bottom half).
    let blue = (0, 114, 178);
    let green = (0, 158, 115);
    let half = png.rgb.len() / 2;
    let count = |rgb: &[u8], c: (u8, u8, u8)| {
        rgb.chunks_exact(3)
            .filter(|p| p == &[c.0, c.1, c.2])
            .count()
    };
    assert!(
        count(&png.rgb[..half], blue) > 500,
        "loss line in the top panel"
    );
    assert!(
        count(&png.rgb[half..], green) > 300,
        "BLEU line in the bottom panel"
    );
    assert_eq!(count(&png.rgb[half..], blue), 0);
}

#[test]
fn svg_names_the_panels_and_axes() {
    let texts = svg_texts(&curves().svg_string().unwrap());
    for t in [
        "training loss",
        "validation BLEU",
        "step",
        "loss",
        "BLEU",
        "rnn+attention, en → fr",
    ] {
        assert!(texts.iter().any(|x| x == t), "{t:?} missing");
    }
}

#[test]
fn a_run_without_validation_yet_still_draws() {
    let c = TrainingCurves::new("", vec![(1, 5.0), (2, 4.0)], vec![]).unwrap();
    let texts = svg_texts(&c.svg_string().unwrap());
    assert!(texts.iter().any(|t| t == "validation BLEU: no points yet"));
    let png = decode_png(&c.png_bytes().unwrap());
    assert!(png.inked() > 1000);
}

#[test]
fn bad_series_are_errors() {
    assert!(matches!(
        TrainingCurves::new("", vec![], vec![]).unwrap_err(),
        ShowError::Empty(_)
    ));
    let e = TrainingCurves::new("", vec![(1, 2.0), (2, f32::NAN)], vec![]).unwrap_err();
    assert!(matches!(e, ShowError::NotFinite { index: 1, .. }), "{e}");
    let e = TrainingCurves::new("", vec![(5, 2.0), (5, 1.0)], vec![]).unwrap_err();
    assert!(e.to_string().contains("step 5 follows step 5"), "{e}");
}
