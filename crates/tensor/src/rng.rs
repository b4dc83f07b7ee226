//! A seeded random number generator so that every run with the same seed is reproducible.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Seeded generator (ChaCha-based `StdRng`).
pub struct Rng(StdRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(StdRng::seed_from_u64(seed))
    }

    /// A draw from N(0, 1).
    pub fn normal(&mut self) -> f32 {
        StandardNormal.sample(&mut self.0)
    }

    /// A draw from U(lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.0.random::<f32>()
    }

    /// A draw from U{0, …, n-1}.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A new seed derived from this generator (to hand to another component).
    pub fn next_seed(&mut self) -> u64 {
        self.0.random()
    }
}
