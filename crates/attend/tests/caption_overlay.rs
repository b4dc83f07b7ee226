//! The attention overlay: the PNG decodes to the size the picture reports, the heat sits where the
//! weight is, a marked cell is framed, and mismatched inputs are errors.

use attend::caption::{AttentionOverlay, Image};
use attend::show::{Picture, ShowError};

fn image() -> Image {
    Image {
        channels: 1,
        height: 8,
        width: 16,
        data: vec![0.5; 128],
    }
}

/// Decodes PNG bytes into (width, height, RGB bytes).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn the_png_has_the_reported_size_and_heat_where_the_weight_is() {
    // A 2×4 grid; word 1 looks at the top-left cell, word 2 at the bottom-right one.
    let mut first = vec![0.0; 8];
    first[0] = 1.0;
    let mut second = vec![0.0; 8];
    second[7] = 1.0;
    let overlay = AttentionOverlay::new(
        image(),
        (2, 4),
        vec!["three".into(), "one".into()],
        vec![first, second],
        3,
    )
    .unwrap();
    let (w, h) = overlay.size().unwrap();
    let (pw, ph, rgb) = decode(&overlay.png_bytes().unwrap());
    assert_eq!((pw, ph), (w, h));
    assert_eq!(w, 16 * 3 + 24);
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    // Panel 1 starts at (12, 12): its top-left image pixel is orange, its bottom-right is grey.
    let hot = at(12 + 1, 12 + 1);
    let cold = at(12 + 16 * 3 - 2, 12 + 8 * 3 - 2);
    assert!(hot.0 > hot.2 + 100, "hot pixel {hot:?}");
    assert_eq!(cold.0, cold.2, "cold pixel {cold:?} should be grey");
    // A single word's picture is one panel.
    let (_, h1) = overlay.word(1).size().unwrap();
    assert!(h1 < h);
}

#[test]
fn mismatched_inputs_are_errors() {
    let e = AttentionOverlay::new(image(), (2, 4), vec!["a".into()], vec![vec![0.1; 7]], 2)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ShowError::Shape {
                expected: 8,
                got: 7,
                ..
            }
        ),
        "{e}"
    );
    let e = AttentionOverlay::new(
        image(),
        (2, 4),
        vec!["a".into(), "b".into()],
        vec![vec![0.1; 8]],
        2,
    )
    .unwrap_err();
    assert!(matches!(e, ShowError::Shape { .. }), "{e}");
    let e = AttentionOverlay::new(image(), (2, 4), vec![], vec![], 2).unwrap_err();
    assert!(matches!(e, ShowError::Empty(_)), "{e}");
}

#[test]
fn a_marked_cell_is_framed_and_bad_marks_are_errors() {
    // A 2×4 grid over the 8×16 image: cell 6 (row 1, column 2) covers pixels x 8..12, y 4..8.
    let weights = vec![vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]];
    let plain =
        AttentionOverlay::new(image(), (2, 4), vec!["cell 1,2".into()], weights, 3).unwrap();
    let marked = plain.clone().with_marked_cells(vec![6]).unwrap();
    assert_eq!(marked.size().unwrap(), plain.size().unwrap());
    let (w, _) = marked.size().unwrap();
    let (_, _, framed) = decode(&marked.png_bytes().unwrap());
    let (_, _, bare) = decode(&plain.png_bytes().unwrap());
    let at = |rgb: &[u8], x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    // The frame's top-left corner (panel origin (12, 12), scale 3) is blue; the cell's inside
    // and the rest of the image are as without the frame.
    let corner = (12 + 8 * 3, 12 + 4 * 3);
    let blue = at(&framed, corner.0, corner.1);
    assert!(blue.2 > blue.0 + 100, "frame pixel {blue:?}");
    assert_ne!(blue, at(&bare, corner.0, corner.1));
    let inside = (corner.0 + 5, corner.1 + 5);
    assert_eq!(
        at(&framed, inside.0, inside.1),
        at(&bare, inside.0, inside.1)
    );
    assert_eq!(at(&framed, 14, 14), at(&bare, 14, 14));
    // One panel keeps its mark.
    assert_eq!(
        marked.word(0).png_bytes().unwrap(),
        marked.png_bytes().unwrap()
    );

    let e = plain.clone().with_marked_cells(vec![8]).unwrap_err();
    assert!(matches!(e, ShowError::Invalid(_)), "{e}");
    let e = plain.with_marked_cells(vec![0, 1]).unwrap_err();
    assert!(
        matches!(
            e,
            ShowError::Shape {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{e}"
    );
}
