//! The RNN encoder-decoder: teacher-forced and incremental paths agree, padding changes nothing,
//! checkpoints round-trip, gradients pass finite differences, sizes equal the PyTorch peer's.

use attend::config::Config;
use attend::data::batcher::Batch;
use attend::models::build;
use tensor::Var;

fn config(attention: &str, cell: &str, extra: &[&str]) -> Config {
    let mut sets = vec![
        format!("model.rnn.attention=\"{attention}\""),
        format!("model.rnn.cell=\"{cell}\""),
        "model.rnn.embedding=6".to_string(),
        "model.rnn.hidden=5".to_string(),
        "model.rnn.decoder_hidden=10".to_string(),
        "model.rnn.attention_size=7".to_string(),
        "model.rnn.dropout=0.0".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    Config::load(None, &sets).expect("valid config")
}

fn batch() -> Batch {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = vec![
        (vec![4, 5, 6, 7], vec![8, 9, 10]),
        (vec![11, 4], vec![5, 6, 7, 12, 4]),
        (vec![9, 9, 9], vec![6]),
    ];
    let refs: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .map(|(s, t)| (s.as_slice(), t.as_slice()))
        .collect();
    Batch::new(&refs, vec![0, 1, 2])
}

const KINDS: [(&str, &str); 5] = [
    ("additive", "gru"),
    ("none", "gru"),
    ("dot", "gru"),
    ("general", "lstm"),
    ("none", "lstm"),
];

fn dot_ok(att: &str) -> Vec<&'static str> {
    if att == "dot" {
        vec!["model.rnn.decoder_hidden=10", "model.rnn.hidden=5"]
    } else {
        vec![]
    }
}

/// Teacher-forced logits equal incremental decoding's at every real target position.
fn assert_paths_agree(model: &dyn attend::models::Seq2Seq, b: &Batch, label: &str) {
    let logits = tensor::no_grad(|| model.logits(b, None)).to_tensor(); // [B·T, V]
    let v = model.tgt_vocab();
    let mut dec = model.begin(&b.src, &b.src_len, b.src_max);
    for t in 0..b.tgt_max {
        let prev: Vec<u32> = (0..b.batch_size)
            .map(|r| b.tgt_in[r * b.tgt_max + t])
            .collect();
        let step = tensor::no_grad(|| dec.step(&prev));
        for r in 0..b.batch_size {
            if t >= b.tgt_len[r] {
                continue; // padded target positions are not compared
            }
            let tf = &logits.data()[(r * b.tgt_max + t) * v..(r * b.tgt_max + t + 1) * v];
            let inc = &step.logits.data()[r * v..(r + 1) * v];
            for (a, c) in tf.iter().zip(inc) {
                assert!(
                    (a - c).abs() < 1e-4,
                    "{label}: step {t} row {r}: {a} vs {c}"
                );
            }
        }
    }
}

#[test]
fn teacher_forcing_equals_incremental_decoding() {
    let b = batch();
    for (att, cell) in KINDS {
        for layers in [1, 2] {
            let l = format!("model.rnn.decoder_layers={layers}");
            let e = format!("model.rnn.encoder_layers={layers}");
            let mut extra = dot_ok(att);
            extra.push(&l);
            extra.push(&e);
            let model = build(&config(att, cell, &extra), 16, 14, 7).expect("builds");
            assert_paths_agree(model.as_ref(), &b, &format!("{att}/{cell}/{layers}"));
        }
    }
}

/// The options of PyTorch tutorial models: the decoder started from the encoder's states or from
/// zeros (no bridge parameters), a ReLU on its input embeddings, sources wrapped in `<s>`/`</s>`.
#[test]
fn tutorial_options_keep_both_paths_equal_and_padding_inert() {
    let b = batch();
    for (att, cell) in KINDS {
        for init in ["identity", "zero"] {
            let i = format!("model.rnn.decoder_init=\"{init}\"");
            let mut extra = dot_ok(att);
            extra.extend([
                i.as_str(),
                "model.rnn.decoder_input_activation=\"relu\"",
                "model.rnn.source_bos=true",
                "model.rnn.source_eos=true",
                "model.rnn.encoder_layers=2",
                "model.rnn.decoder_layers=2",
            ]);
            let label = format!("{att}/{cell}/{init}");
            let model = build(&config(att, cell, &extra), 16, 14, 7).expect("builds");
            assert!(model.params().get("bridge.weight").is_none(), "{label}");
            assert_paths_agree(model.as_ref(), &b, &label);
            let base = tensor::no_grad(|| model.logits(&b, None)).to_tensor();
            let mut padded = b.clone();
            let mut other_source = b.clone();
            for r in 0..b.batch_size {
                for j in 0..b.src_max {
                    if j >= b.src_len[r] {
                        padded.src[r * b.src_max + j] = 13;
                    } else {
                        other_source.src[r * b.src_max + j] = 15;
                    }
                }
            }
            let with_padding = tensor::no_grad(|| model.logits(&padded, None)).to_tensor();
            assert!(
                base.max_abs_diff(&with_padding) < 1e-6,
                "{label}: padding leaked"
            );
            // Only a decoder started from zeros with no attention ignores its source.
            let other = tensor::no_grad(|| model.logits(&other_source, None)).to_tensor();
            let ignores_source = base.max_abs_diff(&other) == 0.0;
            assert_eq!(ignores_source, init == "zero" && att == "none", "{label}");
        }
    }
}

#[test]
fn source_padding_changes_no_output() {
    let b = batch();
    for (att, cell) in KINDS {
        let model = build(&config(att, cell, &dot_ok(att)), 16, 14, 7).expect("builds");
        let base = tensor::no_grad(|| model.logits(&b, None)).to_tensor();
        let mut padded = b.clone();
        for r in 0..b.batch_size {
            for j in b.src_len[r]..b.src_max {
                padded.src[r * b.src_max + j] = 13; // a real token id where padding was
            }
        }
        let other = tensor::no_grad(|| model.logits(&padded, None)).to_tensor();
        assert!(
            base.max_abs_diff(&other) < 1e-6,
            "{att}/{cell}: padding leaked into the output"
        );
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join("checkpoint");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("model.safetensors");
    let b = batch();
    let cfg = config("additive", "gru", &[]);
    let a = build(&cfg, 16, 14, 1).expect("builds");
    a.params().save(&path).expect("saves");
    let c = build(&cfg, 16, 14, 2).expect("builds"); // other initial weights
    c.params().load(&path).expect("loads");
    let la = tensor::no_grad(|| a.logits(&b, None)).to_tensor();
    let lc = tensor::no_grad(|| c.logits(&b, None)).to_tensor();
    assert_eq!(la, lc);
    // A corrupt or mismatched checkpoint is an error, never a panic, and leaves the model intact.
    std::fs::write(&path, b"not a checkpoint").expect("write");
    assert!(c.params().load(&path).is_err());
    let other = build(&config("general", "gru", &[]), 16, 14, 1).expect("builds");
    other.params().save(&path).expect("saves");
    assert!(c.params().load(&path).is_err());
    assert_eq!(tensor::no_grad(|| c.logits(&b, None)).to_tensor(), lc);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn parameter_counts_match_the_pytorch_peer() {
    // ../shared/peers/seq2seq_bench.py: V = 8000, E = H = A = 256, bi-GRU encoder, 1-layer decoder.
    let peer = |att: &str| {
        Config::load(
            None,
            &[
                format!("model.rnn.attention=\"{att}\""),
                "model.rnn.embedding=256".into(),
                "model.rnn.hidden=256".into(),
                "model.rnn.decoder_hidden=256".into(),
                "model.rnn.attention_size=256".into(),
            ],
        )
        .expect("config")
    };
    assert_eq!(
        build(&peer("additive"), 8000, 8000, 0)
            .expect("builds")
            .params()
            .count(),
        12_153_920
    );
    assert_eq!(
        build(&peer("none"), 8000, 8000, 0)
            .expect("builds")
            .params()
            .count(),
        7_467_584
    );
}

#[test]
fn gradients_pass_finite_differences() {
    let b = batch();
    for (att, cell) in [("additive", "gru"), ("general", "lstm"), ("none", "gru")] {
        let model = build(&config(att, cell, &[]), 16, 14, 5).expect("builds");
        let loss = || {
            model
                .logits(&b, None)
                .cross_entropy(&b.tgt_out, Some(0), 0.1)
        };
        model.params().zero_grad();
        loss().backward();
        let h = 1e-2f32;
        for (name, p) in model.params().iter() {
            let g = p.grad().expect("every parameter gets a gradient");
            // A few entries per tensor keep the check quick.
            let n = p.value().numel();
            for j in [0, n / 3, n - 1] {
                let orig = p.value().data()[j];
                p.value_mut().data_mut()[j] = orig + h;
                let up = tensor::no_grad(|| loss().item()) as f64;
                p.value_mut().data_mut()[j] = orig - h;
                let down = tensor::no_grad(|| loss().item()) as f64;
                p.value_mut().data_mut()[j] = orig;
                let numeric = (up - down) / (2.0 * h as f64);
                let a = g.data()[j] as f64;
                let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
                assert!(
                    err < 2e-2,
                    "{att}/{cell} {name}[{j}]: analytic {a} vs numeric {numeric}"
                );
            }
        }
    }
}

#[test]
fn parameters_are_named_and_shaped_like_pytorch() {
    let model = build(&config("additive", "gru", &[]), 16, 14, 5).expect("builds");
    let shape = |n: &str| model.params().get(n).map(Var::shape);
    assert_eq!(shape("src_emb.weight"), Some(vec![16, 6]));
    assert_eq!(shape("tgt_emb.weight"), Some(vec![14, 6]));
    assert_eq!(shape("encoder.weight_ih_l0_reverse"), Some(vec![15, 6]));
    assert_eq!(shape("bridge.weight"), Some(vec![10, 10]));
    assert_eq!(shape("attn.w_k.weight"), Some(vec![7, 10]));
    assert_eq!(shape("decoder.weight_ih_l0"), Some(vec![30, 16]));
    assert_eq!(shape("out_proj.weight"), Some(vec![14, 20]));
}
