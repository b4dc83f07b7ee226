//! Batcher invariants: every pair exactly once per epoch, budget respected, padding and shifting
//! correct, seeded determinism, length filter.

use attend::data::batcher::{Batch, BatchError, Batcher, BatcherConfig};
use attend::data::tokenizer::{BOS, EOS, PAD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` pairs with random lengths 1..=40; ids ≥ 4 encode the pair index so rows can be traced.
fn pairs(n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut rng = StdRng::seed_from_u64(5);
    (0..n)
        .map(|i| {
            let s = rng.random_range(1..=40);
            let t = rng.random_range(1..=40);
            (vec![4 + i as u32; s], vec![100_000 + i as u32; t])
        })
        .collect()
}

fn config(seed: u64) -> BatcherConfig {
    BatcherConfig {
        token_budget: 300,
        max_len: 35,
        seed,
    }
}

/// Unpads row `r` of a batch back into `(source, target)`.
fn row(b: &Batch, r: usize) -> (Vec<u32>, Vec<u32>) {
    let src = b.src[r * b.src_max..r * b.src_max + b.src_len[r]].to_vec();
    let tgt = b.tgt_out[r * b.tgt_max..r * b.tgt_max + b.tgt_len[r] - 1].to_vec();
    (src, tgt)
}

#[test]
fn every_pair_exactly_once_per_epoch_within_budget() {
    let data = pairs(1000);
    let batcher = Batcher::new(data.clone(), config(1)).unwrap();
    let kept: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].0.len() <= 35 && data[i].1.len() <= 35)
        .collect();
    assert_eq!(batcher.num_pairs(), kept.len());
    assert_eq!(batcher.dropped_long, data.len() - kept.len());
    assert_eq!(batcher.dropped_empty, 0);
    for epoch in 0..3 {
        let mut seen = vec![0usize; data.len()];
        for b in batcher.epoch(epoch) {
            assert!(b.cost() <= 300, "batch cost {} over budget", b.cost());
            assert_eq!(b.src.len(), b.batch_size * b.src_max);
            assert_eq!(b.tgt_in.len(), b.batch_size * b.tgt_max);
            assert_eq!(b.indices.len(), b.batch_size);
            for r in 0..b.batch_size {
                let i = b.indices[r];
                seen[i] += 1;
                // The row holds exactly pair i, unpadded.
                assert_eq!(row(&b, r), data[i]);
                assert_eq!(b.tgt_in[r * b.tgt_max], BOS);
                assert_eq!(b.tgt_out[r * b.tgt_max + b.tgt_len[r] - 1], EOS);
                assert!(b.src[r * b.src_max + b.src_len[r]..(r + 1) * b.src_max]
                    .iter()
                    .all(|&x| x == PAD));
                assert!(b.tgt_out[r * b.tgt_max + b.tgt_len[r]..(r + 1) * b.tgt_max]
                    .iter()
                    .all(|&x| x == PAD));
            }
            assert_eq!(b.src_max, *b.src_len.iter().max().unwrap());
            assert_eq!(b.tgt_max, *b.tgt_len.iter().max().unwrap());
        }
        for (i, &count) in seen.iter().enumerate() {
            let expected = usize::from(kept.contains(&i));
            assert_eq!(
                count, expected,
                "epoch {epoch}: pair {i} seen {count} times"
            );
        }
    }
}

#[test]
fn length_bucketing_keeps_padding_small() {
    let batcher = Batcher::new(pairs(1000), config(1)).unwrap();
    let batches = batcher.epoch(0);
    let real: usize = batches
        .iter()
        .map(|b| b.src_len.iter().sum::<usize>())
        .sum();
    let padded: usize = batches.iter().map(|b| b.src.len()).sum();
    // Batches sort by max(src, tgt+1); sources alone are random within that, so some padding.
    assert!(
        real as f64 / padded as f64 > 0.6,
        "only {real} of {padded} source slots are real"
    );
    // Short pairs are packed many to a batch, long ones few.
    let sizes: Vec<usize> = batches.iter().map(|b| b.batch_size).collect();
    assert!(sizes.iter().max().unwrap() > &(3 * sizes.iter().min().unwrap()));
}

#[test]
fn shuffling_is_seeded() {
    let data = pairs(500);
    let a = Batcher::new(data.clone(), config(7)).unwrap();
    let b = Batcher::new(data.clone(), config(7)).unwrap();
    let c = Batcher::new(data, config(8)).unwrap();
    assert_eq!(a.epoch(0), b.epoch(0));
    assert_eq!(a.epoch(3), b.epoch(3));
    assert_ne!(a.epoch(0), c.epoch(0));
    assert_ne!(a.epoch(0), a.epoch(1));
    // Validation order is unshuffled, sorted by length, independent of the seed.
    assert_eq!(a.sequential(), c.sequential());
}

#[test]
fn empty_and_overlong_pairs_are_dropped_and_counted() {
    let data = vec![
        (vec![5, 6], vec![7]),
        (vec![], vec![7]),
        (vec![5], vec![]),
        (vec![5; 36], vec![7]),
        (vec![5], vec![7; 36]),
    ];
    let batcher = Batcher::new(data, config(0)).unwrap();
    assert_eq!(
        (
            batcher.num_pairs(),
            batcher.dropped_empty,
            batcher.dropped_long
        ),
        (1, 2, 2)
    );
    let batches = batcher.epoch(0);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].indices, vec![0]);
}

#[test]
fn bad_configurations_are_errors() {
    let err = Batcher::new(
        pairs(10),
        BatcherConfig {
            token_budget: 30,
            max_len: 35,
            seed: 0,
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        BatchError::BudgetTooSmall {
            token_budget: 30,
            need: 36
        }
    );
    let err = Batcher::new(vec![(vec![1; 50], vec![2])], config(0)).unwrap_err();
    assert!(matches!(
        err,
        BatchError::NoPairs {
            dropped_long: 1,
            dropped_empty: 0,
            max_len: 35
        }
    ));
    assert!(err.to_string().contains("no pairs left"));
}

#[test]
fn shards_split_a_batch_into_its_rows_in_order() {
    let data = pairs(400);
    let batcher = Batcher::new(data, config(3)).unwrap();
    for b in batcher.epoch(0) {
        for parts in [1, 2, 3, 7] {
            let shards: Vec<Batch> = (0..parts).map(|p| b.shard(p, parts)).collect();
            assert_eq!(
                shards.iter().map(|s| s.batch_size).sum::<usize>(),
                b.batch_size
            );
            // Sizes differ by at most one row.
            let sizes: Vec<usize> = shards.iter().map(|s| s.batch_size).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            let mut r = 0;
            for s in &shards {
                assert_eq!(s.src.len(), s.batch_size * s.src_max);
                for k in 0..s.batch_size {
                    assert_eq!(row(s, k), row(&b, r), "row {r} of {parts} parts");
                    assert_eq!(s.indices[k], b.indices[r]);
                    r += 1;
                }
            }
            assert_eq!(
                shards.iter().map(Batch::tgt_tokens).sum::<usize>(),
                b.tgt_tokens()
            );
        }
        // More parts than rows: some parts, the first among them, are empty.
        let empty = b.shard(0, b.batch_size + 1);
        assert_eq!((empty.batch_size, empty.tgt_tokens()), (0, 0));
    }
}
