//! Learning-rate schedules. Steps count from 1 (the first optimizer step); step 0 is read as 1.
//!
//! - `Constant { lr }`: `lr` at every step.
//! - `Noam { d_model, warmup, factor }` (Vaswani et al. 2017, §5.3):
//!   `lr(s) = factor · d_model^−½ · min(s^−½, s · warmup^−³ᐟ²)` — linear warm-up for `warmup` steps,
//!   then decay with the inverse square root of the step; the peak, at `s = warmup`, is
//!   `factor · (d_model · warmup)^−½`.
//! - `InverseSqrt { lr, warmup }` (fairseq's `inverse_sqrt`): `lr · s / warmup` while `s < warmup`,
//!   then `lr · √(warmup / s)`; the peak `lr` at `s = warmup` (`warmup = 0`: `lr · s^−½`).
//! - `Plateau(..)` (PyTorch's `ReduceLROnPlateau`, relative threshold, no cooldown): the rate starts at
//!   `lr`; after more than `patience` validations in a row without a relative improvement of the
//!   metric by `threshold`, it is multiplied by `factor`, never below `min_lr`.
//!
//! A schedule is plain data (serde), so a checkpoint can save it and a resumed run continues exactly.

use serde::{Deserialize, Serialize};

/// Whether a lower (loss) or higher (BLEU) validation metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Min,
    Max,
}

/// The reduce-on-plateau schedule and its running state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Current learning rate.
    pub lr: f32,
    /// Multiplier applied on a plateau, in (0, 1).
    pub factor: f32,
    /// Validations without improvement tolerated before reducing.
    pub patience: usize,
    pub min_lr: f32,
    pub mode: Mode,
    /// Relative improvement that counts (PyTorch's default 1e-4).
    pub threshold: f64,
    /// Best metric so far.
    pub best: Option<f64>,
    /// Validations since the best one.
    pub bad_validations: usize,
}

impl Plateau {
    pub fn new(lr: f32, factor: f32, patience: usize, min_lr: f32, mode: Mode) -> Plateau {
        Plateau {
            lr,
            factor,
            patience,
            min_lr,
            mode,
            threshold: 1e-4,
            best: None,
            bad_validations: 0,
        }
    }

    fn improves(&self, metric: f64) -> bool {
        match (self.best, self.mode) {
            (None, _) => true,
            (Some(b), Mode::Min) => metric < b - self.threshold * b.abs(),
            (Some(b), Mode::Max) => metric > b + self.threshold * b.abs(),
        }
    }

    /// Records a validation metric; returns whether the rate was reduced.
    pub fn observe(&mut self, metric: f64) -> bool {
        if self.improves(metric) {
            self.best = Some(metric);
            self.bad_validations = 0;
            return false;
        }
        self.bad_validations += 1;
        if self.bad_validations <= self.patience {
            return false;
        }
        self.bad_validations = 0;
        let reduced = (self.lr * self.factor).max(self.min_lr);
        let changed = self.lr - reduced > 1e-8;
        if changed {
            self.lr = reduced;
        }
        changed
    }
}

/// A learning-rate schedule (see the module doc for the formulas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    Constant {
        lr: f32,
    },
    Noam {
        d_model: usize,
        warmup: usize,
        factor: f32,
    },
    InverseSqrt {
        lr: f32,
        warmup: usize,
    },
    Plateau(Plateau),
}

impl Schedule {
    /// The learning rate for optimizer step `step` (1-based).
    pub fn lr(&self, step: usize) -> f32 {
        let s = step.max(1) as f64;
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::Noam {
                d_model,
                warmup,
                factor,
            } => {
                let w = (*warmup).max(1) as f64;
                (*factor as f64 * (*d_model as f64).powf(-0.5) * s.powf(-0.5).min(s * w.powf(-1.5)))
                    as f32
            }
            Schedule::InverseSqrt { lr, warmup } => {
                let (lr, w) = (*lr as f64, *warmup as f64);
                let r = if s < w {
                    lr * s / w
                } else {
                    lr * (w.max(1.0) / s).sqrt()
                };
                r as f32
            }
            Schedule::Plateau(p) => p.lr,
        }
    }

    /// Tells the schedule a validation result (only the plateau schedule uses it); returns whether
    /// the rate was reduced.
    pub fn on_validation(&mut self, metric: f64) -> bool {
        match self {
            Schedule::Plateau(p) => p.observe(metric),
            _ => false,
        }
    }
}
