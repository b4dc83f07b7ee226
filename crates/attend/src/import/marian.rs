//! Reads a Marian model directory as OPUS-MT publishes them: `decoder.yml` naming the model
//! (`models: [X.npz]`) and the vocabularies (`vocabs: [src.yml, trg.yml]`), else `model.npz` with
//! `vocab.yml` (both sides) or `vocab.src.yml` + `vocab.trg.yml`; `source.spm`, `target.spm`.
//!
//! The `.npz` holds every parameter as Marian names it (matrices `[in, out]`, biases `[1, n]`; see
//! [`weights`](super::weights)), the embeddings `Wemb` (`tied-embeddings-all`) or `encoder_Wemb`
//! and `decoder_Wemb`, the output bias `decoder_ff_logit_out_b [1, V]` (and
//! `decoder_ff_logit_out_W [d, V]` where the output is not tied), and the training options as YAML
//! text in the byte array `special:model.yml`. Only Marian's post-norm Transformer
//! (`transformer-preprocess: ""`, `transformer-postprocess: dan`) is read; other options are an
//! error naming the file and the key. A vocabulary `.yml` maps each piece to its id.

use super::hf::flat;
use super::weights::{layers, Block, Param, Stack};
use super::{read_text, require, ImportError, MarianModel};
use crate::config::Activation;
use crate::nn::npz::load_npz_with_text;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::Tensor;
use yaml_rust2::{Yaml, YamlLoader};

/// Marian's sinusoids have no table; attend's holds this many positions (as Hugging Face's
/// conversion of OPUS-MT models does).
const MAX_POSITIONS: usize = 512;

/// Reads the model in `dir`.
pub fn read(dir: &Path) -> Result<MarianModel, ImportError> {
    let (npz, vocab_files) = files(dir)?;
    let (mut tensors, yml) = load_npz_with_text(&npz, Some("special:model.yml"))?;
    let npz_name = npz.display().to_string();
    let yml = yml.ok_or_else(|| ImportError::Format {
        path: npz_name.clone(),
        reason: "no `special:model.yml` entry: not a model.npz that Marian wrote".into(),
    })?;
    let options = Options::parse(&yml, &npz_name)?;
    if options.string("type")? != "transformer" {
        return Err(options.bad("type", "attend imports Marian's `transformer` models"));
    }
    if !options.string("transformer-preprocess")?.is_empty()
        || options.string("transformer-postprocess")? != "dan"
    {
        return Err(options.bad(
            "transformer-postprocess",
            "attend imports post-norm Transformers (preprocess \"\", postprocess dan)",
        ));
    }
    let activation = match options.string("transformer-ffn-activation")?.as_str() {
        "swish" => Activation::Swish,
        "relu" => Activation::Relu,
        _ => return Err(options.bad("transformer-ffn-activation", "swish or relu")),
    };
    let tied_all = options.flag("tied-embeddings-all")?;
    let tie_output = tied_all || options.flag("tied-embeddings")?;
    let mut take_named = |name: &str| {
        tensors
            .remove(name)
            .ok_or_else(|| ImportError::MissingTensor {
                path: npz_name.clone(),
                name: name.to_string(),
                what: "Marian Transformer",
            })
    };
    let mut out = BTreeMap::new();
    if tied_all {
        out.insert("src_emb.weight".into(), take_named("Wemb")?);
    } else {
        out.insert("src_emb.weight".into(), take_named("encoder_Wemb")?);
        out.insert("tgt_emb.weight".into(), take_named("decoder_Wemb")?);
    }
    out.insert(
        "out_proj.bias".into(),
        flat(take_named("decoder_ff_logit_out_b")?),
    );
    if !tie_output {
        let w = take_named("decoder_ff_logit_out_W")?;
        out.insert("out_proj.weight".into(), transpose(&w));
    }
    let (enc, dec) = (options.size("enc-depth")?, options.size("dec-depth")?);
    let mut take = |s: Stack, l: usize, b: Block, p: Param| {
        let t = take_named(&marian_name(s, l, b, p))?;
        Ok(if t.rank() == 2 && t.dim(0) > 1 {
            transpose(&t)
        } else {
            flat(t)
        })
    };
    out.extend(layers(enc, dec, &mut take)?);
    let [src_file, tgt_file] = vocab_files;
    Ok(MarianModel {
        dir: dir.to_path_buf(),
        weights_file: npz,
        d_model: options.size("dim-emb")?,
        heads: options.size("transformer-heads")?,
        ff_size: options.size("transformer-dim-ffn")?,
        encoder_layers: enc,
        decoder_layers: dec,
        activation,
        shared_embeddings: tied_all,
        tie_output,
        scale_embeddings: true,
        max_positions: MAX_POSITIONS,
        src_pieces: vocabulary(&src_file)?,
        tgt_pieces: vocabulary(&tgt_file)?,
        decoder_start: None,
        vocab_files: [src_file, tgt_file],
        tensors: out,
    })
}

/// The `.npz` and the two vocabularies of a Marian directory.
fn files(dir: &Path) -> Result<(PathBuf, [PathBuf; 2]), ImportError> {
    let decoder = dir.join("decoder.yml");
    if decoder.is_file() {
        let options = Options::parse(&read_text(&decoder)?, &decoder.display().to_string())?;
        let models = options.list("models")?;
        let vocabs = options.list("vocabs")?;
        let (Some(model), [src, tgt]) = (models.first(), vocabs.as_slice()) else {
            return Err(options.bad("vocabs", "one model and two vocabularies (source, target)"));
        };
        let find = |name: &str| require(dir.join(name), "decoder.yml names it");
        return Ok((find(model)?, [find(src)?, find(tgt)?]));
    }
    let npz = require(
        dir.join("model.npz"),
        "a Marian directory holds decoder.yml or model.npz",
    )?;
    if dir.join("vocab.yml").is_file() {
        return Ok((npz, [dir.join("vocab.yml"), dir.join("vocab.yml")]));
    }
    let vocab = |name: &str| {
        require(
            dir.join(name),
            "a Marian directory holds vocab.yml or vocab.src.yml and vocab.trg.yml",
        )
    };
    Ok((npz, [vocab("vocab.src.yml")?, vocab("vocab.trg.yml")?]))
}

/// Marian's name of a layer parameter.
fn marian_name(s: Stack, l: usize, b: Block, p: Param) -> String {
    let stack = match s {
        Stack::Encoder => "encoder",
        Stack::Decoder => "decoder",
    };
    let block = match b {
        Block::SelfAttention => "self",
        Block::CrossAttention => "context",
        Block::FeedForward => "ffn",
    };
    let param = match (b, p) {
        (Block::FeedForward, Param::LnScale) => "ffn_ln_scale",
        (Block::FeedForward, Param::LnBias) => "ffn_ln_bias",
        (_, Param::LnScale) => "Wo_ln_scale",
        (_, Param::LnBias) => "Wo_ln_bias",
        (_, Param::Wq) => "Wq",
        (_, Param::Bq) => "bq",
        (_, Param::Wk) => "Wk",
        (_, Param::Bk) => "bk",
        (_, Param::Wv) => "Wv",
        (_, Param::Bv) => "bv",
        (_, Param::Wo) => "Wo",
        (_, Param::Bo) => "bo",
        (_, Param::W1) => "W1",
        (_, Param::B1) => "b1",
        (_, Param::W2) => "W2",
        (_, Param::B2) => "b2",
    };
    format!("{stack}_l{}_{block}_{param}", l + 1)
}

/// `[r, c]` → `[c, r]`.
fn transpose(t: &Tensor) -> Tensor {
    let (r, c) = (t.dim(0), t.dim(1));
    let mut data = vec![0.0f32; r * c];
    for (i, row) in t.data().chunks(c.max(1)).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            data[j * r + i] = x;
        }
    }
    Tensor::from_vec(data, &[c, r])
}

/// The pieces of a Marian vocabulary (`piece: id` per line) in id order.
fn vocabulary(path: &Path) -> Result<Vec<String>, ImportError> {
    let text = read_text(path)?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| ImportError::Format {
        path: path.display().to_string(),
        reason: format!("not YAML ({e})"),
    })?;
    let not_map = || ImportError::Format {
        path: path.display().to_string(),
        reason: "expected a mapping of piece: id".into(),
    };
    let map = docs.first().and_then(Yaml::as_hash).ok_or_else(not_map)?;
    let entries = map
        .iter()
        .map(|(k, v)| {
            Ok((
                scalar(k).ok_or_else(not_map)?,
                v.as_i64().filter(|i| *i >= 0).ok_or_else(not_map)? as u64,
            ))
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    in_id_order(entries.into_iter(), path)
}

/// A YAML scalar as the text it stands for.
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some("null".into()),
        _ => None,
    }
}

/// Pieces indexed by id from `(piece, id)` pairs; the ids must be exactly `0..n`.
pub(crate) fn in_id_order(
    entries: impl Iterator<Item = (String, u64)>,
    path: &Path,
) -> Result<Vec<String>, ImportError> {
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    for (piece, id) in entries {
        if let Some(other) = by_id.insert(id, piece.clone()) {
            return Err(ImportError::Format {
                path: path.display().to_string(),
                reason: format!("id {id} is given to both {other:?} and {piece:?}"),
            });
        }
    }
    if let Some((gap, _)) = by_id.keys().enumerate().find(|(i, id)| *i as u64 != **id) {
        return Err(ImportError::Format {
            path: path.display().to_string(),
            reason: format!("the ids are not 0..{}: id {gap} is missing", by_id.len()),
        });
    }
    Ok(by_id.into_values().collect())
}

/// The options of a Marian YAML file (`special:model.yml`, `decoder.yml`), with errors naming the
/// file and the key.
struct Options {
    path: String,
    doc: Yaml,
}

impl Options {
    fn parse(text: &str, path: &str) -> Result<Options, ImportError> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| ImportError::Format {
            path: path.to_string(),
            reason: format!("the options are not YAML ({e})"),
        })?;
        Ok(Options {
            path: path.to_string(),
            doc: docs.into_iter().next().unwrap_or(Yaml::Null),
        })
    }

    fn bad(&self, key: &str, expected: &str) -> ImportError {
        ImportError::Format {
            path: self.path.clone(),
            reason: format!("`{key}`: {expected}"),
        }
    }

    fn string(&self, key: &str) -> Result<String, ImportError> {
        scalar(&self.doc[key]).ok_or_else(|| self.bad(key, "missing"))
    }

    fn size(&self, key: &str) -> Result<usize, ImportError> {
        let v = self.doc[key].as_i64().filter(|n| *n > 0);
        v.map(|n| n as usize)
            .ok_or_else(|| self.bad(key, "missing or not a positive integer"))
    }

    fn flag(&self, key: &str) -> Result<bool, ImportError> {
        match &self.doc[key] {
            Yaml::BadValue => Ok(false),
            v => v
                .as_bool()
                .ok_or_else(|| self.bad(key, "not true or false")),
        }
    }

    fn list(&self, key: &str) -> Result<Vec<String>, ImportError> {
        let items = self.doc[key]
            .as_vec()
            .ok_or_else(|| self.bad(key, "missing or not a list"))?;
        items
            .iter()
            .map(|y| scalar(y).ok_or_else(|| self.bad(key, "a list of file names")))
            .collect()
    }
}
