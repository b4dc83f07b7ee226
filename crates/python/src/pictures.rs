//! Heat maps by attend's own renderer (`attend::show::HeatMap`: the pictures of `attend translate
//! --plot` and the server's page), and `score`: BLEU and chrF as `attend score` computes them.

use crate::AttendError;
use attend::metrics::bleu::corpus_bleu;
use attend::metrics::chrf::corpus_chrf;
use attend::metrics::{BLEU_SIGNATURE, CHRF_SIGNATURE};
use attend::show::{HeatMap, Picture};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use std::path::PathBuf;

/// The heat map of `weights` (`[len(rows), len(columns)]`, row-major), coloured over `scale`.
fn build(
    title: &str,
    rows: Vec<String>,
    columns: Vec<String>,
    weights: Vec<f32>,
    scale: Option<(f32, f32)>,
) -> PyResult<HeatMap> {
    let map = HeatMap::new(title, rows, columns, weights)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    match scale {
        Some((lo, hi)) => map
            .with_scale(lo, hi)
            .map_err(|e| PyValueError::new_err(e.to_string())),
        None => Ok(map),
    }
}

/// The heat map as PNG bytes (`format="png"`) or an SVG document (`format="svg"`): target tokens
/// (`rows`) down the side, source tokens (`columns`) across the top.
#[pyfunction]
#[pyo3(signature = (title, rows, columns, weights, format, scale = None))]
pub fn heat_map(
    py: Python<'_>,
    title: &str,
    rows: Vec<String>,
    columns: Vec<String>,
    weights: Vec<f32>,
    format: &str,
    scale: Option<(f32, f32)>,
) -> PyResult<Py<PyAny>> {
    let map = build(title, rows, columns, weights, scale)?;
    let drawn = match format {
        "png" => py
            .detach(|| map.png_bytes())
            .map(|png| PyBytes::new(py, &png).into_any()),
        "svg" => py
            .detach(|| map.svg_string())
            .map(|svg| PyString::new(py, &svg).into_any()),
        _ => {
            return Err(PyValueError::new_err(format!(
                "format {format:?}: give \"png\" or \"svg\""
            )))
        }
    };
    drawn
        .map(Bound::unbind)
        .map_err(|e| AttendError::new_err(e.to_string()))
}

/// Draws the heat map into `path`, PNG or SVG by its extension.
#[pyfunction]
#[pyo3(signature = (path, title, rows, columns, weights, scale = None))]
pub fn save_heat_map(
    py: Python<'_>,
    path: PathBuf,
    title: &str,
    rows: Vec<String>,
    columns: Vec<String>,
    weights: Vec<f32>,
    scale: Option<(f32, f32)>,
) -> PyResult<()> {
    let map = build(title, rows, columns, weights, scale)?;
    py.detach(|| map.save(&path))
        .map_err(|e| AttendError::new_err(e.to_string()))
}

/// Corpus BLEU and chrF of `hyps` against `refs` (one reference each, detokenized text): the
/// fields of `attend score`'s JSON and sacreBLEU's signatures of the two metrics.
#[pyfunction]
pub fn score<'py>(
    py: Python<'py>,
    hyps: Vec<String>,
    refs: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let (bleu, chrf) = py
        .detach(|| {
            Ok::<_, attend::metrics::MetricsError>((
                corpus_bleu(&hyps, &refs)?,
                corpus_chrf(&hyps, &refs)?,
            ))
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let out = PyDict::new(py);
    out.set_item("bleu", bleu.score)?;
    out.set_item("chrf", chrf)?;
    out.set_item("precisions", bleu.precisions.to_vec())?;
    out.set_item("bp", bleu.bp)?;
    out.set_item("sys_len", bleu.sys_len)?;
    out.set_item("ref_len", bleu.ref_len)?;
    out.set_item("sentences", hyps.len())?;
    out.set_item("bleu_signature", BLEU_SIGNATURE)?;
    out.set_item("chrf_signature", CHRF_SIGNATURE)?;
    Ok(out)
}
