//! From a model's output to picture files: the attention of one translation as a heat map, a
//! run's training history as curves, and token strings cleaned for labels.
//!
//! A [`Hypothesis`] carries one attention row per emitted token, EOS included:
//! `attention: [tgt_len (+1 for </s>), src_len]`; row i is α_i·, the distribution the decoder used
//! when it emitted target token i. The heat map draws it as it stands: target tokens down the side,
//! source tokens across the top.

use super::{HeatMap, Picture, ShowError, TrainingCurves};
use crate::data::tokenizer::{Tokenizer, SPECIAL_TOKENS};
use crate::search::Hypothesis;
use std::path::{Path, PathBuf};

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
             (model.attention = \"none\") has nothing to draw"
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
