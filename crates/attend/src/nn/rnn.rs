//! Stacked, optionally bidirectional GRU and LSTM layers over a padded batch with lengths, laid out and
//! named exactly as PyTorch's `nn.GRU` / `nn.LSTM` (`batch_first=True`) so that weights interchange.
//!
//! Shapes: `x [B, T, In]`, `lengths[b] ∈ 1..=T`; `output [B, T, D·H]` (`D` = 2 when bidirectional,
//! `[fwd_t ; bwd_t]`), exactly 0 at `t ≥ length`; final states `h_n` (and LSTM `c_n`)
//! `[L·D, B, H]` indexed `layer·D + direction`. Positions beyond a sequence's length leave its state
//! unchanged (as `pack_padded_sequence` does), so the backward direction starts at each sequence's own
//! last real token and its final state is the state after reading position 0.
//!
//! Per layer and direction the input projection `x·W_ihᵀ + b_ih` is one matrix product over all
//! steps; the recurrence itself is the engine's fused op ([`Var::recurrence`]), whose per-step math is
//! [`GruCell::step`](crate::nn::GruCell::step) / [`LstmCell::step`](crate::nn::LstmCell::step).
//! Dropout (training only) applies to the output of every layer but the last, as in PyTorch.
//!
//! Parameters (PyTorch names, gate blocks stacked: GRU r, z, n; LSTM i, f, g, o; `G` = 3H or 4H):
//! `{name}.weight_ih_l{k}[_reverse] [G, In_k]`, `{name}.weight_hh_l{k}[_reverse] [G, H]`,
//! `{name}.bias_ih_l{k}[_reverse] [G]`, `{name}.bias_hh_l{k}[_reverse] [G]`, all `U(±1/√H)`.

use crate::nn::Params;
pub use tensor::ops::recurrence::CellKind;
use tensor::{Rng, Tensor, Var};

/// Invalid RNN configuration or input.
#[derive(Debug, thiserror::Error)]
pub enum RnnError {
    #[error("RNN `{name}`: {what} must be at least 1, got 0")]
    ZeroSize { name: String, what: &'static str },
    #[error("RNN `{name}`: dropout {p} must be in [0, 1)")]
    Dropout { name: String, p: f32 },
    #[error("RNN input must be [batch, time, {expected}] with batch, time ≥ 1, got {found:?}")]
    Input { expected: usize, found: Vec<usize> },
    #[error("RNN lengths: {found} lengths for a batch of {batch}")]
    LengthCount { batch: usize, found: usize },
    #[error("RNN lengths: sequence {index} has length {length}, must be in 1..={time} (drop empty sequences before batching)")]
    Length {
        index: usize,
        length: usize,
        time: usize,
    },
    #[error("RNN initial state `{what}` must be {expected:?}, got {found:?}")]
    State {
        what: &'static str,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("RNN initial state: an LSTM needs both h and c, a GRU only h")]
    StateKind,
}

/// The four tensors of one cell or one layer-direction (PyTorch's layout).
pub struct RnnWeights {
    /// `[G, In]`
    pub weight_ih: Var,
    /// `[G, H]`
    pub weight_hh: Var,
    /// `[G]`
    pub bias_ih: Var,
    /// `[G]`
    pub bias_hh: Var,
}

impl RnnWeights {
    /// Registers `{prefix}.weight_ih{suffix}`, `weight_hh`, `bias_ih`, `bias_hh` in PyTorch's order,
    /// each `U(±1/√hidden)`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        suffix: &str,
        kind: CellKind,
        input: usize,
        hidden: usize,
        rng: &mut Rng,
    ) -> RnnWeights {
        let g = kind.gates() * hidden;
        let bound = 1.0 / (hidden as f32).sqrt();
        let mut add = |what: &str, shape: &[usize]| {
            params.uniform(&format!("{prefix}.{what}{suffix}"), shape, bound, rng)
        };
        RnnWeights {
            weight_ih: add("weight_ih", &[g, input]),
            weight_hh: add("weight_hh", &[g, hidden]),
            bias_ih: add("bias_ih", &[g]),
            bias_hh: add("bias_hh", &[g]),
        }
    }
}

/// Sizes of a stacked RNN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last (training only); 0 disables it.
    pub dropout: f32,
}

/// Recurrent state, `[L·D, B, H]` each; `c` for an LSTM only.
#[derive(Clone)]
pub struct RnnState {
    pub h: Var,
    pub c: Option<Var>,
}

/// Result of [`Rnn::forward`].
pub struct RnnOutput {
    /// `[B, T, D·H]`, zero at padded positions.
    pub output: Var,
    /// Final states `[L·D, B, H]` (PyTorch's `h_n`, `c_n`).
    pub state: RnnState,
}

/// A stacked, optionally bidirectional GRU or LSTM.
pub struct Rnn {
    kind: CellKind,
    config: RnnConfig,
    /// `layers[l][direction]`.
    layers: Vec<Vec<RnnWeights>>,
}

impl Rnn {
    /// Registers the parameters of a GRU (`kind = Gru`) or LSTM under `name` (see the module doc).
    pub fn new(
        params: &mut Params,
        name: &str,
        kind: CellKind,
        config: RnnConfig,
        rng: &mut Rng,
    ) -> Result<Rnn, RnnError> {
        for (what, n) in [
            ("input_size", config.input_size),
            ("hidden_size", config.hidden_size),
            ("num_layers", config.num_layers),
        ] {
            if n == 0 {
                return Err(RnnError::ZeroSize {
                    name: name.to_string(),
                    what,
                });
            }
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(RnnError::Dropout {
                name: name.to_string(),
                p: config.dropout,
            });
        }
        let dirs = if config.bidirectional { 2 } else { 1 };
        let h = config.hidden_size;
        let layers = (0..config.num_layers)
            .map(|l| {
                let input = if l == 0 { config.input_size } else { dirs * h };
                (0..dirs)
                    .map(|d| {
                        let suffix = format!("_l{l}{}", if d == 1 { "_reverse" } else { "" });
                        RnnWeights::new(params, name, &suffix, kind, input, h, rng)
                    })
                    .collect()
            })
            .collect();
        Ok(Rnn {
            kind,
            config,
            layers,
        })
    }

    pub fn kind(&self) -> CellKind {
        self.kind
    }

    pub fn config(&self) -> RnnConfig {
        self.config
    }

    /// Number of directions `D` (1 or 2).
    pub fn directions(&self) -> usize {
        if self.config.bidirectional {
            2
        } else {
            1
        }
    }

    /// The weights of layer `layer`, direction `direction` (0 forward, 1 backward).
    pub fn weights(&self, layer: usize, direction: usize) -> &RnnWeights {
        &self.layers[layer][direction]
    }

    /// Runs the stack over `x [B, T, In]` with `lengths[b] ∈ 1..=T`; `init` states `[L·D, B, H]`
    /// (zeros when `None`). `dropout_rng` is `Some` in training (inter-layer dropout), `None` in
    /// evaluation.
    pub fn forward(
        &self,
        x: &Var,
        lengths: &[usize],
        init: Option<&RnnState>,
        mut dropout_rng: Option<&mut Rng>,
    ) -> Result<RnnOutput, RnnError> {
        let shape = x.shape();
        if shape.len() != 3 || shape[2] != self.config.input_size || shape[0] == 0 || shape[1] == 0
        {
            return Err(RnnError::Input {
                expected: self.config.input_size,
                found: shape,
            });
        }
        let (b, t, h) = (shape[0], shape[1], self.config.hidden_size);
        check_lengths(lengths, b, t)?;
        let dirs = self.directions();
        let state_shape = vec![self.config.num_layers * dirs, b, h];
        if let Some(s) = init {
            self.check_state(s, &state_shape)?;
        }
        let lstm = self.kind == CellKind::Lstm;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        let mut input = x.clone();
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 {
                if let Some(rng) = dropout_rng.as_deref_mut() {
                    input = input.dropout(self.config.dropout, rng);
                }
            }
            let mut outs = Vec::with_capacity(dirs);
            for (d, w) in layer.iter().enumerate() {
                let idx = l * dirs + d;
                let initial = |s: Option<&Var>| match s {
                    Some(s) => s.select(0, idx),
                    None => Var::constant(Tensor::zeros(&[b, h])),
                };
                let h0 = initial(init.map(|s| &s.h));
                let c0 = lstm.then(|| initial(init.and_then(|s| s.c.as_ref())));
                // xp: [B, T, G], one product for all steps
                let xp = input.linear(&w.weight_ih, Some(&w.bias_ih));
                let packed = Var::recurrence(
                    self.kind,
                    &xp,
                    &h0,
                    c0.as_ref(),
                    &w.weight_hh,
                    &w.bias_hh,
                    lengths,
                    d == 1,
                );
                // packed: [B, T + k, H] = outputs, h_n, (c_n)
                outs.push(packed.narrow(1, 0, t));
                hs.push(packed.narrow(1, t, 1).reshape(&[1, b, h]));
                if lstm {
                    cs.push(packed.narrow(1, t + 1, 1).reshape(&[1, b, h]));
                }
            }
            input = if outs.len() == 1 {
                outs.pop().expect("one direction")
            } else {
                Var::concat(&outs, -1)
            };
        }
        Ok(RnnOutput {
            output: input,
            state: RnnState {
                h: Var::concat(&hs, 0),
                c: lstm.then(|| Var::concat(&cs, 0)),
            },
        })
    }

    fn check_state(&self, s: &RnnState, expected: &[usize]) -> Result<(), RnnError> {
        if s.c.is_some() != (self.kind == CellKind::Lstm) {
            return Err(RnnError::StateKind);
        }
        for (what, v) in [("h", Some(&s.h)), ("c", s.c.as_ref())] {
            if let Some(v) = v.filter(|v| v.shape() != expected) {
                return Err(RnnError::State {
                    what,
                    expected: expected.to_vec(),
                    found: v.shape(),
                });
            }
        }
        Ok(())
    }
}

/// `lengths` must have one entry per row, each in `1..=t`.
fn check_lengths(lengths: &[usize], b: usize, t: usize) -> Result<(), RnnError> {
    if lengths.len() != b {
        return Err(RnnError::LengthCount {
            batch: b,
            found: lengths.len(),
        });
    }
    match lengths.iter().position(|&l| l == 0 || l > t) {
        Some(index) => Err(RnnError::Length {
            index,
            length: lengths[index],
            time: t,
        }),
        None => Ok(()),
    }
}
