//! The grid overview: many heat maps in one picture (a Transformer's layers × heads), each with
//! its subtitle ("layer 1 head 2"), all shaded on one scale and read against one colour bar.

use super::heatmap::{
    colour_bar_height, colour_bar_width, draw_colour_bar, PanelStyle, MARGIN, TITLE_PX,
};
use super::picture::draw_error;
use super::{font, HeatMap, Picture, ShowError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Space between neighbouring panels.
const PANEL_GAP: u32 = 24;
/// Gap between the panels and the colour bar.
const BAR_GAP: u32 = 24;
/// The shared colour bar is at most this tall.
const MAX_BAR_HEIGHT: u32 = 360;

/// Heat maps laid out `columns` to a row, in the order given (row-major: with one row per layer
/// and one column per head, pass panels layer by layer and `columns` = number of heads).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMapGrid {
    title: String,
    panels: Vec<HeatMap>,
    columns: usize,
}

impl HeatMapGrid {
    /// A grid of `panels`, `columns` per row; each panel's own title is its subtitle.
    /// All panels must share one colour scale ([`HeatMap::with_scale`]).
    pub fn new(
        title: impl Into<String>,
        panels: Vec<HeatMap>,
        columns: usize,
    ) -> Result<HeatMapGrid, ShowError> {
        let Some(first) = panels.first() else {
            return Err(ShowError::Empty("heat map grid".to_string()));
        };
        if columns == 0 {
            return Err(ShowError::Invalid(
                "a heat map grid needs at least one column".to_string(),
            ));
        }
        if let Some(p) = panels.iter().find(|p| p.scale() != first.scale()) {
            return Err(ShowError::Invalid(format!(
                "heat map grid panels share one colour bar, but {:?} has scale {:?} and {:?} has {:?}",
                first.title(),
                first.scale(),
                p.title(),
                p.scale()
            )));
        }
        Ok(HeatMapGrid {
            title: title.into(),
            columns: columns.min(panels.len()),
            panels,
        })
    }

    /// Number of panels.
    pub fn len(&self) -> usize {
        self.panels.len()
    }

    /// Whether the grid has no panels (never true: [`HeatMapGrid::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.panels.is_empty()
    }

    /// Panel style: cells from 28 px down to 6 px as the longest sequence grows; labels are left
    /// out when cells are smaller than 9 px (the standalone heat maps carry them).
    fn style(&self) -> PanelStyle {
        let longest = self
            .panels
            .iter()
            .map(|p| p.rows().max(p.cols()))
            .max()
            .unwrap_or(1) as u32;
        let cell = (300 / longest).clamp(6, 28);
        PanelStyle {
            cell,
            label_px: if cell >= 9 { (cell - 2).min(12) } else { 0 },
            title_px: 13,
        }
    }

    /// The size of one slot (the largest panel plus the gap), and the number of grid rows.
    fn slots(&self, style: &PanelStyle) -> Result<((u32, u32), u32), ShowError> {
        let (mut w, mut h) = (0, 0);
        for p in &self.panels {
            let g = p.geometry(style)?;
            w = w.max(g.width);
            h = h.max(g.height);
        }
        let rows = self.panels.len().div_ceil(self.columns) as u32;
        Ok(((w + PANEL_GAP, h + PANEL_GAP), rows))
    }

    fn title_height(&self) -> u32 {
        if self.title.is_empty() {
            0
        } else {
            TITLE_PX + 14
        }
    }

    fn bar_height(&self, panels_h: u32) -> u32 {
        colour_bar_height(panels_h.min(MAX_BAR_HEIGHT))
    }
}

impl Picture for HeatMapGrid {
    fn size(&self) -> Result<(u32, u32), ShowError> {
        let style = self.style();
        let ((sw, sh), rows) = self.slots(&style)?;
        let panels_w = self.columns as u32 * sw - PANEL_GAP;
        let panels_h = rows * sh - PANEL_GAP;
        let bar_w = colour_bar_width(self.panels[0].scale(), 12)?;
        let title_w = if self.title.is_empty() {
            0
        } else {
            font::measure(&self.title, TITLE_PX)?.0
        };
        Ok((
            2 * MARGIN + (panels_w + BAR_GAP + bar_w).max(title_w),
            2 * MARGIN + self.title_height() + panels_h.max(self.bar_height(panels_h)),
        ))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError> {
        let style = self.style();
        let ((sw, sh), rows) = self.slots(&style)?;
        let m = MARGIN as i32;
        if !self.title.is_empty() {
            let t = font::text(TITLE_PX).pos(Pos::new(HPos::Left, VPos::Top));
            area.draw_text(&self.title, &t, (m, m))
                .map_err(draw_error)?;
        }
        let top = m + self.title_height() as i32;
        for (k, p) in self.panels.iter().enumerate() {
            let (r, c) = ((k / self.columns) as i32, (k % self.columns) as i32);
            let geo = p.geometry(&style)?;
            p.draw_panel(area, (m + c * sw as i32, top + r * sh as i32), &style, &geo)?;
        }
        let panels_w = self.columns as u32 * sw - PANEL_GAP;
        let panels_h = rows * sh - PANEL_GAP;
        draw_colour_bar(
            area,
            (m + (panels_w + BAR_GAP) as i32, top),
            self.bar_height(panels_h),
            self.panels[0].scale(),
            12,
        )
    }
}
