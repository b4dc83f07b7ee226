//! Masked fill: positions where the mask is non-zero take a constant value.
//!
//! `out = mask ? value : x`, the mask broadcast against `x` (e.g. a `[B, 1, S]` padding mask over
//! `[B, T, S]` scores). Backward passes the gradient only through unmasked positions.

use crate::ops::binary::broadcast_zip;
use crate::tensor::Tensor;
use crate::var::Var;

impl Var {
    /// Where `mask != 0` the output is `value` (typically −∞ before a softmax).
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Var {
        let out = broadcast_zip(&self.value(), mask, |x, m| if m != 0.0 { value } else { x });
        assert_eq!(
            out.shape(),
            self.value().shape(),
            "masked_fill: mask must broadcast to x"
        );
        let mask = mask.clone();
        Var::from_op(
            out,
            vec![self.clone()],
            Box::new(move |g, _, _| {
                vec![Some(broadcast_zip(g, &mask, |g, m| {
                    if m != 0.0 {
                        0.0
                    } else {
                        g
                    }
                }))]
            }),
        )
    }
}
