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
//! With one decoder layer and a 1-layer bi-GRU this is exactly the model of `seq2seq_bench.py` in
//! `../shared/peers` (same parameter count). The output projection runs once over all steps in
//! training; the recurrence is the engine's fused cell op, one step at a time when attention feeds
//! back into it, over the whole sequence at once when it does not. Additive attention runs as the
//! engine's fused step (`tensor::ops::additive_step`: scores, masked softmax and context in one op
//! with a hand-written backward); the plain layer ops remain the oracle ([`RnnSeq2Seq::set_fused`]).

use super::{Decoding, Seq2Seq, StepOutput};
use crate::attention::mask::padding_mask;
use crate::attention::{AdditiveAttention, MultiplicativeAttention, StepAttention};
use crate::config::{AttentionScore, Cell, Config, ModelConfig};
use crate::data::batcher::Batch;
use crate::nn::rnn::{CellKind, Rnn, RnnConfig, RnnWeights};
use crate::nn::{Linear, Params};
use anyhow::{bail, Result};
use tensor::ops::additive_step::additive_step;
use tensor::{Rng, Tensor, Var};

/// An RNN encoder-decoder (see the module doc).
pub struct RnnSeq2Seq {
    params: Params,
    kind: CellKind,
    src_emb: Var,
    tgt_emb: Var,
    encoder: Rnn,
    bridge: Linear,
    attention: Option<Box<dyn StepAttention>>,
    /// Handles to the additive layer's `W_q` and `v` for the fused step (the same parameters as
    /// `attention`); `None` for the other attentions.
    additive: Option<AdditiveWeights>,
    /// Run additive attention through the engine's fused step (default) rather than the plain
    /// layer ops, which stay as the oracle ([`RnnSeq2Seq::set_fused`]).
    fused: bool,
    /// Decoder layers (`decoder.weight_ih_l{k}` …); layer 0 reads `[emb ; context]` with attention.
    decoder: Vec<RnnWeights>,
    out_proj: Linear,
    dropout: f32,
    embedding: usize,
    dec_hidden: usize,
    tgt_vocab: usize,
}

impl RnnSeq2Seq {
    /// Builds the model a config describes, initialised from `seed` as PyTorch would
    /// (embeddings N(0,1); recurrent and linear weights U(±1/√fan)).
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
        let dk = m.annotation_size();
        let src_emb = params.normal("src_emb.weight", &[src_vocab, e], 1.0, &mut rng);
        let tgt_emb = params.normal("tgt_emb.weight", &[tgt_vocab, e], 1.0, &mut rng);
        let enc_cfg = RnnConfig {
            input_size: e,
            hidden_size: h,
            num_layers: m.encoder_layers,
            bidirectional: m.bidirectional,
            dropout: m.dropout,
        };
        let encoder = Rnn::new(&mut params, "encoder", kind, enc_cfg, &mut rng)?;
        let bridge = Linear::new(
            &mut params,
            "bridge",
            dk,
            m.decoder_layers * hd,
            true,
            &mut rng,
        );
        let mut additive = None;
        let attention: Option<Box<dyn StepAttention>> = match m.attention {
            AttentionScore::Additive => {
                let layer =
                    AdditiveAttention::new(&mut params, "attn", hd, dk, m.attention_size, &mut rng);
                additive = Some(AdditiveWeights {
                    w_q: layer.w_q.weight.clone(),
                    v: layer.v.weight.clone(),
                });
                Some(Box::new(layer))
            }
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
        let ctx = if attention.is_some() { dk } else { 0 };
        let decoder = (0..m.decoder_layers)
            .map(|l| {
                let input = if l == 0 { e + ctx } else { hd };
                RnnWeights::new(
                    &mut params,
                    "decoder",
                    &format!("_l{l}"),
                    kind,
                    input,
                    hd,
                    &mut rng,
                )
            })
            .collect();
        let out_proj = Linear::new(&mut params, "out_proj", hd + ctx, tgt_vocab, true, &mut rng);
        Ok(RnnSeq2Seq {
            params,
            kind,
            src_emb,
            tgt_emb,
            encoder,
            bridge,
            attention,
            additive,
            fused: true,
            decoder,
            out_proj,
            dropout: m.dropout,
            embedding: e,
            dec_hidden: hd,
            tgt_vocab,
        })
    }

    /// Encodes `src [B, S]`: annotations `[B, S, Dk]` and the initial decoder states, one `[B, H]`
    /// per decoder layer (h, and a zero c for an LSTM).
    fn encode(
        &self,
        src: &[u32],
        src_len: &[usize],
        s: usize,
        mut rng: Option<&mut Rng>,
    ) -> Result<(Var, Vec<State>)> {
        let b = src_len.len();
        let mut x = self
            .src_emb
            .gather_rows(src)
            .reshape(&[b, s, self.embedding]);
        if let Some(r) = rng.as_deref_mut() {
            x = x.dropout(self.dropout, r);
        }
        let enc = self.encoder.forward(&x, src_len, None, rng)?;
        let cfg = self.encoder.config();
        let dirs = self.encoder.directions();
        // Final states of the top layer, [B, D·H]: torch h_n[-D..] concatenated.
        let top = (cfg.num_layers - 1) * dirs;
        let finals: Vec<Var> = (0..dirs).map(|d| enc.state.h.select(0, top + d)).collect();
        let last = if dirs == 1 {
            finals[0].clone()
        } else {
            Var::concat(&finals, -1)
        };
        let s0 = self.bridge.forward(&last).tanh(); // [B, L·H]
        let states = (0..self.decoder.len())
            .map(|l| State {
                h: s0.narrow(1, l * self.dec_hidden, self.dec_hidden),
                c: (self.kind == CellKind::Lstm)
                    .then(|| Var::constant(Tensor::zeros(&[b, self.dec_hidden]))),
            })
            .collect();
        Ok((enc.output, states))
    }

    /// One decoder step through every layer: `x [B, In]` → top output `[B, H]`; updates `states`.
    fn decoder_step(&self, xp0: Var, states: &mut [State], rng: &mut Option<&mut Rng>) -> Var {
        let b = xp0.dim(0);
        let ones = vec![1; b];
        let mut xp = xp0;
        for (l, w) in self.decoder.iter().enumerate() {
            if l > 0 {
                xp = xp.linear(&w.weight_ih, Some(&w.bias_ih));
            }
            let g = xp.dim(-1);
            let st = &mut states[l];
            let packed = Var::recurrence(
                self.kind,
                &xp.reshape(&[b, 1, g]),
                &st.h,
                st.c.as_ref(),
                &w.weight_hh,
                &w.bias_hh,
                &ones,
                false,
            );
            let h = self.dec_hidden;
            st.h = packed.narrow(1, 1, 1).reshape(&[b, h]);
            if st.c.is_some() {
                st.c = Some(packed.narrow(1, 2, 1).reshape(&[b, h]));
            }
            xp = st.h.clone();
            if l + 1 < self.decoder.len() {
                if let Some(r) = rng.as_deref_mut() {
                    xp = xp.dropout(self.dropout, r);
                }
            }
        }
        xp
    }

    /// Chooses the fused additive-attention step (`true`, the default) or the plain layer ops.
    /// Both compute the same function; the plain path is the oracle the fused one is tested against.
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// One attention step of the decoder: `query [B, Hd]` against `keys` (from `project_keys`) and
    /// the annotations `ann [B, S, Dk]` → `context [B, Dk]`, weights `[B, S]`, raw scores `[B, S]`.
    fn attend(
        &self,
        attn: &dyn StepAttention,
        query: &Var,
        keys: &Var,
        ann: &Var,
        mask: &Tensor,
    ) -> Attended {
        match (&self.additive, self.fused) {
            (Some(w), true) => {
                let q = query.linear(&w.w_q, None); // W_q s: [B, A]
                let out = additive_step(&q, keys, &w.v, ann, Some(mask));
                Attended {
                    context: out.context,
                    weights: out.weights,
                    scores: out.scores,
                }
            }
            _ => {
                let (context, weights, scores) = attn
                    .step_with_scores(query, keys, ann, Some(mask))
                    .expect("shapes are fixed by the model"); // [B, Dk], [B, S], [B, S]
                Attended {
                    context,
                    weights: weights.to_tensor(),
                    scores: scores.to_tensor(),
                }
            }
        }
    }

    /// Layer 0's input weights split into the embedding and the context columns.
    fn split_input_weights(&self) -> (Var, Var) {
        let w = &self.decoder[0].weight_ih;
        let e = self.embedding;
        (w.narrow(1, 0, e), w.narrow(1, e, w.dim(1) - e))
    }
}

/// `W_q [A, Hd]` and `v [1, A]` of the additive attention layer (shared handles).
struct AdditiveWeights {
    w_q: Var,
    v: Var,
}

/// What one attention step gives the decoder.
struct Attended {
    /// `[B, Dk]`, on the tape.
    context: Var,
    /// `[B, S]`
    weights: Tensor,
    /// `[B, S]`, before masking.
    scores: Tensor,
}

/// Recurrent state of one decoder layer, `[B, H]` each.
#[derive(Clone)]
struct State {
    h: Var,
    c: Option<Var>,
}

impl Seq2Seq for RnnSeq2Seq {
    fn params(&self) -> &Params {
        &self.params
    }

    fn tgt_vocab(&self) -> usize {
        self.tgt_vocab
    }

    fn logits(&self, batch: &Batch, mut rng: Option<&mut Rng>) -> Var {
        let (b, s, t) = (batch.batch_size, batch.src_max, batch.tgt_max);
        let (ann, mut states) = self
            .encode(&batch.src, &batch.src_len, s, rng.as_deref_mut())
            .expect("batches are validated by the batcher");
        let mut y = self
            .tgt_emb
            .gather_rows(&batch.tgt_in)
            .reshape(&[b, t, self.embedding]);
        if let Some(r) = rng.as_deref_mut() {
            y = y.dropout(self.dropout, r);
        }
        let hd = self.dec_hidden;
        let features = match &self.attention {
            None => {
                // The whole target sequence at once, layer by layer.
                let mut input = y;
                for (l, w) in self.decoder.iter().enumerate() {
                    if l > 0 {
                        if let Some(r) = rng.as_deref_mut() {
                            input = input.dropout(self.dropout, r);
                        }
                    }
                    let xp = input.linear(&w.weight_ih, Some(&w.bias_ih));
                    let st = &states[l];
                    let packed = Var::recurrence(
                        self.kind,
                        &xp,
                        &st.h,
                        st.c.as_ref(),
                        &w.weight_hh,
                        &w.bias_hh,
                        &batch.tgt_len,
                        false,
                    );
                    input = packed.narrow(1, 0, t);
                }
                input // [B, T, H]
            }
            Some(attn) => {
                let keys = attn
                    .project_keys(&ann)
                    .expect("annotation shape is fixed by the encoder");
                let mask = padding_mask(&batch.src_len, s).expect("lengths ≤ src_max");
                let (w_emb, w_ctx) = self.split_input_weights();
                // Embedding part of layer 0's input projection, for all steps at once: [B, T, G].
                let xp_emb = y.linear(&w_emb, Some(&self.decoder[0].bias_ih));
                let mut outs = Vec::with_capacity(t);
                for step in 0..t {
                    let query = &states[self.decoder.len() - 1].h;
                    let ctx = self
                        .attend(attn.as_ref(), query, &keys, &ann, &mask)
                        .context;
                    let xp0 = xp_emb.select(1, step).add(&ctx.linear(&w_ctx, None));
                    let top = self.decoder_step(xp0, &mut states, &mut rng);
                    outs.push(Var::concat(&[top, ctx], -1).reshape(&[b, 1, hd + ann.dim(-1)]));
                }
                Var::concat(&outs, 1) // [B, T, H + Dk]
            }
        };
        let mut features = features;
        if let Some(r) = rng {
            features = features.dropout(self.dropout, r);
        }
        let width = features.dim(-1);
        self.out_proj.forward(&features.reshape(&[b * t, width])) // [B·T, V]
    }

    fn begin<'a>(
        &'a self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'a> {
        let (ann, states) = self
            .encode(src, src_len, src_max, None)
            .expect("inputs validated by the caller");
        let keys = self
            .attention
            .as_ref()
            .map(|a| a.project_keys(&ann).expect("fixed shapes"));
        let mask = padding_mask(src_len, src_max).expect("lengths ≤ src_max");
        Box::new(RnnDecoding {
            model: self,
            ann,
            keys,
            mask,
            states,
            weights_ctx: self.attention.as_ref().map(|_| self.split_input_weights()),
        })
    }
}

/// Incremental decoding state of [`RnnSeq2Seq`].
struct RnnDecoding<'a> {
    model: &'a RnnSeq2Seq,
    /// `[rows, S, Dk]`
    ann: Var,
    /// Projected keys `[rows, S, ·]` (attention only).
    keys: Option<Var>,
    /// `[rows, S]`, 1 = padding.
    mask: Tensor,
    states: Vec<State>,
    /// Layer 0's input weights split (embedding columns, context columns).
    weights_ctx: Option<(Var, Var)>,
}

impl Decoding for RnnDecoding<'_> {
    fn step(&mut self, prev: &[u32]) -> StepOutput {
        let m = self.model;
        let y = m.tgt_emb.gather_rows(prev); // [rows, E]
        let l0 = &m.decoder[0];
        match (&m.attention, &self.keys, &self.weights_ctx) {
            (Some(attn), Some(keys), Some((w_emb, w_ctx))) => {
                let query = &self.states[m.decoder.len() - 1].h;
                let Attended {
                    context: ctx,
                    weights,
                    scores,
                } = m.attend(attn.as_ref(), query, keys, &self.ann, &self.mask);
                let xp0 = y
                    .linear(w_emb, Some(&l0.bias_ih))
                    .add(&ctx.linear(w_ctx, None));
                let top = m.decoder_step(xp0, &mut self.states, &mut None);
                let logits = m.out_proj.forward(&Var::concat(&[top, ctx], -1));
                StepOutput {
                    logits: logits.into_tensor(),
                    weights: Some(weights),
                    scores: Some(scores),
                }
            }
            _ => {
                let xp0 = y.linear(&l0.weight_ih, Some(&l0.bias_ih));
                let top = m.decoder_step(xp0, &mut self.states, &mut None);
                StepOutput {
                    logits: m.out_proj.forward(&top).into_tensor(),
                    weights: None,
                    scores: None,
                }
            }
        }
    }

    fn select(&mut self, rows: &[usize]) {
        let pick = |v: &Var| Var::constant(v.value().select_rows(rows));
        self.ann = pick(&self.ann);
        self.keys = self.keys.as_ref().map(pick);
        self.mask = self.mask.select_rows(rows);
        for st in &mut self.states {
            st.h = pick(&st.h);
            st.c = st.c.as_ref().map(pick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizer::{Adam, AdamConfig};

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
