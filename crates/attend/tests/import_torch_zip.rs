//! `torch.save` files read without Python: the fuzz seeds `fuzz/seeds/torch/{flat,nested}.pt` hold
//! the state dict `{w: arange(6.).reshape(2, 3).t(), b: [1.5, -2.0], n: tensor(3)}` (a transposed,
//! strided view; an int64 scalar), saved on its own and as `{"epoch": 2, "model_state_dict": …}`.

use attend::import::torch_zip::{parse_torch, read_state_dict};
use std::path::{Path, PathBuf};

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/torch")
        .join(name)
}

#[test]
fn reads_a_state_dict_saved_flat_or_under_a_key() {
    for (file, key) in [("flat.pt", None), ("nested.pt", Some("model_state_dict"))] {
        let sd = read_state_dict(&seed(file), key).expect("reads");
        let names: Vec<&str> = sd.keys().map(String::as_str).collect();
        assert_eq!(names, ["b", "n", "w"], "{file}");
        assert_eq!(sd["w"].shape(), [3, 2]);
        assert_eq!(
            sd["w"].data(),
            [0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
            "the view's order"
        );
        assert_eq!(sd["b"].data(), [1.5, -2.0]);
        assert_eq!(sd["n"].data(), [3.0]);
    }
}

#[test]
fn a_dict_without_the_key_lists_its_entries() {
    let e = read_state_dict(&seed("nested.pt"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested.pt"), "{e}");
    assert!(e.contains("`epoch`"), "{e}");
    assert!(
        e.contains("`model_state_dict` (a state dict of 3 tensors)"),
        "{e}"
    );
    let e = read_state_dict(&seed("nested.pt"), Some("optimizer"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no entry \"optimizer\""), "{e}");
}

#[test]
fn every_truncation_of_a_checkpoint_is_an_error() {
    let bytes = std::fs::read(seed("nested.pt")).expect("reads");
    let path = Path::new("cut.pt");
    for n in (0..bytes.len()).step_by(7) {
        assert!(
            parse_torch(&bytes[..n], path, Some("model_state_dict")).is_err(),
            "{n} bytes"
        );
    }
}
