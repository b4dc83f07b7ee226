//! Unigram segmentation: the most probable split of a normalized text into pieces.
//!
//! Each piece `x` has a score `log p(x)`; a segmentation `x₁ … x_n` scores `Σ log p(xᵢ)`, and
//! Viterbi finds the best one in one left-to-right pass (Kudo 2018, "Subword Regularization",
//! section 2): `best[e] = max over pieces s..e of best[s] + score(piece)`, over byte positions
//! `e` of the text. A character with no single-character piece is reachable as `<unk>` with
//! score `min_score − 10`. User-defined pieces score `length × max_score − 0.1` so that they
//! always win; unused pieces are never chosen.
//!
//! This is the reference's `unigram::Model::EncodeOptimized` with its number types: scores are
//! `f32`, a candidate is summed and compared in `f64` and stored back as `f32`, the first of
//! equal candidates (shorter piece, earlier start) is kept. Those details decide ties.

use super::model_file::{ModelFile, PieceKind};

/// The reference's penalty below the lowest piece score for an unknown character.
const UNK_PENALTY: f32 = 10.0;

/// The unigram model's derived numbers.
#[derive(Debug, Clone)]
pub struct Unigram {
    min_score: f32,
    max_score: f32,
    max_piece_len: usize,
}

/// The best path ending at one byte position.
#[derive(Debug, Clone, Copy)]
struct BestPath {
    id: u32,
    score: f32,
    starts_at: Option<usize>,
}

impl Unigram {
    /// The lowest and highest score of the normal pieces (the reference starts them at
    /// `f32::MAX` and `f32::MIN_POSITIVE`) and the longest piece in bytes.
    pub fn new(model: &ModelFile) -> Self {
        let mut min_score = f32::MAX;
        let mut max_score = f32::MIN_POSITIVE;
        for (&kind, &score) in model.kinds.iter().zip(&model.scores) {
            if kind == PieceKind::Normal {
                min_score = min_score.min(score);
                max_score = max_score.max(score);
            }
        }
        let max_piece_len = model.normal.keys().map(String::len).max().unwrap_or(0);
        Unigram {
            min_score,
            max_score,
            max_piece_len,
        }
    }

    /// The best segmentation of `normalized` as `(start, end, id)` byte ranges in order; an
    /// unknown character is its own range with the unknown id.
    pub fn encode(&self, model: &ModelFile, normalized: &str) -> Vec<(usize, usize, u32)> {
        let size = normalized.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let empty = BestPath {
            id: model.unk_id,
            score: 0.0,
            starts_at: None,
        };
        let mut best = vec![empty; size + 1];
        for (starts_at, c) in normalized.char_indices() {
            let till_here = best[starts_at].score;
            let char_len = c.len_utf8();
            let mut has_single_piece = false;
            let limit = starts_at + self.max_piece_len;
            let ends = normalized[starts_at..]
                .char_indices()
                .map(|(i, c)| starts_at + i + c.len_utf8())
                .take_while(|&end| end <= limit);
            for end in ends {
                let Some(&id) = model.normal.get(&normalized[starts_at..end]) else {
                    continue;
                };
                let kind = model.kinds[id as usize];
                if kind == PieceKind::Unused {
                    continue;
                }
                let length = end - starts_at;
                let score = if kind == PieceKind::UserDefined {
                    f64::from(length as f32 * self.max_score) - 0.1
                } else {
                    f64::from(model.scores[id as usize])
                };
                let candidate = score + f64::from(till_here);
                let target = &mut best[end];
                if target.starts_at.is_none() || candidate > f64::from(target.score) {
                    *target = BestPath {
                        id,
                        score: candidate as f32,
                        starts_at: Some(starts_at),
                    };
                }
                has_single_piece |= length == char_len;
            }
            if !has_single_piece {
                let candidate = unk_score + till_here;
                let target = &mut best[starts_at + char_len];
                if target.starts_at.is_none() || candidate > target.score {
                    *target = BestPath {
                        id: model.unk_id,
                        score: candidate,
                        starts_at: Some(starts_at),
                    };
                }
            }
        }
        let mut pieces = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            // Every position after a character boundary was reached (at worst as unknown).
            let start = node.starts_at.expect("every character end is reachable");
            pieces.push((start, end, node.id));
            end = start;
        }
        pieces.reverse();
        pieces
    }
}
