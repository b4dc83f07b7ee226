//! `attend import torch|marian|hf …`: models trained elsewhere made into attend run directories
//! that `translate`, `explain`, `serve` and `bench` load like any other.
//!
//! - `import marian DIR --out RUN`: a Marian / OPUS-MT directory (`decoder.yml` or `model.npz`,
//!   the `vocab.yml` files, `source.spm` / `target.spm`);
//! - `import hf DIR --out RUN`: a Hugging Face `MarianMTModel` directory (`config.json`,
//!   `model.safetensors`, `vocab.json`, the `.spm` files);
//! - `import torch --state … --config … --out RUN`: a PyTorch `nn.Transformer` state_dict (the
//!   same as `attend import-torch`).
//!
//! The Marian forms run exactly as Hugging Face runs them (see `attend::import`).

use super::import_torch::{self, ImportTorchArgs};
use anyhow::{Context, Result};
use attend::import::{hf, marian, write_run, MarianModel};
use attend::train::checkpoint::load_model;
use std::path::{Path, PathBuf};

/// Import a model trained elsewhere as an attend run directory.
#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    from: From,
}

#[derive(clap::Subcommand)]
enum From {
    /// A Marian / OPUS-MT model directory (decoder.yml or model.npz, vocab .yml files, .spm).
    Marian(DirArgs),
    /// A Hugging Face MarianMTModel directory (config.json, model.safetensors, vocab.json, .spm).
    Hf(DirArgs),
    /// A PyTorch nn.Transformer state_dict (as `attend import-torch`).
    Torch(ImportTorchArgs),
}

#[derive(clap::Args)]
struct DirArgs {
    /// The model's directory.
    dir: PathBuf,
    /// Output run directory (created; existing files in it are replaced).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ImportArgs) -> Result<()> {
    match a.from {
        From::Marian(d) => import_marian(&d, marian::read(&d.dir)?),
        From::Hf(d) => import_marian(&d, hf::read(&d.dir)?),
        From::Torch(t) => import_torch::run(t),
    }
}

fn import_marian(d: &DirArgs, model: MarianModel) -> Result<()> {
    let summary = write_run(model, &d.out)?;
    check_loads(&d.out)?;
    println!(
        "imported {} parameters ({} source / {} target tokens) into {}; try: echo 'A sentence.' | attend translate --model {}",
        summary.parameters,
        summary.src_vocab,
        summary.tgt_vocab,
        d.out.display(),
        d.out.display()
    );
    Ok(())
}

/// The directory loads exactly as `attend translate` will load it.
fn check_loads(dir: &Path) -> Result<()> {
    load_model(dir, "best").map(|_| ()).with_context(|| {
        format!(
            "{}: the imported run directory does not load",
            dir.display()
        )
    })
}
