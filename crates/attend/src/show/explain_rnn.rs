//! What an RNN decoder's attention computed at each step, in numbers, for the explorer page: the
//! decoder state, the query and keys the score function read, the scores' ingredients and the
//! context vector, so that a learner can check every line of the seed notes' formulas:
//!
//! ```text
//! additive:  e_j = vᵀ tanh(q + k_j)   q = W_q s_{t-1}   k_j = W_k h_j + b_k
//! dot:       e_j = q · k_j            q = s_{t-1}       k_j = h_j
//! general:   e_j = q · k_j            q = W s_{t-1}     k_j = h_j
//! a_j = exp(e_j) / Σ_i exp(e_i)       c_t = Σ_j a_j h_j
//! ```
//!
//! Shapes (one sentence): `values [S][Dk]`, `keys [S][Q]`, `v [Q]`; per step `state [H]`,
//! `query [Q]`, `context [Dk]`. The keys and values do not change from step to step, so they are
//! stored once.

use crate::models::StepInternals;

/// The numbers behind an RNN's attention steps: `"rnn"` in `attend explain --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RnnExplanation {
    /// The score function: `additive`, `dot` or `general`.
    pub score: String,
    /// The encoder's annotations h_j, the values: `[S][Dk]`.
    pub values: Vec<Vec<f32>>,
    /// The keys as the score reads them, k_j: `[S][Q]`.
    pub keys: Vec<Vec<f32>>,
    /// Additive attention's v: `[Q]` (absent for `dot` and `general`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Vec<f32>>,
    /// One entry per decoder step, in the order of the explanation's `steps`.
    pub steps: Vec<RnnStep>,
}

/// One decoder step's attention inputs and output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RnnStep {
    /// The decoder state s_{t-1} the step scored the source with: `[H]`.
    pub state: Vec<f32>,
    /// The state as the score reads it, q: `[Q]`.
    pub query: Vec<f32>,
    /// The context c_t = Σ_j a_j h_j: `[Dk]`.
    pub context: Vec<f32>,
}

impl RnnExplanation {
    /// Starts from the first step's internals (row 0, the first `n` source positions).
    pub fn new(first: &StepInternals, n: usize) -> RnnExplanation {
        RnnExplanation {
            score: first.score.to_string(),
            values: rows_of(first.values.data(), first.values.dim(2), n),
            keys: rows_of(first.keys.data(), first.keys.dim(2), n),
            v: first.v.as_ref().map(|v| v.data().to_vec()),
            steps: Vec::new(),
        }
    }

    /// Appends a step's state, query and context (row 0).
    pub fn push(&mut self, step: &StepInternals) {
        let row = |t: &tensor::Tensor| t.data()[..t.dim(1)].to_vec();
        self.steps.push(RnnStep {
            state: row(&step.state),
            query: row(&step.query),
            context: row(&step.context),
        });
    }
}

/// The first `n` rows of width `width` of row 0 of a `[rows, S, width]` tensor's data.
fn rows_of(data: &[f32], width: usize, n: usize) -> Vec<Vec<f32>> {
    data.chunks(width).take(n).map(<[f32]>::to_vec).collect()
}
