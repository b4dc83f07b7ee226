//! Multiplicative attention (Luong, Pham & Manning 2015, *Effective Approaches to Attention-based
//! Neural Machine Translation*, §3.1, the `dot` and `general` scores).
//!
//! For the decoder state `s` and the encoder states `h_j`:
//!
//! ```text
//! dot:      e_j = sᵀ h_j
//! general:  e_j = (W s)ᵀ h_j            (= sᵀ Wᵀ h_j)
//! a         = softmax_j(e)   (e_j = −∞ where j is padding; no scaling)
//! context   = Σ_j a_j h_j
//! ```
//!
//! Shapes: `s [B, Dq]`, `h [B, S, Dk]`; `dot` needs `Dq = Dk`; `general` has `W [Dk, Dq]`
//! (`Linear(Dq → Dk, bias = false)` applied to `s`, named `{prefix}.w.weight`) →
//! `context [B, Dk]`, `weights [B, S]`. The keys are the states themselves, so
//! [`project_keys`](StepAttention::project_keys) returns `h` unchanged.
//!
//! The layer supplies the keys and the scores; the softmax and the context are the
//! [`StepAttention`] step shared by the RNN attentions. Two matrix products and a softmax leave
//! nothing for a fused kernel to save, so [`step`](StepAttention::step) is the plain path.

use crate::attention::{shape_error, AttentionError, StepAttention};
use crate::nn::{Linear, Params};
use tensor::{Rng, Var};

const LAYER: &str = "multiplicative attention";

/// Which multiplicative score.
pub enum Score {
    /// `e_j = sᵀ h_j`.
    Dot,
    /// `e_j = (W s)ᵀ h_j` with `W [Dk, Dq]`.
    General(Linear),
}

/// Luong attention with the `dot` or `general` score.
pub struct MultiplicativeAttention {
    pub score: Score,
}

impl MultiplicativeAttention {
    /// The `dot` score (no parameters).
    pub fn dot() -> MultiplicativeAttention {
        MultiplicativeAttention { score: Score::Dot }
    }

    /// The `general` score: registers `{prefix}.w.weight [key_dim, query_dim]`.
    pub fn general(
        params: &mut Params,
        prefix: &str,
        query_dim: usize,
        key_dim: usize,
        rng: &mut Rng,
    ) -> MultiplicativeAttention {
        let w = Linear::new(
            params,
            &format!("{prefix}.w"),
            query_dim,
            key_dim,
            false,
            rng,
        );
        MultiplicativeAttention {
            score: Score::General(w),
        }
    }
}

impl StepAttention for MultiplicativeAttention {
    fn name(&self) -> &'static str {
        match self.score {
            Score::Dot => "dot",
            Score::General(_) => "general",
        }
    }

    /// `s` (dot) or `W s [B, Dk]` (general).
    fn scored_query(&self, query: &Var) -> Var {
        match &self.score {
            Score::Dot => query.clone(),
            Score::General(w) => w.forward(query),
        }
    }

    /// The keys are the states: `h [B, S, Dk]` is returned as is.
    fn project_keys(&self, h: &Var) -> Result<Var, AttentionError> {
        let hs = h.shape();
        if hs.len() != 3 {
            return Err(shape_error(LAYER, "states h", &hs, "[B, S, Dk]"));
        }
        Ok(h.clone())
    }

    /// Raw scores `e [B, S]`: `sᵀh_j` or `(W s)ᵀh_j`, no mask applied. `query [B, Dq]`, `keys`
    /// `[B, S, Dk]` from [`project_keys`](StepAttention::project_keys).
    fn scores(&self, query: &Var, keys: &Var) -> Result<Var, AttentionError> {
        let (qs, ks) = (query.shape(), keys.shape());
        let dq = match &self.score {
            Score::Dot => None,
            Score::General(w) => Some(w.input_size()),
        };
        if qs.len() != 2 || dq.is_some_and(|d| d != qs[1]) {
            let d = dq.map_or("Dq".to_string(), |d| d.to_string());
            return Err(shape_error(LAYER, "query s", &qs, format!("[B, {d}]")));
        }
        let q = match &self.score {
            Score::Dot => query.clone(),
            Score::General(w) => w.forward(query), // [B, Dk]
        };
        let (b, d) = (qs[0], q.dim(1));
        if ks.len() != 3 || ks[0] != b || ks[2] != d {
            return Err(shape_error(LAYER, "keys h", &ks, format!("[{b}, S, {d}]")));
        }
        // [B, S, Dk] · [B, Dk, 1] → [B, S, 1]
        Ok(keys.matmul(&q.reshape(&[b, d, 1])).reshape(&[b, ks[1]]))
    }
}
