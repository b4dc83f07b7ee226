//! `attend train` ends with the run's pictures and samples: `curves.png` (loss and dev BLEU over
//! steps), `attention.png` (one test sentence's heat map), five sample translations and the word
//! alignment of one of them, all printed.

mod cli_support;

use attend::config::Config;
use attend::show::alignment::word_alignment;
use attend::show::plots::{hypothesis_heat_map, training_curves};
use attend::show::Picture;
use attend::train::checkpoint::read_state;
use attend::train::data::load_corpora;
use attend::translate::translate_ids;
use cli_support::{attend, load, ok, out_dir, png_size};

#[test]
fn a_run_ends_with_curves_heat_map_samples_and_alignment() {
    let run = out_dir("train-pictures");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/reverse.toml");
    let sets = [
        "data.reverse_sizes=[200,10,10]",
        "model.rnn.embedding=8",
        "model.rnn.hidden=8",
        "model.rnn.decoder_hidden=16",
        "model.rnn.attention_size=8",
        "train.max_steps=6",
        "train.valid_every=2",
    ];
    let mut args = vec!["train", config, "--out", run.to_str().unwrap(), "--quiet"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let stdout = ok(&attend(&args, ""));

    let curves = run.join("curves.png");
    let heat = run.join("attention.png");
    assert!(
        stdout.contains(&format!("curves     {}", curves.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("attention  {}", heat.display())),
        "{stdout}"
    );
    let state = read_state::<f64>(&run).unwrap();
    // valid_every = 2: a loss point every step, a BLEU point at steps 2, 4, 6
    assert_eq!(
        state.loss_history.iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        state.score_history.iter().map(|p| p.0).collect::<Vec<_>>(),
        [2, 4, 6]
    );
    // Each validation's train_loss in log.jsonl is the mean of the curve's points since the last.
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    for (k, line) in log.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (a, b) = (state.loss_history[2 * k].1, state.loss_history[2 * k + 1].1);
        let logged = v["train_loss"].as_f64().unwrap() as f32;
        assert!(
            (logged - (a + b) / 2.0).abs() < 1e-5,
            "{logged} vs mean of {a}, {b}"
        );
        assert_eq!(v["dev_bleu"].as_f64().unwrap(), state.score_history[k].1);
    }
    let expected = training_curves("", &state.loss_history, &state.score_history).unwrap();
    assert_eq!(png_size(&curves), expected.size().unwrap());

    // Five samples, the first five test pairs, with the translations in test.hyp.txt.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let samples = summary["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 5);
    let hyps = std::fs::read_to_string(run.join("test.hyp.txt")).unwrap();
    for (k, (s, h)) in samples.iter().zip(hyps.lines()).enumerate() {
        assert_eq!(s["translation"], h);
        assert!(stdout.contains(&format!(
            "sample {}   {}",
            k + 1,
            s["source"].as_str().unwrap()
        )));
        assert!(stdout.contains(&format!("  hyp      {h}")));
    }

    // The drawn sample: the first with 4 to 15 source tokens; its heat map and alignment are
    // those of the best checkpoint's translation.
    let cfg = Config::load(Some(&run.join("config.toml")), &[]).unwrap();
    let loaded = load(&run);
    let k = samples
        .iter()
        .position(|s| (4..=15).contains(&s["source"].as_str().unwrap().split(' ').count()))
        .expect("a short sample");
    let source = samples[k]["source"].as_str().unwrap();
    // The trainer translated the whole test set at once (the length limit follows the batch).
    let test_src: Vec<Vec<u32>> = load_corpora(&cfg)
        .unwrap()
        .test
        .pairs
        .iter()
        .map(|(s, _)| loaded.vocabs.src.encode(s).unwrap())
        .collect();
    let hyps = translate_ids(
        &*loaded.model,
        &test_src,
        &cfg,
        cfg.search.beam,
        cfg.search.alpha,
    );
    let (src, hyp) = (&test_src[k], &hyps[k]);
    assert_eq!(*src, loaded.vocabs.src.encode(source).unwrap());
    let map =
        hypothesis_heat_map(source, &loaded.vocabs.src, &loaded.vocabs.tgt, src, hyp).unwrap();
    assert_eq!(png_size(&heat), map.size().unwrap());
    assert_eq!(std::fs::read(&heat).unwrap(), map.png_bytes().unwrap());
    let raw = |t: &attend::data::tokenizer::Tokenizer, ids: &[u32]| -> Vec<String> {
        ids.iter().map(|&i| t.token(i)).collect()
    };
    let links = word_alignment(
        &raw(&loaded.vocabs.src, src),
        &raw(&loaded.vocabs.tgt, &hyp.ids),
        &hyp.attention,
    )
    .unwrap();
    let saved = samples[k]["alignment"].as_array().unwrap();
    assert_eq!(saved.len(), hyp.ids.len(), "one link per target word");
    assert!(stdout.contains(&format!("alignment  sample {}", k + 1)));
    for (l, s) in links.iter().zip(saved) {
        assert_eq!(s["target"], l.target.as_str());
        assert_eq!(s["source"], l.source.as_str());
        assert!(stdout.contains(&format!("← {}", l.source)));
        assert!((0.0..=1.0).contains(&l.weight));
    }
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s["alignment"].as_array().unwrap().is_empty(), i != k);
    }
}
