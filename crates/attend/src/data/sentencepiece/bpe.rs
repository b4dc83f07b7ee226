//! Byte-pair-encoding segmentation with SentencePiece's rule: start from characters and keep
//! merging the adjacent pair whose concatenation is a piece with the highest score (the leftmost
//! pair among equal scores) until no adjacent pair forms a piece (Sennrich et al. 2016, "Neural
//! Machine Translation of Rare Words with Subword Units", section 3.2, with merge priorities
//! read from the piece scores instead of a merge list).
//!
//! User-defined symbols are single symbols from the start and never merged. A merge that forms
//! an unused piece is undone at the end: the piece is split back into the two parts it was made
//! of, recursively. This is the reference's `bpe::Model::SampleEncode` without dropout.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::model_file::{ModelFile, PieceKind};
use super::normalizer::Normalizer;

/// One symbol of the text being merged: a byte range and its neighbours.
#[derive(Debug, Clone)]
struct Symbol {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
    frozen: bool,
}

/// A candidate merge of symbols `left` and `right` into a piece of `len` bytes.
#[derive(Debug, Clone, Copy)]
struct Pair {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pair {
    /// The heap's top is the highest score, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Segments `normalized` as `(start, end, id)` byte ranges in order; a character outside the
/// vocabulary is its own range with the unknown id.
pub fn encode(
    model: &ModelFile,
    normalizer: &Normalizer,
    normalized: &str,
) -> Vec<(usize, usize, u32)> {
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut pos = 0;
    while pos < normalized.len() {
        let rest = &normalized[pos..];
        let user = normalizer.user_defined_prefix(rest);
        let len = user.unwrap_or_else(|| rest.chars().next().map_or(1, char::len_utf8));
        let index = symbols.len();
        symbols.push(Symbol {
            start: pos,
            end: pos + len,
            prev: index.checked_sub(1),
            next: (pos + len < normalized.len()).then_some(index + 1),
            frozen: user.is_some(),
        });
        pos += len;
    }
    if symbols.is_empty() {
        return Vec::new();
    }

    // Unused piece formed by a merge → byte length of its left part (the last merge proposed
    // for that piece decides, as in the reference).
    let mut unmerge: HashMap<&str, usize> = HashMap::new();
    let mut agenda = BinaryHeap::new();
    let mut propose = |symbols: &[Symbol],
                       agenda: &mut BinaryHeap<Pair>,
                       left: Option<usize>,
                       right: Option<usize>| {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (l, r) = (&symbols[left], &symbols[right]);
        if l.frozen || r.frozen {
            return;
        }
        let Some(&id) = model.normal.get(&normalized[l.start..r.end]) else {
            return;
        };
        agenda.push(Pair {
            left,
            right,
            score: model.scores[id as usize],
            len: r.end - l.start,
        });
        if model.kinds[id as usize] == PieceKind::Unused {
            unmerge.insert(&normalized[l.start..r.end], l.end - l.start);
        }
    };
    for i in 1..symbols.len() {
        propose(&symbols, &mut agenda, Some(i - 1), Some(i));
    }
    while let Some(top) = agenda.pop() {
        let (l, r) = (&symbols[top.left], &symbols[top.right]);
        // Stale: one side was merged away or has grown since the pair was proposed.
        if l.start == l.end || r.start == r.end || (l.end - l.start) + (r.end - r.start) != top.len
        {
            continue;
        }
        let (end, next) = (r.end, r.next);
        symbols[top.left].end = end;
        symbols[top.left].next = next;
        if let Some(next) = next {
            symbols[next].prev = Some(top.left);
        }
        symbols[top.right].start = symbols[top.right].end;
        propose(
            &symbols,
            &mut agenda,
            symbols[top.left].prev,
            Some(top.left),
        );
        propose(
            &symbols,
            &mut agenda,
            Some(top.left),
            symbols[top.left].next,
        );
    }

    let mut out = Vec::new();
    let mut index = Some(0);
    while let Some(i) = index {
        resegment(
            model,
            normalized,
            &unmerge,
            symbols[i].start,
            symbols[i].end,
            &mut out,
        );
        index = symbols[i].next;
    }
    out
}

/// Pushes the range `start..end`, split back into its parts while it is an unused piece.
fn resegment(
    model: &ModelFile,
    normalized: &str,
    unmerge: &HashMap<&str, usize>,
    start: usize,
    end: usize,
    out: &mut Vec<(usize, usize, u32)>,
) {
    let text = &normalized[start..end];
    let id = model
        .reserved
        .get(text)
        .or_else(|| model.normal.get(text))
        .copied()
        .unwrap_or(model.unk_id);
    match unmerge.get(text) {
        Some(&left_len) if model.kinds[id as usize] == PieceKind::Unused => {
            resegment(model, normalized, unmerge, start, start + left_len, out);
            resegment(model, normalized, unmerge, start + left_len, end, out);
        }
        _ => out.push((start, end, id)),
    }
}
