//! Numpy `.npz` archives of float32 arrays read into named [`Tensor`]s: how
//! `transformer_bench.py --export-npz` saves a PyTorch state_dict
//! (`np.savez(path, **{name: t.float().numpy()})`), and what `attend import-torch --state X.npz`
//! reads.
//!
//! An `.npz` is a zip archive holding one `NAME.npy` entry per array (stored by `np.savez`,
//! deflated by `np.savez_compressed`). An `.npy` entry is
//!
//! ```text
//! b"\x93NUMPY"  major minor  header_len (u16 LE in version 1.0, u32 LE in 2.0 and 3.0)
//! header        a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (8000, 256), }
//! data          prod(shape) values in C (row-major) order
//! ```
//!
//! Only little-endian float32 (`'<f4'`) in C order is read; any other dtype, Fortran order, a
//! truncated entry or a file that is not a zip archive is an error naming the file and the array.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;
use tensor::Tensor;

/// Why an `.npz` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a numpy .npz archive ({reason}); the file is corrupt or truncated — export it again with np.savez")]
    Archive { path: String, reason: String },
    #[error("{path}: array `{entry}`: {reason}")]
    Entry {
        path: String,
        entry: String,
        reason: String,
    },
    #[error("{path}: array `{entry}` has dtype {descr:?}; only float32 ('<f4') is read — convert it with .float() / .astype(np.float32) before saving")]
    Dtype {
        path: String,
        entry: String,
        descr: String,
    },
}

/// The `.npy` magic string.
const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads every array of an `.npz` file, named as in the archive minus `.npy`.
pub fn load_npz(path: &Path) -> Result<BTreeMap<String, Tensor>, NpzError> {
    load_npz_with_text(path, None).map(|(tensors, _)| tensors)
}

/// As [`load_npz`], except that the entry named `text_entry` is a byte array (`int8` / `uint8`)
/// holding text, returned on its own, trailing NULs removed: how Marian keeps its configuration in
/// the `special:model.yml` entry of its `model.npz`.
pub fn load_npz_with_text(
    path: &Path,
    text_entry: Option<&str>,
) -> Result<(BTreeMap<String, Tensor>, Option<String>), NpzError> {
    let file = std::fs::File::open(path).map_err(|source| NpzError::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_npz_with_text(std::io::BufReader::new(file), path, text_entry)
}

/// Reads every array of an `.npz` archive from an open stream; `path` names it in errors.
pub fn read_npz(
    reader: impl Read + Seek,
    path: &Path,
) -> Result<BTreeMap<String, Tensor>, NpzError> {
    read_npz_with_text(reader, path, None).map(|(tensors, _)| tensors)
}

/// [`load_npz_with_text`] over an open stream.
fn read_npz_with_text(
    reader: impl Read + Seek,
    path: &Path,
    text_entry: Option<&str>,
) -> Result<(BTreeMap<String, Tensor>, Option<String>), NpzError> {
    let p = path.display().to_string();
    let archive_error = |e: zip::result::ZipError| NpzError::Archive {
        path: p.clone(),
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(reader).map_err(archive_error)?;
    let mut out = BTreeMap::new();
    let mut text_out = None;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(archive_error)?;
        let file_name = entry.name().map_err(archive_error)?.to_string();
        let name = file_name
            .strip_suffix(".npy")
            .unwrap_or(&file_name)
            .to_string();
        let entry_error = |reason: String| NpzError::Entry {
            path: p.clone(),
            entry: name.clone(),
            reason,
        };
        if !file_name.ends_with(".npy") {
            return Err(entry_error(
                "not an .npy array (every entry of an .npz is NAME.npy)".into(),
            ));
        }
        // No allocation from the size the archive declares (outside input): the buffer grows as
        // the entry is read.
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| entry_error(format!("reading it failed ({e}); the file is corrupt")))?;
        if text_entry == Some(name.as_str()) {
            let raw = npy_bytes(&bytes).map_err(|problem| entry_error(problem.to_string()))?;
            let text = String::from_utf8_lossy(&raw);
            text_out = Some(text.trim_end_matches('\0').to_string());
            continue;
        }
        let tensor = read_npy(&bytes).map_err(|problem| match problem {
            NpyProblem::Dtype(descr) => NpzError::Dtype {
                path: p.clone(),
                entry: name.clone(),
                descr,
            },
            NpyProblem::Malformed(reason) => entry_error(reason),
        })?;
        out.insert(name, tensor);
    }
    Ok((out, text_out))
}

/// What is wrong with one `.npy` entry.
#[derive(Debug, PartialEq)]
enum NpyProblem {
    /// A dtype other than `'<f4'` (its `descr`).
    Dtype(String),
    Malformed(String),
}

impl std::fmt::Display for NpyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NpyProblem::Dtype(descr) => write!(f, "dtype {descr:?} is not a byte array"),
            NpyProblem::Malformed(reason) => f.write_str(reason),
        }
    }
}

/// The data of a one-byte-per-element `.npy` (`int8` / `uint8`), as bytes.
fn npy_bytes(bytes: &[u8]) -> Result<Vec<u8>, NpyProblem> {
    let (descr, shape, data) = npy_parts(bytes)?;
    if !matches!(descr, "|i1" | "|u1" | "<i1" | "<u1") {
        return Err(NpyProblem::Dtype(descr.to_string()));
    }
    let numel = checked_numel(&shape, 1)?;
    data.get(..numel).map(<[u8]>::to_vec).ok_or_else(|| {
        NpyProblem::Malformed(format!(
            "shape {shape:?} needs {numel} bytes, the entry holds {}",
            data.len()
        ))
    })
}

/// Parses one `.npy` (see the module doc) into a tensor of its shape.
fn read_npy(bytes: &[u8]) -> Result<Tensor, NpyProblem> {
    let (descr, shape, data) = npy_parts(bytes)?;
    if descr != "<f4" {
        return Err(NpyProblem::Dtype(descr.to_string()));
    }
    let bytes_needed = checked_numel(&shape, 4)?;
    if data.len() != bytes_needed {
        return Err(NpyProblem::Malformed(format!(
            "shape {shape:?} needs {bytes_needed} bytes of float32 data, the entry holds {}",
            data.len()
        )));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Tensor::from_vec(values, &shape))
}

/// The byte size of `shape` at `width` bytes an element; a size past `usize` is an error.
fn checked_numel(shape: &[usize], width: usize) -> Result<usize, NpyProblem> {
    shape
        .iter()
        .try_fold(width, |n, &d| n.checked_mul(d))
        .ok_or_else(|| NpyProblem::Malformed(format!("shape {shape:?} is too large")))
}

/// The dtype (`descr`), shape and data of one `.npy` in C order.
fn npy_parts(bytes: &[u8]) -> Result<(&str, Vec<usize>, &[u8]), NpyProblem> {
    let bad = |reason: &str| NpyProblem::Malformed(reason.to_string());
    if bytes.len() < MAGIC.len() + 2 || !bytes.starts_with(MAGIC) {
        return Err(bad("no .npy magic string"));
    }
    let major = bytes[MAGIC.len()];
    let at = MAGIC.len() + 2;
    let (header_len, header_at) = match major {
        1 => (
            bytes
                .get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize),
            at + 2,
        ),
        2 | 3 => (
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
            at + 4,
        ),
        v => {
            return Err(NpyProblem::Malformed(format!(
                ".npy format version {v} is unknown"
            )))
        }
    };
    let header_len = header_len.ok_or_else(|| bad("truncated header"))?;
    let header = bytes
        .get(header_at..header_at + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let descr = quoted(field(header, "descr")?)?;
    let fortran = field(header, "fortran_order")?;
    if fortran.starts_with("True") {
        return Err(bad(
            "stored in Fortran order; save np.ascontiguousarray(a) instead",
        ));
    }
    if !fortran.starts_with("False") {
        return Err(bad("fortran_order is neither True nor False"));
    }
    let shape = tuple(field(header, "shape")?)?;
    Ok((descr, shape, &bytes[header_at + header_len..]))
}

/// The text after `'key':` in the header dict (up to the end of the header).
fn field<'h>(header: &'h str, key: &str) -> Result<&'h str, NpyProblem> {
    let quoted_key = format!("'{key}'");
    let missing = || NpyProblem::Malformed(format!("header has no {quoted_key}: {header}"));
    let at = header.find(&quoted_key).ok_or_else(missing)?;
    header[at + quoted_key.len()..]
        .trim_start()
        .strip_prefix(':')
        .map(str::trim_start)
        .ok_or_else(missing)
}

/// The Python string literal at the start of `text` (`'<f4'`).
fn quoted(text: &str) -> Result<&str, NpyProblem> {
    let bad = || NpyProblem::Malformed(format!("expected a quoted string at {text:?}"));
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"');
    let quote = quote.ok_or_else(bad)?;
    let rest = &text[1..];
    rest.find(quote).map(|end| &rest[..end]).ok_or_else(bad)
}

/// The tuple of sizes at the start of `text`: `(8000, 256)`, `(3,)` or `()`.
fn tuple(text: &str) -> Result<Vec<usize>, NpyProblem> {
    let bad = || NpyProblem::Malformed(format!("expected a shape tuple at {text:?}"));
    let inner = text.strip_prefix('(').ok_or_else(bad)?;
    let inner = &inner[..inner.find(')').ok_or_else(bad)?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    /// An `.npy` (version 1.0) with the given `descr`, shape text and raw data.
    fn npy(descr: &str, fortran: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Writes an archive of `(entry name, bytes)` to a fresh temporary file.
    fn npz(name: &str, entries: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("attend-npz-{}-{name}.npz", std::process::id()));
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).expect("creates"));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (entry, bytes) in entries {
            w.start_file(*entry, options).expect("starts entry");
            w.write_all(bytes).expect("writes entry");
        }
        w.finish().expect("finishes");
        path
    }

    #[test]
    fn reads_stored_and_deflated_float32_arrays() {
        let matrix = [1.0, -2.5, 3.0, 0.25, 5.0, 6.0];
        for (name, method) in [
            ("stored", zip::CompressionMethod::Stored),
            ("deflated", zip::CompressionMethod::Deflated),
        ] {
            let path = npz(
                name,
                &[
                    (
                        "w.weight.npy",
                        npy("<f4", "False", "(2, 3)", &f32_bytes(&matrix)),
                    ),
                    (
                        "b.npy",
                        npy("<f4", "False", "(3,)", &f32_bytes(&[7.0, 8.0, 9.0])),
                    ),
                    ("s.npy", npy("<f4", "False", "()", &f32_bytes(&[4.0]))),
                ],
                method,
            );
            let t = load_npz(&path).expect("reads");
            std::fs::remove_file(&path).expect("cleans up");
            assert_eq!(t["w.weight"].shape(), &[2, 3]);
            assert_eq!(t["w.weight"].data(), &matrix);
            assert_eq!(t["b"].shape(), &[3]);
            assert_eq!(t["b"].data(), &[7.0, 8.0, 9.0]);
            assert_eq!(t["s"].shape(), &[] as &[usize]);
            assert_eq!(t["s"].data(), &[4.0]);
        }
    }

    #[test]
    fn other_dtypes_are_refused_by_name() {
        let path = npz(
            "f64",
            &[("x.npy", npy("<f8", "False", "(1,)", &1f64.to_le_bytes()))],
            zip::CompressionMethod::Stored,
        );
        let err = load_npz(&path).expect_err("f64 is refused");
        std::fs::remove_file(&path).expect("cleans up");
        assert!(
            matches!(&err, NpzError::Dtype { entry, descr, .. } if entry == "x" && descr == "<f8")
        );
        assert!(err.to_string().contains("float32"), "{err}");
    }

    #[test]
    fn malformed_entries_are_errors() {
        let cases = [
            (
                npy("<f4", "True", "(2,)", &f32_bytes(&[1.0, 2.0])),
                "Fortran",
            ),
            (
                npy("<f4", "False", "(3,)", &f32_bytes(&[1.0, 2.0])),
                "needs 12 bytes",
            ),
            (b"not an npy".to_vec(), "magic"),
            (npy("<f4", "False", "(x,)", &[]), "shape tuple"),
        ];
        for (i, (bytes, needle)) in cases.into_iter().enumerate() {
            let path = npz(
                &format!("bad{i}"),
                &[("a.npy", bytes)],
                zip::CompressionMethod::Stored,
            );
            let err = load_npz(&path).expect_err(needle).to_string();
            std::fs::remove_file(&path).expect("cleans up");
            assert!(
                err.contains(needle) && err.contains("`a`"),
                "{needle}: {err}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_zip_archive_is_corrupt() {
        let path = std::env::temp_dir().join(format!("attend-npz-{}-junk.npz", std::process::id()));
        std::fs::write(&path, b"PK\x03\x04 truncated").expect("writes");
        let err = load_npz(&path).expect_err("junk is refused");
        std::fs::remove_file(&path).expect("cleans up");
        assert!(matches!(err, NpzError::Archive { .. }), "{err}");
        let missing = load_npz(Path::new("/nonexistent/state.npz")).expect_err("missing file");
        assert!(matches!(missing, NpzError::Io { .. }));
    }
}
