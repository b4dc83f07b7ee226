//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) with bias correction, and global-norm
//! gradient clipping — each exactly as PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` /
//! `torch.nn.utils.clip_grad_norm_`.
//!
//! Per parameter `p` with gradient `g`, at its step `t` (1, 2, …), learning rate `lr`:
//! ```text
//! Adam:   g ← g + λ p                      (L2 weight decay, when λ > 0)
//! AdamW:  p ← p (1 − lr λ)                 (decoupled weight decay)
//! m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
//! p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//! Parameters without a gradient are skipped (their moments and step stay as they are).
//! The state (moments and step of every parameter) round-trips through [`Adam::state_tensors`] and
//! [`Adam::load_state`], so a resumed run continues exactly as an uninterrupted one.

use rayon::prelude::*;
use std::collections::BTreeMap;
use tensor::{Tensor, Var};

/// Elements per parallel chunk of the update (a chunk of all four arrays stays in L2).
const CHUNK: usize = 1 << 14;

/// A saved optimizer state that does not fit the parameters.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error(
        "optimizer state: unexpected tensor `{0}` (the state was saved for a different model)"
    )]
    Unknown(String),
    #[error("optimizer state: `{name}` has shape {found:?}, the parameter has {expected:?} (the state was saved for a different model)")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("optimizer state: parameter {0} has an incomplete state (needs exp_avg, exp_avg_sq and step)")]
    Incomplete(usize),
}

/// Hyper-parameters (PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// λ; 0 disables weight decay.
    pub weight_decay: f32,
    /// `true`: AdamW (decay the weights directly); `false`: Adam (add λp to the gradient).
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> AdamConfig {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

/// Moments and step count of one parameter.
#[derive(Clone)]
struct Moments {
    m: Tensor,
    v: Tensor,
    step: u64,
}

/// Adam / AdamW over a fixed list of parameters.
pub struct Adam {
    params: Vec<Var>,
    config: AdamConfig,
    /// One entry per parameter, created at its first update.
    state: Vec<Option<Moments>>,
}

impl Adam {
    pub fn new(params: Vec<Var>, config: AdamConfig) -> Adam {
        let state = vec![None; params.len()];
        Adam {
            params,
            config,
            state,
        }
    }

    pub fn config(&self) -> AdamConfig {
        self.config
    }

    /// One update of every parameter that has a gradient, with learning rate `lr`.
    pub fn step(&mut self, lr: f32) {
        let c = self.config;
        for (p, slot) in self.params.iter().zip(&mut self.state) {
            let grad = p.grad_ref();
            let Some(g) = grad.as_ref() else { continue };
            let mut value = p.value_mut();
            let st = slot.get_or_insert_with(|| Moments {
                m: Tensor::zeros(value.shape()),
                v: Tensor::zeros(value.shape()),
                step: 0,
            });
            st.step += 1;
            // Bias corrections in f64, as PyTorch computes them (Python floats).
            let t = st.step as i32;
            let bc1 = 1.0 - (c.beta1 as f64).powi(t);
            let bc2_sqrt = (1.0 - (c.beta2 as f64).powi(t)).sqrt();
            let step_size = (lr as f64 / bc1) as f32;
            let bc2_sqrt = bc2_sqrt as f32;
            // (λ added to the gradient, factor on the weights)
            let (l2, decay) = if c.decoupled_weight_decay {
                (0.0, 1.0 - lr * c.weight_decay)
            } else {
                (c.weight_decay, 1.0)
            };
            let (b1, b2, eps) = (c.beta1, c.beta2, c.eps);
            let update = |x: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
                for (((x, &g), m), v) in x.iter_mut().zip(g).zip(m).zip(v) {
                    let g = g + l2 * *x;
                    *x *= decay;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *x -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
                }
            };
            // Element-wise, so the chunks are independent: large parameters (the 8000-row output
            // projection) are spread over the threads.
            value
                .data_mut()
                .par_chunks_mut(CHUNK)
                .zip(g.data().par_chunks(CHUNK))
                .zip(st.m.data_mut().par_chunks_mut(CHUNK))
                .zip(st.v.data_mut().par_chunks_mut(CHUNK))
                .for_each(|(((x, g), m), v)| update(x, g, m, v));
        }
    }

    /// The state as named tensors: `{i}.exp_avg`, `{i}.exp_avg_sq` (the parameter's shape) and
    /// `{i}.step` (`[1]`, exact up to 2²⁴ steps) for parameter `i` (in the order given to
    /// [`Adam::new`]) once it has been updated.
    pub fn state_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (i, st) in self.state.iter().enumerate() {
            if let Some(st) = st {
                out.insert(format!("{i}.exp_avg"), st.m.clone());
                out.insert(format!("{i}.exp_avg_sq"), st.v.clone());
                out.insert(
                    format!("{i}.step"),
                    Tensor::from_vec(vec![st.step as f32], &[1]),
                );
            }
        }
        out
    }

    /// Replaces the state with one from [`Adam::state_tensors`]; nothing changes on an error.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<(), OptimError> {
        let mut parts: Vec<[Option<&Tensor>; 3]> = vec![[None; 3]; self.params.len()];
        for (name, t) in tensors {
            let unknown = || OptimError::Unknown(name.clone());
            let (index, field) = name.split_once('.').ok_or_else(unknown)?;
            let i: usize = index.parse().map_err(|_| unknown())?;
            let f = ["exp_avg", "exp_avg_sq", "step"]
                .iter()
                .position(|&x| x == field)
                .ok_or_else(unknown)?;
            let p = self.params.get(i).ok_or_else(unknown)?;
            let expected = if f == 2 { vec![1] } else { p.shape() };
            if t.shape() != expected.as_slice() {
                return Err(OptimError::Shape {
                    name: name.clone(),
                    expected,
                    found: t.shape().to_vec(),
                });
            }
            parts[i][f] = Some(t);
        }
        let mut state = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            state.push(match part {
                [None, None, None] => None,
                [Some(m), Some(v), Some(s)] => Some(Moments {
                    m: m.clone(),
                    v: v.clone(),
                    step: s.item() as u64,
                }),
                _ => return Err(OptimError::Incomplete(i)),
            });
        }
        self.state = state;
        Ok(())
    }
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: `norm = √(Σ_p Σ g²)`; when `norm > max_norm` every gradient is
/// multiplied by `max_norm / (norm + 1e-6)`. Returns the norm before clipping. A non-finite norm
/// leaves the gradients untouched (the caller should skip the step).
pub fn clip_grad_norm(params: &[Var], max_norm: f32) -> f32 {
    let sq: f64 = params
        .iter()
        .filter_map(|p| {
            p.grad_ref()
                .as_ref()
                .map(|g| g.data().iter().map(|&x| x as f64 * x as f64).sum::<f64>())
        })
        .sum();
    let norm = sq.sqrt() as f32;
    if norm.is_finite() && norm > max_norm {
        let coef = max_norm / (norm + 1e-6);
        for p in params {
            let Some(g) = p.grad() else { continue };
            // A leaf's backward adds the seed to its gradient: clear it, then add the scaled one.
            p.zero_grad();
            p.backward_with(g.map(|x| x * coef));
        }
    }
    norm
}
