//! Every decoder layer's and head's cross-attention as a decoding step records it
//! (`TransformerDecoding::step_recorded`, what `attend explain` shows): the scores are q·k/√d_k
//! (checked against a plain float64 recomputation from the projection weights), the weights are
//! the softmax of the scores, equal the plain teacher-forced path's softmax(QKᵀ/√d_k), sum to 1,
//! are exactly 0 on padded keys and cover the `</s>` a `source_eos` model appends; the mean of the
//! last layer's heads is the step's own averaged weights, and recording changes nothing decoded.

use attend::attention::MultiHeadAttention;
use attend::data::tokenizer::{BOS, EOS};
use attend::models::transformer::decoding::TransformerDecoding;
use attend::models::transformer::{
    Activation, NormPlacement, PositionKind, Transformer, TransformerSpec,
};
use attend::models::Decoding;
use attend::models::Seq2Seq;
use attend::nn::Params;
use tensor::{Rng, Tensor, Var};

/// softmax in f64 (−∞ gives 0).
fn softmax(scores: &[f32]) -> Vec<f64> {
    let m = scores
        .iter()
        .fold(f64::NEG_INFINITY, |m, &s| m.max(s as f64));
    let e: Vec<f64> = scores.iter().map(|&s| (s as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

#[test]
fn step_scores_are_q_dot_k_over_sqrt_dk_per_head() {
    let mut rng = Rng::new(5);
    for (b, n, s, d, heads) in [(2, 1, 5, 8, 2), (3, 2, 7, 12, 3), (1, 1, 1, 4, 4)] {
        let mut params = Params::new();
        let mha = MultiHeadAttention::new(&mut params, "attn", d, heads, 0.0, &mut rng).unwrap();
        // Nonzero biases, so that a forgotten bias shows.
        *mha.in_proj_bias.value_mut() = Tensor::randn(&[3 * d], 0.0, 0.5, &mut rng);
        let memory = Tensor::randn(&[b, s, d], 0.0, 1.0, &mut rng);
        let query = Tensor::randn(&[b, n, d], 0.0, 1.0, &mut rng);
        // Row r has s − r real keys (at least one); the rest is padding.
        let lens: Vec<usize> = (0..b).map(|r| s.saturating_sub(r).max(1)).collect();
        let mut pad = vec![0.0f32; b * s];
        for (r, &len) in lens.iter().enumerate() {
            pad[r * s + len..(r + 1) * s].fill(1.0);
        }
        let pad = Tensor::from_vec(pad, &[b, s]);
        let step_memory = mha
            .project_step_memory(&Var::constant(memory.clone()))
            .unwrap();
        let scores = mha
            .step_scores(&Var::constant(query.clone()), &step_memory, Some(&pad))
            .unwrap();
        assert_eq!(scores.shape(), [b, heads, n, s]);
        // The plain reference: q = x W_Qᵀ + b_Q, k = m W_Kᵀ + b_K, e = q·k / √d_h, in f64.
        let (w, bias) = (mha.in_proj_weight.to_tensor(), mha.in_proj_bias.to_tensor());
        let project = |x: &[f32], part: usize| -> Vec<f64> {
            (0..d)
                .map(|o| {
                    let row = &w.data()[(part * d + o) * d..][..d];
                    let dot: f64 = row.iter().zip(x).map(|(&a, &c)| a as f64 * c as f64).sum();
                    dot + bias.data()[part * d + o] as f64
                })
                .collect()
        };
        let dh = d / heads;
        for (bi, &len) in lens.iter().enumerate() {
            for t in 0..n {
                let q = project(&query.data()[(bi * n + t) * d..][..d], 0);
                for j in 0..s {
                    let k = project(&memory.data()[(bi * s + j) * d..][..d], 1);
                    for h in 0..heads {
                        let got = scores.data()[((bi * heads + h) * n + t) * s + j];
                        if j >= len {
                            assert_eq!(got, f32::NEG_INFINITY, "padded key {j} of row {bi}");
                            continue;
                        }
                        let dot: f64 = (h * dh..(h + 1) * dh).map(|x| q[x] * k[x]).sum();
                        let want = dot / (dh as f64).sqrt();
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "b {bi} h {h} t {t} j {j}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

/// A small random Transformer (biases and norms moved off their init so that nothing is
/// symmetric), post-norm like Marian's or pre-norm, with or without `</s>` after the source.
fn tiny(norm: NormPlacement, source_eos: bool, seed: u64) -> Transformer {
    let spec = TransformerSpec {
        src_vocab: 13,
        tgt_vocab: 13,
        d_model: 12,
        heads: 3,
        ff_size: 16,
        encoder_layers: 2,
        decoder_layers: 3,
        activation: Activation::Gelu,
        norm,
        positions: PositionKind::Sinusoidal,
        max_positions: 32,
        scale_embeddings: true,
        shared_embeddings: false,
        tie_output: false,
        final_norm: !source_eos,
        source_bos: false,
        source_eos,
        dropout: 0.0,
        attention_dropout: 0.0,
    };
    let model = Transformer::new(spec, seed).expect("builds");
    let mut rng = Rng::new(seed + 100);
    for (name, p) in model.params().iter() {
        if name.ends_with("bias") || name.contains("norm") {
            let noise = Tensor::randn(&p.shape(), 0.0, 0.3, &mut rng);
            p.value_mut().add_assign(&noise);
        }
    }
    model
}

#[test]
fn recorded_weights_are_the_ones_decoding_used() {
    let mut case = 0;
    for norm in [NormPlacement::Post, NormPlacement::Pre] {
        for source_eos in [false, true] {
            case += 1;
            let model = tiny(norm, source_eos, 40 + case);
            let (layers, heads) = (3, 3);
            // Two sentences, the second padded: [2, 5] with lengths 5 and 3.
            let lens = [5usize, 3];
            let src: Vec<u32> = vec![4, 5, 6, 7, 8, 9, 10, 11, 0, 0];
            // Every row's target inputs: <s> then fixed tokens (teacher forcing by hand).
            let steps = 4;
            let tgt_in: Vec<u32> = vec![BOS, 5, 6, 7, BOS, 9, 4, 12];
            let maps = model
                .attention_maps(&src, &lens, 5, &tgt_in, steps)
                .unwrap();
            let s = 5 + usize::from(source_eos); // columns the encoder read
            let cols: Vec<usize> = lens.iter().map(|l| l + usize::from(source_eos)).collect();
            let mut recorded = TransformerDecoding::new(&model, &src, &lens, 5).unwrap();
            let mut plain = TransformerDecoding::new(&model, &src, &lens, 5).unwrap();
            for t in 0..steps {
                let prev = [tgt_in[t], tgt_in[steps + t]];
                let (out, rec) = recorded.step_recorded(&prev).unwrap();
                let reference = plain.step(&prev);
                let what = format!("{norm:?}, source_eos {source_eos}, step {t}");
                assert_eq!(
                    out.logits.data(),
                    reference.logits.data(),
                    "{what}: recording changes nothing decoded"
                );
                assert_eq!((rec.scores.len(), rec.weights.len()), (layers, layers));
                for l in 0..layers {
                    assert_eq!(rec.weights[l].shape(), [2, heads, s], "{what}");
                    let tf = &maps.cross[l]; // [2, H, T, S]
                    for b in 0..2 {
                        for h in 0..heads {
                            let at = (b * heads + h) * s;
                            let w = &rec.weights[l].data()[at..at + s];
                            let e = &rec.scores[l].data()[at..at + s];
                            let sum: f64 = w.iter().map(|&x| x as f64).sum();
                            assert!((sum - 1.0).abs() < 1e-5, "{what}: row sums to {sum}");
                            for (j, (&x, p)) in w.iter().zip(softmax(e)).enumerate() {
                                if j >= cols[b] {
                                    assert_eq!(x, 0.0, "{what}: padded key {j} has weight");
                                    assert_eq!(e[j], f32::NEG_INFINITY, "{what}: padded score");
                                }
                                assert!(
                                    (x as f64 - p).abs() < 1e-5,
                                    "{what} layer {l} head {h}: weight {x} vs softmax {p}"
                                );
                                let y = tf.data()[((b * heads + h) * steps + t) * s + j];
                                assert!(
                                    (x - y).abs() < 1e-5,
                                    "{what} layer {l} head {h} key {j}: step {x} vs plain {y}"
                                );
                            }
                            if source_eos {
                                // The appended </s> is a key like the others.
                                assert!(w[cols[b] - 1] > 0.0, "{what}: </s> column");
                            }
                        }
                    }
                }
                // The heads' mean of the last layer is the step's averaged weights, bit for bit.
                let mean = Var::constant(rec.weights[layers - 1].clone()).mean_axis(1);
                let averaged = out.weights.expect("a Transformer attends");
                assert_eq!(mean.to_tensor().data(), averaged.data(), "{what}");
                assert_eq!(averaged.data(), reference.weights.unwrap().data());
            }
            // Beam search reorders rows: the recording follows the rows kept.
            recorded.select(&[1, 1, 0]);
            let (_, rec) = recorded.step_recorded(&[EOS, 4, 4]).unwrap();
            assert_eq!(rec.weights[0].shape(), [3, heads, s]);
            for h in 0..heads {
                let at = (heads + h) * s; // row 1, head h: sentence 2's padding
                let padded = &rec.weights[0].data()[at + cols[1]..at + s];
                assert!(padded.iter().all(|&w| w == 0.0), "row 1 is sentence 2");
            }
        }
    }
}
