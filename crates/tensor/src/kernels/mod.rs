//! Low-level kernels on slices: matrix products (through `gemm`) and fused loops.

pub mod feed_forward;
pub mod few_rows;
pub mod fill;
pub mod gemm;
pub mod isa;
pub mod math;
pub mod transpose;
