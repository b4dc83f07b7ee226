//! Length-bucketed batches under a token budget, with seeded shuffling.
//!
//! Each epoch: the examples are shuffled (seeded by `seed` and the epoch number), stably sorted by
//! length (so equal-length examples come out in a new order every epoch), cut greedily into
//! batches whose padded size fits the budget, and the batch order is shuffled. A batch of `B` rows
//! padded to `S` source and `T` target positions costs `B · max(S, T)` tokens, which must not exceed
//! `token_budget`. Sorting by length keeps padding small.
//!
//! Target rows are shifted for teacher forcing: for a target `y₁ … yₙ` the decoder reads
//! `tgt_in = <s> y₁ … yₙ` and learns to emit `tgt_out = y₁ … yₙ </s>`, both of length `n + 1`.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::tokenizer::{BOS, EOS, PAD};

/// One padded batch, row-major, padded with [`PAD`] (0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Source ids, `[batch_size, src_max]`.
    pub src: Vec<u32>,
    /// Real (unpadded) source length of each row, `[batch_size]`.
    pub src_len: Vec<usize>,
    /// Decoder input `<s> y₁ … yₙ`, `[batch_size, tgt_max]`.
    pub tgt_in: Vec<u32>,
    /// Decoder target `y₁ … yₙ </s>`, `[batch_size, tgt_max]`.
    pub tgt_out: Vec<u32>,
    /// Real length `n + 1` of each row of `tgt_in` / `tgt_out`, `[batch_size]`.
    pub tgt_len: Vec<usize>,
    /// Number of rows `B`.
    pub batch_size: usize,
    /// Padded source length `S` (the longest source in the batch).
    pub src_max: usize,
    /// Padded target length `T` (the longest `n + 1` in the batch).
    pub tgt_max: usize,
    /// For each row, the index of its example in the list given to [`Batcher::new`] (or to
    /// [`Batch::new`]), to put outputs back in corpus order.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Pads `(source, target)` id sequences into a batch; `indices[r]` is recorded for row `r`.
    /// Targets get `<s>` prepended (`tgt_in`) and `</s>` appended (`tgt_out`).
    pub fn new(pairs: &[(&[u32], &[u32])], indices: Vec<usize>) -> Batch {
        let batch_size = pairs.len();
        let src_len: Vec<usize> = pairs.iter().map(|(s, _)| s.len()).collect();
        let tgt_len: Vec<usize> = pairs.iter().map(|(_, t)| t.len() + 1).collect();
        let src_max = src_len.iter().copied().max().unwrap_or(0);
        let tgt_max = tgt_len.iter().copied().max().unwrap_or(0);
        let mut src = vec![PAD; batch_size * src_max];
        let mut tgt_in = vec![PAD; batch_size * tgt_max];
        let mut tgt_out = vec![PAD; batch_size * tgt_max];
        for (r, (s, t)) in pairs.iter().enumerate() {
            src[r * src_max..r * src_max + s.len()].copy_from_slice(s);
            let row_in = &mut tgt_in[r * tgt_max..];
            row_in[0] = BOS;
            row_in[1..=t.len()].copy_from_slice(t);
            let row_out = &mut tgt_out[r * tgt_max..];
            row_out[..t.len()].copy_from_slice(t);
            row_out[t.len()] = EOS;
        }
        Batch {
            src,
            src_len,
            tgt_in,
            tgt_out,
            tgt_len,
            batch_size,
            src_max,
            tgt_max,
            indices,
        }
    }

    /// `true` at real source positions, `false` at padding, `[batch_size, src_max]`.
    pub fn src_mask(&self) -> Vec<bool> {
        mask(&self.src_len, self.src_max)
    }

    /// `true` at real target positions, `false` at padding, `[batch_size, tgt_max]`.
    pub fn tgt_mask(&self) -> Vec<bool> {
        mask(&self.tgt_len, self.tgt_max)
    }

    /// Number of real target tokens (`Σ tgt_len`, `</s>` included): the loss normalizer.
    pub fn tgt_tokens(&self) -> usize {
        self.tgt_len.iter().sum()
    }

    /// Part `part` of `parts` of the batch, for data-parallel training: rows
    /// `⌊part·B/parts⌋ … ⌊(part+1)·B/parts⌋`, padded to their own longest row. Empty when the batch
    /// has fewer rows than parts.
    pub fn shard(&self, part: usize, parts: usize) -> Batch {
        let rows = self.batch_size * part / parts..self.batch_size * (part + 1) / parts;
        let pairs: Vec<(&[u32], &[u32])> = rows
            .clone()
            .map(|r| {
                let src = &self.src[r * self.src_max..r * self.src_max + self.src_len[r]];
                // tgt_out holds y₁ … yₙ </s>: the target is its first n ids.
                let tgt = &self.tgt_out[r * self.tgt_max..r * self.tgt_max + self.tgt_len[r] - 1];
                (src, tgt)
            })
            .collect();
        Batch::new(&pairs, self.indices[rows].to_vec())
    }

    /// Padded size `batch_size · max(src_max, tgt_max)`, the quantity the token budget bounds.
    pub fn cost(&self) -> usize {
        self.batch_size * self.src_max.max(self.tgt_max)
    }
}

fn mask(lengths: &[usize], max: usize) -> Vec<bool> {
    lengths
        .iter()
        .flat_map(|&n| (0..max).map(move |j| j < n))
        .collect()
}

/// Settings of a [`Batcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Upper bound on `batch_size · max(src_max, tgt_max)`.
    pub token_budget: usize,
    /// Pairs whose source or target has more than this many tokens are dropped.
    pub max_len: usize,
    /// Seed of the per-epoch shuffling.
    pub seed: u64,
}

/// Why a batcher cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// A single longest allowed pair would not fit the budget.
    #[error("token budget {token_budget} is smaller than max_len + 1 = {need}; raise the budget or lower max_len")]
    BudgetTooSmall {
        /// The configured budget.
        token_budget: usize,
        /// What one row of the longest allowed pair costs.
        need: usize,
    },
    /// Every pair was dropped (or none was given).
    #[error("no pairs left to batch ({dropped_long} longer than max_len {max_len}, {dropped_empty} with an empty side)")]
    NoPairs {
        /// Pairs dropped as too long.
        dropped_long: usize,
        /// Pairs dropped as empty.
        dropped_empty: usize,
        /// The configured limit.
        max_len: usize,
    },
}

/// Makes epochs of [`Batch`]es from `(source ids, target ids)` pairs (no BOS/EOS in the input).
#[derive(Debug, Clone)]
pub struct Batcher {
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    /// Index into the caller's list of each kept pair.
    origin: Vec<usize>,
    config: BatcherConfig,
    /// Pairs dropped because a side had more than `max_len` tokens.
    pub dropped_long: usize,
    /// Pairs dropped because a side had no tokens.
    pub dropped_empty: usize,
}

impl Batcher {
    /// Keeps the pairs whose sides have between 1 and `config.max_len` tokens (counting the rest
    /// in [`Batcher::dropped_long`] / [`Batcher::dropped_empty`]).
    pub fn new(
        pairs: Vec<(Vec<u32>, Vec<u32>)>,
        config: BatcherConfig,
    ) -> Result<Self, BatchError> {
        let need = config.max_len + 1;
        if config.token_budget < need {
            return Err(BatchError::BudgetTooSmall {
                token_budget: config.token_budget,
                need,
            });
        }
        let (mut dropped_long, mut dropped_empty) = (0, 0);
        let mut kept = Vec::with_capacity(pairs.len());
        let mut origin = Vec::with_capacity(pairs.len());
        for (i, (s, t)) in pairs.into_iter().enumerate() {
            if s.is_empty() || t.is_empty() {
                dropped_empty += 1;
            } else if s.len() > config.max_len || t.len() > config.max_len {
                dropped_long += 1;
            } else {
                kept.push((s, t));
                origin.push(i);
            }
        }
        if kept.is_empty() {
            return Err(BatchError::NoPairs {
                dropped_long,
                dropped_empty,
                max_len: config.max_len,
            });
        }
        Ok(Batcher {
            pairs: kept,
            origin,
            config,
            dropped_long,
            dropped_empty,
        })
    }

    /// Number of pairs kept.
    pub fn num_pairs(&self) -> usize {
        self.pairs.len()
    }

    /// The batches of epoch `epoch` (0-based), shuffled as described in the module doc; the same
    /// seed and epoch always give the same batches.
    pub fn epoch(&self, epoch: u64) -> Vec<Batch> {
        let mut rng = StdRng::seed_from_u64(
            self.config
                .seed
                .wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        order.shuffle(&mut rng);
        order.sort_by_key(|&i| self.cost_key(i));
        let mut batches = self.pack(&order);
        batches.shuffle(&mut rng);
        batches
    }

    /// The batches in ascending length order without shuffling, e.g. for validation; use
    /// [`Batch::indices`] to put results back in corpus order.
    pub fn sequential(&self) -> Vec<Batch> {
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        order.sort_by_key(|&i| self.cost_key(i));
        self.pack(&order)
    }

    /// Sort key: padded row width first, then source and target length.
    fn cost_key(&self, i: usize) -> (usize, usize, usize) {
        let (s, t) = (self.pairs[i].0.len(), self.pairs[i].1.len() + 1);
        (s.max(t), s, t)
    }

    /// Cuts `order` greedily into batches whose `rows · widest row` stays within the budget.
    fn pack(&self, order: &[usize]) -> Vec<Batch> {
        let mut batches = Vec::new();
        let mut start = 0;
        let mut width = 0;
        for (k, &i) in order.iter().enumerate() {
            let w = self.cost_key(i).0;
            let rows = k - start + 1;
            if rows * width.max(w) > self.config.token_budget {
                batches.push(self.make(&order[start..k]));
                start = k;
                width = 0;
            }
            width = width.max(w);
        }
        batches.push(self.make(&order[start..]));
        batches
    }

    fn make(&self, rows: &[usize]) -> Batch {
        let pairs: Vec<(&[u32], &[u32])> = rows
            .iter()
            .map(|&i| (self.pairs[i].0.as_slice(), self.pairs[i].1.as_slice()))
            .collect();
        Batch::new(&pairs, rows.iter().map(|&i| self.origin[i]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_and_shifted() {
        let b = Batch::new(&[(&[5, 6, 7], &[8]), (&[9], &[10, 11])], vec![4, 2]);
        assert_eq!((b.batch_size, b.src_max, b.tgt_max), (2, 3, 3));
        assert_eq!(b.src, vec![5, 6, 7, 9, PAD, PAD]);
        assert_eq!(b.tgt_in, vec![BOS, 8, PAD, BOS, 10, 11]);
        assert_eq!(b.tgt_out, vec![8, EOS, PAD, 10, 11, EOS]);
        assert_eq!((&b.src_len, &b.tgt_len), (&vec![3, 1], &vec![2, 3]));
        assert_eq!(b.src_mask(), vec![true, true, true, true, false, false]);
        assert_eq!(b.tgt_mask(), vec![true, true, false, true, true, true]);
        assert_eq!((b.tgt_tokens(), b.cost(), b.indices), (5, 6, vec![4, 2]));
    }
}
