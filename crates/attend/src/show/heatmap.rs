//! The attention heat map: one matrix of weights, target tokens down the side, source tokens
//! across the top, each cell shaded by its weight (grey low, green high), with a colour bar.
//!
//! weights: [rows = target tokens, cols = source tokens], row-major; row i is the softmax
//! distribution α_i· the decoder used when it emitted target token i (Bahdanau et al. 2015, fig. 3).

use super::colormap::{is_dark, weight_colour};
use super::picture::draw_error;
use super::{check_finite, check_len, font, Picture, ShowError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

/// Outer margin of every picture, in pixels.
pub(crate) const MARGIN: u32 = 16;
/// Gap between a label and the grid it names.
const LABEL_GAP: u32 = 6;
/// Number of shaded steps in a colour bar.
const BAR_STEPS: u32 = 64;
/// Width of the colour bar's shaded strip.
const BAR_WIDTH: u32 = 16;
/// Gap between the grid and the colour bar.
const BAR_GAP: u32 = 24;
/// The colour bar is at least this tall, even next to a one-row matrix.
const MIN_BAR_HEIGHT: u32 = 120;
/// Pixel size of cell numbers; they are printed only in cells at least `VALUE_MIN_CELL` wide.
const VALUE_PX: u32 = 12;
const VALUE_MIN_CELL: u32 = 34;
/// Pixel size of picture titles.
pub(crate) const TITLE_PX: u32 = 18;

/// One attention matrix to draw. Build it with [`HeatMap::new`], then draw it with [`Picture`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    title: String,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    weights: Vec<f32>,
    scale: (f32, f32),
    values: bool,
}

/// Sizes of one heat map panel: the standalone picture uses the large one, grids a smaller one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelStyle {
    /// Side of a cell in pixels.
    pub cell: u32,
    /// Pixel size of token labels; 0 hides them.
    pub label_px: u32,
    /// Pixel size of the panel's title.
    pub title_px: u32,
}

/// Where the parts of a panel go, relative to the panel's top-left corner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelGeometry {
    pub width: u32,
    pub height: u32,
    pub grid_x: u32,
    pub grid_y: u32,
    rotated: bool,
}

impl HeatMap {
    /// A heat map of `weights` ([rows, cols], row-major) with one label per row (target tokens)
    /// and one per column (source tokens). Colours span 0..1 and cells show their numbers when
    /// there is room; change that with [`HeatMap::with_scale`] and [`HeatMap::with_values`].
    pub fn new<R, C>(
        title: impl Into<String>,
        row_labels: R,
        col_labels: C,
        weights: Vec<f32>,
    ) -> Result<HeatMap, ShowError>
    where
        R: IntoIterator,
        R::Item: Into<String>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        let row_labels: Vec<String> = row_labels.into_iter().map(Into::into).collect();
        let col_labels: Vec<String> = col_labels.into_iter().map(Into::into).collect();
        if row_labels.is_empty() || col_labels.is_empty() {
            return Err(ShowError::Empty(format!(
                "heat map with {} target and {} source tokens",
                row_labels.len(),
                col_labels.len()
            )));
        }
        check_len(
            &format!(
                "heat map weights for {} target × {} source tokens",
                row_labels.len(),
                col_labels.len()
            ),
            row_labels.len() * col_labels.len(),
            weights.len(),
        )?;
        check_finite("heat map weights", &weights)?;
        Ok(HeatMap {
            title: title.into(),
            row_labels,
            col_labels,
            weights,
            scale: (0.0, 1.0),
            values: true,
        })
    }

    /// Colours run from `lo` (grey) to `hi` (dark green); values outside are clamped.
    /// Use it to show raw scores instead of softmax weights.
    pub fn with_scale(mut self, lo: f32, hi: f32) -> Result<HeatMap, ShowError> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(ShowError::Invalid(format!(
                "colour scale {lo}..{hi} is not an increasing range of finite numbers"
            )));
        }
        self.scale = (lo, hi);
        Ok(self)
    }

    /// Whether cells print their value (only ever where a cell is wide enough to hold it).
    pub fn with_values(mut self, values: bool) -> HeatMap {
        self.values = values;
        self
    }

    /// Number of rows (target tokens).
    pub fn rows(&self) -> usize {
        self.row_labels.len()
    }

    /// Number of columns (source tokens).
    pub fn cols(&self) -> usize {
        self.col_labels.len()
    }

    /// The title drawn above the matrix.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The colour scale (lo, hi).
    pub fn scale(&self) -> (f32, f32) {
        self.scale
    }

    /// The style of a standalone heat map: cells shrink from 44 px as the matrix grows, to 18 px.
    fn standalone_style(&self) -> PanelStyle {
        let longest = self.rows().max(self.cols()) as u32;
        let cell = (640 / longest).clamp(18, 44);
        PanelStyle {
            cell,
            label_px: (cell - 4).min(16),
            title_px: TITLE_PX,
        }
    }

    /// Lays out a panel in `style`.
    pub(crate) fn geometry(&self, style: &PanelStyle) -> Result<PanelGeometry, ShowError> {
        let title_h = if self.title.is_empty() {
            0
        } else {
            style.title_px + 10
        };
        let title_w = if self.title.is_empty() {
            0
        } else {
            font::measure(&self.title, style.title_px)?.0
        };
        let (row_w, col_h, rotated) = if style.label_px == 0 {
            (0, 0, false)
        } else {
            let row_w = font::widest(&self.row_labels, style.label_px)? + LABEL_GAP + 2;
            let col_w = font::widest(&self.col_labels, style.label_px)?;
            let rotated = col_w + 4 > style.cell;
            let col_h = if rotated { col_w } else { style.label_px } + LABEL_GAP + 4;
            (row_w, col_h, rotated)
        };
        let grid_x = row_w;
        let grid_y = title_h + col_h;
        let grid_right = grid_x + self.cols() as u32 * style.cell;
        Ok(PanelGeometry {
            width: grid_right.max(title_w),
            height: grid_y + self.rows() as u32 * style.cell,
            grid_x,
            grid_y,
            rotated,
        })
    }

    /// Draws title, labels and cells with their top-left corner at `origin` of `area`.
    pub(crate) fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        origin: (i32, i32),
        style: &PanelStyle,
        geo: &PanelGeometry,
    ) -> Result<(), ShowError> {
        let (ox, oy) = origin;
        if !self.title.is_empty() {
            let t = font::text(style.title_px).pos(Pos::new(HPos::Left, VPos::Top));
            area.draw_text(&self.title, &t, (ox, oy))
                .map_err(draw_error)?;
        }
        let cell = style.cell as i32;
        let gx = ox + geo.grid_x as i32;
        let gy = oy + geo.grid_y as i32;
        if style.label_px > 0 {
            let rows = font::text(style.label_px).pos(Pos::new(HPos::Right, VPos::Center));
            for (i, label) in self.row_labels.iter().enumerate() {
                let y = gy + i as i32 * cell + cell / 2;
                area.draw_text(label, &rows, (gx - LABEL_GAP as i32, y))
                    .map_err(draw_error)?;
            }
            let cols = if geo.rotated {
                font::text(style.label_px)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Left, VPos::Center))
            } else {
                font::text(style.label_px).pos(Pos::new(HPos::Center, VPos::Bottom))
            };
            for (j, label) in self.col_labels.iter().enumerate() {
                let x = gx + j as i32 * cell + cell / 2;
                area.draw_text(label, &cols, (x, gy - LABEL_GAP as i32))
                    .map_err(draw_error)?;
            }
        }
        let show_values = self.values && style.cell >= VALUE_MIN_CELL;
        let (lo, hi) = self.scale;
        for (k, &w) in self.weights.iter().enumerate() {
            let (i, j) = ((k / self.cols()) as i32, (k % self.cols()) as i32);
            let (x, y) = (gx + j * cell, gy + i * cell);
            let colour = weight_colour(w, lo, hi);
            // One pixel of white between cells keeps neighbouring equal weights apart.
            area.draw(&Rectangle::new(
                [(x, y), (x + cell - 1, y + cell - 1)],
                colour.filled(),
            ))
            .map_err(draw_error)?;
            if show_values {
                let ink = if is_dark(colour) { WHITE } else { BLACK };
                let t = font::text(VALUE_PX)
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw_text(&format!("{w:.2}"), &t, (x + cell / 2, y + cell / 2))
                    .map_err(draw_error)?;
            }
        }
        Ok(())
    }
}

/// Width in pixels of a colour bar with tick labels at `label_px`, for the scale (lo, hi).
pub(crate) fn colour_bar_width(scale: (f32, f32), label_px: u32) -> Result<u32, ShowError> {
    let ticks: Vec<String> = ticks(scale).iter().map(|&v| tick_label(v)).collect();
    Ok(BAR_WIDTH + LABEL_GAP + font::widest(&ticks, label_px)?)
}

/// The height a colour bar takes next to a grid `grid_h` pixels tall.
pub(crate) fn colour_bar_height(grid_h: u32) -> u32 {
    grid_h.max(MIN_BAR_HEIGHT)
}

/// Draws a vertical colour bar, high values on top, with five ticks, at (x, y), `height` tall.
pub(crate) fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    height: u32,
    scale: (f32, f32),
    label_px: u32,
) -> Result<(), ShowError> {
    let (lo, hi) = scale;
    let h = height as f32;
    for s in 0..BAR_STEPS {
        // Step s covers [s, s+1)/BAR_STEPS of the height from the top; its colour is its middle.
        let top = y + (h * s as f32 / BAR_STEPS as f32).round() as i32;
        let bottom = y + (h * (s + 1) as f32 / BAR_STEPS as f32).round() as i32;
        let v = hi - (hi - lo) * (s as f32 + 0.5) / BAR_STEPS as f32;
        area.draw(&Rectangle::new(
            [(x, top), (x + BAR_WIDTH as i32, bottom)],
            weight_colour(v, lo, hi).filled(),
        ))
        .map_err(draw_error)?;
    }
    area.draw(&Rectangle::new(
        [(x, y), (x + BAR_WIDTH as i32, y + height as i32)],
        BLACK.stroke_width(1),
    ))
    .map_err(draw_error)?;
    let t = font::text(label_px).pos(Pos::new(HPos::Left, VPos::Center));
    for v in ticks(scale) {
        let ty = y + ((hi - v) / (hi - lo) * h).round() as i32;
        area.draw(&PathElement::new(
            [(x + BAR_WIDTH as i32, ty), (x + BAR_WIDTH as i32 + 4, ty)],
            BLACK,
        ))
        .map_err(draw_error)?;
        area.draw_text(&tick_label(v), &t, (x + (BAR_WIDTH + LABEL_GAP) as i32, ty))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// Five evenly spaced tick values from lo to hi.
fn ticks((lo, hi): (f32, f32)) -> [f32; 5] {
    std::array::from_fn(|k| lo + (hi - lo) * k as f32 / 4.0)
}

/// A tick value with at most two decimals and no trailing zeros: 0, 0.25, 0.5, 1.
fn tick_label(v: f32) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

impl Picture for HeatMap {
    fn size(&self) -> Result<(u32, u32), ShowError> {
        let style = self.standalone_style();
        let geo = self.geometry(&style)?;
        let grid_h = self.rows() as u32 * style.cell;
        let bar_right = geo.grid_x
            + self.cols() as u32 * style.cell
            + BAR_GAP
            + colour_bar_width(self.scale, style.label_px)?;
        Ok((
            2 * MARGIN + geo.width.max(bar_right),
            2 * MARGIN + geo.grid_y + colour_bar_height(grid_h),
        ))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError> {
        let style = self.standalone_style();
        let geo = self.geometry(&style)?;
        let m = MARGIN as i32;
        self.draw_panel(area, (m, m), &style, &geo)?;
        let grid_h = self.rows() as u32 * style.cell;
        let bar_x = m + (geo.grid_x + self.cols() as u32 * style.cell + BAR_GAP) as i32;
        draw_colour_bar(
            area,
            (bar_x, m + geo.grid_y as i32),
            colour_bar_height(grid_h),
            self.scale,
            style.label_px,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        let labels: Vec<String> = ticks((0.0, 1.0)).iter().map(|&v| tick_label(v)).collect();
        assert_eq!(labels, ["0", "0.25", "0.5", "0.75", "1"]);
        let labels: Vec<String> = ticks((-2.0, 2.0)).iter().map(|&v| tick_label(v)).collect();
        assert_eq!(labels, ["-2", "-1", "0", "1", "2"]);
    }

    #[test]
    fn cells_shrink_as_the_matrix_grows() {
        let small = HeatMap::new("", ["a"], ["b"], vec![1.0]).unwrap();
        assert_eq!(small.standalone_style().cell, 44);
        let n = 60;
        let big = HeatMap::new("", vec!["x"; n], vec!["y"; n], vec![0.5; n * n]).unwrap();
        assert_eq!(big.standalone_style().cell, 18);
    }
}
