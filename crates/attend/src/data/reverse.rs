//! The JoeyNMT-style "reverse" toy task: the source is a random sequence of integer words, the
//! target the same sequence backwards (`"3 17 42"` → `"42 17 3"`). It needs attention to be solved
//! well (the first target word is the last source word) and is the quickest end-to-end check.
//!
//! Words are the integers `0..=max_value` written in decimal; lengths are uniform in
//! `min_len..=max_len`. Each split draws from its own stream seeded by `seed` and the split, so a
//! split's data does not depend on the sizes of the others.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::corpus::{Corpus, Split};

/// Settings of the generated reverse task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseConfig {
    /// Training pairs.
    pub train: usize,
    /// Validation pairs.
    pub dev: usize,
    /// Test pairs.
    pub test: usize,
    /// Largest integer word (words are `0..=max_value`).
    pub max_value: u32,
    /// Shortest sequence.
    pub min_len: usize,
    /// Longest sequence.
    pub max_len: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for ReverseConfig {
    /// JoeyNMT's sizes: 50,000 train, 1,000 dev, 1,000 test; integers 0–50; lengths 1–25.
    fn default() -> Self {
        ReverseConfig {
            train: 50_000,
            dev: 1_000,
            test: 1_000,
            max_value: 50,
            min_len: 1,
            max_len: 25,
            seed: 42,
        }
    }
}

impl ReverseConfig {
    /// Generates one split: `(source, reversed source)` pairs of space-separated integers.
    pub fn generate(&self, split: Split) -> Corpus {
        let (count, stream) = match split {
            Split::Train => (self.train, 0u64),
            Split::Dev => (self.dev, 1),
            Split::Test => (self.test, 2),
        };
        let mut rng = StdRng::seed_from_u64(self.seed ^ (stream << 56));
        let min_len = self.min_len.max(1);
        let max_len = self.max_len.max(min_len);
        let pairs = (0..count)
            .map(|_| {
                let len = rng.random_range(min_len..=max_len);
                let words: Vec<String> = (0..len)
                    .map(|_| rng.random_range(0..=self.max_value).to_string())
                    .collect();
                let src = words.join(" ");
                let tgt = words.into_iter().rev().collect::<Vec<_>>().join(" ");
                (src, tgt)
            })
            .collect();
        Corpus {
            pairs,
            skipped_empty: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_reversed_sources_within_the_ranges() {
        let cfg = ReverseConfig {
            train: 500,
            ..ReverseConfig::default()
        };
        let corpus = cfg.generate(Split::Train);
        assert_eq!(corpus.pairs.len(), 500);
        let mut lengths = std::collections::BTreeSet::new();
        for (src, tgt) in &corpus.pairs {
            let s: Vec<&str> = src.split(' ').collect();
            let mut t: Vec<&str> = tgt.split(' ').collect();
            t.reverse();
            assert_eq!(s, t);
            assert!((1..=25).contains(&s.len()));
            assert!(s.iter().all(|w| w.parse::<u32>().is_ok_and(|v| v <= 50)));
            lengths.insert(s.len());
        }
        // 500 draws cover both extremes of the length range.
        assert!(lengths.contains(&1) && lengths.contains(&25));
    }

    #[test]
    fn seeded_and_split_independent() {
        let cfg = ReverseConfig::default();
        let small = ReverseConfig { train: 10, ..cfg };
        assert_eq!(cfg.generate(Split::Dev), small.generate(Split::Dev));
        assert_ne!(cfg.generate(Split::Dev), cfg.generate(Split::Test));
        let other = ReverseConfig { seed: 7, ..cfg };
        assert_ne!(cfg.generate(Split::Dev), other.generate(Split::Dev));
    }
}
