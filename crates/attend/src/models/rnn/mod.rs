//! RNN encoder-decoder, without attention (the classic bottleneck) or with additive / dot / general
//! attention (Bahdanau et al. 2015; Luong et al. 2015) — the seed notes' running example.
//!
//! ```text
//! h_j   = [fwd_j ; bwd_j]                  (bi)GRU/LSTM encoder over src_emb(x)          [B, S, Dk]
//! s_0   = tanh(bridge([fwd_S ; bwd_1]))    final states of the top encoder layer          [B, L·H]
//! with attention, step t = 1..T (input y_{t-1}, y_0 = <s>):
//!   e_t   = score(s_{t-1}, h)              additive vᵀtanh(W_q s + W_k h) | sᵀh | (W s)ᵀh   [B, S]
//!   a_t   = softmax(e_t masked at padding); c_t = Σ_j a_tj h_j                           [B, Dk]
//!   s_t   = RNN([tgt_emb(y_{t-1}) ; c_t], s_{t-1})        input feeding                  [B, H]
//!   logits_t = out_proj(dropout([s_t ; c_t]))                                            [B, V]
//! without attention (same encoder and bridge; the decoder sees only s_0):
//!   s_t   = RNN(tgt_emb(y_{t-1}), s_{t-1});  logits_t = out_proj(dropout(s_t))
//! ```
//!
//! One file per part: `encoder.rs` (embeddings and the recurrent encoder), `bridge.rs` (the initial
//! decoder state), `decoder.rs` (the recurrent decoder with its attention, the output projection,
//! and incremental decoding). With one decoder layer and a 1-layer bi-GRU this is exactly the model
//! of `seq2seq_bench.py` among the PyTorch peers (same parameter count). Additive attention runs its
//! fused step; [`RnnSeq2Seq::set_fused`] switches every attention step to the plain layer ops, the
//! oracle it is tested against.

mod bridge;
mod decoder;
mod encoder;

use super::source_wrap::SourceWrap;
use super::{Decoding, Seq2Seq};
use crate::attention::{AdditiveAttention, MultiplicativeAttention, StepAttention};
use crate::config::{AttentionScore, Cell, Config, InputActivation, ModelConfig};
use crate::data::batcher::Batch;
use crate::nn::rnn::{CellKind, RnnConfig};
use crate::nn::{Dropout, Embedding, Params};
use anyhow::{bail, Result};
use bridge::Bridge;
use decoder::{Memory, RnnDecoder, State};
use encoder::RnnEncoder;
use tensor::{Rng, Var};

/// An RNN encoder-decoder (see the module doc).
pub struct RnnSeq2Seq {
    params: Params,
    encoder: RnnEncoder,
    bridge: Bridge,
    decoder: RnnDecoder,
    tgt_vocab: usize,
    /// `<s>` / `</s>` around every source (`source_bos`, `source_eos`).
    wrap: SourceWrap,
}

impl RnnSeq2Seq {
    /// Builds the model a config describes, initialised from `seed` as PyTorch would
    /// (embeddings N(0,1); recurrent and linear weights U(±1/√fan)). Parameters are registered,
    /// and drawn from the generator, in the PyTorch peer's order: embeddings, encoder, bridge,
    /// attention, decoder, output projection.
    pub fn new(
        config: &Config,
        src_vocab: usize,
        tgt_vocab: usize,
        seed: u64,
    ) -> Result<RnnSeq2Seq> {
        let ModelConfig::Rnn(m) = &config.model else {
            bail!(
                "model.kind = {:?} is not an RNN encoder-decoder",
                config.model.kind().name()
            );
        };
        let mut rng = Rng::new(seed);
        let mut params = Params::new();
        let kind = match m.cell {
            Cell::Lstm => CellKind::Lstm,
            Cell::Gru => CellKind::Gru,
        };
        let (e, h, hd) = (m.embedding, m.hidden, m.decoder_hidden());
        let dropout = Dropout::new(m.dropout)?;
        let src_emb = Embedding::new(&mut params, "src_emb", src_vocab, e, None, &mut rng)?;
        let tgt_emb = Embedding::new(&mut params, "tgt_emb", tgt_vocab, e, None, &mut rng)?;
        let enc_cfg = RnnConfig {
            input_size: e,
            hidden_size: h,
            num_layers: m.encoder_layers,
            bidirectional: m.bidirectional,
            dropout: m.dropout,
        };
        let encoder = RnnEncoder::new(&mut params, src_emb, kind, enc_cfg, dropout, &mut rng)?;
        let dk = encoder.output_size();
        let bridge = Bridge::new(
            &mut params,
            m.decoder_init,
            dk,
            kind,
            (m.decoder_layers, hd),
            &mut rng,
        );
        let attention: Option<Box<dyn StepAttention>> = match m.attention {
            AttentionScore::Additive => Some(Box::new(AdditiveAttention::new(
                &mut params,
                "attn",
                hd,
                dk,
                m.attention_size,
                &mut rng,
            ))),
            AttentionScore::Dot => Some(Box::new(MultiplicativeAttention::dot())),
            AttentionScore::General => Some(Box::new(MultiplicativeAttention::general(
                &mut params,
                "attn",
                hd,
                dk,
                &mut rng,
            ))),
            AttentionScore::None => None,
        };
        let mut decoder = RnnDecoder::new(
            &mut params,
            tgt_emb,
            kind,
            attention,
            (m.decoder_layers, hd, dk),
            tgt_vocab,
            dropout,
            &mut rng,
        );
        decoder.input_relu = m.decoder_input_activation == InputActivation::Relu;
        Ok(RnnSeq2Seq {
            params,
            encoder,
            bridge,
            decoder,
            tgt_vocab,
            wrap: SourceWrap {
                bos: m.source_bos,
                eos: m.source_eos,
            },
        })
    }

    /// Chooses the attention's fast step (`true`, the default: fused for additive attention) or
    /// its plain layer ops. Both compute the same function; the plain path is the oracle the fast
    /// one is tested against.
    pub fn set_fused(&mut self, fused: bool) {
        self.decoder.fused = fused;
    }

    /// Encodes `src [B, S]` (wrapped in `<s>` / `</s>` where the model reads them so): the
    /// decoder's memory of the annotations `[B, S, Dk]` and its initial states, one `[B, H]` per
    /// decoder layer.
    fn encode(
        &self,
        src: &[u32],
        src_len: &[usize],
        s: usize,
        rng: Option<&mut Rng>,
    ) -> Result<(Memory, Vec<State>)> {
        let (src, src_len, s) = self.wrap.batch(src, src_len, s);
        let enc = self.encoder.forward(&src, &src_len, s, rng)?;
        let memory = self.decoder.memory(enc.annotations, &src_len, s);
        Ok((memory, self.bridge.forward(&enc.finals)))
    }
}

impl Seq2Seq for RnnSeq2Seq {
    fn params(&self) -> &Params {
        &self.params
    }

    fn tgt_vocab(&self) -> usize {
        self.tgt_vocab
    }

    fn logits(&self, batch: &Batch, mut rng: Option<&mut Rng>) -> Var {
        let (memory, states) = self
            .encode(
                &batch.src,
                &batch.src_len,
                batch.src_max,
                rng.as_deref_mut(),
            )
            .expect("batches are validated by the batcher");
        self.decoder.forward(
            &batch.tgt_in,
            &batch.tgt_len,
            batch.tgt_max,
            &memory,
            states,
            rng,
        ) // [B·T, V]
    }

    fn begin<'a>(
        &'a self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'a> {
        let (memory, states) = self
            .encode(src, src_len, src_max, None)
            .expect("inputs validated by the caller");
        Box::new(self.decoder.begin(memory, states))
    }

    fn encoder_input(&self, ids: &[u32]) -> Vec<u32> {
        self.wrap.tokens(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::StepOutput;
    use crate::train::optimizer::{Adam, AdamConfig};
    use tensor::Tensor;

    fn model(seed: u64) -> RnnSeq2Seq {
        let sets: Vec<String> = [
            "model.rnn.attention=\"additive\"",
            "model.rnn.embedding=6",
            "model.rnn.hidden=5",
            "model.rnn.decoder_hidden=10",
            "model.rnn.attention_size=7",
            "model.rnn.dropout=0.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cfg = Config::load(None, &sets).expect("config");
        RnnSeq2Seq::new(&cfg, 16, 14, seed).expect("model")
    }

    /// Three sentences of different lengths, so that source padding is masked.
    fn batch() -> Batch {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = vec![
            (vec![4, 5, 6, 7, 8], vec![8, 9, 10]),
            (vec![11, 4], vec![5, 6, 7, 12, 4]),
            (vec![9], vec![6]),
        ];
        let refs: Vec<(&[u32], &[u32])> = pairs
            .iter()
            .map(|(s, t)| (s.as_slice(), t.as_slice()))
            .collect();
        Batch::new(&refs, vec![0, 1, 2])
    }

    /// Logits and every parameter's gradient of a label-smoothed loss, with the chosen path.
    fn logits_and_grads(m: &mut RnnSeq2Seq, fused: bool, b: &Batch) -> (Tensor, Vec<Tensor>) {
        m.set_fused(fused);
        m.params().zero_grad();
        let logits = m.logits(b, None);
        logits.cross_entropy(&b.tgt_out, Some(0), 0.1).backward();
        let grads = m
            .params()
            .vars()
            .iter()
            .map(|p| p.grad().expect("every parameter gets a gradient"))
            .collect();
        (logits.to_tensor(), grads)
    }

    #[test]
    fn fused_attention_equals_the_plain_layers() {
        let b = batch();
        let mut m = model(3);
        let (lf, gf) = logits_and_grads(&mut m, true, &b);
        let (lp, gp) = logits_and_grads(&mut m, false, &b);
        assert!(
            lf.max_abs_diff(&lp) < 1e-5,
            "logits differ by {}",
            lf.max_abs_diff(&lp)
        );
        for ((name, _), (f, p)) in m.params().iter().zip(gf.iter().zip(&gp)) {
            let scale = p.data().iter().fold(1e-3f32, |a, x| a.max(x.abs()));
            assert!(
                f.max_abs_diff(p) <= 1e-4 * scale,
                "{name}: gradients differ by {} (scale {scale})",
                f.max_abs_diff(p)
            );
        }
        // Incremental decoding: logits, weights and raw scores at every step.
        let steps = |fused: bool, m: &mut RnnSeq2Seq| {
            m.set_fused(fused);
            tensor::no_grad(|| {
                let mut dec = m.begin(&b.src, &b.src_len, b.src_max);
                (0..4)
                    .map(|t| dec.step(&[1 + t, 5 + t, 7]))
                    .collect::<Vec<StepOutput>>()
            })
        };
        let (fs, ps) = (steps(true, &mut m), steps(false, &mut m));
        for (f, p) in fs.iter().zip(&ps) {
            assert!(f.logits.max_abs_diff(&p.logits) < 1e-5);
            let (fw, pw) = (
                f.weights.as_ref().expect("w"),
                p.weights.as_ref().expect("w"),
            );
            assert!(fw.max_abs_diff(pw) < 1e-6);
            let (fe, pe) = (f.scores.as_ref().expect("e"), p.scores.as_ref().expect("e"));
            assert!(fe.max_abs_diff(pe) < 1e-5);
            // Padded source positions get exactly zero weight.
            assert!(fw.data()[5 + 2..10].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn training_with_fused_and_plain_paths_gives_the_same_losses() {
        let b = batch();
        let run = |fused: bool| {
            let mut m = model(11);
            m.set_fused(fused);
            let mut opt = Adam::new(m.params().vars(), AdamConfig::default());
            (0..4)
                .map(|_| {
                    m.params().zero_grad();
                    let loss = m.logits(&b, None).cross_entropy(&b.tgt_out, Some(0), 0.0);
                    loss.backward();
                    opt.step(1e-2);
                    loss.item()
                })
                .collect::<Vec<f32>>()
        };
        let (f, p) = (run(true), run(false));
        for (a, c) in f.iter().zip(&p) {
            assert!((a - c).abs() < 1e-5, "losses {f:?} vs {p:?}");
        }
        assert!(f[3] < f[0], "the loss goes down: {f:?}");
    }
}
