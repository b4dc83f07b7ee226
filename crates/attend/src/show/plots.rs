//! From a model's output to picture files: the attention of one translation as a heat map, a
//! run's training history as curves, and token strings cleaned for labels.
//!
//! A [`Hypothesis`] carries one attention row per emitted token, EOS included:
//! `attention: [tgt_len (+1 for </s>), src_len]`; row i is α_i·, the distribution the decoder used
//! when it emitted target token i. The heat map draws it as it stands: target tokens down the side,
//! source tokens across the top.

use super::{HeadView, HeatMap, HeatMapGrid, Picture, ShowError, TrainingCurves};
use crate::data::tokenizer::{Tokenizer, Vocabs, BOS, SPECIAL_TOKENS};
use crate::models::transformer::AttentionMaps;
use crate::search::Hypothesis;
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// The word-start marker the tokenizers put in front of every word (`▁cat`).
const METASPACE: char = '▁';
/// The label of the end-of-sentence row.
pub const EOS_LABEL: &str = "</s>";

/// A token string as shown to a reader: the `▁` word-start marker dropped (`▁chat` → `chat`); a
/// token that is nothing but the marker stays `▁` so that it remains visible.
pub fn display_token(token: &str) -> String {
    match token.strip_prefix(METASPACE) {
        Some("") => METASPACE.to_string(),
        Some(rest) => rest.to_string(),
        None => token.to_string(),
    }
}

/// The display labels of `ids` under `tokenizer` (see [`display_token`]).
pub fn display_tokens(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| display_token(&tokenizer.token(id)))
        .collect()
}

/// The labels of a hypothesis's attention rows: its emitted tokens, then `</s>` when the decoder
/// also attended while emitting EOS (it does unless it stopped at the length limit).
pub fn target_labels(tokenizer: &Tokenizer, hyp: &Hypothesis) -> Vec<String> {
    let mut labels = display_tokens(tokenizer, &hyp.ids);
    if hyp.attention.len() == hyp.ids.len() + 1 {
        labels.push(EOS_LABEL.to_string());
    }
    labels
}

/// The heat map of one translation's attention: `attention` rows (one per label in `target`, each
/// over the `source` labels) as a [target, source] matrix.
pub fn attention_heat_map(
    title: impl Into<String>,
    source: &[String],
    target: &[String],
    attention: &[Vec<f32>],
) -> Result<HeatMap, ShowError> {
    if attention.is_empty() {
        return Err(ShowError::Invalid(
            "the model returned no attention weights: a model without attention \
             (model.rnn.attention = \"none\") has nothing to draw"
                .to_string(),
        ));
    }
    if attention.len() != target.len() {
        return Err(ShowError::Shape {
            what: "attention rows (one per target token)".to_string(),
            expected: target.len(),
            got: attention.len(),
        });
    }
    if let Some(row) = attention.iter().find(|r| r.len() != source.len()) {
        return Err(ShowError::Shape {
            what: "attention weights per row (one per source token)".to_string(),
            expected: source.len(),
            got: row.len(),
        });
    }
    HeatMap::new(title, target.to_vec(), source.to_vec(), attention.concat())
}

/// The heat map of a decoded hypothesis of the source `src_ids`, labelled with the tokenizers'
/// token strings; `title` is typically the source sentence.
pub fn hypothesis_heat_map(
    title: impl Into<String>,
    src_tokenizer: &Tokenizer,
    tgt_tokenizer: &Tokenizer,
    src_ids: &[u32],
    hyp: &Hypothesis,
) -> Result<HeatMap, ShowError> {
    attention_heat_map(
        title,
        &display_tokens(src_tokenizer, src_ids),
        &target_labels(tgt_tokenizer, hyp),
        &hyp.attention,
    )
}

/// Training curves from a run's history: (step, mean training loss) per logging interval and
/// (step, dev BLEU) per validation, as `TrainerState` keeps them.
pub fn training_curves(
    title: impl Into<String>,
    loss: &[(usize, f32)],
    bleu: &[(usize, f64)],
) -> Result<TrainingCurves, ShowError> {
    TrainingCurves::new(
        title,
        loss.iter().map(|&(s, l)| (s as u64, l)).collect(),
        bleu.iter().map(|&(s, b)| (s as u64, b as f32)).collect(),
    )
}

/// Writes `picture` as `{stem}.png` and `{stem}.svg` and returns both paths (PNG first).
pub fn save_png_svg(picture: &impl Picture, stem: &Path) -> Result<[PathBuf; 2], ShowError> {
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    picture.save(&png)?;
    picture.save(&svg)?;
    Ok([png, svg])
}

/// Writes the attention of input line `line` (1-based) into `dir` as `line-{line}.png` and
/// `line-{line}.svg`: the weights the decoder used at each step (for a Transformer, its last
/// layer's cross-attention averaged over heads). Returns the paths written.
pub fn plot_translation(
    dir: &Path,
    line: usize,
    vocabs: &Vocabs,
    source: &str,
    src_ids: &[u32],
    hyp: &Hypothesis,
) -> Result<Vec<PathBuf>, ShowError> {
    let map = hypothesis_heat_map(source, &vocabs.src, &vocabs.tgt, src_ids, hyp)?;
    Ok(save_png_svg(&map, &dir.join(format!("line-{line}")))?.to_vec())
}

/// Writes one view of a Transformer translation's cross-attention into `dir` as `line-{line}.png`
/// and `line-{line}.svg`: a head of a decoder layer, or the mean of the layer's heads (the
/// alignment view by default, see [`HeadView`]). `maps` come from
/// [`Transformer::attention_maps`](crate::models::transformer::Transformer::attention_maps) on one
/// sentence with `tgt_in` = [`teacher_forced_input`]`(hyp)`; `read` are the source ids the encoder
/// read (`</s>` included where the model appends it). Returns the paths written.
#[allow(clippy::too_many_arguments)]
pub fn plot_head_view(
    dir: &Path,
    line: usize,
    vocabs: &Vocabs,
    source: &str,
    read: &[u32],
    hyp: &Hypothesis,
    maps: &AttentionMaps,
    view: HeadView,
) -> Result<Vec<PathBuf>, ShowError> {
    let (src, tgt) = (
        display_tokens(&vocabs.src, read),
        target_labels(&vocabs.tgt, hyp),
    );
    let heads = maps.cross.first().map_or(0, |t| t.dim(1));
    view.check(maps.cross.len(), heads)?;
    let t = &maps.cross[view.layer - 1]; // [1, H, T, S]
    let (r, c) = (tgt.len(), src.len());
    if t.shape() != [1, heads, r, c] {
        return Err(ShowError::Invalid(format!(
            "cross-attention of layer {}: expected weights [1, {heads}, {r}, {c}], got {:?}",
            view.layer,
            t.shape()
        )));
    }
    let rows = view.rows_of(t.data(), heads, r, c);
    let title = format!("{source} ({})", view.describe(heads));
    let map = attention_heat_map(title, &src, &tgt, &rows)?;
    Ok(save_png_svg(&map, &dir.join(format!("line-{line}")))?.to_vec())
}

/// The target inputs of a teacher-forced pass that reproduces `hyp`'s attention rows:
/// `<s> y₁ … y_{T−1}` with T the number of rows (the emitted tokens, plus EOS when it was emitted).
pub fn teacher_forced_input(hyp: &Hypothesis) -> Vec<u32> {
    let rows = hyp.attention.len().max(1);
    std::iter::once(BOS)
        .chain(hyp.ids.iter().copied())
        .take(rows)
        .collect()
}

/// One kind of Transformer attention: its file name part, its title, and its maps per layer.
struct Kind<'a> {
    name: &'static str,
    title: &'static str,
    maps: &'a [Tensor],
    rows: &'a [String],
    cols: &'a [String],
}

/// Writes every layer's and head's attention of a Transformer translation into `dir/line-{line}/`:
/// `{cross,encoder,decoder}-l{l}-h{h}.{png,svg}` for cross-attention (target × source), encoder
/// self-attention (source × source) and decoder self-attention (target inputs × target inputs,
/// causal), and `{cross,encoder,decoder}-grid.{png,svg}` with every layer (rows) and head
/// (columns) on one colour scale. `maps` come from
/// [`Transformer::attention_maps`](crate::models::transformer::Transformer::attention_maps) on one
/// sentence with `tgt_in` = [`teacher_forced_input`]`(hyp)`: each tensor `[1, H, rows, cols]`.
pub fn plot_transformer_layers(
    dir: &Path,
    line: usize,
    vocabs: &Vocabs,
    source: &str,
    src_ids: &[u32],
    hyp: &Hypothesis,
    maps: &AttentionMaps,
) -> Result<Vec<PathBuf>, ShowError> {
    let src = display_tokens(&vocabs.src, src_ids);
    let tgt_out = target_labels(&vocabs.tgt, hyp);
    let tgt_in: Vec<String> = teacher_forced_input(hyp)
        .iter()
        .map(|&id| {
            if id == BOS {
                SPECIAL_TOKENS[BOS as usize].to_string()
            } else {
                display_token(&vocabs.tgt.token(id))
            }
        })
        .collect();
    let kinds = [
        Kind {
            name: "cross",
            title: "cross-attention",
            maps: &maps.cross,
            rows: &tgt_out,
            cols: &src,
        },
        Kind {
            name: "encoder",
            title: "encoder self-attention",
            maps: &maps.encoder_self,
            rows: &src,
            cols: &src,
        },
        Kind {
            name: "decoder",
            title: "decoder self-attention",
            maps: &maps.decoder_self,
            rows: &tgt_in,
            cols: &tgt_in,
        },
    ];
    let out = dir.join(format!("line-{line}"));
    std::fs::create_dir_all(&out).map_err(|source| ShowError::Io {
        path: out.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for k in kinds {
        let mut panels = Vec::new();
        let mut heads = 0;
        for (l, t) in k.maps.iter().enumerate() {
            // t: [1, H, rows, cols]
            let (r, c) = (k.rows.len(), k.cols.len());
            if t.rank() != 4 || t.dim(0) != 1 || t.dim(2) != r || t.dim(3) != c {
                return Err(ShowError::Invalid(format!(
                    "{} of layer {}: expected weights [1, heads, {r}, {c}], got {:?}",
                    k.title,
                    l + 1,
                    t.shape()
                )));
            }
            heads = t.dim(1);
            for h in 0..heads {
                let weights = t.data()[h * r * c..(h + 1) * r * c].to_vec();
                let label = format!("layer {} head {}", l + 1, h + 1);
                let map = HeatMap::new(
                    format!("{}, {label}: {source}", k.title),
                    k.rows.to_vec(),
                    k.cols.to_vec(),
                    weights.clone(),
                )?;
                let stem = out.join(format!("{}-l{}-h{}", k.name, l + 1, h + 1));
                written.extend(save_png_svg(&map, &stem)?);
                panels.push(HeatMap::new(
                    label,
                    k.rows.to_vec(),
                    k.cols.to_vec(),
                    weights,
                )?);
            }
        }
        let grid = HeatMapGrid::new(
            format!("{} (rows: layers, columns: heads): {source}", k.title),
            panels,
            heads.max(1),
        )?;
        written.extend(save_png_svg(&grid, &out.join(format!("{}-grid", k.name)))?);
    }
    Ok(written)
}

/// Whether `label` names a special token (`<pad>`, `<s>`, `</s>`, `<unk>`).
pub fn is_special(label: &str) -> bool {
    SPECIAL_TOKENS.contains(&label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_dropped_for_display() {
        assert_eq!(display_token("▁chat"), "chat");
        assert_eq!(display_token("noir"), "noir");
        assert_eq!(display_token("▁"), "▁");
        assert_eq!(display_token("▁été"), "été");
        assert_eq!(display_token("<unk>"), "<unk>");
    }

    #[test]
    fn mismatched_attention_is_refused() {
        let s = vec!["a".to_string(), "b".to_string()];
        let t = vec!["x".to_string()];
        assert!(matches!(
            attention_heat_map("", &s, &t, &[]),
            Err(ShowError::Invalid(_))
        ));
        assert!(matches!(
            attention_heat_map("", &s, &t, &[vec![0.5, 0.5], vec![1.0, 0.0]]),
            Err(ShowError::Shape { .. })
        ));
        assert!(matches!(
            attention_heat_map("", &s, &t, &[vec![1.0]]),
            Err(ShowError::Shape { .. })
        ));
        let m = attention_heat_map("", &s, &t, &[vec![0.25, 0.75]]).unwrap();
        assert_eq!((m.rows(), m.cols()), (1, 2));
    }
}
