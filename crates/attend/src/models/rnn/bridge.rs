//! The bridge from the encoder to the decoder: the decoder's initial state from the encoder's
//! final states (Bahdanau et al. 2015, appendix A.2.2: `s_0 = tanh(W_s ←h_1)`; here both
//! directions' final states, as the PyTorch peer does).
//!
//! ```text
//! s_0 = tanh(bridge(last))       last [B, D·H] → s_0 [B, L·H]
//! layer l starts from h = s_0[:, l·H .. (l+1)·H]  (and c = 0 for an LSTM)     [B, H] each
//! ```
//!
//! One linear layer serves all `L` decoder layers; its parameters are `bridge.weight [L·H, D·H]`
//! and `bridge.bias [L·H]`. Two other starts have no parameters (`model.rnn.decoder_init`):
//!
//! ```text
//! identity   layer l starts from encoder layer l's final states [fwd ; bwd]   [B, D·H] = [B, H]
//! zero       every layer starts from zeros
//! ```
//! (an LSTM's cell state starts from zeros in every case).

use super::decoder::State;
use crate::config::DecoderInit;
use crate::nn::rnn::CellKind;
use crate::nn::{Linear, Params};
use tensor::{Rng, Tensor, Var};

/// The bridge (see the module doc).
pub(super) struct Bridge {
    /// `Some` for `decoder_init = "bridge"`.
    linear: Option<Linear>,
    /// Without a bridge: `true` starts from the encoder's states, `false` from zeros.
    identity: bool,
    kind: CellKind,
    layers: usize,
    hidden: usize,
}

impl Bridge {
    /// Registers `bridge.weight`, `bridge.bias` (`input`, the encoder's `D·H` → `layers · hidden`)
    /// where `init` is [`DecoderInit::Bridge`].
    pub(super) fn new(
        params: &mut Params,
        init: DecoderInit,
        input: usize,
        kind: CellKind,
        (layers, hidden): (usize, usize),
        rng: &mut Rng,
    ) -> Bridge {
        Bridge {
            linear: (init == DecoderInit::Bridge)
                .then(|| Linear::new(params, "bridge", input, layers * hidden, true, rng)),
            identity: init == DecoderInit::Identity,
            kind,
            layers,
            hidden,
        }
    }

    /// The initial state of every decoder layer, `[B, H]` each, from `finals`: each encoder
    /// layer's final states `[B, D·H]`, bottom first.
    pub(super) fn forward(&self, finals: &[Var]) -> Vec<State> {
        let last = finals.last().expect("the encoder has a layer");
        let (b, h) = (last.dim(0), self.hidden);
        let zeros = || Var::constant(Tensor::zeros(&[b, h]));
        let s0 = self.linear.as_ref().map(|l| l.forward(last).tanh()); // [B, L·H]
        (0..self.layers)
            .map(|l| State {
                h: match (&s0, self.identity) {
                    (Some(s0), _) => s0.narrow(1, l * h, h),
                    (None, true) => finals[l].clone(),
                    (None, false) => zeros(),
                },
                c: (self.kind == CellKind::Lstm).then(&zeros),
            })
            .collect()
    }
}
