//! The mapping file of `attend import-torch`: what a PyTorch checkpoint does not say about its
//! model, and how its names and ids differ from attend's (docs/import-torch.md lists every key).
//!
//! ```toml
//! model = "transformer"            # or "rnn" (then an [rnn] table)
//! [[state]]                        # where the tensors are (paths relative to this file)
//! file = "transformer.pt"
//! key = "model_state_dict"         # the state dict inside the saved dict ("a/b": nested)
//! [names]                          # attend name or prefix (ending in ".") = the model's
//! "src_emb.weight" = "src_tok_emb.embedding.weight"
//! "out_proj." = "generator."
//! [special]                        # the model's ids of attend's special tokens
//! pad = 1
//! bos = 2
//! eos = 3
//! unk = 0
//! [vocab]                          # the token of each model id → attend tokenizers
//! file = "vocab.json"
//! level = "char"
//! ```
//!
//! Special ids. attend numbers `<pad> <s> </s> <unk>` 0–3; the import permutes the rows of the
//! embeddings and of the output layer into that order ([`Special::rows`]): attend id 0 takes the
//! model's pad row (zeros where the model has no pad), 1 its `bos`, 2 its `eos`, 3 its unk (zeros
//! where it has none), and ids 4… every other model id in order.

use super::ImportError;
use crate::config::{Activation, PositionKind, RnnConfig, SearchConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The mapping file (see the module doc).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub model: TorchModel,
    /// The state dicts read, in order; `--state` on the command line stands for a single one.
    #[serde(default)]
    pub state: Vec<StateFile>,
    /// The state dict inside a `--state` file given on the command line.
    pub key: Option<String>,
    /// Rows of the model's source / target embeddings (default: the vocabulary's length).
    pub src_vocab: Option<usize>,
    pub tgt_vocab: Option<usize>,
    /// `nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward)`.
    pub d_model: Option<usize>,
    pub heads: Option<usize>,
    pub encoder_layers: Option<usize>,
    pub decoder_layers: Option<usize>,
    pub ff_size: Option<usize>,
    #[serde(default = "relu")]
    pub activation: Activation,
    /// `nn.Transformer`'s `norm_first` (default: post-norm, as nn.Transformer).
    #[serde(default)]
    pub norm_first: bool,
    /// `"sinusoidal"` (a stored table is checked against the formula) or `"learned"`.
    #[serde(default = "sinusoidal")]
    pub positions: PositionKind,
    /// Rows of the positional table (default: the stored table's).
    pub max_positions: Option<usize>,
    /// The positional table's name in the state dict; `[N, d]`, `[N, 1, d]` or `[1, N, d]`.
    #[serde(default = "pos_enc")]
    pub position_tensor: String,
    /// Embeddings multiplied by √d_model.
    #[serde(default = "yes")]
    pub scale_embeddings: bool,
    #[serde(default)]
    pub shared_embeddings: bool,
    #[serde(default)]
    pub tie_output: bool,
    /// The encoder reads `<s>` before / `</s>` after every source.
    #[serde(default)]
    pub source_bos: bool,
    #[serde(default)]
    pub source_eos: bool,
    /// `model = "rnn"`: attend's `[model.rnn]` keys (see docs/import-torch.md).
    pub rnn: Option<RnnConfig>,
    /// attend name or prefix → the model's name or prefix.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// Tensors of the checkpoint that the model does not use (names, or prefixes ending in `.`).
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub special: Special,
    pub vocab: Option<VocabFile>,
    /// A check batch (JSON `{"sources": [[id…]…], "greedy": [[id…]…], "max_len": N}`, model ids)
    /// decoded after the import; the import is refused unless every output is equal.
    pub check: Option<PathBuf>,
    /// Decoding defaults for `attend translate`.
    pub search: Option<SearchConfig>,
}

/// Which model the checkpoint holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TorchModel {
    #[default]
    Transformer,
    Rnn,
}

/// One state dict to read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// `.pt` / `.pth` (torch.save), `.safetensors` or `.npz`, relative to the mapping file.
    pub file: PathBuf,
    /// The state dict inside a saved dict (`"a/b"` for nested dicts).
    pub key: Option<String>,
    /// Prepended to every name read (`"encoder."` for a separately saved encoder).
    #[serde(default)]
    pub prefix: String,
}

/// The model's ids of attend's special tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Special {
    pub pad: Option<u32>,
    pub bos: u32,
    pub eos: u32,
    pub unk: Option<u32>,
}

impl Default for Special {
    /// attend's own numbering.
    fn default() -> Special {
        Special {
            pad: Some(0),
            bos: 1,
            eos: 2,
            unk: Some(3),
        }
    }
}

/// Where attend id `i`'s row comes from: a model id, or zeros.
pub type Rows = Vec<Option<u32>>;

impl Special {
    /// attend's order of a vocabulary of `v` model ids (see the module doc), or what is wrong.
    pub fn rows(&self, v: usize) -> Result<Rows, String> {
        let named = [
            ("pad", self.pad),
            ("bos", Some(self.bos)),
            ("eos", Some(self.eos)),
            ("unk", self.unk),
        ];
        let mut seen: Vec<u32> = Vec::new();
        for (name, id) in named {
            let Some(id) = id else { continue };
            if id as usize >= v {
                return Err(format!(
                    "special.{name} = {id} is not an id of a {v}-token vocabulary"
                ));
            }
            if seen.contains(&id) {
                return Err(format!(
                    "special.{name} = {id} is given to two special tokens"
                ));
            }
            seen.push(id);
        }
        let mut rows: Rows = named.iter().map(|&(_, id)| id).collect();
        rows.extend((0..v as u32).filter(|i| !seen.contains(i)).map(Some));
        Ok(rows)
    }
}

/// The model's vocabulary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabFile {
    /// JSON: a list of tokens (both sides), or `{"source": [...], "target": [...]}`; token `i` is
    /// model id `i`. Relative to the mapping file.
    pub file: PathBuf,
    pub level: VocabLevel,
}

/// How text splits into the vocabulary's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VocabLevel {
    /// Every character is a token (a space too).
    Char,
    /// Tokens are separated by spaces.
    Word,
}

fn relu() -> Activation {
    Activation::Relu
}
fn sinusoidal() -> PositionKind {
    PositionKind::Sinusoidal
}
fn pos_enc() -> String {
    "pos_enc".into()
}
fn yes() -> bool {
    true
}

impl Mapping {
    /// Reads the mapping file at `path`.
    pub fn load(path: &Path) -> Result<Mapping, ImportError> {
        let text = super::read_text(path)?;
        toml::from_str(&text).map_err(|e| ImportError::Format {
            path: path.display().to_string(),
            reason: format!("not a valid mapping file: {e}"),
        })
    }

    /// The model's name for attend's parameter `name`: the longest `[names]` entry that is `name`
    /// or a prefix of it (ending in `.`), replaced; `name` itself where none is.
    pub fn model_name(&self, name: &str) -> String {
        let rule = self
            .names
            .iter()
            .filter(|(k, _)| *k == name || (k.ends_with('.') && name.starts_with(k.as_str())))
            .max_by_key(|(k, _)| k.len());
        match rule {
            Some((k, v)) => format!("{v}{}", &name[k.len()..]),
            None => name.to_string(),
        }
    }

    /// `name` is listed in `ignore` (itself, or under a prefix ending in `.`).
    pub fn ignored(&self, name: &str) -> bool {
        self.ignore
            .iter()
            .any(|i| i == name || (i.ends_with('.') && name.starts_with(i.as_str())))
    }
}

/// The source and target tokens of a vocabulary file, in model id order.
pub fn read_vocab(path: &Path) -> Result<(Vec<String>, Vec<String>), ImportError> {
    let text = super::read_text(path)?;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Json {
        Both(Vec<String>),
        Sides {
            source: Vec<String>,
            target: Vec<String>,
        },
    }
    match serde_json::from_str(&text) {
        Ok(Json::Both(t)) => Ok((t.clone(), t)),
        Ok(Json::Sides { source, target }) => Ok((source, target)),
        Err(e) => Err(ImportError::Format {
            path: path.display().to_string(),
            reason: format!(
                "not a vocabulary: expected a JSON list of tokens or {{\"source\": […], \"target\": […]}} ({e})"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_rows_put_attend_ids_first() {
        let s = Special {
            pad: Some(1),
            bos: 2,
            eos: 3,
            unk: Some(0),
        };
        let rows = s.rows(6).unwrap();
        assert_eq!(rows, [Some(1), Some(2), Some(3), Some(0), Some(4), Some(5)]);
        let tutorial = Special {
            pad: None,
            bos: 0,
            eos: 1,
            unk: None,
        };
        assert_eq!(
            tutorial.rows(4).unwrap(),
            [None, Some(0), Some(1), None, Some(2), Some(3)]
        );
        assert!(s.rows(3).unwrap_err().contains("special.eos = 3"));
        let twice = Special { bos: 1, ..s };
        assert!(twice.rows(6).unwrap_err().contains("two special tokens"));
    }

    #[test]
    fn names_take_the_longest_rule() {
        let m: Mapping = toml::from_str(
            "[names]\n\"encoder.\" = \"encoder.gru.\"\n\"src_emb.\" = \"encoder.embedding.\"\n\"out_proj.weight\" = \"decoder.out.weight\"\n\"out_proj.\" = \"generator.\"\n",
        )
        .unwrap();
        assert_eq!(
            m.model_name("encoder.weight_ih_l0"),
            "encoder.gru.weight_ih_l0"
        );
        assert_eq!(m.model_name("src_emb.weight"), "encoder.embedding.weight");
        assert_eq!(m.model_name("out_proj.weight"), "decoder.out.weight");
        assert_eq!(m.model_name("out_proj.bias"), "generator.bias");
        assert_eq!(
            m.model_name("transformer.encoder.norm.bias"),
            "transformer.encoder.norm.bias"
        );
    }
}
