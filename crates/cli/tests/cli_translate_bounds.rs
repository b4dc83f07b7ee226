//! `attend translate` refuses out-of-range flags by name before loading anything, and bounds its
//! input: a line over `--max-input-tokens` (default: the model's limit) gets an empty output line
//! and an error naming it, the other lines are translated as they would be alone, and the
//! command exits non-zero at the end.

mod cli_support;

use cli_support::{attend, fails, ok, out_dir, tiny_run};

#[test]
fn out_of_range_flags_are_refused_by_name() {
    let model = tiny_run(&out_dir("bounds-flags"), "rnn", "additive", 1);
    let model = model.to_str().unwrap();
    for (flag, value, range) in [
        ("--beam", "100000", "1..=16"),
        ("--beam", "0", "1..=16"),
        ("--alpha", "NaN", "[0, 10]"),
        ("--alpha", "inf", "[0, 10]"),
        ("--alpha", "-0.5", "[0, 10]"),
        ("--max-input-tokens", "0", "1.."),
        ("--checkpoint", "newest", "[possible values: best, last]"),
    ] {
        // `--flag=value`, so that clap reads `-0.5` as a value.
        let arg = format!("{flag}={value}");
        let err = fails(&attend(
            &["translate", "--model", model, &arg],
            "black cat\n",
        ));
        assert!(
            err.contains(flag) && err.contains(range),
            "{flag} {value}: {err}"
        );
    }
    let err = fails(&attend(
        &["--threads", "0", "translate", "--model", model],
        "",
    ));
    assert!(
        err.contains("--threads") && err.contains("1..=1024"),
        "{err}"
    );
}

#[test]
fn a_line_over_the_bound_is_left_empty_and_named() {
    let model = tiny_run(&out_dir("bounds-lines"), "rnn", "additive", 1);
    let model = model.to_str().unwrap();
    let args = ["translate", "--model", model, "--max-input-tokens", "3"];
    // Lines 2 (5 words) and 4 (one word over) are too long; line 3 is empty.
    let input = "black cat\nwhere is the green tree\n\nthe summer café in\nthe café\n";
    let out = attend(&args, input);
    let err = fails(&out);
    assert!(
        err.contains("line 2: more than --max-input-tokens = 3"),
        "{err}"
    );
    assert!(
        err.contains("line 4: more than --max-input-tokens = 3"),
        "{err}"
    );
    assert!(err.contains("2 of 5 lines"), "{err}");
    assert!(err.contains("line 2, 4"), "{err}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "one output line per input line: {printed:?}"
    );
    assert_eq!((lines[1], lines[2], lines[3]), ("", "", ""));
    // The lines within the bound translate as they do alone.
    let alone = ok(&attend(&args, "black cat\nthe café\n"));
    assert_eq!(alone, format!("{}\n{}\n", lines[0], lines[4]));
}

#[test]
fn a_megabyte_line_is_refused_and_the_others_translated() {
    let model = tiny_run(&out_dir("bounds-megabyte"), "rnn", "additive", 1);
    let model = model.to_str().unwrap();
    // 250,000 words: refused (by the word count, before the tokenizer sees it). One word of
    // 1 MiB: a single `<unk>` for this word-level tokenizer, so within the bound and translated.
    let words = "cat ".repeat(250_000);
    let one_word = "c".repeat(1 << 20);
    let input = format!("black cat\n{words}\n{one_word}\nthe café\n");
    let out = attend(&["translate", "--model", model], &input);
    let err = fails(&out);
    // The default bound of an RNN: 1024 tokens.
    assert!(
        err.contains("line 2: more than --max-input-tokens = 1024"),
        "{err}"
    );
    assert!(err.contains("1 of 4 lines"), "{err}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed:?}");
    assert_eq!(lines[1], "");
    let alone = ok(&attend(
        &["translate", "--model", model],
        &format!("black cat\n{one_word}\nthe café\n"),
    ));
    assert_eq!(alone, format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]));
}

#[test]
fn a_transformer_cannot_be_asked_past_its_positional_table() {
    let model = tiny_run(&out_dir("bounds-transformer"), "transformer", "none", 1);
    let model = model.to_str().unwrap();
    let err = fails(&attend(
        &["translate", "--model", model, "--max-input-tokens", "5000"],
        "black cat\n",
    ));
    assert!(
        err.contains("--max-input-tokens = 5000") && err.contains("at most 1024"),
        "{err}"
    );
    // Its default bound is the table: a longer line is named, not a failure of the whole input.
    let long = "cat ".repeat(1100);
    let out = attend(
        &["translate", "--model", model],
        &format!("black cat\n{long}\n"),
    );
    let err = fails(&out);
    assert!(
        err.contains("line 2: more than --max-input-tokens = 1024"),
        "{err}"
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
}
