//! Parallel corpora: sentence pairs read from a TSV file (plain or gzip), from two line-aligned
//! plain-text files, or (through [`super::bundled`]) from the corpora bundled with attend.
//!
//! Every reader normalises each side ([`normalize`]: whitespace runs collapsed, ends trimmed,
//! control characters dropped), skips blank lines and pairs with an empty side (and counts them in
//! [`Corpus::skipped_empty`] so the caller can log it), and reports bad input as a [`CorpusError`]
//! that names the file and the 1-based line.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::read::MultiGzDecoder;

use super::normalize::normalize;

/// Sentence pairs `(source, target)`, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Corpus {
    /// The pairs, each side normalised and non-empty.
    pub pairs: Vec<(String, String)>,
    /// Lines skipped because they were blank or one side was empty.
    pub skipped_empty: usize,
}

/// What went wrong while reading a corpus. Every variant names the file; line numbers are 1-based.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file could not be opened.
    #[error("cannot open {file}: {source}")]
    Open {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading failed part-way (I/O error or corrupt gzip stream).
    #[error("{file}:{line}: read error: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The line being read.
        line: usize,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{file}:{line}: invalid UTF-8 (byte offset {valid_up_to} of the line); re-encode the file as UTF-8")]
    InvalidUtf8 {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// Bytes of the line that were valid before the bad sequence.
        valid_up_to: usize,
    },
    /// A TSV line has fewer columns than the requested source/target column needs.
    #[error("{file}:{line}: missing column {column} (the line has {found} tab-separated columns; columns count from 0)")]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The requested 0-based column.
        column: usize,
        /// How many columns the line has.
        found: usize,
    },
    /// A TSV line has a different number of columns from the file's first line.
    #[error("{file}:{line}: malformed line: {found} tab-separated columns where line {first_line} has {expected} (a stray tab?)")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// Columns on the first non-blank line.
        expected: usize,
        /// Columns on this line.
        found: usize,
        /// The first non-blank line, whose column count is the reference.
        first_line: usize,
    },
    /// Two parallel files have different numbers of lines.
    #[error("{longer}:{line}: no matching line in {shorter} ({longer} has {longer_lines} lines, {shorter} has {shorter_lines}); parallel files must be line-aligned")]
    LineCountMismatch {
        /// The file with more lines.
        longer: PathBuf,
        /// Its line count.
        longer_lines: usize,
        /// The file with fewer lines.
        shorter: PathBuf,
        /// Its line count.
        shorter_lines: usize,
        /// The first line of `longer` without a partner.
        line: usize,
    },
    /// The input has no usable pair at all.
    #[error("{file}: no sentence pairs ({skipped} blank or half-empty lines skipped)")]
    Empty {
        /// The file (for parallel files, the source file).
        file: PathBuf,
        /// Lines skipped as empty.
        skipped: usize,
    },
    /// A bundled corpus name that does not exist.
    #[error("unknown bundled corpus {name:?}; available: {available}")]
    UnknownBundled {
        /// The requested name.
        name: String,
        /// The names that exist, comma-separated.
        available: String,
    },
    /// A split name other than train, dev or test.
    #[error("unknown split {0:?}; use train, dev or test")]
    UnknownSplit(String),
}

/// One of the three parts of a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data (early stopping, model selection).
    Dev,
    /// Held-out test data (reported scores).
    Test,
}

impl Split {
    /// All splits, in the order train, dev, test.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// The lower-case name: `train`, `dev` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = CorpusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "dev" | "valid" | "validation" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            other => Err(CorpusError::UnknownSplit(other.to_string())),
        }
    }
}

/// Reads lines as UTF-8 from a plain or gzip stream, tracking the 1-based line number.
struct Lines<R> {
    reader: R,
    file: PathBuf,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R, file: PathBuf) -> Self {
        Lines {
            reader,
            file,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next line without its `\n` / `\r\n`, or `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>, CorpusError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| CorpusError::Read {
                file: self.file.clone(),
                line: self.line + 1,
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) => Err(CorpusError::InvalidUtf8 {
                file: self.file.clone(),
                line: self.line,
                valid_up_to: e.valid_up_to(),
            }),
        }
    }
}

/// Opens `path` for buffered reading.
fn open(path: &Path) -> Result<BufReader<File>, CorpusError> {
    let file = File::open(path).map_err(|source| CorpusError::Open {
        file: path.to_path_buf(),
        source,
    })?;
    Ok(BufReader::new(file))
}

/// `reader` itself, or its gzip decompression when it starts with the gzip magic bytes.
fn gunzip_if_gzip<'r, R: BufRead + 'r>(
    mut reader: R,
    file: &Path,
) -> Result<Box<dyn BufRead + 'r>, CorpusError> {
    let is_gzip = reader
        .fill_buf()
        .map_err(|source| CorpusError::Open {
            file: file.to_path_buf(),
            source,
        })?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if is_gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// Adds a pair to `corpus`, or counts it as skipped when a side is empty after normalisation.
fn push_pair(corpus: &mut Corpus, src: &str, tgt: &str) {
    let (src, tgt) = (normalize(src), normalize(tgt));
    if src.is_empty() || tgt.is_empty() {
        corpus.skipped_empty += 1;
    } else {
        corpus.pairs.push((src, tgt));
    }
}

fn non_empty(corpus: Corpus, file: &Path) -> Result<Corpus, CorpusError> {
    if corpus.pairs.is_empty() {
        Err(CorpusError::Empty {
            file: file.to_path_buf(),
            skipped: corpus.skipped_empty,
        })
    } else {
        Ok(corpus)
    }
}

/// Reads pairs from tab-separated lines: column `src_col` is the source, `tgt_col` the target
/// (0-based). With `header`, the first line is skipped. Every non-blank line must have the same
/// number of columns as the first one.
pub(super) fn parse_tsv<R: BufRead>(
    reader: R,
    file: &Path,
    src_col: usize,
    tgt_col: usize,
    header: bool,
) -> Result<Corpus, CorpusError> {
    let mut lines = Lines::new(reader, file.to_path_buf());
    let mut corpus = Corpus::default();
    // (columns, line) of the first non-blank line.
    let mut reference: Option<(usize, usize)> = None;
    let need = src_col.max(tgt_col);
    while let Some(line) = lines.next_line()? {
        if header && lines.line == 1 {
            continue;
        }
        if line.trim().is_empty() {
            corpus.skipped_empty += 1;
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let (expected, first_line) = *reference.get_or_insert((cols.len(), lines.line));
        if cols.len() <= need {
            return Err(CorpusError::MissingColumn {
                file: file.to_path_buf(),
                line: lines.line,
                column: need,
                found: cols.len(),
            });
        }
        if cols.len() != expected {
            return Err(CorpusError::Malformed {
                file: file.to_path_buf(),
                line: lines.line,
                expected,
                found: cols.len(),
                first_line,
            });
        }
        push_pair(&mut corpus, cols[src_col], cols[tgt_col]);
    }
    non_empty(corpus, file)
}

/// Reads a TSV file (plain, or gzip-compressed: detected from its first bytes) taking the source
/// from column `src_col` and the target from column `tgt_col` (0-based). With `header` the first
/// line is skipped.
///
/// Errors: unreadable file, invalid UTF-8, a line with too few columns or a different column count
/// from the first line, or no usable pair at all; each names the file and 1-based line.
pub fn read_tsv(
    path: impl AsRef<Path>,
    src_col: usize,
    tgt_col: usize,
    header: bool,
) -> Result<Corpus, CorpusError> {
    let path = path.as_ref();
    read_tsv_from(open(path)?, path, src_col, tgt_col, header)
}

/// [`read_tsv`] on an open stream (plain or gzip, detected from its first bytes) rather than a
/// file; `label` names the stream in errors.
pub fn read_tsv_from(
    reader: impl BufRead,
    label: &Path,
    src_col: usize,
    tgt_col: usize,
    header: bool,
) -> Result<Corpus, CorpusError> {
    parse_tsv(
        gunzip_if_gzip(reader, label)?,
        label,
        src_col,
        tgt_col,
        header,
    )
}

/// Reads two line-aligned plain-text files (each plain or gzip): line *i* of `src_path` is the
/// source of pair *i*, line *i* of `tgt_path` its target.
///
/// Errors: unreadable file, invalid UTF-8, different line counts (naming the first line without
/// a partner), or no usable pair.
pub fn read_parallel(
    src_path: impl AsRef<Path>,
    tgt_path: impl AsRef<Path>,
) -> Result<Corpus, CorpusError> {
    let (src_path, tgt_path) = (src_path.as_ref(), tgt_path.as_ref());
    read_parallel_from(open(src_path)?, src_path, open(tgt_path)?, tgt_path)
}

/// [`read_parallel`] on two open streams (each plain or gzip) rather than files; the labels name
/// them in errors.
pub fn read_parallel_from(
    src: impl BufRead,
    src_label: &Path,
    tgt: impl BufRead,
    tgt_label: &Path,
) -> Result<Corpus, CorpusError> {
    let mut src = Lines::new(gunzip_if_gzip(src, src_label)?, src_label.to_path_buf());
    let mut tgt = Lines::new(gunzip_if_gzip(tgt, tgt_label)?, tgt_label.to_path_buf());
    let mut corpus = Corpus::default();
    loop {
        match (src.next_line()?, tgt.next_line()?) {
            (Some(s), Some(t)) => push_pair(&mut corpus, &s, &t),
            (None, None) => break,
            (Some(_), None) => return Err(mismatch(src, tgt)?),
            (None, Some(_)) => return Err(mismatch(tgt, src)?),
        }
    }
    non_empty(corpus, src_label)
}

/// The error for parallel files of different lengths; `longer` has just read its first unpaired
/// line. Counts the rest of `longer` so the message gives both totals.
fn mismatch<R: BufRead, S: BufRead>(
    mut longer: Lines<R>,
    shorter: Lines<S>,
) -> Result<CorpusError, CorpusError> {
    let line = longer.line;
    while longer.next_line()?.is_some() {}
    Ok(CorpusError::LineCountMismatch {
        longer: longer.file,
        longer_lines: longer.line,
        shorter: shorter.file,
        shorter_lines: shorter.line,
        line,
    })
}
