//! attend's engine: f32 tensors, reverse-mode differentiation on a tape, and fast CPU kernels.
//!
//! The engine knows nothing about machine learning models. It offers:
//! - [`Tensor`]: a contiguous, row-major f32 array with a shape;
//! - [`Var`]: a node of the differentiation tape holding a tensor value; every op on `Var`s records a
//!   backward function, and [`Var::backward`] walks the tape in reverse topological order;
//! - kernels: matrix products through the `gemm` crate, threads through `rayon` ([`threads`]).
//!
//! Shape mismatches inside the engine are programming errors and panic with a message naming the op and
//! the shapes (as `ndarray` does); everything a *user* supplies is validated before it reaches the engine.

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod gradcheck;
pub mod kernels;
pub mod ops;
pub mod rng;
pub mod shape;
pub mod tensor;
pub mod threads;
pub mod var;

pub use rng::Rng;
pub use tensor::Tensor;
pub use var::{is_grad_enabled, no_grad, Var};
