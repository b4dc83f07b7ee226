//! The captioner: a CNN grid encoder and an LSTM decoder with additive attention over the grid
//! cells — Show, Attend and Tell (Xu et al. 2015, "soft" deterministic attention, §4.2).
//!
//! ```text
//! g      = cnn(image)                                   grid of CNN cells        [B, S, D]
//! g      = g + γ·selfattn(g)         (caption.self_attention only; γ starts at 0)
//! a      = g + pos                                      grid of annotations      [B, S, D]
//! h₀, c₀ = tanh(W_h mean_i a_i), tanh(W_c mean_i a_i)   initial LSTM state (§3.1.2) [B, H]
//! step t = 1..T (input y_{t−1}, y₀ = <s>):
//!   e_ti = vᵀ tanh(W_q h_{t−1} + W_k a_i + b_k)         additive attention scores  [B, S]
//!   α_t  = softmax_i(e_t);  z_t = Σ_i α_ti a_i          weights, context          [B, D]
//!   h_t, c_t = LSTM([E y_{t−1} ; z_t], h_{t−1}, c_{t−1})
//!   logits_t = W_o dropout([h_t ; z_t])                                           [B, V]
//! loss = cross-entropy(logits, y) + λ Σ_i (1 − Σ_t α_ti)²   (doubly stochastic, §4.2.1)
//! ```
//!
//! The attention is the translator's [`AdditiveAttention`] and runs its fused
//! [`step`](StepAttention::step), whose weights are values; only a loss with λ > 0, which
//! differentiates the weights, runs the plain [`step_plain`](StepAttention::step_plain).
//!
//! The optional [`ImageSelfAttention`] block registers its parameters after all the others, so
//! that a captioner with the block starts from the same weights as one without it and, its `γ`
//! being 0, computes the same function until training moves `γ`;
//! [`self_attention_maps`](Captioner::self_attention_maps) returns its maps.
//!
//! Decoding reuses the translation search ([`crate::search`]) through [`ImageRows`], which presents
//! a set of images as a [`Seq2Seq`] model whose "source sentence" of row r names an image.

use super::cnn::CnnEncoder;
use super::CaptionError;
use crate::attention::{AdditiveAttention, ImageSelfAttention, StepAttention};
use crate::config::{Config, ModelConfig};
use crate::data::batcher::Batch;
use crate::models::{Decoding, Seq2Seq, StepOutput};
use crate::nn::{Dropout, Embedding, Linear, LstmCell, Params};
use crate::search::{beam_search, greedy, BeamConfig, Hypothesis};
use tensor::{Rng, Tensor, Var};

/// The captioning model (see the module doc).
pub struct Captioner {
    params: Params,
    cnn: CnnEncoder,
    /// Self-attention over the CNN's cells (`caption.self_attention`).
    self_attention: Option<ImageSelfAttention>,
    /// Word embeddings `emb.weight [V, E]`.
    emb: Embedding,
    init_h: Linear,
    init_c: Linear,
    attention: AdditiveAttention,
    cell: LstmCell,
    out_proj: Linear,
    /// Before the output projection.
    dropout: Dropout,
    vocab: usize,
}

/// Decoder state for a set of rows: the annotations, their projected keys, and `h`, `c`.
struct State {
    /// `[rows, S, D]`
    feats: Var,
    /// `[rows, S, A]`
    keys: Var,
    h: Var,
    c: Var,
}

/// What the teacher-forced forward pass returns.
pub struct Forward {
    /// `[B·T, V]`, rows in `tgt_out` order.
    pub logits: Var,
    /// Attention weights `[B, T, S]`, on the tape only when the forward pass was asked to
    /// differentiate them.
    pub weights: Var,
}

impl Captioner {
    /// Builds the captioner a config describes for a caption vocabulary of `vocab` words.
    /// Sizes: `model.captioner.embedding` (E), `hidden` (H), `attention_size` (A),
    /// `caption.conv_channels` (D = the last), `caption.channels` and image size (the grid).
    pub fn new(config: &Config, vocab: usize, seed: u64) -> Result<Captioner, CaptionError> {
        let c = &config.caption;
        c.validate()?;
        let ModelConfig::Captioner(m) = &config.model else {
            return Err(CaptionError::Config(format!(
                "model.kind = {:?} is not an image captioner",
                config.model.kind().name()
            )));
        };
        let mut rng = Rng::new(seed);
        let mut params = Params::new();
        let cnn = CnnEncoder::new(
            &mut params,
            c.channels,
            &c.conv_channels,
            c.grid(),
            &mut rng,
        );
        let (e, h, d) = (m.embedding, m.hidden, cnn.feature_size());
        let invalid = |e: &dyn std::error::Error| CaptionError::Config(e.to_string());
        let dropout = Dropout::new(m.dropout).map_err(|e| invalid(&e))?;
        let emb = Embedding::new(&mut params, "emb", vocab, e, None, &mut rng)
            .map_err(|e| invalid(&e))?;
        let init_h = Linear::new(&mut params, "init_h", d, h, true, &mut rng);
        let init_c = Linear::new(&mut params, "init_c", d, h, true, &mut rng);
        let attention =
            AdditiveAttention::new(&mut params, "attn", h, d, m.attention_size, &mut rng);
        let cell = LstmCell::new(&mut params, "decoder", e + d, h, &mut rng);
        let out_proj = Linear::new(&mut params, "out_proj", h + d, vocab, true, &mut rng);
        let self_attention = c.self_attention.then(|| {
            ImageSelfAttention::new(
                &mut params,
                "cnn.self_attn",
                d,
                c.self_attention_size,
                &mut rng,
            )
        });
        Ok(Captioner {
            params,
            cnn,
            self_attention,
            emb,
            init_h,
            init_c,
            attention,
            cell,
            out_proj,
            dropout,
            vocab,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Caption vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Height and width of the attention grid.
    pub fn grid(&self) -> (usize, usize) {
        self.cnn.grid()
    }

    /// The image self-attention block, when the config asks for one.
    pub fn self_attention(&self) -> Option<&ImageSelfAttention> {
        self.self_attention.as_ref()
    }

    /// The self-attention block's maps of `images [N, C, H, W]`: `β [N, S, S]`, where `β[n, i, j]`
    /// is how much grid cell `i` of image `n` looks at cell `j` (`S = gh·gw` cells, row-major: cell
    /// `r·gw + c` is row `r`, column `c`; every row sums to 1). `None` without the block.
    pub fn self_attention_maps(&self, images: &Tensor) -> Option<Tensor> {
        let block = self.self_attention.as_ref()?;
        let cells = tensor::no_grad(|| self.cnn.cells(&Var::constant(images.clone())));
        let maps = block
            .maps(&cells.into_tensor())
            .expect("the grid's feature size is the block's");
        Some(maps)
    }

    /// The decoder's annotations of `images [B, C, H, W]`: the CNN's cells, through the
    /// self-attention block if there is one, plus the cell embeddings → `[B, S, D]`.
    pub fn encode(&self, images: &Tensor) -> Var {
        let cells = self.cnn.cells(&Var::constant(images.clone())); // [B, S, D]
        let cells = match &self.self_attention {
            Some(block) => block
                .forward(&cells)
                .expect("the grid's feature size is the block's"),
            None => cells,
        };
        self.cnn.add_positions(&cells)
    }

    /// Encodes `images [B, C, H, W]` into the decoder's initial state.
    fn start(&self, images: &Tensor) -> State {
        let feats = self.encode(images); // [B, S, D]
        let keys = self
            .attention
            .project_keys(&feats)
            .expect("the grid's feature size is the attention's key size");
        let mean = feats.mean_axis(1); // [B, D]
        State {
            h: self.init_h.forward(&mean).tanh(),
            c: self.init_c.forward(&mean).tanh(),
            feats,
            keys,
        }
    }

    /// One decoder step: `y [B, E]` (embedded previous word) → logits `[B, V]`, weights `[B, S]`
    /// (on the tape only with `weights_on_tape`, through the plain attention path).
    fn step(
        &self,
        st: &mut State,
        y: &Var,
        rng: Option<&mut Rng>,
        weights_on_tape: bool,
    ) -> (Var, Var) {
        let (z, alpha) = if weights_on_tape {
            let (z, alpha, _) = self
                .attention
                .step_plain(&st.h, &st.keys, &st.feats, None)
                .expect("shapes are fixed by the model");
            (z, alpha)
        } else {
            let att = self
                .attention
                .step(&st.h, &st.keys, &st.feats, None)
                .expect("shapes are fixed by the model");
            (att.context, Var::constant(att.weights))
        }; // z [B, D], α [B, S]
        let (h, c) = self
            .cell
            .step(&Var::concat(&[y.clone(), z.clone()], -1), &st.h, &st.c);
        (st.h, st.c) = (h, c);
        let out = Var::concat(&[st.h.clone(), z], -1); // [B, H + D]
        let out = self.dropout.forward(&out, rng);
        (self.out_proj.forward(&out), alpha)
    }

    /// Word embeddings of `ids` laid out as `shape` → `[shape..., E]`.
    fn embed(&self, ids: &[u32], shape: &[usize]) -> Var {
        self.emb
            .forward(ids, shape)
            .expect("caption ids come from the model's vocabulary")
    }

    /// Teacher-forced pass over `images [B, C, H, W]` and the batch's captions (`tgt_in`); the
    /// attention weights come back as values.
    pub fn forward(&self, images: &Tensor, batch: &Batch, rng: Option<&mut Rng>) -> Forward {
        self.teacher_forced(images, batch, rng, false)
    }

    /// [`forward`](Captioner::forward), with the attention weights on the tape when
    /// `weights_on_tape` (for a loss on them).
    fn teacher_forced(
        &self,
        images: &Tensor,
        batch: &Batch,
        mut rng: Option<&mut Rng>,
        weights_on_tape: bool,
    ) -> Forward {
        let (b, t) = (batch.batch_size, batch.tgt_max);
        let mut st = self.start(images);
        let y = self.embed(&batch.tgt_in, &[b, t]); // [B, T, E]
        let (mut logits, mut weights) = (Vec::with_capacity(t), Vec::with_capacity(t));
        for step in 0..t {
            let (l, a) = self.step(
                &mut st,
                &y.select(1, step),
                rng.as_deref_mut(),
                weights_on_tape,
            );
            logits.push(l.reshape(&[b, 1, self.vocab]));
            weights.push(a.reshape(&[b, 1, a.dim(1)]));
        }
        Forward {
            logits: Var::concat(&logits, 1).reshape(&[b * t, self.vocab]),
            weights: Var::concat(&weights, 1),
        }
    }

    /// Training loss: mean cross-entropy per caption token plus `lambda` times the doubly
    /// stochastic penalty `mean_b Σ_i (1 − Σ_{t < len_b} α_bti)²`. Returns (loss, cross-entropy).
    pub fn loss(
        &self,
        images: &Tensor,
        batch: &Batch,
        lambda: f32,
        rng: Option<&mut Rng>,
    ) -> (Var, f32) {
        let f = self.teacher_forced(images, batch, rng, lambda != 0.0);
        let ce = f
            .logits
            .cross_entropy(&batch.tgt_out, Some(crate::data::tokenizer::PAD), 0.0);
        let ce_value = ce.item();
        if lambda == 0.0 {
            return (ce, ce_value);
        }
        let (b, t) = (batch.batch_size, batch.tgt_max);
        // steps [B, T, 1]: 1 at real steps, 0 at padding.
        let steps: Vec<f32> = (0..b * t)
            .map(|i| f32::from(u8::from(i % t < batch.tgt_len[i / t])))
            .collect();
        let total = f
            .weights
            .mul(&Var::constant(Tensor::from_vec(steps, &[b, t, 1])))
            .sum_axis(1); // [B, S]
        let penalty = total.neg().add_scalar(1.0).square().sum_axis(1).mean_all();
        (ce.add(&penalty.scale(lambda)), ce_value)
    }
}

/// Incremental decoding of [`Captioner`] for the shared search.
struct CaptionDecoding<'a> {
    model: &'a Captioner,
    state: State,
}

impl Decoding for CaptionDecoding<'_> {
    fn step(&mut self, prev: &[u32]) -> StepOutput {
        let y = self.model.embed(prev, &[prev.len()]); // [rows, E]
        let (logits, alpha) = self.model.step(&mut self.state, &y, None, false);
        StepOutput {
            logits: logits.to_tensor(),
            weights: Some(alpha.to_tensor()),
            scores: None,
        }
    }

    fn select(&mut self, rows: &[usize]) {
        let pick = |v: &Var| Var::constant(v.value().select_rows(rows));
        let st = &mut self.state;
        (st.feats, st.keys, st.h, st.c) =
            (pick(&st.feats), pick(&st.keys), pick(&st.h), pick(&st.c));
    }
}

/// A captioner and a set of images seen as a [`Seq2Seq`] model, so that greedy and beam search run
/// unchanged: the source of row r is `S` (grid cells) copies of an image index, so every source
/// "token" of the row names its image and the attention rows cover all `S` cells.
pub struct ImageRows<'a> {
    pub model: &'a Captioner,
    /// `[N, C, H, W]`
    pub images: &'a Tensor,
}

/// Images decoded together in one search batch.
const SEARCH_BATCH: usize = 64;

impl ImageRows<'_> {
    /// The images that rows of `src` (`[rows, src_max]`) name.
    fn pick(&self, src: &[u32], src_max: usize) -> Tensor {
        let rows: Vec<usize> = src.chunks(src_max.max(1)).map(|r| r[0] as usize).collect();
        self.images.select_rows(&rows)
    }

    /// Captions every image (greedy when `beam == 1`), at most `max_len` words each; one best
    /// hypothesis per image, its attention over the `S` grid cells per emitted word (EOS included).
    pub fn caption_all(&self, beam: usize, alpha: f32, max_len: usize) -> Vec<Hypothesis> {
        let (gh, gw) = self.model.grid();
        let s = gh * gw;
        let n = self.images.dim(0);
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(SEARCH_BATCH) {
            let rows = SEARCH_BATCH.min(n - start);
            let src: Vec<u32> = (start..start + rows)
                .flat_map(|i| std::iter::repeat_n(i as u32, s))
                .collect();
            let src_len = vec![s; rows];
            if beam <= 1 {
                out.extend(greedy(self, &src, &src_len, s, max_len));
            } else {
                let cfg = BeamConfig {
                    beam,
                    alpha,
                    max_len,
                    n_best: 1,
                };
                out.extend(
                    beam_search(self, &src, &src_len, s, cfg)
                        .into_iter()
                        .map(|hyps| hyps.into_iter().next().unwrap_or_else(empty)),
                );
            }
        }
        out
    }
}

/// The hypothesis of an image for which the search finished nothing.
fn empty() -> Hypothesis {
    Hypothesis {
        ids: vec![],
        log_prob: f32::NEG_INFINITY,
        score: f32::NEG_INFINITY,
        attention: vec![],
        scores: vec![],
    }
}

impl Seq2Seq for ImageRows<'_> {
    fn params(&self) -> &Params {
        &self.model.params
    }

    fn logits(&self, batch: &Batch, dropout: Option<&mut Rng>) -> Var {
        let images = self.pick(&batch.src, batch.src_max);
        self.model.forward(&images, batch, dropout).logits
    }

    fn begin<'b>(
        &'b self,
        src: &[u32],
        _src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'b> {
        Box::new(CaptionDecoding {
            model: self.model,
            state: self.model.start(&self.pick(src, src_max)),
        })
    }

    fn tgt_vocab(&self) -> usize {
        self.model.vocab
    }
}
