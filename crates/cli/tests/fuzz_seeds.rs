//! The fuzz targets (`attend_cli::fuzz_targets`) in the stable suite: every committed seed under
//! `fuzz/seeds/NAME/` is accepted (the `crash-*` files, inputs that once crashed a parser, must
//! only be answered), and 2,000 seeded mutations per target (bit flips, byte overwrites,
//! insertions, deletions, truncations, duplicated runs; `proptest` with a fixed ChaCha seed, so
//! every run tries the same inputs) are answered with `Ok` or an error message, never a panic.
//! The long runs are `cargo fuzz` (docs/reliability.md); this catches a regression in
//! `cargo test` without nightly.

use attend_cli::fuzz_targets::{Target, TARGETS};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::path::PathBuf;

/// Mutated inputs per target.
const CASES: u32 = 2000;

/// One edit of a seed; positions are drawn as [`Index`] and scaled to the current length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
}

impl Edit {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        let n = bytes.len();
        match self {
            Edit::Flip(i, bit) if n > 0 => bytes[at(i, n)] ^= 1 << (bit % 8),
            Edit::Set(i, b) if n > 0 => bytes[at(i, n)] = *b,
            Edit::Insert(i, new) => {
                let p = at(i, n + 1);
                bytes.splice(p..p, new.iter().copied());
            }
            Edit::Remove(i, len) => {
                let p = at(i, n);
                bytes.drain(p..(p + len).min(n));
            }
            Edit::Truncate(i) => bytes.truncate(at(i, n + 1)),
            Edit::Duplicate(i, len) => {
                let p = at(i, n);
                let run = bytes[p..(p + len).min(n)].to_vec();
                bytes.splice(p..p, run);
            }
            Edit::Flip(..) | Edit::Set(..) => {}
        }
    }
}

/// Bytes that parsers treat specially, besides random ones.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\t\n\r \"'\\{}[]()=,.:-0123456789\x00\x7f\xff\x1f\x8b".to_vec()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), prop::collection::vec(byte(), 1..9)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

/// The committed seeds of one target, `(file name, bytes)`, in name order.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("seed file"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{}: too few seeds", dir.display());
    files
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target")
        .1
}

#[test]
fn every_seed_is_accepted_and_every_crash_input_answered() {
    for (name, run) in TARGETS {
        for (file, bytes) in seeds(name) {
            let answer = run(&bytes);
            if !file.starts_with("crash-") {
                assert_eq!(answer, Ok(()), "seed {name}/{file}");
            }
        }
    }
}

/// Runs [`CASES`] mutated seeds through the target; a panic fails with the smallest input found.
fn mutations_never_panic(name: &str) {
    let run = target(name);
    let seeds: Vec<Vec<u8>> = seeds(name).into_iter().map(|(_, b)| b).collect();
    let input = (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(mut bytes, edits)| {
            for e in &edits {
                e.apply(&mut bytes);
            }
            bytes
        });
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[22; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let refused = std::cell::Cell::new(0u32);
    let result = runner.run(&input, |bytes| {
        if let Err(message) = run(&bytes) {
            prop_assert!(!message.is_empty(), "an empty error message");
            refused.set(refused.get() + 1);
        }
        Ok(())
    });
    if let Err(TestError::Fail(why, bytes)) = result {
        panic!("{name}: {why} on {:?}", String::from_utf8_lossy(&bytes));
    }
    result.unwrap_or_else(|e| panic!("{name}: {e}"));
    // The mutations reach the parser's error paths, not only its happy path.
    assert!(refused.get() > 0, "{name}: no mutation was refused");
}

#[test]
fn corpus_mutations_never_panic() {
    mutations_never_panic("corpus");
}

#[test]
fn tokenizer_mutations_never_panic() {
    mutations_never_panic("tokenizer");
}

#[test]
fn config_mutations_never_panic() {
    mutations_never_panic("config");
}

#[test]
fn checkpoint_mutations_never_panic() {
    mutations_never_panic("checkpoint");
}

#[test]
fn request_mutations_never_panic() {
    mutations_never_panic("request");
}

#[test]
fn torch_mutations_never_panic() {
    mutations_never_panic("torch");
}
