//! The decoder of the RNN encoder-decoder: a stacked GRU/LSTM over the target embeddings, with or
//! without attention over the encoder's annotations, and the output projection.
//!
//! ```text
//! with attention, step t = 1..T (input y_{t-1}, y_0 = <s>):
//!   (c_t, a_t) = attention.step(s_{t-1}, h, mask)   query = top layer's state   [B, Dk], [B, S]
//!   s_t   = RNN([tgt_emb(y_{t-1}) ; c_t], s_{t-1})   input feeding               [B, H]
//!   logits_t = out_proj(dropout([s_t ; c_t]))                                    [B, V]
//! (tgt_emb(y) is max(0, tgt_emb(y)) where decoder_input_activation = "relu")
//! without attention (the decoder sees only s_0):
//!   s_t   = RNN(tgt_emb(y_{t-1}), s_{t-1});  logits_t = out_proj(dropout(s_t))
//! ```
//!
//! Layer 0's input projection `W_ih [G, E + Dk]` is split into its embedding and context columns,
//! so that the embedding part runs once over all target steps and only `W_ctx c_t` runs per step.
//! The recurrence is the engine's fused cell op, one step at a time when attention feeds back into
//! it, over the whole sequence at once when it does not. The attention's
//! [`step`](StepAttention::step) is its fast path (fused for additive attention);
//! [`RnnDecoder::fused`] switches to its plain path, the oracle.

use crate::attention::mask::padding_mask;
use crate::attention::{Attended, StepAttention};
use crate::models::{Decoding, StepInternals, StepOutput};
use crate::nn::rnn::{CellKind, RnnWeights};
use crate::nn::{Dropout, Embedding, Linear, Params};
use tensor::{Rng, Tensor, Var};

/// The decoder (see the module doc).
pub(super) struct RnnDecoder {
    /// `tgt_emb.weight [V, E]`.
    embedding: Embedding,
    kind: CellKind,
    attention: Option<Box<dyn StepAttention>>,
    /// Run the attention's fast step (`true`, the default) or its plain step.
    pub(super) fused: bool,
    /// ReLU on the input embeddings (`decoder_input_activation = "relu"`).
    pub(super) input_relu: bool,
    /// `decoder.weight_ih_l{k}` …; layer 0 reads `[emb ; context]` with attention.
    layers: Vec<RnnWeights>,
    /// `out_proj [V, H (+ Dk)]`.
    out_proj: Linear,
    /// On the embeddings, between layers, and before the output projection.
    dropout: Dropout,
    hidden: usize,
}

/// Recurrent state of one decoder layer, `[B, H]` each.
#[derive(Clone)]
pub(super) struct State {
    pub(super) h: Var,
    /// The cell state of an LSTM.
    pub(super) c: Option<Var>,
}

/// What the decoder attends to, prepared once per batch.
pub(super) struct Memory {
    /// Annotations `h [B, S, Dk]` (the attention's values).
    ann: Var,
    /// Projected keys `[B, S, ·]` (attention only).
    keys: Option<Var>,
    /// `[B, S]`, 1 = padding.
    mask: Tensor,
}

impl RnnDecoder {
    /// Registers the decoder's layers (`decoder.*`) and `out_proj.*` after the attention's
    /// parameters: `hidden` (H) per layer, `context` (Dk) the annotation size.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        params: &mut Params,
        embedding: Embedding,
        kind: CellKind,
        attention: Option<Box<dyn StepAttention>>,
        (layers, hidden, context): (usize, usize, usize),
        tgt_vocab: usize,
        dropout: Dropout,
        rng: &mut Rng,
    ) -> RnnDecoder {
        let ctx = if attention.is_some() { context } else { 0 };
        let e = embedding.dim();
        let layers = (0..layers)
            .map(|l| {
                let input = if l == 0 { e + ctx } else { hidden };
                RnnWeights::new(
                    params,
                    "decoder",
                    &format!("_l{l}"),
                    kind,
                    input,
                    hidden,
                    rng,
                )
            })
            .collect();
        let out_proj = Linear::new(params, "out_proj", hidden + ctx, tgt_vocab, true, rng);
        RnnDecoder {
            embedding,
            kind,
            attention,
            fused: true,
            input_relu: false,
            layers,
            out_proj,
            dropout,
            hidden,
        }
    }

    /// Annotations `[B, S, Dk]` of sources with lengths `src_len` padded to `src_max`, with their
    /// projected keys and padding mask.
    pub(super) fn memory(&self, ann: Var, src_len: &[usize], src_max: usize) -> Memory {
        let keys = self.attention.as_ref().map(|a| {
            a.project_keys(&ann)
                .expect("annotation shape is fixed by the encoder")
        });
        let mask = padding_mask(src_len, src_max).expect("lengths ≤ src_max");
        Memory { ann, keys, mask }
    }

    /// Teacher-forced logits `[B·T, V]` for `tgt_in [B, T]` (real lengths `tgt_len`), from the
    /// initial `states`; dropout draws from `rng` in training.
    pub(super) fn forward(
        &self,
        tgt_in: &[u32],
        tgt_len: &[usize],
        t: usize,
        memory: &Memory,
        mut states: Vec<State>,
        mut rng: Option<&mut Rng>,
    ) -> Var {
        let b = tgt_len.len();
        let y = self.embed(tgt_in, &[b, t]); // [B, T, E]
        let y = self.dropout.forward(&y, rng.as_deref_mut());
        let features = match (&self.attention, &memory.keys) {
            (Some(attn), Some(keys)) => {
                let (w_emb, w_ctx) = self.split_input_weights();
                // Embedding part of layer 0's input projection, for all steps at once: [B, T, G].
                let xp_emb = y.linear(&w_emb, Some(&self.layers[0].bias_ih));
                let width = self.hidden + memory.ann.dim(-1);
                let mut outs = Vec::with_capacity(t);
                for step in 0..t {
                    let (top, att) = self.attention_step(
                        attn.as_ref(),
                        keys,
                        memory,
                        xp_emb.select(1, step),
                        &w_ctx,
                        &mut states,
                        &mut rng,
                    );
                    outs.push(Var::concat(&[top, att.context], -1).reshape(&[b, 1, width]));
                }
                Var::concat(&outs, 1) // [B, T, H + Dk]
            }
            _ => {
                // The whole target sequence at once, layer by layer.
                let mut input = y;
                for (l, w) in self.layers.iter().enumerate() {
                    if l > 0 {
                        input = self.dropout.forward(&input, rng.as_deref_mut());
                    }
                    let xp = input.linear(&w.weight_ih, Some(&w.bias_ih)); // [B, T, G]
                    let st = &states[l];
                    let packed = Var::recurrence(
                        self.kind,
                        &xp,
                        &st.h,
                        st.c.as_ref(),
                        &w.weight_hh,
                        &w.bias_hh,
                        tgt_len,
                        false,
                    );
                    input = packed.narrow(1, 0, t);
                }
                input // [B, T, H]
            }
        };
        let features = self.dropout.forward(&features, rng);
        let width = features.dim(-1);
        self.out_proj.forward(&features.reshape(&[b * t, width])) // [B·T, V]
    }

    /// An incremental decoder over `memory`, starting from `states`.
    pub(super) fn begin(&self, memory: Memory, states: Vec<State>) -> RnnDecoding<'_> {
        RnnDecoding {
            decoder: self,
            weights_ctx: self.attention.as_ref().map(|_| self.split_input_weights()),
            memory,
            states,
            last: None,
        }
    }

    /// Target embeddings of `ids` laid out as `shape` → `[shape..., E]` (through a ReLU where
    /// `input_relu`).
    fn embed(&self, ids: &[u32], shape: &[usize]) -> Var {
        let y = self
            .embedding
            .forward(ids, shape)
            .expect("target ids come from the model's vocabulary");
        if self.input_relu {
            y.relu()
        } else {
            y
        }
    }

    /// One attention step and one step of the stack: the query is the top layer's state,
    /// `xp_emb [B, G]` layer 0's input projection of the embedded previous word, `w_ctx` its
    /// context columns. Returns the top layer's output `[B, H]` and the attention; updates `states`.
    #[allow(clippy::too_many_arguments)]
    fn attention_step(
        &self,
        attn: &dyn StepAttention,
        keys: &Var,
        memory: &Memory,
        xp_emb: Var,
        w_ctx: &Var,
        states: &mut [State],
        rng: &mut Option<&mut Rng>,
    ) -> (Var, Attended) {
        let query = &states[self.layers.len() - 1].h; // [B, H]
        let (ann, mask) = (&memory.ann, Some(&memory.mask));
        let att = if self.fused {
            attn.step(query, keys, ann, mask)
        } else {
            attn.step_plain(query, keys, ann, mask)
                .map(Attended::from_plain)
        }
        .expect("shapes are fixed by the model"); // context [B, Dk], weights [B, S]
        let xp0 = xp_emb.add(&att.context.linear(w_ctx, None)); // [B, G]
        (self.stack_step(xp0, states, rng), att)
    }

    /// One step through every layer: layer 0's projected input `xp0 [B, G]` → the top layer's
    /// output `[B, H]`; updates `states`.
    fn stack_step(&self, xp0: Var, states: &mut [State], rng: &mut Option<&mut Rng>) -> Var {
        let b = xp0.dim(0);
        let ones = vec![1; b];
        let h = self.hidden;
        let mut xp = xp0;
        for (l, w) in self.layers.iter().enumerate() {
            if l > 0 {
                xp = xp.linear(&w.weight_ih, Some(&w.bias_ih)); // [B, G]
            }
            let g = xp.dim(-1);
            let st = &mut states[l];
            // packed [B, 2 or 3, H]: output, h, (c)
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
            st.h = packed.narrow(1, 1, 1).reshape(&[b, h]);
            if st.c.is_some() {
                st.c = Some(packed.narrow(1, 2, 1).reshape(&[b, h]));
            }
            xp = st.h.clone();
            if l + 1 < self.layers.len() {
                xp = self.dropout.forward(&xp, rng.as_deref_mut());
            }
        }
        xp
    }

    /// Layer 0's input weights split into the embedding columns `[G, E]` and the context columns
    /// `[G, Dk]`.
    fn split_input_weights(&self) -> (Var, Var) {
        let w = &self.layers[0].weight_ih;
        let e = self.embedding.dim();
        (w.narrow(1, 0, e), w.narrow(1, e, w.dim(1) - e))
    }
}

/// Incremental decoding state of the RNN decoder for a set of rows.
pub(super) struct RnnDecoding<'a> {
    decoder: &'a RnnDecoder,
    /// `[rows, S, ·]`
    memory: Memory,
    states: Vec<State>,
    /// Layer 0's input weights split (embedding columns, context columns), attention only.
    weights_ctx: Option<(Var, Var)>,
    /// The last attention step's query state s_{t-1} `[rows, H]` and context `[rows, Dk]`.
    last: Option<(Var, Var)>,
}

impl Decoding for RnnDecoding<'_> {
    fn step(&mut self, prev: &[u32]) -> StepOutput {
        let d = self.decoder;
        let y = d.embed(prev, &[prev.len()]); // [rows, E]
        let l0 = &d.layers[0];
        match (&d.attention, &self.memory.keys, &self.weights_ctx) {
            (Some(attn), Some(keys), Some((w_emb, w_ctx))) => {
                let state = self.states[d.layers.len() - 1].h.clone();
                let (top, att) = d.attention_step(
                    attn.as_ref(),
                    keys,
                    &self.memory,
                    y.linear(w_emb, Some(&l0.bias_ih)),
                    w_ctx,
                    &mut self.states,
                    &mut None,
                );
                let logits = d
                    .out_proj
                    .forward(&Var::concat(&[top, att.context.clone()], -1)); // [rows, V]
                self.last = Some((state, att.context));
                StepOutput {
                    logits: logits.into_tensor(),
                    weights: Some(att.weights),
                    scores: Some(att.scores),
                }
            }
            _ => {
                let xp0 = y.linear(&l0.weight_ih, Some(&l0.bias_ih));
                let top = d.stack_step(xp0, &mut self.states, &mut None);
                StepOutput {
                    logits: d.out_proj.forward(&top).into_tensor(),
                    weights: None,
                    scores: None,
                }
            }
        }
    }

    fn select(&mut self, rows: &[usize]) {
        let pick = |v: &Var| Var::constant(v.value().select_rows(rows));
        let m = &mut self.memory;
        m.ann = pick(&m.ann);
        m.keys = m.keys.as_ref().map(pick);
        m.mask = m.mask.select_rows(rows);
        for st in &mut self.states {
            st.h = pick(&st.h);
            st.c = st.c.as_ref().map(pick);
        }
        self.last = self.last.as_ref().map(|(s, c)| (pick(s), pick(c)));
    }

    fn internals(&self) -> Option<StepInternals> {
        let (attn, keys) = (self.decoder.attention.as_ref()?, self.memory.keys.as_ref()?);
        let (state, context) = self.last.as_ref()?;
        Some(StepInternals {
            score: attn.name(),
            state: state.to_tensor(),
            query: attn.scored_query(state).to_tensor(),
            keys: keys.to_tensor(),
            v: attn.score_vector(),
            values: self.memory.ann.to_tensor(),
            context: context.to_tensor(),
        })
    }
}
