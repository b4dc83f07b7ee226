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
//! and `bridge.bias [L·H]`.

use super::decoder::State;
use crate::nn::rnn::CellKind;
use crate::nn::{Linear, Params};
use tensor::{Rng, Tensor, Var};

/// The bridge (see the module doc).
pub(super) struct Bridge {
    linear: Linear,
    kind: CellKind,
    layers: usize,
    hidden: usize,
}

impl Bridge {
    /// Registers `bridge.weight`, `bridge.bias`: `input` (the encoder's `D·H`) → `layers · hidden`.
    pub(super) fn new(
        params: &mut Params,
        input: usize,
        kind: CellKind,
        layers: usize,
        hidden: usize,
        rng: &mut Rng,
    ) -> Bridge {
        Bridge {
            linear: Linear::new(params, "bridge", input, layers * hidden, true, rng),
            kind,
            layers,
            hidden,
        }
    }

    /// `last [B, D·H]` → the initial state of every decoder layer, `[B, H]` each.
    pub(super) fn forward(&self, last: &Var) -> Vec<State> {
        let (b, h) = (last.dim(0), self.hidden);
        let s0 = self.linear.forward(last).tanh(); // [B, L·H]
        (0..self.layers)
            .map(|l| State {
                h: s0.narrow(1, l * h, h),
                c: (self.kind == CellKind::Lstm).then(|| Var::constant(Tensor::zeros(&[b, h]))),
            })
            .collect()
    }
}
