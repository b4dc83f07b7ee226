//! `attend score --hyp FILE --ref FILE`: corpus BLEU and chrF (sacreBLEU defaults) as JSON.

use anyhow::{bail, Context, Result};
use attend::metrics::{bleu::corpus_bleu, chrf::corpus_chrf};
use std::path::{Path, PathBuf};

/// BLEU and chrF of a hypothesis file against a reference file (sacreBLEU defaults), as JSON.
#[derive(clap::Args)]
pub struct ScoreArgs {
    #[arg(long)]
    hyp: PathBuf,
    #[arg(long = "ref")]
    reference: PathBuf,
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let read = |p: &Path| -> Result<Vec<String>> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(text.lines().map(str::to_string).collect())
    };
    let (h, r) = (read(&a.hyp)?, read(&a.reference)?);
    if h.len() != r.len() {
        bail!(
            "{} has {} lines but {} has {}; they must be line-aligned",
            a.hyp.display(),
            h.len(),
            a.reference.display(),
            r.len()
        );
    }
    let bleu = corpus_bleu(&h, &r)?;
    let json = serde_json::json!({
        "bleu": bleu.score,
        "chrf": corpus_chrf(&h, &r)?,
        "precisions": bleu.precisions,
        "bp": bleu.bp,
        "sys_len": bleu.sys_len,
        "ref_len": bleu.ref_len,
        "sentences": h.len(),
    });
    println!("{json}");
    Ok(())
}
