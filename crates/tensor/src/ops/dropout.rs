//! Inverted dropout with a seeded, counter-based generator.
//!
//! Training: each element is zeroed with probability `p` and the survivors scaled by `1/(1−p)`, so the
//! expectation is unchanged; backward applies the same mask. `p = 0` is the identity.
//!
//! The draws: one 64-bit key per call from the caller's [`Rng`], then element `i` keeps its value iff
//! `u_i ≥ p` with `u_i` the top 24 bits of SplitMix64's output for state `key + (i + 1)·γ`
//! (γ = 2⁶⁴/φ; Steele, Lea & Flood 2014, the generator `rand`'s `SplitMix64` implements) over 2²⁴.
//! A draw depends only on `(key, i)`, so the mask is made in chunks over the threads, vectorized,
//! and comes out the same at every thread count.

use crate::kernels::fill;
use crate::kernels::isa::simd_fn;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::var::Var;
use std::mem::MaybeUninit;

/// SplitMix64's increment: 2⁶⁴/φ, odd.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output for `state` (its finalizer, a bijection of 64-bit words).
#[inline(always)]
fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `u_i ∈ [0, 1)`, a multiple of 2⁻²⁴, of element `i` of stream `key`.
#[inline(always)]
fn uniform(key: u64, i: u64) -> f32 {
    (splitmix64(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GAMMA))) >> 40) as f32
        * (1.0 / (1u64 << 24) as f32)
}

/// The mask value of element `i` of stream `key`: `scale` where `u_i ≥ p`, else 0. The fused
/// attention kernel draws its dropout through this too, so that it drops what [`Var::dropout`]
/// drops on the same key.
#[inline(always)]
pub(crate) fn mask_value(key: u64, i: u64, p: f32, scale: f32) -> f32 {
    if uniform(key, i) >= p {
        scale
    } else {
        0.0
    }
}

simd_fn! {
    /// Mask values of elements `first, first + 1, …`.
    fn mask_chunk(key: u64, first: u64, p: f32, scale: f32, out: &mut [MaybeUninit<f32>]) {
        for (j, o) in out.iter_mut().enumerate() {
            o.write(mask_value(key, first + j as u64, p, scale));
        }
    }
}

/// The mask of `n` elements for `key`: `1/(1−p)` where kept, 0 where dropped.
pub fn dropout_mask(key: u64, n: usize, p: f32) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    fill::generate(n, |offset, chunk| {
        mask_chunk(key, offset as u64, p, scale, chunk)
    })
}

impl Var {
    /// Dropout with probability `p`, the mask keyed by one draw from `rng` (identity when `p == 0`).
    pub fn dropout(&self, p: f32, rng: &mut Rng) -> Var {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout: p = {p} must be in [0, 1)"
        );
        if p == 0.0 {
            return self.clone();
        }
        let shape = self.shape();
        let keep = dropout_mask(rng.next_seed(), self.value().numel(), p);
        let mask = Tensor::from_vec(keep, &shape);
        let out = self.value().zip(&mask, |x, m| x * m);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, _| vec![Some(g.zip(&mask, |g, m| g * m))]),
        )
    }
}
