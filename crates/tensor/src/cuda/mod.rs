//! A CUDA device for the engine (cargo feature `cuda`): tensors in GPU memory ([`GpuTensor`]),
//! matrix products through cuBLAS ([`matmul`]), and NVRTC-compiled kernels for everything else,
//! each op forward and backward, the CPU op of the same name being the reference.
//!
//! Nothing CUDA is needed to build: `cudarc` loads `libcuda.so`, `libnvrtc.so` and `libcublas.so`
//! at run time, and the kernels ([`kernels::SOURCES`], CUDA C in `kernels/*.cu` with their formulas)
//! are compiled for the device's architecture when a [`CudaDevice`] is opened. A missing library or
//! device is a [`CudaError`], never a panic. See docs/cuda.md for what has been verified where.

pub mod adam;
pub mod buffer;
pub mod compile;
pub mod cross_entropy;
pub mod device;
pub mod elementwise;
pub mod embedding;
pub mod error;
pub mod flash_attention;
pub mod kernels;
pub mod layer_norm;
pub mod library;
pub mod matmul;
pub mod nccl;
pub mod recurrence;
pub mod softmax;

pub use buffer::GpuTensor;
pub use device::{device_count, CudaDevice};
pub use error::CudaError;
pub use matmul::matmul;
