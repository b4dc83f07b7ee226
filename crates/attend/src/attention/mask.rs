//! Masks: which keys a query may not look at.
//!
//! Convention (the same as PyTorch's boolean masks, `True` = blocked): a mask is an f32 [`Tensor`] of
//! 0.0 and 1.0 where **1.0 means "masked"**. Before the softmax, masked scores are filled with −∞,
//! so `softmax` gives them exactly zero weight. A row in which every key is masked (an empty source)
//! gets all-zero weights and so a zero context, not NaN.
//!
//! - padding mask from lengths: `pad[b, j] = 1` iff `j ≥ len_b`, shape `[B, S]`; broadcast over the
//!   queries as `[B, 1, S]` (one head) or over heads and queries as `[B, 1, 1, S]`
//!   ([`key_padding_broadcast`]);
//! - causal ("no look-ahead") mask: `causal[i, j] = 1` iff `j > i`, shape `[T, T]`; during incremental
//!   decoding, `T` new queries after `P` cached positions use `[T, P + T]`, blocked iff `j > P + i`;
//! - both at once: [`combine`] (element-wise OR with broadcasting), e.g. `[B, 1, 1, S]` with `[T, S]`
//!   gives `[B, 1, T, S]`.
//!
//! The masks of Vaswani et al. (2017) §3.2.3 ("setting to −∞ all values in the input of the softmax
//! which correspond to illegal connections").

use crate::attention::{shape_error, AttentionError};
use tensor::ops::binary::broadcast_zip;
use tensor::shape::broadcast_shape;
use tensor::{Tensor, Var};

/// Padding mask `[B, max_len]` from the lengths of a padded batch: 1 at `j ≥ lengths[b]`.
/// A length of 0 masks the whole row (its attention weights are zeros).
pub fn padding_mask(lengths: &[usize], max_len: usize) -> Result<Tensor, AttentionError> {
    if let Some(&length) = lengths.iter().find(|&&len| len > max_len) {
        return Err(AttentionError::Length { length, max_len });
    }
    let mut data = vec![0.0; lengths.len() * max_len];
    for (row, &len) in data.chunks_mut(max_len.max(1)).zip(lengths) {
        row[len..].fill(1.0);
    }
    Ok(Tensor::from_vec(data, &[lengths.len(), max_len]))
}

/// A `[B, S]` key padding mask reshaped to `[B, 1, …, 1, S]` of rank `rank` (≥ 2), so that it
/// broadcasts against scores `[B, T, S]` (rank 3) or `[B, H, T, S]` (rank 4).
pub fn key_padding_broadcast(mask: &Tensor, rank: usize) -> Result<Tensor, AttentionError> {
    if mask.rank() != 2 || rank < 2 {
        return Err(shape_error(
            "key padding mask",
            "mask",
            mask.shape(),
            format!("[B, S], broadcast to rank {rank} ≥ 2"),
        ));
    }
    let mut shape = vec![1; rank];
    shape[0] = mask.dim(0);
    shape[rank - 1] = mask.dim(1);
    Ok(mask.clone().reshape(&shape))
}

/// Causal mask `[len, len]`: 1 above the diagonal (`j > i`), so query `i` sees keys `0..=i`.
pub fn causal_mask(len: usize) -> Tensor {
    causal_mask_after(len, 0)
}

/// Causal mask `[queries, past + queries]` for `queries` new positions that follow `past` cached
/// ones: query `i` (absolute position `past + i`) sees keys `0..=past + i`.
pub fn causal_mask_after(queries: usize, past: usize) -> Tensor {
    let keys = past + queries;
    let mut data = vec![0.0; queries * keys];
    for (i, row) in data.chunks_mut(keys.max(1)).enumerate().take(queries) {
        row[past + i + 1..].fill(1.0);
    }
    Tensor::from_vec(data, &[queries, keys])
}

/// Element-wise OR of two masks with NumPy broadcasting (masked where either is).
pub fn combine(a: &Tensor, b: &Tensor) -> Result<Tensor, AttentionError> {
    if broadcast_shape(a.shape(), b.shape()).is_none() {
        return Err(shape_error(
            "mask combine",
            "second mask",
            b.shape(),
            format!("a shape that broadcasts with {:?}", a.shape()),
        ));
    }
    Ok(broadcast_zip(a, b, |x, y| {
        if x != 0.0 || y != 0.0 {
            1.0
        } else {
            0.0
        }
    }))
}

/// Checks that `mask` broadcasts to exactly `scores` (it may not enlarge them).
pub fn check_mask(mask: &Tensor, scores: &[usize]) -> Result<(), AttentionError> {
    match broadcast_shape(mask.shape(), scores) {
        Some(s) if s == scores => Ok(()),
        _ => Err(shape_error(
            "attention mask",
            "mask",
            mask.shape(),
            format!("a shape that broadcasts to the scores {scores:?}"),
        )),
    }
}

/// `softmax(e)` over the last axis with masked scores set to −∞ first: masked weights are exactly 0,
/// a fully masked row is all zeros. `scores [..., S]`, `mask` broadcastable to the scores.
pub fn masked_softmax(scores: &Var, mask: Option<&Tensor>) -> Result<Var, AttentionError> {
    match mask {
        None => Ok(scores.softmax()),
        Some(m) => {
            check_mask(m, &scores.shape())?;
            Ok(scores.masked_fill(m, f32::NEG_INFINITY).softmax())
        }
    }
}
