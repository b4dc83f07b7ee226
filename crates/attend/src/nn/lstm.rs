//! LSTM cell (Hochreiter & Schmidhuber 1997, with forget gate), exactly as PyTorch's `nn.LSTMCell`.
//!
//! `x [B, In]`, `h, c [B, H]` → `h', c' [B, H]`, gate blocks stacked in the order i, f, g, o of
//! `a = W_ih x + b_ih + W_hh h + b_hh`: `i, f, o = σ(a_i, a_f, a_o)`, `g = tanh(a_g)`,
//! `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`.
//!
//! Parameters `{name}.weight_ih [4H, In]`, `{name}.weight_hh [4H, H]`, `{name}.bias_ih [4H]`,
//! `{name}.bias_hh [4H]`, all `U(±1/√H)`. Written with engine ops; it is also the per-step reference of
//! the fused recurrence that [`Rnn`](crate::nn::Rnn) runs over whole sequences.

use crate::nn::rnn::{CellKind, RnnWeights};
use crate::nn::Params;
use tensor::{Rng, Var};

pub struct LstmCell {
    pub weights: RnnWeights,
    hidden: usize,
}

impl LstmCell {
    /// Registers the cell's four parameters under `name`.
    pub fn new(
        params: &mut Params,
        name: &str,
        input: usize,
        hidden: usize,
        rng: &mut Rng,
    ) -> LstmCell {
        LstmCell {
            weights: RnnWeights::new(params, name, "", CellKind::Lstm, input, hidden, rng),
            hidden,
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// One step: `x [B, In]`, `h, c [B, H]` → `(h', c')`, each `[B, H]`.
    pub fn step(&self, x: &Var, h: &Var, c: &Var) -> (Var, Var) {
        let w = &self.weights;
        // a: [B, 4H] → four [B, H] blocks i, f, g, o
        let a = x
            .linear(&w.weight_ih, Some(&w.bias_ih))
            .add(&h.linear(&w.weight_hh, Some(&w.bias_hh)))
            .split(-1, &[self.hidden; 4]);
        let (i, f, g, o) = (a[0].sigmoid(), a[1].sigmoid(), a[2].tanh(), a[3].sigmoid());
        let c_next = f.mul(c).add(&i.mul(&g));
        let h_next = o.mul(&c_next.tanh());
        (h_next, c_next)
    }
}
