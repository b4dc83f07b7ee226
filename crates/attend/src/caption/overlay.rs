//! The captioner's picture: the image once per emitted word, with that word's attention weights
//! laid over it (Xu et al. 2015, fig. 2), one panel under the other, each labelled with its word.
//!
//! The weights `α [S]` of a step live on the `gh × gw` grid; they are upsampled to the image by
//! bilinear interpolation between cell centres and scaled by the step's largest weight,
//! `t = α(x, y) / max α`, so that every panel uses the full colour range. A pixel is drawn as
//! `(1 − 0.7 t) · grey + 0.7 t · orange`, `grey` the image's own value (dimmed to 80%).
//!
//! The same picture shows a self-attention map (a grid cell's weights over the grid, see
//! [`ImageSelfAttention`](crate::attention::ImageSelfAttention)): then each panel also frames the
//! cell that looks ([`with_marked_cells`](AttentionOverlay::with_marked_cells)).

use super::images::Image;
use crate::show::{Picture, ShowError};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Outer margin and gap between panels, in pixels.
const MARGIN: u32 = 12;
/// Height of the word label under each panel.
const LABEL: u32 = 26;
/// Pixel size of the labels.
const LABEL_PX: u32 = 18;
/// The overlay colour of high attention.
const HEAT: (f32, f32, f32) = (255.0, 120.0, 0.0);
/// How strongly the heat covers the image where the weight is largest.
const OPACITY: f32 = 0.7;
/// The frame around a marked cell.
const FRAME: RGBColor = RGBColor(0, 90, 255);

/// Attention over an image for a sequence of words.
#[derive(Debug, Clone)]
pub struct AttentionOverlay {
    image: Image,
    grid: (usize, usize),
    words: Vec<String>,
    weights: Vec<Vec<f32>>,
    scale: u32,
    /// Number of the first panel's word in the caption, minus one (labels read "3. nine").
    first: usize,
    /// One grid cell per panel to frame, or empty.
    marks: Vec<usize>,
}

impl AttentionOverlay {
    /// An overlay of `weights` (one `[gh · gw]` row per word, row-major cells) on `image`, drawn
    /// `scale` times enlarged.
    pub fn new(
        image: Image,
        grid: (usize, usize),
        words: Vec<String>,
        weights: Vec<Vec<f32>>,
        scale: u32,
    ) -> Result<AttentionOverlay, ShowError> {
        if words.is_empty() {
            return Err(ShowError::Empty("the caption".into()));
        }
        if words.len() != weights.len() {
            return Err(ShowError::Shape {
                what: "attention rows (one per word)".into(),
                expected: words.len(),
                got: weights.len(),
            });
        }
        let cells = grid.0 * grid.1;
        for (k, row) in weights.iter().enumerate() {
            if row.len() != cells {
                return Err(ShowError::Shape {
                    what: format!("attention weights of word {}", k + 1),
                    expected: cells,
                    got: row.len(),
                });
            }
            if let Some(i) = row.iter().position(|v| !v.is_finite()) {
                return Err(ShowError::NotFinite {
                    what: format!("attention weights of word {}", k + 1),
                    index: i,
                    value: row[i],
                });
            }
        }
        if image.data.is_empty() || scale == 0 {
            return Err(ShowError::Invalid(
                "an empty image or a zero scale cannot be drawn".into(),
            ));
        }
        Ok(AttentionOverlay {
            image,
            grid,
            words,
            weights,
            scale,
            first: 0,
            marks: vec![],
        })
    }

    /// Frames cell `cells[k]` (row-major on the grid) in panel `k`: the cell whose attention the
    /// panel shows. One cell per panel.
    pub fn with_marked_cells(self, cells: Vec<usize>) -> Result<AttentionOverlay, ShowError> {
        if cells.len() != self.words.len() {
            return Err(ShowError::Shape {
                what: "marked cells (one per panel)".into(),
                expected: self.words.len(),
                got: cells.len(),
            });
        }
        let n = self.grid.0 * self.grid.1;
        if let Some(&c) = cells.iter().find(|&&c| c >= n) {
            return Err(ShowError::Invalid(format!(
                "cell {c} is outside the {}×{} grid",
                self.grid.0, self.grid.1
            )));
        }
        Ok(AttentionOverlay {
            marks: cells,
            ..self
        })
    }

    /// The overlay of word `k` alone (still labelled with its place in the caption).
    pub fn word(&self, k: usize) -> AttentionOverlay {
        AttentionOverlay {
            words: vec![self.words[k].clone()],
            weights: vec![self.weights[k].clone()],
            first: self.first + k,
            marks: self.marks.get(k).map(|&c| vec![c]).unwrap_or_default(),
            ..self.clone()
        }
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The weight at image pixel `(x, y)`: bilinear between cell centres, clamped at the edges.
    fn weight_at(&self, row: &[f32], x: usize, y: usize) -> f32 {
        let (gh, gw) = self.grid;
        let (h, w) = (self.image.height, self.image.width);
        let coord = |p: usize, n: usize, g: usize| -> (usize, usize, f32) {
            let c = ((p as f32 + 0.5) * g as f32 / n as f32 - 0.5).clamp(0.0, (g - 1) as f32);
            let lo = c.floor() as usize;
            (lo, (lo + 1).min(g - 1), c - lo as f32)
        };
        let (y0, y1, fy) = coord(y, h, gh);
        let (x0, x1, fx) = coord(x, w, gw);
        let at = |r: usize, c: usize| row[r * gw + c];
        let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
        let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Panel pixels `(x0, y0, x1, y1)` (enlarged, inclusive) of grid cell `cell`'s share of the
    /// image.
    fn cell_box(&self, cell: usize) -> (usize, usize, usize, usize) {
        let (gh, gw) = self.grid;
        let (h, w, s) = (self.image.height, self.image.width, self.scale as usize);
        let (r, c) = (cell / gw, cell % gw);
        let (y0, y1) = (r * h / gh * s, ((r + 1) * h / gh * s).max(1) - 1);
        let (x0, x1) = (c * w / gw * s, ((c + 1) * w / gw * s).max(1) - 1);
        (x0, y0, x1, y1)
    }

    /// The image's colour at `(x, y)` as RGB in [0, 255].
    fn pixel(&self, x: usize, y: usize) -> (f32, f32, f32) {
        let (h, w) = (self.image.height, self.image.width);
        let v = |c: usize| self.image.data[c * h * w + y * w + x] * 255.0;
        if self.image.channels == 1 {
            (v(0), v(0), v(0))
        } else {
            (v(0), v(1), v(2))
        }
    }
}

impl Picture for AttentionOverlay {
    fn size(&self) -> Result<(u32, u32), ShowError> {
        let (w, h) = (self.image.width as u32, self.image.height as u32);
        let panel = h * self.scale + LABEL;
        Ok((
            w * self.scale + 2 * MARGIN,
            MARGIN + self.words.len() as u32 * (panel + MARGIN),
        ))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError> {
        let fail = |e: String| ShowError::Draw(e);
        let (h, w) = (self.image.height, self.image.width);
        let s = self.scale as usize;
        let panel = h as u32 * self.scale + LABEL + MARGIN;
        let style = ("sans-serif", LABEL_PX).into_font().color(&BLACK);
        for (k, (word, row)) in self.words.iter().zip(&self.weights).enumerate() {
            let top = (MARGIN + k as u32 * panel) as i32;
            let peak = row.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
            for y in 0..h {
                for x in 0..w {
                    let t = (self.weight_at(row, x, y) / peak).clamp(0.0, 1.0) * OPACITY;
                    let (r, g, b) = self.pixel(x, y);
                    let mix = |v: f32, heat: f32| ((1.0 - t) * 0.8 * v + t * heat).round() as u8;
                    let colour = RGBColor(mix(r, HEAT.0), mix(g, HEAT.1), mix(b, HEAT.2));
                    for dy in 0..s {
                        for dx in 0..s {
                            let px = (MARGIN as usize + x * s + dx) as i32;
                            let py = top + (y * s + dy) as i32;
                            area.draw_pixel((px, py), &colour)
                                .map_err(|e| fail(e.to_string()))?;
                        }
                    }
                }
            }
            if let Some(&cell) = self.marks.get(k) {
                let (x0, y0, x1, y1) = self.cell_box(cell);
                let corner = |x: usize, y: usize| (MARGIN as i32 + x as i32, top + y as i32);
                let frame = Rectangle::new([corner(x0, y0), corner(x1, y1)], FRAME.stroke_width(2));
                area.draw(&frame).map_err(|e| fail(e.to_string()))?;
            }
            let label = format!("{}. {word}", self.first + k + 1);
            let y = top + (h * s) as i32 + 4;
            area.draw_text(&label, &style, (MARGIN as i32, y))
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }
}
