//! Helpers shared by the `show_*` tests: decode what the pictures wrote.
// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// A decoded 8-bit RGB PNG.
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Decoded {
    /// Number of pixels that are not white.
    pub fn inked(&self) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p != &[255, 255, 255])
            .count()
    }

    /// Number of pixels of exactly this colour.
    pub fn count(&self, colour: (u8, u8, u8)) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p == &[colour.0, colour.1, colour.2])
            .count()
    }
}

/// Checks the PNG signature and decodes the image.
pub fn decode_png(bytes: &[u8]) -> Decoded {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().expect("PNG header decodes");
    let mut rgb = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut rgb).expect("PNG frame decodes");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    rgb.truncate(info.buffer_size());
    Decoded {
        width: info.width,
        height: info.height,
        rgb,
    }
}

/// The trimmed text of every `<text>` element of the SVG, after checking that it parses as XML.
pub fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// The `fill` of every square `<rect>` of side `side` in the SVG: the heat map cells
/// (colour bar steps are 16 pixels wide and a few high; the background is the whole picture).
pub fn svg_cell_fills(svg: &str, side: u32) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("SVG parses as XML");
    let side = side.to_string();
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| n.attribute("width") == Some(&side) && n.attribute("height") == Some(&side))
        .map(|n| n.attribute("fill").unwrap_or("").to_string())
        .collect()
}

/// A fresh output path under cargo's per-test temporary directory.
pub fn out_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("show");
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir.join(name)
}
