//! Training curves: training loss over steps (top panel) and validation BLEU over steps (bottom
//! panel), sharing the step axis so that a BLEU jump lines up with the loss it came from.

use super::colormap::SERIES;
use super::picture::draw_error;
use super::{font, Picture, ShowError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Picture size in pixels.
const WIDTH: u32 = 900;
const HEIGHT: u32 = 680;

/// Loss and BLEU of one training run. `loss` and `bleu` are (step, value) in increasing steps;
/// either may be empty (no validation yet), not both.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCurves {
    title: String,
    loss: Vec<(u64, f32)>,
    bleu: Vec<(u64, f32)>,
}

impl TrainingCurves {
    /// Curves from (step, training loss) and (step, validation BLEU) points.
    pub fn new(
        title: impl Into<String>,
        loss: Vec<(u64, f32)>,
        bleu: Vec<(u64, f32)>,
    ) -> Result<TrainingCurves, ShowError> {
        if loss.is_empty() && bleu.is_empty() {
            return Err(ShowError::Empty(
                "training curves (no loss and no BLEU points)".to_string(),
            ));
        }
        for (what, points) in [("training loss", &loss), ("validation BLEU", &bleu)] {
            let values: Vec<f32> = points.iter().map(|p| p.1).collect();
            super::check_finite(what, &values)?;
            if let Some(w) = points.windows(2).find(|w| w[1].0 <= w[0].0) {
                return Err(ShowError::Invalid(format!(
                    "{what}: steps must increase, but step {} follows step {}",
                    w[1].0, w[0].0
                )));
            }
        }
        Ok(TrainingCurves {
            title: title.into(),
            loss,
            bleu,
        })
    }

    /// The step range covered by both curves, widened to at least one step.
    fn steps(&self) -> std::ops::Range<u64> {
        let all = self.loss.iter().chain(&self.bleu).map(|p| p.0);
        let lo = all.clone().min().unwrap_or(0);
        let hi = all.max().unwrap_or(0);
        lo..hi.max(lo + 1)
    }
}

/// Value range of `points` with 5% of the span (at least 1% of the top) as room above and below; `floor` pins the bottom (BLEU at 0).
fn value_range(points: &[(u64, f32)], floor: Option<f32>) -> std::ops::Range<f32> {
    let lo = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let hi = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let pad = ((hi - lo) * 0.05).max(0.01 * hi.abs()).max(0.01);
    match floor {
        Some(f) => f.min(lo)..hi + pad,
        None => lo - pad..hi + pad,
    }
}

/// Draws one panel: a line (with points when there are few) or a note that there is no data.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    points: &[(u64, f32)],
    steps: std::ops::Range<u64>,
    floor: Option<f32>,
    colour: RGBColor,
) -> Result<(), ShowError> {
    if points.is_empty() {
        let t = font::text(15).pos(Pos::new(HPos::Center, VPos::Center));
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            &format!("{caption}: no points yet"),
            &t,
            (w as i32 / 2, h as i32 / 2),
        )
        .map_err(draw_error)?;
        return Ok(());
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font::text(16))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(steps, value_range(points, floor))
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style(font::text(13))
        .axis_desc_style(font::text(14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(draw_error)?;
    let style = colour.stroke_width(2);
    let marks = if points.len() <= 40 { 3 } else { 0 };
    chart
        .draw_series(LineSeries::new(points.iter().copied(), style).point_size(marks))
        .map_err(draw_error)?;
    Ok(())
}

impl Picture for TrainingCurves {
    fn size(&self) -> Result<(u32, u32), ShowError> {
        Ok((WIDTH, HEIGHT))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError> {
        let body = if self.title.is_empty() {
            area.margin(8, 8, 8, 16)
        } else {
            area.margin(8, 8, 8, 16)
                .titled(&self.title, font::text(18))
                .map_err(draw_error)?
        };
        let halves = body.split_evenly((2, 1));
        panel(
            &halves[0],
            "training loss",
            "loss",
            &self.loss,
            self.steps(),
            None,
            SERIES[0],
        )?;
        panel(
            &halves[1],
            "validation BLEU",
            "BLEU",
            &self.bleu,
            self.steps(),
            Some(0.0),
            SERIES[2],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_and_pin() {
        let r = value_range(&[(0, 2.0), (1, 4.0)], None);
        assert!((r.start - 1.9).abs() < 1e-6 && (r.end - 4.1).abs() < 1e-6);
        let r = value_range(&[(0, 10.0), (5, 30.0)], Some(0.0));
        assert_eq!(r.start, 0.0);
        assert!((r.end - 31.0).abs() < 1e-5);
        // A single point still gets a range.
        let r = value_range(&[(3, 0.0)], None);
        assert!(r.start < 0.0 && r.end > 0.0);
    }
}
