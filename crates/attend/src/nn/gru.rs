//! GRU cell (Cho et al. 2014), exactly as PyTorch's `nn.GRUCell`.
//!
//! `x [B, In]`, `h [B, H]` → `h' [B, H]`, gate blocks stacked in the order r, z, n:
//! `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
//!
//! Parameters `{name}.weight_ih [3H, In]`, `{name}.weight_hh [3H, H]`, `{name}.bias_ih [3H]`,
//! `{name}.bias_hh [3H]`, all `U(±1/√H)`. Written with engine ops; it is also the per-step reference of
//! the fused recurrence that [`Rnn`](crate::nn::Rnn) runs over whole sequences.

use crate::nn::rnn::{CellKind, RnnWeights};
use crate::nn::Params;
use tensor::{Rng, Var};

pub struct GruCell {
    pub weights: RnnWeights,
    hidden: usize,
}

impl GruCell {
    /// Registers the cell's four parameters under `name`.
    pub fn new(
        params: &mut Params,
        name: &str,
        input: usize,
        hidden: usize,
        rng: &mut Rng,
    ) -> GruCell {
        GruCell {
            weights: RnnWeights::new(params, name, "", CellKind::Gru, input, hidden, rng),
            hidden,
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// One step: `x [B, In]`, `h [B, H]` → `h' [B, H]`.
    pub fn step(&self, x: &Var, h: &Var) -> Var {
        let w = &self.weights;
        let sizes = [self.hidden; 3];
        // gi, gh: [B, 3H] → three [B, H] blocks r, z, n
        let gi = x.linear(&w.weight_ih, Some(&w.bias_ih)).split(-1, &sizes);
        let gh = h.linear(&w.weight_hh, Some(&w.bias_hh)).split(-1, &sizes);
        let r = gi[0].add(&gh[0]).sigmoid();
        let z = gi[1].add(&gh[1]).sigmoid();
        let n = gi[2].add(&r.mul(&gh[2])).tanh();
        // (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
        n.add(&z.mul(&h.sub(&n)))
    }
}
