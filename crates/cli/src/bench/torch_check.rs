//! `attend bench transformer --check X.npz.json`: decodes the check batch that
//! `transformer_bench.py --export-npz X.npz` stores beside its export and counts the rows equal to
//! torch's greedy output, so a timing on imported weights also shows they compute torch's model.

use super::model_bench::greedy_fixed_length;
use super::transformer::TransformerBenchError;
use attend::models::Seq2Seq;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;

/// The check batch of `transformer_bench.py --export-npz X.npz`, stored in `X.npz.json`.
#[derive(Debug, Deserialize)]
struct CheckFile {
    check: CheckBatch,
}

#[derive(Debug, Deserialize)]
struct CheckBatch {
    /// Source ids, `[rows][S]`.
    src: Vec<Vec<u32>>,
    /// Torch's greedy output (EOS masked), `[rows][greedy_steps]`.
    greedy: Vec<Vec<u32>>,
    greedy_steps: usize,
}

/// Decodes the check batch of `path` with `model` and compares with torch's greedy ids: the
/// fields `greedy_rows_identical_vs_torch`, `greedy_rows_vs_torch_total`,
/// `greedy_token_agreement_vs_torch` (as `ct2_from_numpy.py`) and `check_file`.
pub(super) fn check_against_torch(
    model: &dyn Seq2Seq,
    src_vocab: usize,
    path: &Path,
) -> Result<Value, TransformerBenchError> {
    let check_error = |reason: String| TransformerBenchError::Check {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| check_error(e.to_string()))?;
    let c = serde_json::from_str::<CheckFile>(&text)
        .map_err(|e| check_error(format!("not a transformer_bench.py export sidecar ({e})")))?
        .check;
    let rows = c.src.len();
    let src_max = c.src.first().map_or(0, Vec::len);
    if rows == 0 || src_max == 0 || c.src.iter().any(|r| r.len() != src_max) {
        return Err(check_error(
            "check.src must be a non-empty list of equally long, non-empty rows".into(),
        ));
    }
    if c.greedy.len() != rows || c.greedy.iter().any(|r| r.len() != c.greedy_steps) {
        return Err(check_error(format!(
            "check.greedy must hold {rows} rows of greedy_steps = {} ids",
            c.greedy_steps
        )));
    }
    if let Some(id) = c.src.iter().flatten().find(|&&id| id as usize >= src_vocab) {
        return Err(check_error(format!(
            "source id {id} is outside the model's vocabulary of {src_vocab}"
        )));
    }
    let src: Vec<u32> = c.src.concat();
    let ours = greedy_fixed_length(model, &src, &vec![src_max; rows], src_max, c.greedy_steps);
    let steps = c.greedy_steps.max(1);
    let identical = ours
        .chunks(steps)
        .zip(&c.greedy)
        .filter(|(a, b)| a == b)
        .count();
    let torch = c.greedy.concat();
    let agree = ours.iter().zip(&torch).filter(|(a, b)| a == b).count();
    Ok(json!({
        "greedy_rows_identical_vs_torch": identical,
        "greedy_rows_vs_torch_total": rows,
        "greedy_token_agreement_vs_torch": agree as f64 / torch.len().max(1) as f64,
        "check_file": path.display().to_string(),
    }))
}
