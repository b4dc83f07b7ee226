//! The pickle subset of `torch.save` files: data opcodes read as Python writes them, truncated or
//! malformed input answered with an error naming the byte, never a panic. (Mutations of real
//! checkpoints run in `crates/cli/tests/fuzz_seeds.rs`, target `torch`.)

use attend::import::pickle::{parse, Value};

/// `pickle.dumps({"a": [1, -2, 300, 70000], "b": (None, True, 1.5, "é")}, protocol=2)`.
const SAMPLE: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffM,\x01J\x70\x11\x01\x00eX\x01\x00\x00\x00bq\x03(N\x88G?\xf8\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00\xc3\xa9q\x04tq\x05u.";

#[test]
fn reads_the_data_opcodes() {
    let p = parse(SAMPLE).expect("parses");
    let Value::Dict(items) = p.get(p.root()) else {
        panic!("root is a dict")
    };
    assert_eq!(items.len(), 2);
    let (k, v) = items[0];
    assert_eq!(p.str(k), Some("a"));
    let ints: Vec<i64> = p
        .items(v)
        .unwrap()
        .iter()
        .map(|&i| p.int(i).unwrap())
        .collect();
    assert_eq!(ints, [1, -2, 300, 70000]);
    let t = p.items(items[1].1).unwrap();
    assert_eq!(p.get(t[0]), &Value::None);
    assert_eq!(p.get(t[1]), &Value::Bool(true));
    assert_eq!(p.get(t[2]), &Value::Float(1.5));
    assert_eq!(p.str(t[3]), Some("é"));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for n in 0..SAMPLE.len() {
        assert!(parse(&SAMPLE[..n]).is_err(), "prefix of {n} bytes");
    }
}

#[test]
fn long1_is_signed() {
    // LONG1 of 2 bytes 0xff 0x7f (32767) and of 1 byte 0xff (-1).
    let p = parse(b"\x80\x02\x8a\x02\xff\x7f.").unwrap();
    assert_eq!(p.int(p.root()), Some(32767));
    let p = parse(b"\x80\x02\x8a\x01\xff.").unwrap();
    assert_eq!(p.int(p.root()), Some(-1));
}

#[test]
fn structural_errors_name_the_offset() {
    let e = parse(b"\x80\x02u.").unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(e.reason.contains("MARK"), "{e}");
    let e = parse(b"\x80\x02h\x05.").unwrap_err();
    assert!(e.reason.contains("memo"), "{e}");
    let e = parse(b"\x80\x02\xff").unwrap_err();
    assert!(e.reason.contains("0xff"), "{e}");
}
