//! The grid overview puts layers × heads in one picture with subtitles and one colour bar.

mod show_support;

use attend::show::{HeatMap, HeatMapGrid, Picture, ShowError};
use show_support::{decode_png, out_path, svg_texts};

/// 2 layers × 3 heads of self-attention over a French sentence; head h looks h tokens back.
fn panels() -> Vec<HeatMap> {
    let tokens = ["le", "chat", "a", "écrit", "«", "ça", "»"];
    let n = tokens.len();
    let mut out = Vec::new();
    for layer in 1..=2 {
        for head in 1..=3 {
            let mut w = vec![0.0f32; n * n];
            for i in 0..n {
                w[i * n + i.saturating_sub(head - 1)] = 1.0;
            }
            let title = format!("layer {layer} head {head}");
            out.push(HeatMap::new(title, tokens, tokens, w).unwrap());
        }
    }
    out
}

#[test]
fn png_and_svg_show_every_panel_with_its_subtitle() {
    let grid = HeatMapGrid::new("decoder self-attention", panels(), 3).unwrap();
    assert_eq!(grid.len(), 6);
    let path = out_path("grid.png");
    grid.save(&path).unwrap();
    let png = decode_png(&std::fs::read(&path).unwrap());
    assert_eq!((png.width, png.height), grid.size().unwrap());
    // Three panels across are wider than tall; two rows of panels are taller than one.
    assert!(png.width > png.height);
    assert!(
        png.inked() > 6 * 7 * 7 * 100,
        "six panels of 7×7 shaded cells"
    );

    let svg_path = out_path("grid.svg");
    grid.save(&svg_path).unwrap();
    let texts = svg_texts(&std::fs::read_to_string(&svg_path).unwrap());
    for layer in 1..=2 {
        for head in 1..=3 {
            let subtitle = format!("layer {layer} head {head}");
            assert!(texts.contains(&subtitle), "{subtitle} missing");
        }
    }
    assert!(texts.iter().any(|t| t == "decoder self-attention"));
    // Every panel labels its rows and columns: "écrit" 12 times; one shared colour bar: "0.5" once.
    assert_eq!(texts.iter().filter(|t| *t == "écrit").count(), 12);
    assert_eq!(texts.iter().filter(|t| *t == "0.5").count(), 1);
}

#[test]
fn columns_shape_the_picture() {
    let wide = HeatMapGrid::new("", panels(), 6).unwrap().size().unwrap();
    let tall = HeatMapGrid::new("", panels(), 1).unwrap().size().unwrap();
    assert!(wide.0 > tall.0 && wide.1 < tall.1, "{wide:?} vs {tall:?}");
    // More columns than panels is the same as one row.
    let capped = HeatMapGrid::new("", panels(), 60).unwrap().size().unwrap();
    assert_eq!(capped, wide);
}

#[test]
fn large_panels_drop_their_labels_but_still_render() {
    let n = 64;
    let labels: Vec<String> = (0..n).map(|k| format!("t{k}")).collect();
    let w = vec![1.0 / n as f32; n * n];
    let panel = |h| {
        HeatMap::new(
            format!("head {h}"),
            labels.clone(),
            labels.clone(),
            w.clone(),
        )
    };
    let grid = HeatMapGrid::new("", (1..=4).map(|h| panel(h).unwrap()).collect(), 2).unwrap();
    let texts = svg_texts(&grid.svg_string().unwrap());
    assert!(texts.iter().any(|t| t == "head 4"));
    assert!(
        !texts.iter().any(|t| t == "t0"),
        "6 px cells carry no labels"
    );
    let png = decode_png(&grid.png_bytes().unwrap());
    assert_eq!((png.width, png.height), grid.size().unwrap());
}

#[test]
fn bad_grids_are_errors() {
    assert!(matches!(
        HeatMapGrid::new("", vec![], 2).unwrap_err(),
        ShowError::Empty(_)
    ));
    assert!(matches!(
        HeatMapGrid::new("", panels(), 0).unwrap_err(),
        ShowError::Invalid(_)
    ));
    let mut mixed = panels();
    mixed[1] = mixed[1].clone().with_scale(-1.0, 1.0).unwrap();
    let e = HeatMapGrid::new("", mixed, 3).unwrap_err();
    assert!(e.to_string().contains("layer 1 head 2"), "{e}");
}
