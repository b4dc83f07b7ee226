//! BLEU by source sentence length: one line per model over length buckets, the picture with which
//! Bahdanau et al. (2015, figure 2) showed that attention keeps long sentences from falling apart;
//! plus the same numbers as a markdown table.

use super::colormap::SERIES;
use super::picture::draw_error;
use super::{check_finite, check_len, font, Picture, ShowError};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Picture size in pixels.
const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

/// One model's BLEU in each length bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LengthSeries {
    /// The model's name in the legend and the table header.
    pub model: String,
    /// BLEU per bucket, in the chart's bucket order.
    pub bleu: Vec<f32>,
}

/// BLEU per source-length bucket per model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LengthChart {
    title: String,
    buckets: Vec<String>,
    sentences: Vec<usize>,
    series: Vec<LengthSeries>,
}

impl LengthChart {
    /// A chart over `buckets` (labels such as "1-10", in increasing length), with the number of
    /// test sentences in each bucket and one series per model, each with one BLEU per bucket.
    pub fn new(
        title: impl Into<String>,
        buckets: Vec<String>,
        sentences: Vec<usize>,
        series: Vec<LengthSeries>,
    ) -> Result<LengthChart, ShowError> {
        if buckets.is_empty() {
            return Err(ShowError::Empty("length chart buckets".to_string()));
        }
        if series.is_empty() {
            return Err(ShowError::Empty("length chart models".to_string()));
        }
        check_len(
            "sentences per length bucket",
            buckets.len(),
            sentences.len(),
        )?;
        for s in &series {
            let what = format!("BLEU per length bucket of model {:?}", s.model);
            check_len(&what, buckets.len(), s.bleu.len())?;
            check_finite(&what, &s.bleu)?;
        }
        Ok(LengthChart {
            title: title.into(),
            buckets,
            sentences,
            series,
        })
    }

    /// The numbers as a markdown table: one row per bucket, one column per model.
    ///
    /// ```text
    /// | source length | sentences | rnn | rnn+attention |
    /// |---|---:|---:|---:|
    /// | 1-10 | 120 | 12.31 | 18.02 |
    /// ```
    pub fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        let mut out = String::from("| source length | sentences |");
        for s in &self.series {
            out.push_str(&format!(" {} |", cell(&s.model)));
        }
        out.push_str("\n|---|---:|");
        out.push_str(&"---:|".repeat(self.series.len()));
        out.push('\n');
        for (b, bucket) in self.buckets.iter().enumerate() {
            out.push_str(&format!("| {} | {} |", cell(bucket), self.sentences[b]));
            for s in &self.series {
                out.push_str(&format!(" {:.2} |", s.bleu[b]));
            }
            out.push('\n');
        }
        out
    }
}

impl Picture for LengthChart {
    fn size(&self) -> Result<(u32, u32), ShowError> {
        Ok((WIDTH, HEIGHT))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ShowError> {
        let top = self
            .series
            .iter()
            .flat_map(|s| s.bleu.iter().copied())
            .fold(0.0f32, f32::max);
        // Headroom above the highest point for the legend, one line per model.
        let y_max = (top * (1.12 + 0.05 * self.series.len() as f32)).max(1.0);
        // Integer ranges are inclusive: 0..last has one segment per bucket.
        let last = self.buckets.len() as i32 - 1;
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(16)
            .x_label_area_size(52)
            .y_label_area_size(64);
        if !self.title.is_empty() {
            builder.caption(&self.title, font::text(18));
        }
        let mut chart = builder
            .build_cartesian_2d((0..last).into_segmented(), 0f32..y_max)
            .map_err(draw_error)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => self.buckets.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .x_desc("source sentence length (words)")
            .y_desc("BLEU")
            .x_labels(self.buckets.len() + 1)
            .x_label_formatter(&label)
            .label_style(font::text(13))
            .axis_desc_style(font::text(14))
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_error)?;
        for (k, s) in self.series.iter().enumerate() {
            let colour = SERIES[k % SERIES.len()];
            let points = s
                .bleu
                .iter()
                .enumerate()
                .map(|(b, &v)| (SegmentValue::CenterOf(b as i32), v));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)).point_size(4))
                .map_err(draw_error)?
                .label(&s.model)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font::text(13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table() {
        let chart = LengthChart::new(
            "",
            vec!["1-10".into(), "11|20".into()],
            vec![12, 3],
            vec![
                LengthSeries {
                    model: "rnn".into(),
                    bleu: vec![10.0, 5.125],
                },
                LengthSeries {
                    model: "rnn+attention".into(),
                    bleu: vec![12.5, 11.0],
                },
            ],
        )
        .unwrap();
        assert_eq!(
            chart.markdown(),
            "| source length | sentences | rnn | rnn+attention |\n\
             |---|---:|---:|---:|\n\
             | 1-10 | 12 | 10.00 | 12.50 |\n\
             | 11\\|20 | 3 | 5.12 | 11.00 |\n"
        );
    }
}
