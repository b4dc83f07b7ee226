//! [`CudaError`]: what can go wrong between the engine and a GPU, as values that say what to do next.

use cudarc::cublas::result::CublasError;
use cudarc::driver::DriverError;

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// `libcuda.so` (the NVIDIA driver) could not be loaded.
    #[error("no CUDA driver found (libcuda.so not loadable): {0}")]
    NoDriver(String),
    /// `libnvrtc.so` (the run-time compiler, part of the CUDA toolkit or the `nvidia-cuda-nvrtc`
    /// wheel) could not be loaded.
    #[error("NVRTC not found (libnvrtc.so not loadable): {0}; install the CUDA runtime libraries or put their folder on LD_LIBRARY_PATH")]
    NoNvrtc(String),
    /// `libcublas.so` could not be loaded.
    #[error("cuBLAS not found (libcublas.so not loadable): {0}; install the CUDA runtime libraries or put their folder on LD_LIBRARY_PATH")]
    NoCublas(String),
    /// `libnccl.so` could not be loaded.
    #[error("NCCL not found (libnccl.so not loadable): {0}; install NCCL (the `nvidia-nccl` wheel or the CUDA repository's libnccl2) or put its folder on LD_LIBRARY_PATH")]
    NoNccl(String),
    /// An NCCL call failed.
    #[error("NCCL: {0}")]
    Nccl(String),
    /// The ordinal names no device.
    #[error("CUDA device {ordinal} was asked for, but {count} device(s) are present")]
    NoDevice { ordinal: usize, count: usize },
    /// A driver call failed (allocation, copy, launch, …).
    #[error("CUDA driver: {0}")]
    Driver(#[from] DriverError),
    /// A cuBLAS call failed.
    #[error("cuBLAS: {0}")]
    Cublas(#[from] CublasError),
    /// NVRTC rejected a kernel source.
    #[error("NVRTC could not compile the `{name}` kernels: {log}")]
    Compile { name: String, log: String },
    /// The op is not implemented for these sizes on the GPU.
    #[error("not supported on the CUDA device: {0}")]
    Unsupported(String),
}
