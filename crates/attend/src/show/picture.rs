//! The one way every picture is rendered: to PNG bytes, to an SVG string, or to a file.

use super::{font, ShowError};
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingAreaErrorKind, DrawingBackend};
use plotters::prelude::{IntoDrawingArea, SVGBackend, WHITE};
use std::path::Path;

/// Pictures larger than this many pixels are refused rather than allocated (about 100 MB of RGB).
const MAX_PIXELS: u64 = 32_000_000;

/// An output format, chosen by the file extension in [`Picture::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Portable Network Graphics, 8-bit RGB.
    Png,
    /// Scalable Vector Graphics; text stays text.
    Svg,
}

impl Format {
    /// The format named by `path`'s extension (`.png` or `.svg`, any case).
    pub fn from_path(path: &Path) -> Result<Format, ShowError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(ShowError::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// Something that can be drawn: it knows its size and draws itself on any plotters backend.
pub trait Picture {
    /// Width and height of the whole picture in pixels.
    fn size(&self) -> Result<(u32, u32), ShowError>;

    /// Draws the picture on `area`, which has exactly [`Picture::size`] pixels.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError>;

    /// The picture as a PNG file's bytes.
    fn png_bytes(&self) -> Result<Vec<u8>, ShowError> {
        font::ensure_registered()?;
        let (w, h) = checked_size(self.size()?)?;
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ShowError::Png(e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| ShowError::Png(e.to_string()))?;
        writer.finish().map_err(|e| ShowError::Png(e.to_string()))?;
        Ok(out)
    }

    /// The picture as an SVG document.
    fn svg_string(&self) -> Result<String, ShowError> {
        font::ensure_registered()?;
        let (w, h) = checked_size(self.size()?)?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        Ok(svg)
    }

    /// Writes the picture to `path` as PNG or SVG, chosen by its extension.
    fn save(&self, path: &Path) -> Result<(), ShowError> {
        let bytes = match Format::from_path(path)? {
            Format::Png => self.png_bytes()?,
            Format::Svg => self.svg_string()?.into_bytes(),
        };
        std::fs::write(path, bytes).map_err(|source| ShowError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Refuses empty or absurdly large canvases.
fn checked_size((w, h): (u32, u32)) -> Result<(u32, u32), ShowError> {
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ShowError::Invalid(format!(
            "a picture of {w}×{h} pixels cannot be drawn (at most {MAX_PIXELS} pixels): \
             plot fewer tokens or fewer panels"
        )));
    }
    Ok((w, h))
}

/// Turns a plotters error into a [`ShowError`].
pub(crate) fn draw_error<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> ShowError {
    ShowError::Draw(e.to_string())
}
