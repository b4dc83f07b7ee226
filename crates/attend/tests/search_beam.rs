//! Beam search against greedy decoding and its own invariants, on small random RNN models.

use attend::config::Config;
use attend::data::tokenizer::{BOS, EOS};
use attend::models::{build, Seq2Seq};
use attend::search::{
    beam_search, beam_search_with_limits, greedy, greedy_with_limits, BeamConfig,
};
use attend::translate::translate_ids;
use tensor::ops::softmax::log_softmax_row;

fn tiny_config(attention: &str, cell: &str) -> Config {
    let sets = [
        format!("model.rnn.attention=\"{attention}\""),
        format!("model.rnn.cell=\"{cell}\""),
        "model.rnn.embedding=12".to_string(),
        "model.rnn.hidden=8".to_string(),
        "model.rnn.decoder_hidden=16".to_string(),
        "model.rnn.attention_size=10".to_string(),
    ];
    Config::load(None, &sets).expect("valid config")
}

/// A batch of 4 source sentences of different lengths, padded with 0.
fn sources() -> (Vec<u32>, Vec<usize>, usize) {
    let rows: [&[u32]; 4] = [&[5, 6, 7, 8, 9], &[10, 4], &[11, 12, 13], &[7]];
    let s = 5;
    let mut src = vec![0; rows.len() * s];
    for (r, row) in rows.iter().enumerate() {
        src[r * s..r * s + row.len()].copy_from_slice(row);
    }
    (src, rows.iter().map(|r| r.len()).collect(), s)
}

fn models() -> Vec<Box<dyn Seq2Seq>> {
    let mut out = Vec::new();
    for (att, cell) in [("additive", "gru"), ("none", "gru"), ("general", "lstm")] {
        out.push(build(&tiny_config(att, cell), 20, 15, 3).expect("model builds"));
    }
    out
}

#[test]
fn beam_of_one_equals_greedy() {
    let (src, len, s) = sources();
    for model in models() {
        let g = greedy(&*model, &src, &len, s, 12);
        let b = beam_search(
            &*model,
            &src,
            &len,
            s,
            BeamConfig {
                beam: 1,
                alpha: 0.0,
                max_len: 12,
                n_best: 1,
            },
        );
        for (g, b) in g.iter().zip(&b) {
            assert_eq!(g.ids, b[0].ids);
            assert!(
                (g.log_prob - b[0].log_prob).abs() < 1e-4,
                "{} vs {}",
                g.log_prob,
                b[0].log_prob
            );
        }
    }
}

#[test]
fn n_best_lists_are_sorted_and_distinct() {
    let (src, len, s) = sources();
    for model in models() {
        let cfg = BeamConfig {
            beam: 5,
            alpha: 0.6,
            max_len: 10,
            n_best: 5,
        };
        for hyps in beam_search(&*model, &src, &len, s, cfg) {
            assert!(!hyps.is_empty() && hyps.len() <= 5);
            for w in hyps.windows(2) {
                assert!(
                    w[0].score >= w[1].score,
                    "n-best not sorted: {} < {}",
                    w[0].score,
                    w[1].score
                );
                assert_ne!(w[0].ids, w[1].ids, "duplicate hypotheses in an n-best list");
            }
        }
    }
}

#[test]
fn hypothesis_log_probabilities_are_the_models_own() {
    // Re-score each n-best hypothesis by feeding its tokens back through the decoder: the sum of the
    // per-token log-probabilities (EOS included when it was emitted) is the reported log_prob.
    let (src, len, s) = sources();
    for model in models() {
        let cfg = BeamConfig {
            beam: 3,
            alpha: 0.6,
            max_len: 9,
            n_best: 3,
        };
        for (row, hyps) in beam_search(&*model, &src, &len, s, cfg).iter().enumerate() {
            for h in hyps {
                let one = &src[row * s..(row + 1) * s];
                let mut dec = model.begin(one, &len[row..row + 1], s);
                let mut prev = BOS;
                let mut total = 0.0f32;
                let ended = h.ids.len() < 9;
                let targets: Vec<u32> = h.ids.iter().copied().chain(ended.then_some(EOS)).collect();
                for &y in &targets {
                    let mut lp = tensor::no_grad(|| dec.step(&[prev])).logits.data().to_vec();
                    log_softmax_row(&mut lp);
                    total += lp[y as usize];
                    prev = y;
                }
                assert!(
                    (total - h.log_prob).abs() < 1e-3,
                    "re-scored {total} vs {}",
                    h.log_prob
                );
            }
        }
    }
}

#[test]
fn attention_rows_are_distributions_over_the_real_source() {
    let (src, len, s) = sources();
    let model = build(&tiny_config("additive", "gru"), 20, 15, 3).expect("model builds");
    for (h, &l) in greedy(&*model, &src, &len, s, 8).iter().zip(&len) {
        assert_eq!(
            h.attention.len(),
            h.ids.len() + usize::from(h.ids.len() < 8)
        );
        for row in &h.attention {
            assert_eq!(row.len(), l);
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5 && row.iter().all(|&w| w >= 0.0));
        }
    }
}

/// Per-sentence limits: each row decoded with its own limit equals that row decoded alone with the
/// same limit as a uniform one (greedy and beam), limits of 0 give no tokens, and `translate_ids`
/// gives a short sentence the same output with or without a long batch-mate.
#[test]
fn each_sentence_keeps_its_own_length_limit() {
    let (src, len, s) = sources();
    let limits = [7, 2, 0, 4];
    let cfg = |max_len| BeamConfig {
        beam: 3,
        alpha: 0.6,
        max_len,
        n_best: 2,
    };
    for model in models() {
        let g = greedy_with_limits(&*model, &src, &len, s, &limits);
        let b = beam_search_with_limits(&*model, &src, &len, s, cfg(7), &limits);
        for (r, &limit) in limits.iter().enumerate() {
            let row = &src[r * s..(r + 1) * s];
            let alone = greedy(&*model, row, &len[r..=r], s, limit).remove(0);
            assert_eq!(g[r].ids, alone.ids, "greedy row {r}");
            assert!(
                (g[r].log_prob - alone.log_prob).abs() < 1e-4,
                "greedy row {r}"
            );
            assert!(g[r].ids.len() <= limit);
            let alone = beam_search(&*model, row, &len[r..=r], s, cfg(limit)).remove(0);
            let ids = |hs: &[attend::search::Hypothesis]| {
                hs.iter().map(|h| h.ids.clone()).collect::<Vec<_>>()
            };
            assert_eq!(ids(&b[r]), ids(&alone), "beam row {r}");
            if limit == 0 {
                assert!(g[r].ids.is_empty() && b[r].is_empty(), "row {r}: limit 0");
            }
        }
        // max_len_a = 1, max_len_b = 0: the 1-token sentence may emit 1 token, also next to a
        // 5-token one.
        let mut config = tiny_config("additive", "gru");
        config.search.max_len_a = 1.0;
        config.search.max_len_b = 0;
        for beam in [1, 3] {
            let short = vec![vec![7u32]];
            let both = vec![vec![7u32], vec![5, 6, 7, 8, 9]];
            let alone = translate_ids(&*model, &short, &config, beam, 0.6);
            let batched = translate_ids(&*model, &both, &config, beam, 0.6);
            assert_eq!(alone[0].ids, batched[0].ids, "beam {beam}");
            assert!(
                batched[0].ids.len() <= 1 && batched[1].ids.len() <= 5,
                "beam {beam}"
            );
        }
    }
}

/// The fused log-softmax + top-k of Hugging Face-style beam search against the plain path: the
/// whole row of log-probabilities, banned tokens at −∞, sorted by value (ties by index).
#[test]
fn top_k_log_probs_equals_sorting_the_log_softmax() {
    let mut rng = tensor::Rng::new(7);
    for (v, k) in [(1, 1), (3, 8), (5, 2), (40, 8), (1000, 8), (33000, 8)] {
        for ties in [false, true] {
            // With ties (few distinct values) equal log-probabilities must fall by index.
            let row: Vec<f32> = (0..v)
                .map(|_| {
                    let x = rng.normal() * 4.0;
                    if ties {
                        x.round()
                    } else {
                        x
                    }
                })
                .collect();
            for banned in [&[][..], &[0, 1][..], &[0, 1, 2][..]] {
                let mut lp = row.clone();
                log_softmax_row(&mut lp);
                for &t in banned {
                    if let Some(x) = lp.get_mut(t as usize) {
                        *x = f32::NEG_INFINITY;
                    }
                }
                let mut want: Vec<(u32, f32)> = (0u32..).zip(lp).collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                want.truncate(k);
                let got = attend::search::beam::top_k_log_probs(&row, banned, k);
                let bits = |x: &[(u32, f32)]| -> Vec<(u32, u32)> {
                    x.iter().map(|&(t, y)| (t, y.to_bits())).collect()
                };
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "v {v} k {k} ties {ties} banned {banned:?}"
                );
            }
        }
    }
}
