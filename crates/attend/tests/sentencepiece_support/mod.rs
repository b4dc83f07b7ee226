//! Shared by the `sentencepiece_*` tests: the fixtures folder, scratch folders and the golden
//! files written by `tools/golden/make_sentencepiece.sh`. Each test crate uses a subset.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// `crates/attend/tests/fixtures/sentencepiece/name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sentencepiece")
        .join(name)
}

/// An empty folder for `test` under the target directory.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The rows of a gzipped JSON-lines golden file, one per sentence.
pub fn golden<T: DeserializeOwned>(file: &str) -> Vec<T> {
    let file = std::fs::File::open(fixture(file)).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}
