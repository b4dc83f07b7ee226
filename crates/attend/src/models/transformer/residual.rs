//! The residual connection around every Transformer sublayer (Vaswani et al. 2017, §3.1; Xiong et
//! al. 2020 for the pre-norm placement), with `torch.nn.Transformer`'s layer norm.
//!
//! ```text
//! pre-norm  (norm_first = True):   x ← x + dropout(Sublayer(LN(x)))
//! post-norm (norm_first = False):  x ← LN(x + dropout(Sublayer(x)))      (the 2017 paper)
//! ```
//!
//! A layer reads `h = residual.input(x)`, runs its sublayer on `h`, and returns
//! `residual.output(x, sublayer(h))`; shapes `x, h, y [B, L, d]`. The layer norm is `{prefix}.norm{n}`.

use crate::nn::{Dropout, LayerNorm, Params};
use tensor::{Rng, Var};

/// `nn.Transformer`'s `layer_norm_eps`.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Where the layer norms sit (`model.transformer.norm`).
pub use crate::config::NormPlacement;

/// The layer norm, its placement and the dropout of one residual sublayer.
pub struct Residual {
    pub norm: LayerNorm,
    placement: NormPlacement,
    dropout: Dropout,
}

impl Residual {
    /// Registers the layer norm `name` (`{prefix}.norm{n}`) over width `d`.
    pub fn new(
        params: &mut Params,
        name: &str,
        d: usize,
        placement: NormPlacement,
        dropout: Dropout,
    ) -> Residual {
        Residual {
            norm: LayerNorm::new(params, name, d, LAYER_NORM_EPS),
            placement,
            dropout,
        }
    }

    /// What the sublayer reads: `LN(x)` pre-norm, `x` post-norm.
    pub fn input(&self, x: &Var) -> Var {
        match self.placement {
            NormPlacement::Pre => self.norm.forward(x),
            NormPlacement::Post => x.clone(),
        }
    }

    /// The sublayer's output `y` added back: `x + dropout(y)` pre-norm, `LN(x + dropout(y))`
    /// post-norm. `rng`: `Some` while training.
    pub fn output(&self, x: &Var, y: &Var, rng: Option<&mut Rng>) -> Var {
        let sum = x.add(&self.dropout.forward(y, rng));
        match self.placement {
            NormPlacement::Pre => sum,
            NormPlacement::Post => self.norm.forward(&sum),
        }
    }
}
