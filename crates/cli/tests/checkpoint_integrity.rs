//! `attend translate` refuses damaged weights instead of serving a wrong translation: a byte
//! flipped in the middle of `best.safetensors` fails its checksum, and a NaN in a weight is
//! refused with the name of the tensor, with or without a checksum. A file written without a
//! checksum (by another program) still loads.

mod cli_support;

use attend::nn::params::{load_tensors, save_tensors};
use cli_support::{attend, fails, ok, out_dir, tiny_run};
use std::path::Path;

/// The safetensors file `path` with its metadata (and so its checksum) removed, as a file written
/// by another program would be: the same tensors under a header without `__metadata__`.
fn strip_metadata(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert!(
        header.remove("__metadata__").is_some(),
        "attend wrote a checksum"
    );
    let mut text = serde_json::to_vec(&header).unwrap();
    // The header is padded with spaces so that the data stays 8-byte aligned.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(&text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

/// Replaces one value in the middle of the largest tensor by NaN; returns the tensor's name.
fn poison(path: &Path, checksummed: bool) -> String {
    let mut tensors = load_tensors(path).unwrap();
    let (name, t) = tensors.iter_mut().max_by_key(|(_, t)| t.numel()).unwrap();
    let mid = t.numel() / 2;
    t.data_mut()[mid] = f32::NAN;
    let name = name.clone();
    save_tensors(&tensors, path).unwrap();
    if !checksummed {
        strip_metadata(path);
    }
    name
}

fn translate(dir: &Path) -> std::process::Output {
    attend(
        &["translate", "--model", dir.to_str().unwrap()],
        "black cat\nwhere is the green tree\n",
    )
}

#[test]
fn a_flipped_byte_fails_the_checksum() {
    let dir = tiny_run(&out_dir("integrity-flip"), "rnn", "additive", 3);
    ok(&translate(&dir));
    let path = dir.join("best.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // The middle of the data, past the 8-byte length and the JSON header.
    let mid = 8 + n + (bytes.len() - 8 - n) / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = fails(&translate(&dir));
    let expected = format!("{}: checksum mismatch: the file is corrupt", path.display());
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn a_file_without_checksum_loads_and_translates_the_same() {
    let dir = tiny_run(&out_dir("integrity-plain"), "rnn", "additive", 3);
    let before = ok(&translate(&dir));
    strip_metadata(&dir.join("best.safetensors"));
    assert_eq!(ok(&translate(&dir)), before);
}

#[test]
fn nan_weights_are_refused_with_the_tensor_name() {
    for checksummed in [true, false] {
        let dir = tiny_run(
            &out_dir(&format!("integrity-nan-{checksummed}")),
            "rnn",
            "additive",
            3,
        );
        let path = dir.join("best.safetensors");
        let name = poison(&path, checksummed);
        let err = fails(&translate(&dir));
        let expected = format!(
            "{}: parameter `{name}` holds a non-finite value",
            path.display()
        );
        assert!(err.contains(&expected), "checksummed {checksummed}: {err}");
    }
}
