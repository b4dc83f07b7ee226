//! Pictures of the attention, drawn from plain data.
//!
//! The pictures know neither the engine nor the models: every picture takes weights as `f32` slices or
//! vectors plus the token strings, so that any model (RNN cross-attention, Transformer layers and
//! heads, the captioner's image grid) can hand its weights over.
//!
//! | picture | file | what it shows |
//! |---|---|---|
//! | [`HeatMap`] | `heatmap.rs` | one attention matrix: target tokens (rows) × source tokens (columns) |
//! | [`HeatMapGrid`] | `grid.rs` | many heat maps (layers × heads) with one shared colour bar |
//! | [`TrainingCurves`] | `curves.rs` | training loss and validation BLEU over steps |
//! | [`LengthChart`] | `length_chart.rs` | BLEU per source-length bucket per model (Bahdanau et al. 2015, fig. 2) |
//! | [`explain_text`] | `explain_text.rs` | per decoder step: scores, softmax weights, bars, top tokens |
//!
//! Files bridge models and pictures: [`explain`] runs a model on one sentence and collects
//! the [`ExplainStep`]s (`explain_heads.rs`: a Transformer's every layer and head; [`head_view`]:
//! which of them a reader is shown; with what an RNN's attention computed, [`explain_rnn`], and a
//! Transformer's cross- and self-attention maps and positions, [`explain_transformer`]: the data
//! of the explorer page), [`plots`] turns a hypothesis's attention and a run's history into heat maps
//! and curves, [`alignment`] reads the word alignment off the attention.
//!
//! Every picture implements [`Picture`]: `save(path)` writes PNG or SVG by the file extension,
//! `png_bytes()` and `svg_string()` render in memory. Text is drawn with the bundled DejaVu Sans
//! (`font.rs`), so labels with accents render the same on every machine.

pub mod alignment;
mod colormap;
mod curves;
pub mod explain;
mod explain_heads;
pub mod explain_rnn;
mod explain_text;
pub mod explain_transformer;
mod font;
mod grid;
pub mod head_view;
mod heatmap;
mod length_chart;
mod picture;
pub mod plots;

pub use colormap::weight_colour;
pub use curves::TrainingCurves;
pub use explain_text::{explain_text, ExplainStep};
pub use grid::HeatMapGrid;
pub use head_view::HeadView;
pub use heatmap::HeatMap;
pub use length_chart::{LengthChart, LengthSeries};
pub use picture::{Format, Picture};

use std::path::PathBuf;

/// What can go wrong when drawing a picture.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// A list does not have the length its companions require.
    #[error("{what}: expected {expected} values, got {got}")]
    Shape {
        what: String,
        expected: usize,
        got: usize,
    },
    /// Nothing to draw.
    #[error("{0} is empty: there is nothing to draw")]
    Empty(String),
    /// A NaN or infinite value.
    #[error("{what}: value {value} at index {index} is not a finite number")]
    NotFinite {
        what: String,
        index: usize,
        value: f32,
    },
    /// Any other input that cannot be drawn, with what to change.
    #[error("{0}")]
    Invalid(String),
    /// The output file name does not say PNG or SVG.
    #[error("cannot tell the picture format of {0}: name the file *.png or *.svg")]
    UnknownFormat(PathBuf),
    /// The bundled font could not be loaded (the build is broken).
    #[error("the bundled font DejaVu Sans could not be registered")]
    Font,
    /// The drawing backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks that every value is finite; `what` names the data in the error.
pub(crate) fn check_finite(what: &str, values: &[f32]) -> Result<(), ShowError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ShowError::NotFinite {
            what: what.to_string(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Checks that a list has the expected length.
pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<(), ShowError> {
    if expected == got {
        Ok(())
    } else {
        Err(ShowError::Shape {
            what: what.to_string(),
            expected,
            got,
        })
    }
}
