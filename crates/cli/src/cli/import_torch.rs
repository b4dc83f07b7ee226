//! `attend import-torch --config MAPPING.toml --out DIR [--state CHECKPOINT]`: turns a PyTorch
//! translation model (an `nn.Transformer` or a GRU/LSTM encoder-decoder, from `torch.save`
//! checkpoints, `.safetensors` or `.npz`) into a run directory that `attend translate --model DIR`
//! loads. The mapping file says what the checkpoint does not (sizes, names, special ids, the
//! vocabulary); `docs/import-torch.md` describes it. The work is the library's
//! [`attend::import::torch_import`].

use anyhow::Result;
use attend::import::torch_import::import;
use attend::train::checkpoint::load_model;
use std::path::PathBuf;

/// Import a PyTorch translation model (nn.Transformer or GRU/LSTM seq2seq) as an attend model directory.
#[derive(clap::Args)]
pub struct ImportTorchArgs {
    /// The checkpoint: a torch.save file (.pt/.pth), `.safetensors` or `.npz`; replaces the
    /// mapping's single [[state]] file (optional when the mapping lists its checkpoints).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The mapping file (TOML; see docs/import-torch.md): sizes, names, special ids, vocabulary.
    #[arg(long, alias = "mapping")]
    config: PathBuf,
    /// Output run directory (created; existing files in it are replaced).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ImportTorchArgs) -> Result<()> {
    let summary = import(&a.config, a.state.as_deref(), &a.out)?;
    // The directory must load exactly as `attend translate` will load it.
    let loaded = load_model(&a.out, "best")?;
    println!(
        "imported {} parameters ({} tensors; vocabularies {} / {}) into {}; try: attend translate --model {}",
        loaded.model.params().count(),
        loaded.model.params().len(),
        summary.src_vocab,
        summary.tgt_vocab,
        a.out.display(),
        a.out.display()
    );
    Ok(())
}
