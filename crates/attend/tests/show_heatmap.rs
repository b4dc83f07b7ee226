//! The heat map renders as PNG and SVG with its labels, cells and colour bar; bad input is an error.

mod show_support;

use attend::show::{weight_colour, HeatMap, Picture, ShowError};
use show_support::{decode_png, out_path, svg_cell_fills, svg_texts};

/// "the black cat wrote «it» in the castle" → "le chat noir a écrit « ça » au château".
fn sample() -> HeatMap {
    let src = ["the", "black", "cat", "wrote", "«it»", "castle"];
    let tgt = ["le", "chat", "noir", "a écrit", "« ça »", "château"];
    // Each row a distribution with its peak on the aligned source word.
    let peaks = [0, 2, 1, 3, 4, 5];
    let mut w = vec![0.02f32; 36];
    for (i, &p) in peaks.iter().enumerate() {
        w[i * 6 + p] = 0.9;
    }
    HeatMap::new("attention: en → fr", tgt, src, w).unwrap()
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

#[test]
fn png_decodes_with_the_promised_size_and_shaded_cells() {
    let map = sample();
    let path = out_path("heatmap.png");
    map.save(&path).unwrap();
    let png = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((png.width, png.height), map.size().unwrap());
    assert!(
        png.width > 6 * 44 && png.height > 6 * 44,
        "room for 6×6 cells of 44 px"
    );
    // Six peak cells of 43×43 pixels in the darkest-but-one green, 30 low cells in light grey,
    // each less the pixels of the number printed on it.
    let high = png.count(rgb(weight_colour(0.9, 0.0, 1.0)));
    let low = png.count(rgb(weight_colour(0.02, 0.0, 1.0)));
    assert!(
        high > 6 * 43 * 43 * 3 / 4 && high <= 6 * 43 * 43,
        "high cells: {high} pixels"
    );
    assert!(low > 30 * 43 * 43 * 3 / 4, "low cells: {low} pixels");
    // Text is drawn: some pixels are neither white nor a cell colour.
    assert!(png.inked() > high + low + 1000);
}

fn rgb(c: plotters::style::RGBColor) -> (u8, u8, u8) {
    (c.0, c.1, c.2)
}

#[test]
fn svg_parses_and_has_labels_cells_and_colour_bar() {
    let map = sample();
    let path = out_path("heatmap.svg");
    map.save(&path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let texts = svg_texts(&svg);
    for label in [
        "the",
        "black",
        "cat",
        "wrote",
        "«it»",
        "castle",
        "le",
        "chat",
        "noir",
        "a écrit",
        "« ça »",
        "château",
        "attention: en → fr",
    ] {
        assert!(texts.iter().any(|t| t == label), "label {label:?} missing");
    }
    // Numbers in cells, and the colour bar's ticks.
    assert_eq!(texts.iter().filter(|t| *t == "0.90").count(), 6);
    assert_eq!(texts.iter().filter(|t| *t == "0.02").count(), 30);
    for tick in ["0", "0.25", "0.5", "0.75", "1"] {
        assert!(texts.iter().any(|t| t == tick), "tick {tick} missing");
    }
    // 6×6 cells of 44 px, drawn 43 px wide to leave a white line between them.
    let fills = svg_cell_fills(&svg, 43);
    assert_eq!(fills.len(), 36);
    let high = hex(weight_colour(0.9, 0.0, 1.0));
    let low = hex(weight_colour(0.02, 0.0, 1.0));
    assert_eq!(fills.iter().filter(|f| **f == high).count(), 6);
    assert_eq!(fills.iter().filter(|f| **f == low).count(), 30);
}

#[test]
fn png_and_svg_in_memory_match_the_files() {
    let map = sample();
    let path = out_path("heatmap_mem.svg");
    map.save(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        map.svg_string().unwrap()
    );
    let png = decode_png(&map.png_bytes().unwrap());
    assert_eq!((png.width, png.height), map.size().unwrap());
}

#[test]
fn long_source_tokens_are_rotated_and_the_picture_grows_with_tokens() {
    let small = sample();
    let n = 30;
    let labels: Vec<String> = (0..n).map(|k| format!("Wörter{k}")).collect();
    let w: Vec<f32> = (0..n * n).map(|k| (k % 7) as f32 / 6.0).collect();
    let big = HeatMap::new("", labels.clone(), labels, w).unwrap();
    let (sw, sh) = small.size().unwrap();
    let (bw, bh) = big.size().unwrap();
    assert!(bw > sw && bh > sh);
    let path = out_path("heatmap_30.png");
    big.save(&path).unwrap();
    let png = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((png.width, png.height), (bw, bh));
    // 30 cells of 21 px: the labels do not fit across a cell and stand upright.
    let svg = big.svg_string().unwrap();
    assert!(svg.contains("rotate(270"), "rotated column labels");
    // Cells are too small for numbers.
    assert!(!svg_texts(&svg).iter().any(|t| t == "0.50"));
}

#[test]
fn values_can_be_turned_off_and_scores_shown_on_their_own_scale() {
    let map = HeatMap::new("scores", ["x"], ["a", "b"], vec![-2.0, 3.5])
        .unwrap()
        .with_scale(-4.0, 4.0)
        .unwrap()
        .with_values(false);
    let texts = svg_texts(&map.svg_string().unwrap());
    assert!(!texts.iter().any(|t| t == "-2.00"));
    for tick in ["-4", "-2", "0", "2", "4"] {
        assert!(texts.iter().any(|t| t == tick), "tick {tick} missing");
    }
    let fills = svg_cell_fills(&map.svg_string().unwrap(), 43);
    assert_eq!(
        fills,
        [
            hex(weight_colour(-2.0, -4.0, 4.0)),
            hex(weight_colour(3.5, -4.0, 4.0))
        ]
    );
}

#[test]
fn bad_input_is_an_error() {
    let e = HeatMap::new("", ["a", "b"], ["x", "y", "z"], vec![0.5; 5]).unwrap_err();
    assert!(
        matches!(
            e,
            ShowError::Shape {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("2 target × 3 source"), "{e}");
    let none: [&str; 0] = [];
    assert!(matches!(
        HeatMap::new("", none, ["x"], vec![]).unwrap_err(),
        ShowError::Empty(_)
    ));
    let e = HeatMap::new("", ["a"], ["x", "y"], vec![0.5, f32::NAN]).unwrap_err();
    assert!(matches!(e, ShowError::NotFinite { index: 1, .. }), "{e}");
    let map = HeatMap::new("", ["a"], ["x"], vec![1.0]).unwrap();
    assert!(matches!(
        map.clone().with_scale(1.0, 1.0).unwrap_err(),
        ShowError::Invalid(_)
    ));
    assert!(matches!(
        map.save(&out_path("heatmap.jpg")).unwrap_err(),
        ShowError::UnknownFormat(_)
    ));
}
