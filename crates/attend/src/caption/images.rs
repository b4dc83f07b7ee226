//! Images in and out: PNG decoding (any PNG colour type and bit depth) to float pixels, area-weighted
//! resizing, PNG encoding, and the reader of real image + caption sets from TSV.
//!
//! Pixels are `[C, H, W]` floats in [0, 1] (C = 1 grey, or 3 RGB). Transparent pixels are composited
//! over black, the background of MNIST digits: a stamp or an emoji becomes a bright figure on a dark
//! ground. Grey is the luminance `0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601).
//!
//! TSV: one example per line, `image path<TAB>caption` (columns chosen by the caller), the path
//! relative to a root folder. A missing or undecodable image is an error naming the file and line.
//!
//! Training on a real set (`data.corpus = "image-tsv"`), e.g. the Twemoji images with their English
//! labels (`../shared/data/PROVENANCE.md`; the shared table holds split, path, category, en, …):
//!
//! ```sh
//! npm pack emoji-datasource-twitter@16.0.0 && tar xzf emoji-datasource-twitter-16.0.0.tgz
//! for s in train dev test; do
//!   awk -F'\t' -v s=$s '$1 == s { print $2 "\t" $4 }' ../shared/data/emoji.captions.tsv > emoji.$s.tsv
//! done
//! attend train configs/caption-digits.toml --out runs/emoji --set data.corpus=image-tsv \
//!   --set data.train=emoji.train.tsv --set data.dev=emoji.dev.tsv --set data.test=emoji.test.tsv \
//!   --set caption.image_root=package --set caption.channels=3 \
//!   --set caption.image_height=32 --set caption.image_width=32
//! ```
//!
//! The Tux Paint stamps work the same way (`apt-get download tuxpaint-stamps-default`, `dpkg-deb -x`,
//! `caption.image_root=…/usr/share/tuxpaint/stamps`, columns `$2 "\t" $3`); keep only the `.png`
//! rows (`$2 ~ /\.png$/`): SVG stamps are not decoded.

use super::{CaptionError, CaptionSet};
use crate::data::normalize::normalize;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// A decoded image, `[channels, height, width]` row-major, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Decodes the PNG file at `path` into `channels` (1 or 3) channels.
pub fn read_image(path: &Path, channels: usize) -> Result<Image, CaptionError> {
    let fail = |reason: String| CaptionError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| fail(format!("not a readable PNG ({e})")))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| fail(format!("not a readable PNG ({e})")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (colour, _) = reader.output_color_type();
    let n = colour.samples();
    let mut data = vec![0.0; channels * h * w];
    for (p, px) in buf[..info.buffer_size()].chunks_exact(n).enumerate() {
        let f = |i: usize| f32::from(px[i]) / 255.0;
        let (rgb, alpha) = match colour {
            png::ColorType::Grayscale => ([f(0); 3], 1.0),
            png::ColorType::GrayscaleAlpha => ([f(0); 3], f(1)),
            png::ColorType::Rgb => ([f(0), f(1), f(2)], 1.0),
            png::ColorType::Rgba => ([f(0), f(1), f(2)], f(3)),
            png::ColorType::Indexed => return Err(fail("palette was not expanded".into())),
        };
        if channels == 1 {
            data[p] = alpha * (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
        } else {
            for (c, v) in rgb.iter().enumerate() {
                data[c * h * w + p] = alpha * v;
            }
        }
    }
    Ok(Image {
        channels,
        height: h,
        width: w,
        data,
    })
}

/// Writes an image as an 8-bit grey (1 channel) or RGB (3 channels) PNG.
pub fn write_png(path: &Path, image: &Image) -> Result<(), CaptionError> {
    let (h, w) = (image.height, image.width);
    let colour = match image.channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        c => {
            return Err(CaptionError::Invalid(format!(
                "cannot write a {c}-channel PNG"
            )))
        }
    };
    // CHW floats → interleaved bytes.
    let mut bytes = vec![0u8; image.data.len()];
    for c in 0..image.channels {
        for p in 0..h * w {
            bytes[p * image.channels + c] =
                (image.data[c * h * w + p].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    let io = |e: std::io::Error| CaptionError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::create(path).map_err(io)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let encode = |e: png::EncodingError| CaptionError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&bytes).map_err(encode)?;
    writer.finish().map_err(encode)
}

/// Resizes by area averaging: output pixel `(i, j)` covers the source rectangle
/// `[i·H/h, (i+1)·H/h) × [j·W/w, (j+1)·W/w)` and is the mean of the source pixels weighted by how
/// much of each lies inside it (exact box filtering when shrinking; blocky when enlarging).
pub fn resize(image: &Image, height: usize, width: usize) -> Image {
    let (sh, sw) = (image.height, image.width);
    // For every output index along an axis: the source indices it overlaps and the overlap lengths.
    let spans = |src: usize, dst: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|o| {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                (a.floor() as usize..(b.ceil() as usize).min(src))
                    .map(|s| {
                        let overlap = (b.min(s as f64 + 1.0) - a.max(s as f64)) / scale;
                        (s, overlap as f32)
                    })
                    .collect()
            })
            .collect()
    };
    let (rows, cols) = (spans(sh, height), spans(sw, width));
    let mut data = vec![0.0; image.channels * height * width];
    for c in 0..image.channels {
        let src = &image.data[c * sh * sw..][..sh * sw];
        let dst = &mut data[c * height * width..][..height * width];
        for (i, row_span) in rows.iter().enumerate() {
            for (j, col_span) in cols.iter().enumerate() {
                let mut v = 0.0;
                for &(y, wy) in row_span {
                    for &(x, wx) in col_span {
                        v += wy * wx * src[y * sw + x];
                    }
                }
                dst[i * width + j] = v;
            }
        }
    }
    Image {
        channels: image.channels,
        height,
        width,
        data,
    }
}

/// Stacks images of one size into `[N, C, H, W]`.
pub fn stack(images: &[Image]) -> Tensor {
    let shape = match images.first() {
        Some(i) => [images.len(), i.channels, i.height, i.width],
        None => [0, 1, 1, 1],
    };
    let data: Vec<f32> = images.iter().flat_map(|i| i.data.iter().copied()).collect();
    Tensor::from_vec(data, &shape)
}

/// Reads `image path<TAB>caption` lines (0-based columns `image_col`, `caption_col`), decodes
/// every image (paths relative to `root`, or to the TSV's folder when `root` is `None`) and resizes
/// it to `height × width`. Empty lines are skipped; a short line or an unreadable image is an error
/// naming the file and the line.
pub fn read_image_tsv(
    path: &Path,
    root: Option<&Path>,
    (image_col, caption_col): (usize, usize),
    (channels, height, width): (usize, usize, usize),
) -> Result<CaptionSet, CaptionError> {
    let file = File::open(path).map_err(|source| CaptionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let root: PathBuf = match root {
        Some(r) => r.to_path_buf(),
        None => path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let tsv_error = |line: usize, reason: String| CaptionError::Tsv {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let (mut images, mut captions) = (Vec::new(), Vec::new());
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| tsv_error(i + 1, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let need = image_col.max(caption_col) + 1;
        if fields.len() < need {
            return Err(tsv_error(
                i + 1,
                format!(
                    "{} columns, expected at least {need} (image path, caption)",
                    fields.len()
                ),
            ));
        }
        let image = read_image(&root.join(fields[image_col]), channels)
            .map_err(|e| tsv_error(i + 1, e.to_string()))?;
        images.push(resize(&image, height, width));
        captions.push(normalize(fields[caption_col]));
    }
    if images.is_empty() {
        return Err(tsv_error(0, "no examples".into()));
    }
    Ok(CaptionSet {
        images: stack(&images),
        captions,
        strips: Vec::new(),
    })
}
