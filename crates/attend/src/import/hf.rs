//! Reads a Hugging Face `MarianMTModel` directory (what `save_pretrained` writes, and what the
//! OPUS-MT models on the Hugging Face hub hold): `config.json` (`model_type = "marian"`),
//! `model.safetensors`, `vocab.json` (and `target_vocab.json` where the vocabularies are
//! separate), `source.spm`, `target.spm`.
//!
//! Parameters: `model.shared.weight` or `model.{encoder,decoder}.embed_tokens.weight [V, d]`,
//! `lm_head.weight` (the decoder table where `tie_word_embeddings`), `final_logits_bias [1, Vt]`,
//! and the layers of [`weights`](super::weights), every matrix `[out, in]` as `nn.Linear` keeps it.
//! A `pytorch_model.bin` (a pickle, which no maintained Rust crate reads as PyTorch writes it) is
//! refused with the one-line conversion to safetensors.

use super::weights::{layers, Block, Param, Stack};
use super::{read_text, require, ImportError, MarianModel};
use crate::config::Activation;
use crate::nn::params::load_tensors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use tensor::Tensor;

/// Reads the model in `dir`.
pub fn read(dir: &Path) -> Result<MarianModel, ImportError> {
    let config_path = require(
        dir.join("config.json"),
        "a Hugging Face model directory holds config.json",
    )?;
    let config: Value =
        serde_json::from_str(&read_text(&config_path)?).map_err(|e| ImportError::Format {
            path: config_path.display().to_string(),
            reason: format!("not valid JSON ({e})"),
        })?;
    let c = Keys {
        path: config_path.display().to_string(),
        config: &config,
    };
    let model_type = c.string("model_type")?;
    if model_type != "marian" {
        return Err(c.bad(format!(
            "model_type {model_type:?} is not a Marian translation model; attend imports MarianMTModel (model_type \"marian\")"
        )));
    }
    let weights_path = dir.join("model.safetensors");
    if !weights_path.is_file() && dir.join("pytorch_model.bin").is_file() {
        return Err(ImportError::Missing {
            path: weights_path.display().to_string(),
            reason: format!(
                "not found, only pytorch_model.bin (a Python pickle attend does not read); convert it once with: \
                 python -c \"from transformers import MarianMTModel as M; M.from_pretrained('{d}').save_pretrained('{d}', safe_serialization=True)\"",
                d = dir.display()
            ),
        });
    }
    let weights_path = require(
        weights_path,
        "the weights of a Hugging Face model are model.safetensors",
    )?;
    let mut tensors = load_tensors(&weights_path)?;
    let shared = c.flag("share_encoder_decoder_embeddings", true)?;
    let tie_output = c.flag("tie_word_embeddings", true)?;
    let src_file = dir.join("vocab.json");
    let tgt_file = if shared || !dir.join("target_vocab.json").is_file() {
        src_file.clone()
    } else {
        dir.join("target_vocab.json")
    };
    let src_vocab = pieces(&src_file)?;
    let tgt_vocab = pieces(&tgt_file)?;
    let weights = weights_path.display().to_string();
    let get = |names: &[&str]| -> Result<Tensor, ImportError> {
        names
            .iter()
            .find_map(|n| tensors.get(*n).cloned())
            .ok_or_else(|| ImportError::MissingTensor {
                path: weights.clone(),
                name: names[0].to_string(),
                what: "MarianMTModel",
            })
    };
    let src_emb = get(&["model.shared.weight", "model.encoder.embed_tokens.weight"])?;
    let tgt_emb = get(&["model.decoder.embed_tokens.weight", "model.shared.weight"])?;
    let bias = get(&["final_logits_bias"])?;
    let mut out = BTreeMap::new();
    out.insert("src_emb.weight".to_string(), src_emb);
    out.insert("out_proj.bias".to_string(), flat(bias));
    if !shared {
        out.insert("tgt_emb.weight".to_string(), tgt_emb);
    }
    if !tie_output {
        out.insert("out_proj.weight".to_string(), get(&["lm_head.weight"])?);
    }
    let (enc, dec) = (c.size("encoder_layers")?, c.size("decoder_layers")?);
    let mut take = |s: Stack, l: usize, b: Block, p: Param| {
        let name = hf_name(s, l, b, p);
        tensors
            .remove(&name)
            .ok_or_else(|| ImportError::MissingTensor {
                path: weights_path.display().to_string(),
                name,
                what: "MarianMTModel",
            })
    };
    out.extend(layers(enc, dec, &mut take)?);
    let pad = c.size("pad_token_id")? as u32;
    Ok(MarianModel {
        dir: dir.to_path_buf(),
        weights_file: weights_path.clone(),
        vocab_files: [src_file, tgt_file],
        d_model: c.size("d_model")?,
        heads: c.size("encoder_attention_heads")?,
        ff_size: c.size("encoder_ffn_dim")?,
        encoder_layers: enc,
        decoder_layers: dec,
        activation: activation(&c, &c.string("activation_function")?)?,
        shared_embeddings: shared,
        tie_output,
        scale_embeddings: c.flag("scale_embedding", true)?,
        max_positions: c.size("max_position_embeddings")?,
        src_pieces: src_vocab,
        tgt_pieces: tgt_vocab,
        decoder_start: Some(
            c.optional_size("decoder_start_token_id")?
                .map_or(pad, |s| s as u32),
        ),
        tensors: out,
    })
}

/// The Hugging Face name of a layer parameter.
fn hf_name(s: Stack, l: usize, b: Block, p: Param) -> String {
    let stack = match s {
        Stack::Encoder => "encoder",
        Stack::Decoder => "decoder",
    };
    let block = match b {
        Block::SelfAttention => "self_attn",
        Block::CrossAttention => "encoder_attn",
        Block::FeedForward => "",
    };
    let param = match p {
        Param::Wq => "q_proj.weight",
        Param::Bq => "q_proj.bias",
        Param::Wk => "k_proj.weight",
        Param::Bk => "k_proj.bias",
        Param::Wv => "v_proj.weight",
        Param::Bv => "v_proj.bias",
        Param::Wo => "out_proj.weight",
        Param::Bo => "out_proj.bias",
        Param::W1 => "fc1.weight",
        Param::B1 => "fc1.bias",
        Param::W2 => "fc2.weight",
        Param::B2 => "fc2.bias",
        Param::LnScale | Param::LnBias => {
            let norm = match b {
                Block::FeedForward => "final_layer_norm".to_string(),
                _ => format!("{block}_layer_norm"),
            };
            let what = if p == Param::LnScale {
                "weight"
            } else {
                "bias"
            };
            return format!("model.{stack}.layers.{l}.{norm}.{what}");
        }
    };
    match b {
        Block::FeedForward => format!("model.{stack}.layers.{l}.{param}"),
        _ => format!("model.{stack}.layers.{l}.{block}.{param}"),
    }
}

/// A tensor as a vector (`[1, n]` → `[n]`).
pub(crate) fn flat(t: Tensor) -> Tensor {
    let n = t.numel();
    t.reshape(&[n])
}

/// The pieces of a `vocab.json` (piece → id) in id order; the ids must be `0..n`.
fn pieces(path: &Path) -> Result<Vec<String>, ImportError> {
    let path = require(
        path.to_path_buf(),
        "a Hugging Face Marian model holds its vocabulary in vocab.json",
    )?;
    let map: BTreeMap<String, u64> =
        serde_json::from_str(&read_text(&path)?).map_err(|e| ImportError::Format {
            path: path.display().to_string(),
            reason: format!("expected a JSON object of piece → id ({e})"),
        })?;
    super::marian::in_id_order(map.into_iter(), &path)
}

/// The feed-forward activation named in the config.
fn activation(c: &Keys, name: &str) -> Result<Activation, ImportError> {
    match name {
        "swish" | "silu" => Ok(Activation::Swish),
        "relu" => Ok(Activation::Relu),
        "gelu" => Ok(Activation::Gelu),
        other => Err(c.bad(format!(
            "activation_function {other:?} is not one attend computes (swish, silu, relu, gelu)"
        ))),
    }
}

/// Typed reads of `config.json` keys, with errors naming the file and the key.
struct Keys<'a> {
    path: String,
    config: &'a Value,
}

impl Keys<'_> {
    fn bad(&self, reason: String) -> ImportError {
        ImportError::Format {
            path: self.path.clone(),
            reason,
        }
    }

    fn string(&self, key: &str) -> Result<String, ImportError> {
        self.config[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.bad(format!("`{key}` is missing or not a string")))
    }

    fn optional_size(&self, key: &str) -> Result<Option<usize>, ImportError> {
        match &self.config[key] {
            Value::Null => Ok(None),
            v => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.bad(format!("`{key}` is not a non-negative integer"))),
        }
    }

    fn size(&self, key: &str) -> Result<usize, ImportError> {
        self.optional_size(key)?
            .ok_or_else(|| self.bad(format!("`{key}` is missing")))
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ImportError> {
        match &self.config[key] {
            Value::Null => Ok(default),
            v => v
                .as_bool()
                .ok_or_else(|| self.bad(format!("`{key}` is not true or false"))),
        }
    }
}
