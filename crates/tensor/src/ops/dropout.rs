//! Inverted dropout with a seeded generator.
//!
//! Training: each element is zeroed with probability `p` and the survivors scaled by `1/(1−p)`, so the
//! expectation is unchanged; backward applies the same mask. `p = 0` is the identity.

use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::var::Var;

impl Var {
    /// Dropout with probability `p` drawn from `rng` (identity when `p == 0`).
    pub fn dropout(&self, p: f32, rng: &mut Rng) -> Var {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout: p = {p} must be in [0, 1)"
        );
        if p == 0.0 {
            return self.clone();
        }
        let scale = 1.0 / (1.0 - p);
        let shape = self.shape();
        let keep: Vec<f32> = (0..self.value().numel())
            .map(|_| {
                if rng.uniform(0.0, 1.0) >= p {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(keep, &shape);
        let out = self.value().zip(&mask, |x, m| x * m);
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, _| vec![Some(g.zip(&mask, |g, m| g * m))]),
        )
    }
}
