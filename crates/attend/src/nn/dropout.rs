//! Dropout (Srivastava et al. 2014), inverted: in training each element is zeroed with probability
//! `p` and the survivors are scaled by `1/(1 − p)`; in evaluation it is the identity.

use tensor::{Rng, Var};

#[derive(Debug, thiserror::Error)]
#[error("dropout probability {0} must be in [0, 1)")]
pub struct DropoutError(pub f32);

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    pub fn new(p: f32) -> Result<Dropout, DropoutError> {
        if (0.0..1.0).contains(&p) {
            Ok(Dropout { p })
        } else {
            Err(DropoutError(p))
        }
    }

    pub fn p(&self) -> f32 {
        self.p
    }

    /// `x` unchanged in evaluation (`rng = None`); masked and rescaled in training (`Some(rng)`).
    pub fn forward(&self, x: &Var, rng: Option<&mut Rng>) -> Var {
        match rng {
            Some(rng) => x.dropout(self.p, rng),
            None => x.clone(),
        }
    }
}
