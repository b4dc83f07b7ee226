//! The check batch of `attend import-torch`: sources and the PyTorch model's greedy outputs,
//! stored with the checkpoint in the model's ids (JSON
//! `{"sources": [[id, …], …], "greedy": [[id, …], …], "max_len": N}`, sources without the
//! `<bos>`/`<eos>` the model adds). After the import attend decodes every source greedily (at most
//! `max_len` tokens) and the import is refused unless every output is the stored one: a special id
//! or an option that fits every tensor's shape but describes another model is caught here.

use super::torch_map::Rows;
use super::ImportError;
use crate::models::Seq2Seq;
use crate::search::greedy::greedy;
use std::collections::BTreeMap;
use std::path::Path;

/// Decodes the check batch at `path` and compares with its stored greedy outputs (model ids).
pub fn check_batch(
    model: &dyn Seq2Seq,
    path: &Path,
    src_rows: &Rows,
    tgt_rows: &Rows,
) -> Result<(), ImportError> {
    #[derive(serde::Deserialize)]
    struct Check {
        sources: Vec<Vec<u32>>,
        greedy: Vec<Vec<u32>>,
        max_len: usize,
    }
    let name = path.display().to_string();
    let bad = |reason: String| ImportError::Format {
        path: name.clone(),
        reason,
    };
    let c: Check = serde_json::from_str(&super::read_text(path)?)
        .map_err(|e| bad(format!("not a check batch ({e})")))?;
    if c.sources.len() != c.greedy.len() {
        return Err(bad("sources and greedy differ in length".into()));
    }
    let to_attend: BTreeMap<u32, u32> = src_rows
        .iter()
        .zip(0u32..)
        .filter_map(|(r, i)| r.map(|r| (r, i)))
        .collect();
    let mut failures = Vec::new();
    for (i, (src, want)) in c.sources.iter().zip(&c.greedy).enumerate() {
        let ids: Option<Vec<u32>> = src.iter().map(|x| to_attend.get(x).copied()).collect();
        let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
            return Err(bad(format!(
                "source {i}: an id outside the vocabulary, or empty"
            )));
        };
        let h = greedy(model, &ids, &[ids.len()], ids.len(), c.max_len);
        let got: Vec<Option<u32>> = h[0].ids.iter().map(|&a| tgt_rows[a as usize]).collect();
        let want: Vec<Option<u32>> = want.iter().map(|&x| Some(x)).collect();
        if got != want {
            failures.push(format!(
                "sentence {i}: attend {:?}, stored {:?}",
                got.iter()
                    .map(|x| x.map_or(-1, i64::from))
                    .collect::<Vec<_>>(),
                want.iter().flatten().collect::<Vec<_>>()
            ));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(ImportError::Check {
        path: name,
        total: c.sources.len(),
        failures,
    })
}
