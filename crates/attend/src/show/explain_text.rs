//! The step-by-step explanation, as the seed notes walk through it: at each decoder step, the
//! alignment score e_ij of every source token j, the softmax weights
//! α_ij = exp(e_ij) / Σ_k exp(e_ik) as numbers and as bars, the tokens attended most, and the
//! word emitted from the context c_i = Σ_j α_ij h_j.
//!
//! ```text
//! step 1 → "chat"
//!   source    score  weight
//!   black    -0.412   0.128  ██▌
//!   cat       1.530   0.872  █████████████████▍
//!   top: cat 0.872, black 0.128
//! ```

use super::{check_finite, check_len, ShowError};

/// A bar for weight 1 is this many characters wide.
const BAR_CHARS: usize = 20;
/// Partial blocks for 1/8 … 7/8 of a character.
const EIGHTHS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
/// How far the weights of one step may sum from 1.
const SUM_TOLERANCE: f32 = 1e-3;

/// What the decoder did at one step. Serialises to JSON as it stands (for `--json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExplainStep {
    /// Decoder step, counted from 1.
    pub step: usize,
    /// The target token emitted at this step.
    pub emitted: String,
    /// The source tokens attended over: `[src_len]`.
    pub source_tokens: Vec<String>,
    /// Alignment scores e_ij before the softmax: `[src_len]`.
    pub scores: Vec<f32>,
    /// Attention weights α_ij = softmax(scores): `[src_len]`, summing to 1.
    pub weights: Vec<f32>,
}

impl ExplainStep {
    /// Checks that tokens, scores and weights line up and that the weights are a distribution.
    pub fn check(&self) -> Result<(), ShowError> {
        let n = self.source_tokens.len();
        if n == 0 {
            return Err(ShowError::Empty(format!(
                "source tokens of step {}",
                self.step
            )));
        }
        check_len(
            &format!("scores of step {}", self.step),
            n,
            self.scores.len(),
        )?;
        check_len(
            &format!("weights of step {}", self.step),
            n,
            self.weights.len(),
        )?;
        check_finite(&format!("scores of step {}", self.step), &self.scores)?;
        check_finite(&format!("weights of step {}", self.step), &self.weights)?;
        let sum: f32 = self.weights.iter().sum();
        if self.weights.iter().any(|w| !(0.0..=1.0).contains(w))
            || (sum - 1.0).abs() > SUM_TOLERANCE
        {
            return Err(ShowError::Invalid(format!(
                "weights of step {} are not a softmax distribution (each in [0, 1], sum 1): \
                 they sum to {sum}",
                self.step
            )));
        }
        Ok(())
    }

    /// Indices of the `k` largest weights, largest first (ties: earlier token first).
    pub fn top(&self, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.weights.len()).collect();
        order.sort_by(|&a, &b| self.weights[b].total_cmp(&self.weights[a]).then(a.cmp(&b)));
        order.truncate(k);
        order
    }
}

/// A horizontal bar of `weight` × 20 characters, in eighths of a character.
fn bar(weight: f32) -> String {
    let eighths = (weight.clamp(0.0, 1.0) * (BAR_CHARS * 8) as f32).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    match eighths % 8 {
        0 => {}
        rest => s.push(EIGHTHS[rest - 1]),
    }
    s
}

/// Pads `s` with spaces to `width` characters.
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// The explanation of every step as terminal text, naming the `top_k` most attended tokens.
pub fn explain_text(steps: &[ExplainStep], top_k: usize) -> Result<String, ShowError> {
    if steps.is_empty() {
        return Err(ShowError::Empty(
            "explanation (no decoder steps)".to_string(),
        ));
    }
    let mut out = String::new();
    for s in steps {
        s.check()?;
        let width = s
            .source_tokens
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0)
            .max("source".len());
        out.push_str(&format!("step {} → \"{}\"\n", s.step, s.emitted));
        out.push_str(&format!("  {}    score  weight\n", pad("source", width)));
        for ((token, score), weight) in s.source_tokens.iter().zip(&s.scores).zip(&s.weights) {
            out.push_str(&format!(
                "  {} {score:>8.3} {weight:>7.3}  {}\n",
                pad(token, width),
                bar(*weight)
            ));
        }
        let top: Vec<String> = s
            .top(top_k)
            .into_iter()
            .map(|j| format!("{} {:.3}", s.source_tokens[j], s.weights[j]))
            .collect();
        out.push_str(&format!("  top: {}\n", top.join(", ")));
    }
    Ok(out)
}
