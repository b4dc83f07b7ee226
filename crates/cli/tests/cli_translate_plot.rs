//! `attend translate --plot DIR`: one heat map per input line (PNG and SVG) whose size, labels and
//! cells are those of the model's own attention; for a Transformer, every layer and head plus
//! grids, with the teacher-forced cross-attention equal to what decoding used.

mod cli_support;

use attend::models::transformer::Transformer;
use attend::models::Seq2Seq;
use attend::search::greedy;
use attend::show::plots::{
    attention_heat_map, display_tokens, hypothesis_heat_map, target_labels, teacher_forced_input,
};
use attend::show::{HeadView, Picture};
use attend::translate::translate_ids;
use cli_support::{attend, fails, load, ok, out_dir, png_size, svg_texts, tiny_run};

const LINES: [&str; 3] = [
    "black cat",
    "",
    "where is the green tree in the summer café",
];

#[test]
fn one_heat_map_per_line_with_the_models_weights() {
    let dir = tiny_run(&out_dir("plot-rnn-model"), "rnn", "additive", 7);
    let loaded = load(&dir);
    let plots = out_dir("plot-rnn");
    let out = attend(
        &[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
        &(LINES.join("\n") + "\n"),
    );
    let stdout = ok(&out);
    assert_eq!(stdout.lines().count(), 3, "one translation per line");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: empty"));
    assert!(
        !plots.join("line-2.png").exists(),
        "an empty line has no picture"
    );
    // Translated as the command does: all lines at once (the length limit follows the batch).
    let srcs: Vec<Vec<u32>> = LINES
        .iter()
        .map(|l| loaded.vocabs.src.encode(l).unwrap())
        .collect();
    let hyps = translate_ids(&*loaded.model, &srcs, &loaded.config, 1, 0.0);
    for (n, line) in [(1, LINES[0]), (3, LINES[2])] {
        let (src, hyp) = (&srcs[n - 1], &hyps[n - 1]);
        assert_eq!(
            stdout.lines().nth(n - 1).unwrap(),
            loaded.vocabs.tgt.decode(&hyp.ids)
        );
        let map =
            hypothesis_heat_map(line, &loaded.vocabs.src, &loaded.vocabs.tgt, src, hyp).unwrap();
        let png = plots.join(format!("line-{n}.png"));
        let svg = plots.join(format!("line-{n}.svg"));
        assert_eq!(png_size(&png), map.size().unwrap());
        assert_eq!(
            std::fs::read(&png).unwrap(),
            map.png_bytes().unwrap(),
            "PNG = the model's map"
        );
        let (texts, size) = svg_texts(&svg);
        assert_eq!(size, map.size().unwrap());
        assert!(texts.contains(&line.to_string()), "title");
        for word in line.split(' ') {
            assert!(texts.contains(&word.to_string()), "source label {word:?}");
        }
        assert!(texts.iter().all(|t| !t.contains('▁')), "markers cleaned");
        if hyp.attention.len() > hyp.ids.len() {
            assert!(texts.contains(&"</s>".to_string()));
        }
        assert_eq!((map.rows(), map.cols()), (hyp.attention.len(), src.len()));
    }
}

#[test]
fn a_model_without_attention_cannot_plot() {
    let dir = tiny_run(&out_dir("plot-none-model"), "rnn", "none", 2);
    let plots = out_dir("plot-none");
    let err = fails(&attend(
        &[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
        "black cat\n",
    ));
    assert!(err.contains("no attention"), "{err}");
}

#[test]
fn transformer_layers_and_heads() {
    let dir = tiny_run(&out_dir("plot-tf-model"), "transformer", "none", 4);
    let loaded = load(&dir);
    let plots = out_dir("plot-tf");
    let line = "a black cat is in the café";
    ok(&attend(
        &[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ],
        &format!("{line}\n"),
    ));
    assert!(plots.join("line-1.png").exists() && plots.join("line-1.svg").exists());
    let (layers, heads) = (2, 2);
    let sub = plots.join("line-1");
    for kind in ["cross", "encoder", "decoder"] {
        for l in 1..=layers {
            for h in 1..=heads {
                let stem = sub.join(format!("{kind}-l{l}-h{h}"));
                png_size(&stem.with_extension("png"));
                let (texts, _) = svg_texts(&stem.with_extension("svg"));
                assert!(
                    texts
                        .iter()
                        .any(|t| t.contains(&format!("layer {l} head {h}"))),
                    "{texts:?}"
                );
            }
        }
        let (w, h) = png_size(&sub.join(format!("{kind}-grid.png")));
        assert!(w > 100 && h > 100);
        let (texts, _) = svg_texts(&sub.join(format!("{kind}-grid.svg")));
        for l in 1..=layers {
            for hd in 1..=heads {
                assert!(
                    texts.contains(&format!("layer {l} head {hd}")),
                    "{kind} grid panel"
                );
            }
        }
    }
    assert_eq!(
        std::fs::read_dir(&sub).unwrap().count(),
        3 * (layers * heads + 1) * 2
    );

    // The teacher-forced cross-attention of the last layer, averaged over heads, is what
    // incremental decoding attended with: the maps belong to the translation shown.
    let src = loaded.vocabs.src.encode(line).unwrap();
    let hyp = greedy(
        &*loaded.model,
        &src,
        &[src.len()],
        src.len(),
        loaded.config.max_output_len(src.len()),
    )
    .remove(0);
    let t = Transformer::from_config(
        &loaded.config,
        loaded.vocabs.src.vocab_size(),
        loaded.vocabs.tgt.vocab_size(),
        0,
    )
    .unwrap();
    t.params().load(&dir.join("best.safetensors")).unwrap();
    let tgt_in = teacher_forced_input(&hyp);
    let maps = t
        .attention_maps(&src, &[src.len()], src.len(), &tgt_in, tgt_in.len())
        .unwrap();
    let cross = maps.cross.last().unwrap(); // [1, H, T, S]
    let (rows, s) = (tgt_in.len(), src.len());
    assert_eq!(rows, hyp.attention.len());
    for (i, row) in hyp.attention.iter().enumerate() {
        for (j, &w) in row.iter().enumerate() {
            let mean: f32 = (0..heads)
                .map(|h| cross.data()[(h * rows + i) * s + j])
                .sum::<f32>()
                / heads as f32;
            assert!((mean - w).abs() < 1e-5, "row {i} col {j}: {mean} vs {w}");
        }
    }
}

#[test]
fn a_transformers_line_map_is_the_chosen_layer_and_head() {
    let dir = tiny_run(&out_dir("plot-view-model"), "transformer", "none", 6);
    let loaded = load(&dir);
    let line = "where is the green tree in the summer café";
    let src = loaded.vocabs.src.encode(line).unwrap();
    let c = &loaded.config;
    let hyp = translate_ids(
        &*loaded.model,
        std::slice::from_ref(&src),
        c,
        c.search.beam,
        c.search.alpha,
    )
    .remove(0);
    let tgt_in = teacher_forced_input(&hyp);
    let t = loaded.model.as_transformer().unwrap();
    let maps = t
        .attention_maps(&src, &[src.len()], src.len(), &tgt_in, tgt_in.len())
        .unwrap();
    let (rows, cols) = (tgt_in.len(), src.len());
    let labels = (
        display_tokens(&loaded.vocabs.src, &src),
        target_labels(&loaded.vocabs.tgt, &hyp),
    );
    let model = dir.to_str().unwrap();
    for (extra, view, words) in [
        (vec![], HeadView::alignment(2), "layer 1, mean of 2 heads"),
        (
            vec!["--layer", "2", "--head", "1"],
            HeadView {
                layer: 2,
                head: Some(1),
            },
            "layer 2, head 1",
        ),
    ] {
        let plots = out_dir(&format!("plot-view-{}", extra.len()));
        let plot = plots.to_str().unwrap();
        ok(&attend(
            &[&["translate", "--model", model, "--plot", plot][..], &extra].concat(),
            &format!("{line}\n"),
        ));
        let weights = view.rows_of(maps.cross[view.layer - 1].data(), 2, rows, cols);
        let title = format!("{line} ({words})");
        let map = attention_heat_map(title, &labels.0, &labels.1, &weights).unwrap();
        assert_eq!(
            std::fs::read(plots.join("line-1.png")).unwrap(),
            map.png_bytes().unwrap(),
            "line-1.png shows {words}"
        );
        for row in &weights {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
    let plots = out_dir("plot-view-bad");
    let plot = plots.to_str().unwrap();
    let err = fails(&attend(
        &["translate", "--model", model, "--plot", plot, "--head", "3"],
        "black cat\n",
    ));
    assert!(err.contains("head 3 does not exist"), "{err}");
    let err = fails(&attend(
        &["translate", "--model", model, "--layer", "1"],
        "black cat\n",
    ));
    assert!(err.contains("--plot"), "{err}");
    let rnn = tiny_run(&out_dir("plot-view-rnn"), "rnn", "additive", 6);
    let err = fails(&attend(
        &[
            "translate",
            "--model",
            rnn.to_str().unwrap(),
            "--plot",
            plot,
            "--layer",
            "1",
        ],
        "black cat\n",
    ));
    assert!(err.contains("RNN with a single attention"), "{err}");
}
