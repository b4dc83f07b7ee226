//! The blocks of `torch.nn.Transformer` (Vaswani et al. 2017, §3.1–3.3), with its parameter names:
//! an encoder layer (self-attention + feed-forward) and a decoder layer (causal self-attention +
//! cross-attention + feed-forward), each sublayer wrapped in a residual connection and a layer norm.
//!
//! ```text
//! FF(x)           = linear2(dropout(act(linear1(x))))          act = relu | gelu (erf form)
//! pre-norm  (norm_first = True):  x ← x + dropout(Sublayer(LN(x)))
//! post-norm (norm_first = False): x ← LN(x + dropout(Sublayer(x)))     (the 2017 paper)
//! encoder layer:  SA(·) with the source padding mask;  then FF          norm1, norm2
//! decoder layer:  causal SA(·);  then CA(·, memory) with the source padding mask;  then FF
//!                                                                       norm1, norm2, norm3
//! ```
//!
//! Shapes: `x [B, L, d]`, source padding `[B, S]` (1 = pad), attention weights `[B, H, L, S]`.
//! Names under `{prefix}.`: `self_attn.*`, `multihead_attn.*` (decoder), `linear1.{weight [ff, d],
//! bias}`, `linear2.{weight [d, ff], bias}`, `norm1.*`, `norm2.*`, `norm3.*` (decoder).

use crate::attention::{AttentionError, KvCache, KvMemory, MultiHeadAttention, StepMemory};
use crate::nn::{LayerNorm, Linear, Params};
use tensor::kernels::feed_forward::feed_forward;
use tensor::ops::unary::{gelu_inplace, relu_inplace};
use tensor::{Rng, Tensor, Var};

/// `nn.Transformer`'s `layer_norm_eps`.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The feed-forward activation, and where the layer norms sit (`model.transformer.activation`,
/// `model.transformer.norm`).
pub use crate::config::{Activation, NormPlacement};

/// Sizes and options shared by every layer of a stack.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec {
    pub d_model: usize,
    pub heads: usize,
    pub ff_size: usize,
    pub activation: Activation,
    pub norm: NormPlacement,
    /// Dropout after each sublayer and inside the feed-forward block.
    pub dropout: f32,
    /// Dropout on the attention weights.
    pub attention_dropout: f32,
}

/// How the attention sublayers compute their attention.
#[derive(Clone, Copy, Debug)]
pub enum AttentionPath<'a> {
    /// The plain layer ops, which also return the weights (pictures, explanations; the oracle).
    Weights,
    /// The fused flash-attention kernel, without weights (attention dropout, while training, drawn
    /// inside it). `src_len` holds the real source length of every batch row (the key lengths of
    /// the encoder self-attention and of the cross-attention).
    Fused { src_len: &'a [usize] },
}

impl AttentionPath<'_> {
    /// The source lengths on the fused path.
    fn fused(&self) -> Option<&[usize]> {
        match self {
            AttentionPath::Fused { src_len } => Some(src_len),
            AttentionPath::Weights => None,
        }
    }
}

/// Dropout with probability `p` while training (`rng` is `Some`), the identity otherwise.
pub(crate) fn dropout(x: Var, p: f32, rng: &mut Option<&mut Rng>) -> Var {
    match rng.as_deref_mut() {
        Some(r) if p > 0.0 => x.dropout(p, r),
        _ => x,
    }
}

/// A linear layer initialised Xavier-uniform (`nn.Transformer` re-initialises every matrix so) with
/// PyTorch's default `U(±1/√in)` bias.
fn xavier_linear(
    params: &mut Params,
    name: &str,
    input: usize,
    output: usize,
    rng: &mut Rng,
) -> Linear {
    let bound = (6.0 / (input + output) as f32).sqrt();
    let weight = params.uniform(&format!("{name}.weight"), &[output, input], bound, rng);
    let bias = params.uniform(
        &format!("{name}.bias"),
        &[output],
        1.0 / (input as f32).sqrt(),
        rng,
    );
    Linear {
        weight,
        bias: Some(bias),
    }
}

/// The position-wise feed-forward block `linear2(dropout(act(linear1(x))))`.
pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
    pub activation: Activation,
}

impl FeedForward {
    fn new(params: &mut Params, prefix: &str, spec: &LayerSpec, rng: &mut Rng) -> FeedForward {
        FeedForward {
            linear1: xavier_linear(
                params,
                &format!("{prefix}.linear1"),
                spec.d_model,
                spec.ff_size,
                rng,
            ),
            linear2: xavier_linear(
                params,
                &format!("{prefix}.linear2"),
                spec.ff_size,
                spec.d_model,
                rng,
            ),
            activation: spec.activation,
        }
    }

    /// `x [B, L, d] → [B, L, d]`.
    fn forward(&self, x: &Var, p: f32, rng: &mut Option<&mut Rng>) -> Var {
        if !tensor::is_grad_enabled() && (p == 0.0 || rng.is_none()) {
            if let Some(y) = self.forward_transposed(x) {
                return y;
            }
        }
        let h = self.linear1.forward(x); // [B, L, ff]
        let h = match self.activation {
            Activation::Relu => h.relu(),
            Activation::Gelu => h.gelu(),
        };
        self.linear2.forward(&dropout(h, p, rng))
    }

    /// The same function for the few rows of a decoding step, without gradients: through
    /// [`feed_forward`], which keeps the hidden layer transposed between the two products (`None`
    /// where that does not apply: many rows, narrow layers, no biases).
    fn forward_transposed(&self, x: &Var) -> Option<Var> {
        let (b1, b2) = (self.linear1.bias.as_ref()?, self.linear2.bias.as_ref()?);
        let (d, h, e) = (
            self.linear1.input_size(),
            self.linear1.output_size(),
            self.linear2.output_size(),
        );
        let x = x.value();
        if x.rank() < 2 || x.dim(-1) != d || self.linear2.input_size() != h {
            return None;
        }
        let f = match self.activation {
            Activation::Relu => relu_inplace,
            Activation::Gelu => gelu_inplace,
        };
        let y = feed_forward(
            x.data(),
            self.linear1.weight.value().data(),
            b1.value().data(),
            self.linear2.weight.value().data(),
            b2.value().data(),
            (x.numel() / d, d, h, e),
            f,
        )?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut()? = e;
        Some(Var::constant(Tensor::from_vec(y, &shape)))
    }
}

/// One residual sublayer: pre-norm `x + dropout(f(LN x))` or post-norm `LN(x + dropout(f(x)))`.
fn residual(
    x: &Var,
    norm: &LayerNorm,
    placement: NormPlacement,
    p: f32,
    rng: &mut Option<&mut Rng>,
    f: impl FnOnce(&Var, &mut Option<&mut Rng>) -> Result<Var, AttentionError>,
) -> Result<Var, AttentionError> {
    match placement {
        NormPlacement::Pre => {
            let y = f(&norm.forward(x), rng)?;
            Ok(x.add(&dropout(y, p, rng)))
        }
        NormPlacement::Post => {
            let y = f(x, rng)?;
            Ok(norm.forward(&x.add(&dropout(y, p, rng))))
        }
    }
}

/// `nn.TransformerEncoderLayer`.
pub struct EncoderLayer {
    pub self_attn: MultiHeadAttention,
    pub ff: FeedForward,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    spec: LayerSpec,
}

impl EncoderLayer {
    /// Registers `{prefix}.self_attn.*`, `linear1/2.*`, `norm1/2.*`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        spec: &LayerSpec,
        rng: &mut Rng,
    ) -> Result<EncoderLayer, AttentionError> {
        let self_attn = MultiHeadAttention::new(
            params,
            &format!("{prefix}.self_attn"),
            spec.d_model,
            spec.heads,
            spec.attention_dropout,
            rng,
        )?;
        let ff = FeedForward::new(params, prefix, spec, rng);
        let norm = |params: &mut Params, n: u8| {
            LayerNorm::new(
                params,
                &format!("{prefix}.norm{n}"),
                spec.d_model,
                LAYER_NORM_EPS,
            )
        };
        Ok(EncoderLayer {
            self_attn,
            ff,
            norm1: norm(params, 1),
            norm2: norm(params, 2),
            spec: *spec,
        })
    }

    /// `x [B, S, d]`, `padding [B, S]` → `(y [B, S, d], self-attention weights [B, H, S, S])`;
    /// no weights where `path` takes the fused kernel.
    pub fn forward(
        &self,
        x: &Var,
        padding: &Tensor,
        path: AttentionPath<'_>,
        rng: &mut Option<&mut Rng>,
    ) -> Result<(Var, Option<Var>), AttentionError> {
        let (p, norm) = (self.spec.dropout, self.spec.norm);
        let fused = path.fused();
        let mut weights = None;
        let x = residual(x, &self.norm1, norm, p, rng, |h, rng| match fused {
            Some(lengths) => {
                self.self_attn
                    .self_attend_fused(h, false, Some(lengths), rng.as_deref_mut())
            }
            None => {
                let (y, w) =
                    self.self_attn
                        .forward(h, h, Some(padding), None, rng.as_deref_mut())?;
                weights = Some(w);
                Ok(y)
            }
        })?;
        let x = residual(&x, &self.norm2, norm, p, rng, |h, rng| {
            Ok(self.ff.forward(h, p, rng))
        })?;
        Ok((x, weights))
    }
}

/// What a decoder layer returns.
pub struct DecoderOutput {
    /// `[B, T, d]`
    pub x: Var,
    /// Self-attention weights `[B, H, T, t]` (`t` = positions seen so far); `None` where the fused
    /// kernel ran.
    pub self_weights: Option<Var>,
    /// Cross-attention weights `[B, H, T, S]`; `None` where the fused kernel ran.
    pub cross_weights: Option<Var>,
}

/// `nn.TransformerDecoderLayer`.
pub struct DecoderLayer {
    pub self_attn: MultiHeadAttention,
    pub multihead_attn: MultiHeadAttention,
    pub ff: FeedForward,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub norm3: LayerNorm,
    spec: LayerSpec,
}

impl DecoderLayer {
    /// Registers `{prefix}.self_attn.*`, `multihead_attn.*`, `linear1/2.*`, `norm1/2/3.*`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        spec: &LayerSpec,
        rng: &mut Rng,
    ) -> Result<DecoderLayer, AttentionError> {
        let mha = |params: &mut Params, name: &str, rng: &mut Rng| {
            MultiHeadAttention::new(
                params,
                &format!("{prefix}.{name}"),
                spec.d_model,
                spec.heads,
                spec.attention_dropout,
                rng,
            )
        };
        let self_attn = mha(params, "self_attn", rng)?;
        let multihead_attn = mha(params, "multihead_attn", rng)?;
        let ff = FeedForward::new(params, prefix, spec, rng);
        let norm = |params: &mut Params, n: u8| {
            LayerNorm::new(
                params,
                &format!("{prefix}.norm{n}"),
                spec.d_model,
                LAYER_NORM_EPS,
            )
        };
        Ok(DecoderLayer {
            self_attn,
            multihead_attn,
            ff,
            norm1: norm(params, 1),
            norm2: norm(params, 2),
            norm3: norm(params, 3),
            spec: *spec,
        })
    }

    /// The encoder memory `[B, S, d]` projected to this layer's cross-attention keys and values,
    /// once per batch.
    pub fn project_memory(&self, memory: &Var) -> Result<KvMemory, AttentionError> {
        self.multihead_attn.project_memory(memory)
    }

    /// The encoder memory `[B, S, d]` projected for this layer's decoding steps
    /// ([`forward_step`](Self::forward_step)), once per decode.
    pub fn project_step_memory(&self, memory: &Var) -> Result<StepMemory, AttentionError> {
        self.multihead_attn.project_step_memory(memory)
    }

    /// `x [B, T, d]` through the layer with the causal mask `[T, T]` (teacher forcing); `memory` from
    /// [`project_memory`](Self::project_memory), `padding [B, S]` its padding mask.
    pub fn forward(
        &self,
        x: &Var,
        causal: &Tensor,
        memory: &KvMemory,
        padding: &Tensor,
        path: AttentionPath<'_>,
        rng: &mut Option<&mut Rng>,
    ) -> Result<DecoderOutput, AttentionError> {
        let (p, norm) = (self.spec.dropout, self.spec.norm);
        let fused = path.fused();
        let mut self_weights = None;
        let x = residual(x, &self.norm1, norm, p, rng, |h, rng| match fused {
            Some(_) => self
                .self_attn
                .self_attend_fused(h, true, None, rng.as_deref_mut()),
            None => {
                let (y, w) =
                    self.self_attn
                        .forward(h, h, None, Some(causal), rng.as_deref_mut())?;
                self_weights = Some(w);
                Ok(y)
            }
        })?;
        let mut cross_weights = None;
        let x = residual(&x, &self.norm2, norm, p, rng, |h, rng| match fused {
            Some(lengths) => self.multihead_attn.attend_fused(
                h,
                memory,
                false,
                Some(lengths),
                rng.as_deref_mut(),
            ),
            None => {
                let (y, w) = self.multihead_attn.attend(
                    h,
                    memory,
                    Some(padding),
                    None,
                    rng.as_deref_mut(),
                )?;
                cross_weights = Some(w);
                Ok(y)
            }
        })?;
        self.feed_forward(&x, self_weights, cross_weights, rng)
    }

    /// The newest position(s) `x [B, n, d]` through the layer (decoding, no dropout): earlier keys
    /// and values come from (and are added to) `cache`; `memory` from
    /// [`project_step_memory`](Self::project_step_memory), `padding [B, S]` its padding mask.
    pub fn forward_step(
        &self,
        x: &Var,
        cache: &mut KvCache,
        memory: &StepMemory,
        padding: &Tensor,
    ) -> Result<DecoderOutput, AttentionError> {
        let (p, norm, rng) = (self.spec.dropout, self.spec.norm, &mut None);
        let mut self_weights = None;
        let x = residual(x, &self.norm1, norm, p, rng, |h, _| {
            let (y, w) = self.self_attn.forward_step(h, cache)?;
            self_weights = Some(w);
            Ok(y)
        })?;
        let mut cross_weights = None;
        let x = residual(&x, &self.norm2, norm, p, rng, |h, _| {
            let (y, w) = self.multihead_attn.attend_step(h, memory, Some(padding))?;
            cross_weights = Some(w);
            Ok(y)
        })?;
        self.feed_forward(&x, self_weights, cross_weights, rng)
    }

    /// The feed-forward sublayer, the last of a decoder layer, and the layer's output.
    fn feed_forward(
        &self,
        x: &Var,
        self_weights: Option<Var>,
        cross_weights: Option<Var>,
        rng: &mut Option<&mut Rng>,
    ) -> Result<DecoderOutput, AttentionError> {
        let (p, norm) = (self.spec.dropout, self.spec.norm);
        let x = residual(x, &self.norm3, norm, p, rng, |h, rng| {
            Ok(self.ff.forward(h, p, rng))
        })?;
        Ok(DecoderOutput {
            x,
            self_weights,
            cross_weights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without gradients and at a decoding step's few rows the feed-forward block runs transposed
    /// ([`FeedForward::forward_transposed`]); it must give the composed ops' values (the path
    /// taken while gradients are recorded), for both activations.
    #[test]
    fn the_transposed_feed_forward_equals_the_composed_ops() {
        for activation in [Activation::Relu, Activation::Gelu] {
            let spec = LayerSpec {
                d_model: 256,
                heads: 4,
                ff_size: 1040,
                activation,
                norm: NormPlacement::Pre,
                dropout: 0.1,
                attention_dropout: 0.0,
            };
            let mut rng = Rng::new(5);
            let ff = FeedForward::new(&mut Params::new(), "ff", &spec, &mut rng);
            let x = Var::constant(Tensor::from_vec(
                (0..24 * 256).map(|_| rng.normal()).collect(),
                &[24, 1, 256],
            ));
            let fused = tensor::no_grad(|| {
                assert!(ff.forward_transposed(&x).is_some(), "24 rows take it");
                ff.forward(&x, spec.dropout, &mut None)
            });
            let plain = ff.forward(&x, spec.dropout, &mut None);
            assert_eq!(fused.shape(), plain.shape());
            let (f, p) = (fused.value(), plain.value());
            for (i, (&a, &b)) in f.data().iter().zip(p.data()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{activation:?} [{i}]: {a} vs {b}"
                );
            }
        }
    }
}
