//! `attend import-torch`: a PyTorch translation model — an `nn.Transformer` or a GRU/LSTM
//! encoder-decoder — made into an attend run directory from its checkpoint(s) and a
//! [mapping file](super::torch_map).
//!
//! 1. The state dicts are read ([`torch_zip`](super::torch_zip)), each name prefixed as the
//!    mapping says; the configuration is built from the mapping.
//! 2. Every attend parameter takes the tensor the mapping names for it; the embedding and output
//!    rows are permuted into attend's special ids. Every missing tensor, every shape that differs
//!    from the expected one, and every tensor left unused (and not listed under `ignore`) is
//!    collected, and all of them are reported together ([`ImportError::Mapping`]).
//! 3. Where the mapping names a [check batch](super::torch_check), attend decodes it greedily
//!    and refuses the import unless every output equals the stored one ([`ImportError::Check`]).
//! 4. `config.toml`, `best.safetensors` and the two tokenizers are written.

use super::run_dir::{imported_config, permute};
use super::torch_check::check_batch;
use super::torch_map::{Mapping, TorchModel, VocabFile};
use super::torch_vocab::{id_tokenizer, vocab_tokenizer};
use super::torch_zip::read_state_dict;
use super::{ImportError, ImportSummary};
use crate::attention::position::sinusoidal_table;
use crate::config::{Config, ModelConfig, NormPlacement, PositionKind, TransformerConfig};
use crate::data::tokenizer::Vocabs;
use crate::train::checkpoint::write_config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// A stored sinusoidal table is accepted when `|table − formula| ≤ 1e-5 + 1e-6 · p` at position
/// `p`: the rounding of a table computed in float32 (`sin(p · exp(−2i·ln(10⁴)/d))`) grows with
/// `p` (about `p · 2.4e-7`), while a table in another layout differs by O(1).
const TABLE_TOLERANCE: (f32, f32) = (1e-5, 1e-6);

/// Imports the model the mapping file `mapping_path` describes into the run directory `out`;
/// `state` (the command line's `--state`) replaces the mapping's single checkpoint.
pub fn import(
    mapping_path: &Path,
    state: Option<&Path>,
    out: &Path,
) -> Result<ImportSummary, ImportError> {
    let m = Mapping::load(mapping_path)?;
    let map_name = mapping_path.display().to_string();
    let base = mapping_path.parent().unwrap_or(Path::new("."));
    let bad = |reason: String| ImportError::Format {
        path: map_name.clone(),
        reason,
    };
    let mut problems = Vec::new();
    let mut tensors = read_states(&m, base, state, &map_name, &mut problems)?;
    let vocab = match &m.vocab {
        Some(VocabFile { file, level }) => {
            let path = base.join(file);
            let (src, tgt) = super::torch_map::read_vocab(&path)?;
            Some((src, tgt, *level, path))
        }
        None => None,
    };
    let rows_of = |given: Option<usize>, listed: Option<usize>, table: &str, side: &str| {
        let stored = tensors.get(&m.model_name(table)).map(|t| t.dim(0));
        let v = given.or(listed).or(stored).ok_or_else(|| {
            bad(format!(
                "the {side} vocabulary size is not known: give {side}_vocab, a [vocab] file, or a tensor named for `{table}`"
            ))
        })?;
        if let (Some(g), Some(l)) = (given, listed) {
            if g != l {
                return Err(bad(format!(
                    "{side}_vocab = {g}, but the vocabulary file lists {l} {side} tokens"
                )));
            }
        }
        Ok::<_, ImportError>((v, m.special.rows(v).map_err(&bad)?))
    };
    let (src_v, src_rows) = rows_of(
        m.src_vocab,
        vocab.as_ref().map(|v| v.0.len()),
        "src_emb.weight",
        "src",
    )?;
    let tgt_table = if matches!(m.model, TorchModel::Transformer) && m.shared_embeddings {
        "src_emb.weight"
    } else {
        "tgt_emb.weight"
    };
    let (tgt_v, tgt_rows) = rows_of(
        m.tgt_vocab,
        vocab.as_ref().map(|v| v.1.len()),
        tgt_table,
        "tgt",
    )?;
    let config = config_of(&m, &mut tensors, (src_rows.len(), tgt_rows.len())).map_err(bad)?;
    let model = crate::models::build(&config, src_rows.len(), tgt_rows.len(), 0)
        .map_err(|e| bad(format!("the sizes do not make a model: {e:#}")))?;
    let permuted = |name: &str| match name {
        "src_emb.weight" => Some((&src_rows, src_v)),
        "tgt_emb.weight" | "out_proj.weight" | "out_proj.bias" => Some((&tgt_rows, tgt_v)),
        _ => None,
    };
    for (name, var) in model.params().iter() {
        let model_name = if name == "pos_emb.weight" {
            m.position_tensor.clone()
        } else {
            m.model_name(name)
        };
        let mut expected = var.shape();
        let rows = permuted(name);
        if let Some((_, v)) = rows {
            expected[0] = v;
        }
        let Some(t) = tensors.remove(&model_name) else {
            problems.push(format!(
                "missing `{model_name}` {expected:?} (attend's `{name}`)"
            ));
            continue;
        };
        if t.shape() != expected.as_slice() {
            problems.push(format!(
                "`{model_name}` has shape {:?}, expected {expected:?} (attend's `{name}`)",
                t.shape()
            ));
            continue;
        }
        *var.value_mut() = match rows {
            Some((rows, _)) => permute(&t, rows),
            None => t,
        };
    }
    for (name, t) in &tensors {
        if !m.ignored(name) {
            problems.push(format!(
                "unused `{name}` {:?}: no attend parameter maps to it (list it under ignore if the model does not need it)",
                t.shape()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Mapping {
            path: map_name,
            problems,
        });
    }
    if let Some(check) = &m.check {
        check_batch(model.as_ref(), &base.join(check), &src_rows, &tgt_rows)?;
    }
    let vocabs = match &vocab {
        Some((src, tgt, level, path)) => Vocabs {
            src: vocab_tokenizer(src, &src_rows, *level, path)?,
            tgt: vocab_tokenizer(tgt, &tgt_rows, *level, path)?,
        },
        None => Vocabs {
            src: id_tokenizer(src_rows.len(), mapping_path)?,
            tgt: id_tokenizer(tgt_rows.len(), mapping_path)?,
        },
    };
    let write_err = |reason: String| ImportError::Write {
        path: out.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(e.to_string()))?;
    write_config(out, &config).map_err(|e| write_err(format!("{e:#}")))?;
    model
        .params()
        .save(&out.join("best.safetensors"))
        .map_err(|e| write_err(e.to_string()))?;
    vocabs.save(out).map_err(|e| write_err(e.to_string()))?;
    Ok(ImportSummary {
        parameters: model.params().count(),
        src_vocab: src_rows.len(),
        tgt_vocab: tgt_rows.len(),
    })
}

/// Every tensor of the state dicts, each name prefixed as its `[[state]]` says (`map_name`: the
/// mapping file, for messages).
fn read_states(
    m: &Mapping,
    base: &Path,
    state: Option<&Path>,
    map_name: &str,
    problems: &mut Vec<String>,
) -> Result<BTreeMap<String, Tensor>, ImportError> {
    let bad = |reason: &str| ImportError::Format {
        path: map_name.to_string(),
        reason: reason.to_string(),
    };
    let files: Vec<(PathBuf, Option<&str>, &str)> = match (state, m.state.as_slice()) {
        (Some(s), []) => vec![(s.to_path_buf(), m.key.as_deref(), "")],
        (Some(s), [one]) => vec![(s.to_path_buf(), one.key.as_deref(), one.prefix.as_str())],
        (Some(_), _) => {
            return Err(bad(
                "--state stands for one checkpoint, but the mapping lists several [[state]]",
            ))
        }
        (None, []) => return Err(bad("no checkpoint: give --state or a [[state]] entry")),
        (None, list) => list
            .iter()
            .map(|s| (base.join(&s.file), s.key.as_deref(), s.prefix.as_str()))
            .collect(),
    };
    let mut all = BTreeMap::new();
    for (file, key, prefix) in files {
        for (name, t) in read_state_dict(&file, key)? {
            let name = format!("{prefix}{name}");
            if all.insert(name.clone(), t).is_some() {
                problems.push(format!("`{name}` is in two state dicts"));
            }
        }
    }
    Ok(all)
}

/// The attend configuration of the mapping (`vocab`: attend's source and target sizes); the
/// positional table, where the checkpoint has one, is taken out of `tensors` (kept for learned
/// positions under its name).
fn config_of(
    m: &Mapping,
    tensors: &mut BTreeMap<String, Tensor>,
    (src_vocab, tgt_vocab): (usize, usize),
) -> Result<Config, String> {
    let mut c = match m.model {
        TorchModel::Rnn => {
            let mut rnn = m
                .rnn
                .clone()
                .ok_or("model = \"rnn\" needs an [rnn] table (cell, embedding, hidden, layers, attention, …)")?;
            rnn.dropout = 0.0;
            rnn.source_bos |= m.source_bos;
            rnn.source_eos |= m.source_eos;
            imported_config(
                "imported-torch",
                src_vocab,
                tgt_vocab,
                ModelConfig::Rnn(rnn),
            )
        }
        TorchModel::Transformer => {
            let t = transformer_config(m, tensors)?;
            imported_config(
                "imported-torch",
                src_vocab,
                tgt_vocab,
                ModelConfig::Transformer(t),
            )
        }
    };
    if let Some(search) = &m.search {
        c.search = search.clone();
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

fn transformer_config(
    m: &Mapping,
    tensors: &mut BTreeMap<String, Tensor>,
) -> Result<TransformerConfig, String> {
    let sizes = [
        ("d_model", m.d_model),
        ("heads", m.heads),
        ("encoder_layers", m.encoder_layers),
        ("decoder_layers", m.decoder_layers),
        ("ff_size", m.ff_size),
    ];
    let missing: Vec<&str> = sizes
        .iter()
        .filter(|s| s.1.is_none())
        .map(|s| s.0)
        .collect();
    if !missing.is_empty() {
        return Err(format!("a Transformer needs {}", missing.join(", ")));
    }
    let [d, heads, enc, dec, ff] = sizes.map(|s| s.1.unwrap_or_default());
    let table = match tensors.remove(&m.position_tensor) {
        Some(t) => Some(position_table(t, d, &m.position_tensor)?),
        None => None,
    };
    let rows = table.as_ref().map(|t| t.dim(0));
    let max_positions = m
        .max_positions
        .or(rows)
        .ok_or("give max_positions (the checkpoint has no positional table)")?;
    if rows.is_some_and(|r| r != max_positions) {
        return Err(format!(
            "`{}` has {} rows, but max_positions = {max_positions}",
            m.position_tensor,
            rows.unwrap_or_default()
        ));
    }
    match (m.positions, table) {
        (PositionKind::Learned, Some(t)) => {
            tensors.insert(m.position_tensor.clone(), t);
        }
        (PositionKind::Learned, None) => {
            return Err(format!(
                "positions = \"learned\" but the checkpoint has no `{}`; name the table with position_tensor",
                m.position_tensor
            ))
        }
        (_, Some(t)) => check_sinusoidal(&t, max_positions, &m.position_tensor)?,
        (_, None) => {}
    }
    Ok(TransformerConfig {
        d_model: d,
        heads,
        ff_size: ff,
        encoder_layers: enc,
        decoder_layers: dec,
        activation: m.activation,
        norm: if m.norm_first {
            NormPlacement::Pre
        } else {
            NormPlacement::Post
        },
        positions: m.positions,
        max_positions,
        scale_embeddings: m.scale_embeddings,
        shared_embeddings: m.shared_embeddings,
        tie_output: m.tie_output,
        final_norm: true,
        source_bos: m.source_bos,
        source_eos: m.source_eos,
        dropout: 0.0,
        attention_dropout: None,
    })
}

/// A positional table `[N, d]`, `[N, 1, d]` (the PyTorch tutorial's buffer) or `[1, N, d]` as
/// `[N, d]`.
fn position_table(t: Tensor, d: usize, name: &str) -> Result<Tensor, String> {
    let shape = t.shape().to_vec();
    let n = match shape.as_slice() {
        [n, w] | [n, 1, w] | [1, n, w] if *w == d => *n,
        _ => {
            return Err(format!(
                "`{name}` has shape {shape:?}; a positional table is [N, {d}], [N, 1, {d}] or [1, N, {d}]"
            ))
        }
    };
    Ok(t.reshape(&[n, d]))
}

/// The stored table is the interleaved sinusoidal one (within float32 rounding, see
/// [`TABLE_TOLERANCE`]) for its first `max_positions` rows.
fn check_sinusoidal(table: &Tensor, max_positions: usize, name: &str) -> Result<(), String> {
    let (n, d) = (max_positions, table.dim(1));
    let formula = sinusoidal_table(n, d);
    for p in 0..n {
        let row = &table.data()[p * d..(p + 1) * d];
        let diff = row
            .iter()
            .zip(&formula.data()[p * d..(p + 1) * d])
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        if diff > TABLE_TOLERANCE.0 + TABLE_TOLERANCE.1 * p as f32 {
            return Err(format!(
                "`{name}` differs from pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(…) at position {p} (by {diff}); \
                 a table in another layout (e.g. all sines then all cosines) imports with positions = \"learned\""
            ));
        }
    }
    Ok(())
}
