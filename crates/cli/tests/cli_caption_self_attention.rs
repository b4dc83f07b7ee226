//! `attend caption --cell R,C`: a tiny captioner trained with the grid's self-attention block draws
//! where the chosen cells look (one framed panel per cell); a cell outside the grid, `--cell`
//! without `--plot`, a malformed cell and a model without the block are errors that say so.

mod cli_support;

use cli_support::{attend, fails, ok, out_dir, png_size};
use std::path::Path;

/// Trains a tiny captioner with the self-attention block on 28×56 strips (a 7×14 grid) into `dir`.
fn tiny_run(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = root.join("configs/caption-digits-self-attention.toml");
    let mut args = vec![
        "train".to_string(),
        config.display().to_string(),
        "--quiet".into(),
        "--out".into(),
        dir.display().to_string(),
    ];
    for set in [
        "caption.image_height=28",
        "caption.image_width=56",
        "caption.min_digits=1",
        "caption.max_digits=2",
        "caption.strips=[64, 8, 8]",
        "caption.conv_channels=[4, 8]",
        "caption.self_attention_size=4",
        "caption.batch_size=16",
        "model.captioner.embedding=8",
        "model.captioner.hidden=16",
        "model.captioner.attention_size=8",
        "train.max_steps=8",
        "train.valid_every=4",
        "search.beam=1",
    ] {
        args.extend(["--set".into(), set.into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&attend(&args, ""));
}

#[test]
fn chosen_cells_get_a_panel_each_and_bad_requests_are_refused() {
    let base = out_dir("caption-self-attention");
    let run = base.join("run");
    tiny_run(&run);
    let strip = run.join("test-strips/000.png");
    let plots = base.join("plots");
    let (m, s, p) = (
        run.display().to_string(),
        strip.display().to_string(),
        plots.display().to_string(),
    );
    let caption = ok(&attend(
        &[
            "caption", "--model", &m, &s, "--plot", &p, "--cell", "0,1", "--cell", "6,13",
            "--scale", "2",
        ],
        "",
    ));
    assert_eq!(caption.lines().count(), 1, "{caption}");
    // Two panels of the 28×56 image at scale 2: margins of 12, labels of 26.
    let picture = plots.join("000.self-attention.png");
    assert_eq!(
        png_size(&picture),
        (56 * 2 + 24, 12 + 2 * (28 * 2 + 26 + 12))
    );
    assert!(
        plots.join("000.steps.png").exists(),
        "the word overlays as before"
    );

    let err = fails(&attend(
        &["caption", "--model", &m, &s, "--plot", &p, "--cell", "7,0"],
        "",
    ));
    assert!(
        err.contains("--cell 7,0") && err.contains("7×14 grid"),
        "{err}"
    );
    let err = fails(&attend(
        &["caption", "--model", &m, &s, "--cell", "0,0"],
        "",
    ));
    assert!(err.contains("--plot"), "{err}");
    let err = fails(&attend(
        &["caption", "--model", &m, &s, "--plot", &p, "--cell", "1"],
        "",
    ));
    assert!(
        err.contains("--cell") && err.contains("ROW,COLUMN"),
        "{err}"
    );

    // The same weights read as a captioner without the block (its tensors are ignored).
    let config = run.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("self_attention = true"), "{text}");
    std::fs::write(
        &config,
        text.replace("self_attention = true", "self_attention = false"),
    )
    .unwrap();
    let err = fails(&attend(
        &["caption", "--model", &m, &s, "--plot", &p, "--cell", "0,0"],
        "",
    ));
    assert!(err.contains("no self-attention block"), "{err}");
    ok(&attend(&["caption", "--model", &m, &s], ""));
}
