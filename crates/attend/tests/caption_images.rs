//! PNG decoding of every colour type, area-weighted resizing against hand-computed averages, the
//! TSV reader on small PNGs written here, and clear errors for unreadable images.

use attend::caption::images::{read_image, read_image_tsv, resize, write_png, Image};
use attend::caption::CaptionError;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes raw 8-bit samples as a PNG of the given colour type.
fn write_raw(path: &Path, w: u32, h: u32, colour: png::ColorType, bytes: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(colour);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(bytes).unwrap();
}

#[test]
fn every_colour_type_decodes_to_grey_and_rgb() {
    let dir = temp_dir("colours");
    // One pixel of pure red (255, 0, 0), half transparent where there is alpha.
    let cases: [(&str, png::ColorType, Vec<u8>, f32); 4] = [
        ("grey.png", png::ColorType::Grayscale, vec![51], 0.2),
        (
            "grey-alpha.png",
            png::ColorType::GrayscaleAlpha,
            vec![255, 128],
            128.0 / 255.0,
        ),
        ("rgb.png", png::ColorType::Rgb, vec![255, 0, 0], 0.299),
        (
            "rgba.png",
            png::ColorType::Rgba,
            vec![255, 0, 0, 255],
            0.299,
        ),
    ];
    for (name, colour, bytes, grey) in cases {
        let path = dir.join(name);
        write_raw(&path, 1, 1, colour, &bytes);
        let g = read_image(&path, 1).unwrap();
        assert_eq!((g.channels, g.height, g.width), (1, 1, 1));
        assert!(
            (g.data[0] - grey).abs() < 1e-3,
            "{name}: grey {} want {grey}",
            g.data[0]
        );
        let rgb = read_image(&path, 3).unwrap();
        assert_eq!(rgb.data.len(), 3);
    }
    let rgb = read_image(&dir.join("rgb.png"), 3).unwrap();
    assert_eq!(rgb.data, vec![1.0, 0.0, 0.0]);
}

#[test]
fn written_images_read_back() {
    let dir = temp_dir("roundtrip");
    let image = Image {
        channels: 1,
        height: 2,
        width: 3,
        data: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    };
    write_png(&dir.join("a.png"), &image).unwrap();
    let back = read_image(&dir.join("a.png"), 1).unwrap();
    assert_eq!((back.height, back.width), (2, 3));
    for (a, b) in back.data.iter().zip(&image.data) {
        assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
    }
}

#[test]
fn resizing_averages_areas() {
    // 4×4 → 2×2: each output is the mean of a 2×2 block.
    let data: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let image = Image {
        channels: 1,
        height: 4,
        width: 4,
        data,
    };
    let small = resize(&image, 2, 2);
    assert_eq!(small.data, vec![2.5, 4.5, 10.5, 12.5]);
    // 3 → 2 columns: output 0 covers source [0, 1.5): (x0 + 0.5·x1) / 1.5.
    let row = Image {
        channels: 1,
        height: 1,
        width: 3,
        data: vec![3.0, 6.0, 9.0],
    };
    let r = resize(&row, 1, 2);
    assert!(
        (r.data[0] - 4.0).abs() < 1e-5 && (r.data[1] - 8.0).abs() < 1e-5,
        "{:?}",
        r.data
    );
    // Enlarging keeps the mean; the same size is the identity.
    let big = resize(&image, 8, 12);
    let mean = big.data.iter().sum::<f32>() / big.data.len() as f32;
    assert!((mean - 7.5).abs() < 1e-4);
    assert_eq!(resize(&image, 4, 4), image);
}

#[test]
fn the_tsv_reader_decodes_and_resizes_every_image() {
    let dir = temp_dir("tsv");
    std::fs::create_dir_all(dir.join("img")).unwrap();
    write_raw(
        &dir.join("img/cat.png"),
        4,
        2,
        png::ColorType::Grayscale,
        &[255; 8],
    );
    write_raw(
        &dir.join("img/dog.png"),
        3,
        3,
        png::ColorType::Rgb,
        &[0; 27],
    );
    std::fs::write(
        dir.join("set.tsv"),
        "img/cat.png\ta white cat\n\nimg/dog.png\ta black dog\n",
    )
    .unwrap();
    let set = read_image_tsv(&dir.join("set.tsv"), None, (0, 1), (1, 4, 6)).unwrap();
    assert_eq!(set.images.shape(), [2, 1, 4, 6]);
    assert_eq!(set.captions, ["a white cat", "a black dog"]);
    assert!(set.images.data()[..24]
        .iter()
        .all(|&v| (v - 1.0).abs() < 1e-6));
    assert!(set.images.data()[24..].iter().all(|&v| v == 0.0));
}

#[test]
fn an_unreadable_image_is_an_error_naming_the_file_and_line() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("broken.png"), b"not a png at all").unwrap();
    std::fs::write(dir.join("set.tsv"), "broken.png\tsomething\n").unwrap();
    let err = read_image_tsv(&dir.join("set.tsv"), None, (0, 1), (1, 4, 4)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CaptionError::Tsv { line: 1, .. }), "{msg}");
    assert!(
        msg.contains("broken.png") && msg.contains("not a readable PNG"),
        "{msg}"
    );
    let missing = read_image(&dir.join("missing.png"), 1)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.png"), "{missing}");
    std::fs::write(dir.join("short.tsv"), "only-one-column\n").unwrap();
    let short = read_image_tsv(&dir.join("short.tsv"), None, (0, 1), (1, 4, 4))
        .unwrap_err()
        .to_string();
    assert!(
        short.contains("short.tsv:1") && short.contains("1 columns"),
        "{short}"
    );
}
