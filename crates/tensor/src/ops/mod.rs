//! Differentiable ops on [`Var`](crate::Var): each file holds one family, forward and backward.
//!
//! Tensor-level forward kernels are public too (`ops::matmul::matmul_tensors`, …) so that inference
//! code and tests can call them without the tape.

pub mod additive_step;
pub mod binary;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod flash_attention;
pub mod gather;
pub mod layer_norm;
pub mod layout;
pub mod mask;
pub mod matmul;
pub mod pool;
pub mod recurrence;
pub mod reduce;
pub mod softmax;
pub mod step_attention;
pub mod unary;
