//! Data-parallel training: the ranks of a job and what they exchange.
//!
//! `N` processes (ranks) train one model. Every rank holds all the parameters and builds the same
//! global batch `B` (a function of the seed, the epoch and the batch); rank `r` computes the loss
//! of its shard `B_r` (rows `⌊r|B|/N⌋ … ⌊(r+1)|B|/N⌋`) and its gradient. The loss of a batch is a
//! mean over its target tokens, so with `w_r = tokens(B_r) / tokens(B)`
//!
//! ```text
//! ∇ loss(B) = Σ_r w_r ∇ loss(B_r)        (one all-reduce of the weighted gradients)
//! ```
//!
//! and every rank applies the same clipped Adam step to the same sum. [`reduce_gradients`] packs
//! the gradients into one flat vector and sums it across the ranks in buckets of [`BUCKET`] floats.
//! Rank 0 alone validates and writes the run directory; [`from_lead`] hands its outcome (or its
//! error) to the others. [`Single`] is the one-process job: every exchange is a no-op.

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tensor::{Tensor, Var};

/// Floats per all-reduce: 4 MiB, large enough to amortize the latency of a call, small enough
/// that the send and receive buffers stay modest.
pub const BUCKET: usize = 1 << 20;

/// The ranks of a data-parallel job, as the training loop uses them. Every rank calls the same
/// operations in the same order; an operation returns once all ranks have taken part.
pub trait Collective {
    /// This process's rank, `0 ≤ rank < size`; rank 0 leads (validates, writes, prints).
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum over the ranks, in place: every rank ends with `Σ_r x_r`.
    fn all_reduce_sum(&self, x: &mut [f32]);
    /// Rank 0's `bytes` on every rank (the others' are replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>);
}

/// One process alone: rank 0 of 1.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _x: &mut [f32]) {}

    fn broadcast(&self, _bytes: &mut Vec<u8>) {}
}

/// Rank 0's outcome, as it travels: the value, or the error in words.
#[derive(Serialize, Deserialize)]
enum Outcome<T> {
    Done(T),
    Failed(String),
}

/// Runs `lead` on rank 0 and gives every rank its result: the value, or on the other ranks an
/// error saying that rank 0 failed (rank 0 reports its own error). Also the point where the other
/// ranks wait for rank 0 (for the run directory it writes).
pub fn from_lead<T: Serialize + DeserializeOwned>(
    comm: &dyn Collective,
    lead: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if comm.size() == 1 {
        return lead();
    }
    if comm.rank() == 0 {
        let result = lead();
        let outcome = match &result {
            Ok(value) => Outcome::Done(value),
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        let mut bytes = serde_json::to_vec(&outcome)?;
        comm.broadcast(&mut bytes);
        return result;
    }
    let mut bytes = Vec::new();
    comm.broadcast(&mut bytes);
    match serde_json::from_slice(&bytes)? {
        Outcome::Done(value) => Ok(value),
        Outcome::Failed(message) => Err(anyhow!("rank 0 failed: {message}")),
    }
}

/// Sums `w · ∇p` over the ranks for every parameter `p`, together with `extra` (numbers every
/// rank adds to the exchange, e.g. its weighted loss). A parameter without a gradient on a rank
/// counts as zero there, and keeps no gradient only if it has none on every rank (as in one
/// process, where Adam skips it). Afterwards every rank holds the same gradients and `extra`.
///
/// Layout of the flat vector: `[∇p₀ · w, ∇p₁ · w, …, has-grad₀, has-grad₁, …, extra…]`.
pub fn reduce_gradients(comm: &dyn Collective, params: &[Var], w: f32, extra: &mut [f32]) {
    let numel: usize = params.iter().map(|p| p.value().numel()).sum();
    let mut flat = Vec::with_capacity(numel + params.len() + extra.len());
    let mut has = Vec::with_capacity(params.len());
    for p in params {
        match p.grad_ref().as_ref() {
            Some(g) => {
                flat.extend(g.data().iter().map(|&x| x * w));
                has.push(1.0);
            }
            None => {
                flat.resize(flat.len() + p.value().numel(), 0.0);
                has.push(0.0);
            }
        }
    }
    flat.extend_from_slice(&has);
    flat.extend_from_slice(extra);
    for bucket in flat.chunks_mut(BUCKET) {
        comm.all_reduce_sum(bucket);
    }
    let (grads, tail) = flat.split_at(numel);
    let (has, reduced_extra) = tail.split_at(params.len());
    extra.copy_from_slice(reduced_extra);
    let mut offset = 0;
    for (p, &h) in params.iter().zip(has) {
        let shape = p.shape();
        let n: usize = shape.iter().product();
        p.zero_grad();
        if h > 0.0 {
            // A leaf's backward adds the seed to its (cleared) gradient: it becomes the sum.
            p.backward_with(Tensor::from_vec(grads[offset..offset + n].to_vec(), &shape));
        }
        offset += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Rank 0 of two, simulated in one process: the all-reduce adds the other rank's flat
    /// vector, bucket by bucket.
    struct Pair {
        other: Vec<f32>,
        at: Cell<usize>,
    }

    impl Collective for Pair {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn all_reduce_sum(&self, x: &mut [f32]) {
            let at = self.at.get();
            for (a, b) in x.iter_mut().zip(&self.other[at..]) {
                *a += b;
            }
            self.at.set(at + x.len());
        }
        fn broadcast(&self, _bytes: &mut Vec<u8>) {}
    }

    #[test]
    fn reduce_sums_weighted_gradients_and_keeps_missing_ones_missing() {
        let a = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
        let b = Var::parameter(Tensor::from_vec(vec![4.0, 5.0], &[2, 1]));
        let c = Var::parameter(Tensor::from_vec(vec![6.0], &[1]));
        a.backward_with(Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]));
        // Here only `a` has a gradient; the other rank has (already weighted) gradients for `a`
        // and `c`; `b` has none anywhere. Its vector: a's three, b's two, c's one, then the
        // has-grad flags (1, 0, 1), then its extra.
        let other = vec![1.0, 1.0, 1.0, 0.0, 0.0, -3.0, 1.0, 0.0, 1.0, 7.0];
        let comm = Pair {
            other,
            at: Cell::new(0),
        };
        let mut extra = [0.25];
        reduce_gradients(&comm, &[a.clone(), b.clone(), c.clone()], 2.0, &mut extra);
        assert_eq!(a.grad().unwrap().data(), &[2.0, -1.0, 5.0]);
        assert!(b.grad().is_none());
        assert_eq!(c.grad().unwrap().data(), &[-3.0]);
        assert_eq!(c.grad().unwrap().shape(), &[1]);
        assert_eq!(extra, [7.25]);
        assert_eq!(comm.at.get(), 10, "every float was exchanged once");
    }

    #[test]
    fn single_runs_the_lead_and_passes_its_error() {
        assert_eq!(from_lead(&Single, || Ok(3)).unwrap(), 3);
        let err = from_lead::<u8>(&Single, || Err(anyhow!("disk full"))).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }
}
