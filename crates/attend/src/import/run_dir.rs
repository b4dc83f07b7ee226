//! Writes an imported [`MarianModel`] as an ordinary attend run directory: `config.toml`,
//! `best.safetensors`, `src_tokenizer.json`, `tgt_tokenizer.json` (and the SentencePiece models
//! beside them where the source directory has them).
//!
//! Rows are permuted into attend's special ids (see the [module doc](super)):
//!
//! ```text
//! attend id   0 <pad>     1 <s>                2 </s>   3 <unk>   4…  every other model id, in order
//! row         model pad   decoder start        eos      unk
//!             (or zeros)  (or zeros: Marian)
//! out bias    pad's       −10⁹ (never emitted)
//! ```
//! The tokenizers are the model's SentencePiece models (`source.spm`, `target.spm`) as `tokenizers`
//! pipelines numbering pieces with these attend ids
//! ([`SentencePiece::to_tokenizer`](crate::data::sentencepiece::SentencePiece::to_tokenizer)), so
//! raw text is segmented as Marian and Hugging Face segment it and output ids decode to text.

use super::torch_map::Rows;
use super::{ImportError, MarianModel};
use crate::config::{
    Config, CorpusName, ModelConfig, NormPlacement, PositionKind, SearchStyle, TokenizerName,
    TransformerConfig,
};
use crate::data::sentencepiece::{PieceVocab, SentencePiece, SentencePieceError};
use crate::data::tokenizer::{Tokenizer, Vocabs, BOS, SPECIAL_TOKENS, UNK};
use crate::models::transformer::Transformer;
use crate::models::Seq2Seq;
use crate::train::checkpoint::write_config;
use std::path::Path;
use tensor::Tensor;

/// The output bias of `<s>`: its probability is exactly 0 in f32 (Hugging Face's own sentinel).
const NEVER: f32 = -1.0e9;

/// What an import wrote.
#[derive(Debug)]
pub struct ImportSummary {
    pub parameters: usize,
    pub src_vocab: usize,
    pub tgt_vocab: usize,
}

/// attend's order of a vocabulary: the rows and the tokens. `start`: the decoder's first input.
fn order(
    pieces: &[String],
    start: Option<u32>,
    vocab: &Path,
) -> Result<(Rows, Vec<String>), ImportError> {
    let find = |p: &str| pieces.iter().position(|x| x == p).map(|i| i as u32);
    let required = |p: &str| {
        find(p).ok_or_else(|| ImportError::Format {
            path: vocab.display().to_string(),
            reason: format!("the vocabulary has no {p}"),
        })
    };
    let (pad, eos, unk) = (find("<pad>"), required("</s>")?, required("<unk>")?);
    if find("<s>").is_some() {
        return Err(ImportError::Format {
            path: vocab.display().to_string(),
            reason: "the vocabulary has a <s> token; attend reserves <s> for the decoder start"
                .into(),
        });
    }
    let mut rows: Rows = vec![pad, start, Some(eos), Some(unk)];
    let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|t| t.to_string()).collect();
    for (i, p) in pieces.iter().enumerate() {
        let id = Some(i as u32);
        if id != pad && id != Some(eos) && id != Some(unk) {
            rows.push(id);
            tokens.push(p.clone());
        }
    }
    Ok((rows, tokens))
}

/// The rows of `t [V, …]` (or of a vector `[V]`) in the order `rows` (zeros for `None`).
pub(super) fn permute(t: &Tensor, rows: &Rows) -> Tensor {
    let width = t.numel() / t.dim(0).max(1);
    let mut data = vec![0.0f32; rows.len() * width];
    for (out, row) in data.chunks_mut(width.max(1)).zip(rows) {
        if let Some(r) = row {
            let r = *r as usize;
            out.copy_from_slice(&t.data()[r * width..(r + 1) * width]);
        }
    }
    let mut shape = t.shape().to_vec();
    shape[0] = rows.len();
    Tensor::from_vec(data, &shape)
}

/// Writes `model` as a run directory at `out` (created; files in it are replaced).
pub fn write_run(model: MarianModel, out: &Path) -> Result<ImportSummary, ImportError> {
    let weights = model.weights_file.display().to_string();
    let check_rows = |name: &str, pieces: &[String], vocab: &Path, what| {
        let rows = model.tensors.get(name).map_or(0, |t| t.dim(0));
        if rows == pieces.len() {
            return Ok(());
        }
        Err(ImportError::VocabSize {
            vocab: vocab.display().to_string(),
            tokens: pieces.len(),
            weights: weights.clone(),
            rows,
            what,
        })
    };
    let [src_file, tgt_file] = &model.vocab_files;
    check_rows(
        "src_emb.weight",
        &model.src_pieces,
        src_file,
        "source embeddings",
    )?;
    let tgt_table = if model.shared_embeddings {
        "src_emb.weight"
    } else {
        "tgt_emb.weight"
    };
    check_rows(tgt_table, &model.tgt_pieces, tgt_file, "target embeddings")?;
    check_rows(
        "out_proj.bias",
        &model.tgt_pieces,
        tgt_file,
        "final_logits_bias",
    )?;
    let (tgt_rows, tgt_tokens) = order(&model.tgt_pieces, model.decoder_start, tgt_file)?;
    let (src_rows, src_tokens) = if model.shared_embeddings {
        (tgt_rows.clone(), tgt_tokens.clone())
    } else {
        order(&model.src_pieces, None, src_file)?
    };
    let config = marian_transformer(&model, src_tokens.len(), tgt_tokens.len());
    let transformer = Transformer::from_config(&config, src_tokens.len(), tgt_tokens.len(), 0)
        .map_err(|e| ImportError::Format {
            path: model.dir.display().to_string(),
            reason: format!("the sizes do not make a model: {e}"),
        })?;
    for (name, var) in transformer.params().iter() {
        let t = model
            .tensors
            .get(name)
            .ok_or_else(|| ImportError::MissingTensor {
                path: weights.clone(),
                name: name.to_string(),
                what: "Marian",
            })?;
        let t = match name {
            "src_emb.weight" => permute(t, &src_rows),
            "tgt_emb.weight" | "out_proj.weight" => permute(t, &tgt_rows),
            "out_proj.bias" => {
                let mut b = permute(t, &tgt_rows);
                b.data_mut()[BOS as usize] = NEVER;
                b
            }
            _ => t.clone(),
        };
        if t.shape() != var.shape().as_slice() {
            return Err(ImportError::Shape {
                path: weights.clone(),
                name: name.to_string(),
                found: t.shape().to_vec(),
                expected: var.shape(),
            });
        }
        *var.value_mut() = t;
    }
    let vocabs = Vocabs {
        src: spm_tokenizer(&model.dir.join("source.spm"), &src_tokens)?,
        tgt: spm_tokenizer(&model.dir.join("target.spm"), &tgt_tokens)?,
    };
    let write_err = |reason: String| ImportError::Write {
        path: out.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(e.to_string()))?;
    write_config(out, &config).map_err(|e| write_err(format!("{e:#}")))?;
    transformer
        .params()
        .save(&out.join("best.safetensors"))
        .map_err(|e| write_err(e.to_string()))?;
    vocabs.save(out).map_err(|e| write_err(e.to_string()))?;
    for spm in ["source.spm", "target.spm"] {
        std::fs::copy(model.dir.join(spm), out.join(spm))
            .map_err(|e| write_err(format!("{spm}: {e}")))?;
    }
    Ok(ImportSummary {
        parameters: transformer.params().count(),
        src_vocab: vocabs.src.vocab_size(),
        tgt_vocab: vocabs.tgt.vocab_size(),
    })
}

/// The configuration of a run imported from elsewhere: the embedded default's training and search
/// settings, an `imported` corpus of `src_vocab` / `tgt_vocab` tokens (joint where a Transformer
/// shares its embeddings; as long as its positional table allows), and `model`.
pub fn imported_config(
    name: &str,
    src_vocab: usize,
    tgt_vocab: usize,
    model: ModelConfig,
) -> Config {
    let mut c = Config::load(None, &[]).expect("the embedded default config parses");
    c.name = name.into();
    c.data.corpus = CorpusName::Imported;
    c.data.tokenizer = TokenizerName::Word;
    c.data.vocab_size = src_vocab.max(tgt_vocab);
    if let ModelConfig::Transformer(t) = &model {
        c.data.joint_vocab = t.shared_embeddings;
        c.data.max_len = t.max_positions.saturating_sub(1).max(1);
    }
    c.model = model;
    c
}

/// The attend configuration that computes a Marian Transformer: post-norm, no final norm,
/// sines-then-cosines positions, `</s>` after the source, no dropout; Hugging Face's search
/// (beam 4, length penalty 1, up to the positional table).
pub fn marian_transformer(m: &MarianModel, src_vocab: usize, tgt_vocab: usize) -> Config {
    let model = TransformerConfig {
        d_model: m.d_model,
        heads: m.heads,
        ff_size: m.ff_size,
        encoder_layers: m.encoder_layers,
        decoder_layers: m.decoder_layers,
        activation: m.activation,
        norm: NormPlacement::Post,
        positions: PositionKind::SinusoidalHalves,
        max_positions: m.max_positions,
        scale_embeddings: m.scale_embeddings,
        shared_embeddings: m.shared_embeddings,
        tie_output: m.tie_output,
        final_norm: false,
        source_bos: false,
        source_eos: true,
        dropout: 0.0,
        attention_dropout: None,
    };
    let mut c = imported_config(
        "imported-marian",
        src_vocab,
        tgt_vocab,
        ModelConfig::Transformer(model),
    );
    c.search.beam = 4;
    c.search.alpha = 1.0;
    c.search.max_len_a = 0.0;
    c.search.max_len_b = m.max_positions.saturating_sub(1);
    c.search.style = SearchStyle::HuggingFace;
    c
}

/// attend's tokenizer for the SentencePiece model at `spm`, numbering pieces as `tokens` (token
/// `i` is id `i`; the first four are [`SPECIAL_TOKENS`]).
fn spm_tokenizer(spm: &Path, tokens: &[String]) -> Result<Tokenizer, ImportError> {
    let path = spm.display().to_string();
    if !spm.is_file() {
        return Err(ImportError::Missing {
            path,
            reason: "no SentencePiece model; the model directory must hold the .spm file it was trained with".into(),
        });
    }
    let fail = |e: SentencePieceError| ImportError::Format {
        path: path.clone(),
        reason: e.to_string(),
    };
    let vocab = PieceVocab {
        ids: tokens.iter().cloned().zip(0u32..).collect(),
        unk: UNK,
    };
    SentencePiece::load(spm)
        .and_then(|m| m.to_tokenizer(Some(&vocab)))
        .map_err(fail)
}
