//! Corpus readers: TSV (plain and gzip) and parallel files, including every bad-input case.

use std::io::Write;
use std::path::PathBuf;

use attend::data::corpus::{read_parallel, read_tsv, CorpusError};
use flate2::write::GzEncoder;
use flate2::Compression;

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const WESNOTH: &str = "train\twesnoth\tI've found the orcs' chest! It's filled with gold.\tJ'ai trouvé le coffre des orcs ! Il est rempli d'or.\n\
train\twesnoth-l\t'Undiscover' all units in help.\t« Oublier » toutes les unités dans l'aide.\n\
\n\
dev\twesnoth\t  A black cat.  \tUn chat noir.\r\n\
test\twesnoth\tNothing here.\t \n";

#[test]
fn tsv_picks_columns_trims_and_counts_skipped_lines() {
    let dir = scratch("tsv");
    let path = write(&dir, "en-fr.tsv", WESNOTH.as_bytes());
    let corpus = read_tsv(&path, 2, 3, false).unwrap();
    assert_eq!(
        corpus.pairs,
        vec![
            (
                "I've found the orcs' chest! It's filled with gold.".to_string(),
                "J'ai trouvé le coffre des orcs ! Il est rempli d'or.".to_string()
            ),
            (
                "'Undiscover' all units in help.".to_string(),
                "« Oublier » toutes les unités dans l'aide.".to_string()
            ),
            ("A black cat.".to_string(), "Un chat noir.".to_string()),
        ]
    );
    // One blank line, one pair whose French side is blank.
    assert_eq!(corpus.skipped_empty, 2);
    // Columns the other way round, and a header line skipped.
    let reversed = read_tsv(&path, 3, 2, true).unwrap();
    assert_eq!(reversed.pairs.len(), 2);
    assert_eq!(
        reversed.pairs[0].0,
        "« Oublier » toutes les unités dans l'aide."
    );
}

#[test]
fn gzip_tsv_reads_like_plain() {
    let dir = scratch("gzip");
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(WESNOTH.as_bytes()).unwrap();
    let path = write(&dir, "en-fr.tsv.gz", &gz.finish().unwrap());
    let plain = write(&dir, "en-fr.tsv", WESNOTH.as_bytes());
    assert_eq!(
        read_tsv(&path, 2, 3, false).unwrap(),
        read_tsv(&plain, 2, 3, false).unwrap()
    );
}

#[test]
fn tsv_missing_column_names_file_and_line() {
    let dir = scratch("missing");
    let path = write(&dir, "bad.tsv", b"a\tb\tc\td\na\tb\n");
    let err = read_tsv(&path, 2, 3, false).unwrap_err();
    assert!(
        matches!(
            err,
            CorpusError::MissingColumn {
                line: 2,
                column: 3,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("bad.tsv:2") && msg.contains("missing column 3"),
        "{msg}"
    );
}

#[test]
fn tsv_ragged_line_is_malformed() {
    let dir = scratch("ragged");
    let path = write(
        &dir,
        "ragged.tsv",
        b"en\tfr\ncat\tchat\nblack\tcat\tchat noir\n",
    );
    let err = read_tsv(&path, 0, 1, false).unwrap_err();
    assert!(
        matches!(
            err,
            CorpusError::Malformed {
                line: 3,
                expected: 2,
                found: 3,
                first_line: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ragged.tsv:3: malformed line"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let dir = scratch("utf8");
    // Line 2 is Latin-1 "café" (0xE9 alone is not UTF-8).
    let path = write(&dir, "latin1.tsv", b"cat\tchat\ncoffee\tcaf\xe9\n");
    let err = read_tsv(&path, 0, 1, false).unwrap_err();
    assert!(
        matches!(
            err,
            CorpusError::InvalidUtf8 {
                line: 2,
                valid_up_to: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("latin1.tsv:2: invalid UTF-8"),
        "{err}"
    );

    let src = write(&dir, "a.en", b"cat\ncoffee\n");
    let tgt = write(&dir, "a.fr", b"chat\ncaf\xe9\n");
    let err = read_parallel(&src, &tgt).unwrap_err();
    assert!(err.to_string().contains("a.fr:2: invalid UTF-8"), "{err}");
}

#[test]
fn parallel_files_pair_line_by_line() {
    let dir = scratch("parallel");
    let src = write(
        &dir,
        "p.en",
        "A black cat.\n\nThe dragon sleeps.\nHello\n".as_bytes(),
    );
    let tgt = write(
        &dir,
        "p.fr",
        "Un chat noir.\nrien\nLe dragon dort.\n\n".as_bytes(),
    );
    let corpus = read_parallel(&src, &tgt).unwrap();
    assert_eq!(
        corpus.pairs,
        vec![
            ("A black cat.".to_string(), "Un chat noir.".to_string()),
            (
                "The dragon sleeps.".to_string(),
                "Le dragon dort.".to_string()
            ),
        ]
    );
    assert_eq!(corpus.skipped_empty, 2);
}

#[test]
fn parallel_line_count_mismatch_names_both_files_and_the_line() {
    let dir = scratch("mismatch");
    let src = write(&dir, "m.en", b"one\ntwo\nthree\nfour\n");
    let tgt = write(&dir, "m.fr", b"un\ndeux\n");
    for (a, b) in [(&src, &tgt), (&tgt, &src)] {
        let err = read_parallel(a, b).unwrap_err();
        match &err {
            CorpusError::LineCountMismatch {
                longer,
                longer_lines,
                shorter,
                shorter_lines,
                line,
            } => {
                assert_eq!((longer, shorter), (&src, &tgt));
                assert_eq!((*longer_lines, *shorter_lines, *line), (4, 2, 3));
            }
            other => panic!("expected a line-count mismatch, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("m.en:3") && msg.contains("m.fr"), "{msg}");
    }
}

#[test]
fn empty_input_is_an_error() {
    let dir = scratch("empty");
    let blank = write(&dir, "blank.tsv", b"\n  \n\t\n");
    let err = read_tsv(&blank, 0, 1, false).unwrap_err();
    assert!(
        matches!(err, CorpusError::Empty { skipped: 3, .. }),
        "{err:?}"
    );
    let nothing = write(&dir, "nothing.txt", b"");
    let err = read_parallel(&nothing, &nothing).unwrap_err();
    assert!(
        matches!(err, CorpusError::Empty { skipped: 0, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("nothing.txt: no sentence pairs"),
        "{err}"
    );
}

#[test]
fn unreadable_inputs_name_the_file() {
    let dir = scratch("unreadable");
    let missing = dir.join("does-not-exist.tsv");
    let err = read_tsv(&missing, 0, 1, false).unwrap_err();
    assert!(matches!(err, CorpusError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("does-not-exist.tsv"), "{err}");
    // A gzip header followed by garbage.
    let corrupt = write(
        &dir,
        "corrupt.tsv.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5],
    );
    let err = read_tsv(&corrupt, 0, 1, false).unwrap_err();
    assert!(matches!(err, CorpusError::Read { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt.tsv.gz:1"), "{err}");
}
