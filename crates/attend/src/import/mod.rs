//! Translation models from elsewhere made into ordinary attend run directories: Marian / OPUS-MT
//! (`model.npz`, [`marian`]), Hugging Face `MarianMTModel` (`model.safetensors`, [`hf`]), and
//! PyTorch models with a mapping file ([`torch_import`]).
//!
//! Both are one network, Marian's Transformer (Junczys-Dowmunt et al. 2018), which attend's
//! [`Transformer`](crate::models::transformer::Transformer) computes with the choices of
//! [`run_dir::marian_transformer`]: post-norm layers without a final norm, the swish (or relu) activation,
//! embeddings scaled by √d, sines-then-cosines positions, `</s>` appended to the source, tied
//! embeddings, `final_logits_bias`, and Hugging Face's search rules (`search.style = "hf"`).
//!
//! Special ids. attend's vocabularies put `<pad> <s> </s> <unk>` at ids 0–3; OPUS-MT's put `</s>`
//! at 0, `<unk>` at 1 and (Hugging Face only) `<pad>` last, and decode from the pad token (Marian
//! from a zero vector, which is what the pad's all-zero row gives). The import permutes the
//! embedding and output rows into attend's ids (in [`run_dir`]): `<pad>` takes the
//! model's pad row (zeros where the model has none), `<s>` the decoder start's row with an output
//! bias of −10⁹ so that it is never predicted and adds nothing to the softmax, `</s>` and `<unk>`
//! their rows, every other token its row in the model's order. The run directory stays ordinary;
//! the tokenizers map each piece to its attend id.

pub mod hf;
pub mod marian;
pub mod pickle;
pub mod run_dir;
pub mod torch_check;
pub mod torch_import;
pub mod torch_map;
pub mod torch_vocab;
pub mod torch_zip;
pub mod weights;

pub use run_dir::{write_run, ImportSummary};

use crate::config::Activation;
use crate::nn::npz::NpzError;
use crate::nn::params::ParamsError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tensor::Tensor;

/// Why a model cannot be imported. Every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {reason}")]
    Missing { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    #[error(transparent)]
    Npz(#[from] NpzError),
    #[error(transparent)]
    Safetensors(#[from] ParamsError),
    #[error("{path}: tensor `{name}` is missing; the file is not a complete {what} model")]
    MissingTensor {
        path: String,
        name: String,
        what: &'static str,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, the configuration gives {expected:?}")]
    Shape {
        path: String,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{vocab}: {tokens} tokens, but {weights} has {rows} embedding rows ({what}); the vocabulary does not belong to these weights")]
    VocabSize {
        vocab: String,
        tokens: usize,
        weights: String,
        rows: usize,
        what: &'static str,
    },
    #[error("{path}: the checkpoint does not fit the mapping ({} problems):\n  {}", problems.len(), problems.join("\n  "))]
    Mapping { path: String, problems: Vec<String> },
    #[error("{path}: the imported model decodes {} of the {total} check sentences differently; the mapping (special ids, names, options) does not describe the model:\n  {}", failures.len(), failures.join("\n  "))]
    Check {
        path: String,
        total: usize,
        failures: Vec<String>,
    },
    #[error("writing the run directory {path}: {reason}")]
    Write { path: String, reason: String },
}

/// A Marian Transformer as read from either format, in the model's own token ids.
pub struct MarianModel {
    /// The directory read (for messages).
    pub dir: PathBuf,
    /// The weights file and the source and target vocabulary files (for messages).
    pub weights_file: PathBuf,
    pub vocab_files: [PathBuf; 2],
    pub d_model: usize,
    pub heads: usize,
    pub ff_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub activation: Activation,
    /// One embedding table for source, target and output (`tied-embeddings-all`).
    pub shared_embeddings: bool,
    /// The output matrix is the target embedding table (`tied-embeddings`).
    pub tie_output: bool,
    pub scale_embeddings: bool,
    /// Rows of the positional table.
    pub max_positions: usize,
    /// The piece of each source / target id.
    pub src_pieces: Vec<String>,
    pub tgt_pieces: Vec<String>,
    /// The decoder's first input (Hugging Face's `decoder_start_token_id`); `None`: a zero vector
    /// (Marian).
    pub decoder_start: Option<u32>,
    /// `src_emb.weight [Vs, d]`, `tgt_emb.weight [Vt, d]` (unless shared), `out_proj.bias [Vt]`,
    /// `out_proj.weight [Vt, d]` (unless tied) in model ids, and every layer's tensors under
    /// attend's names.
    pub tensors: BTreeMap<String, Tensor>,
}

/// `path` exists, or [`ImportError::Missing`] saying what it should have been.
pub(crate) fn require(path: PathBuf, what: &str) -> Result<PathBuf, ImportError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ImportError::Missing {
            path: path.display().to_string(),
            reason: format!("not found; {what}"),
        })
    }
}

/// The text of `path`.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.display().to_string(),
        source,
    })
}
