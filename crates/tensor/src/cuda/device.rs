//! [`CudaDevice`]: one GPU — its context and stream, a cuBLAS handle, and every kernel of
//! [`super::kernels::SOURCES`] compiled with NVRTC for the device's architecture and loaded.

use super::compile::compile_ptx;
use super::error::CudaError;
use super::kernels::SOURCES;
use super::library;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// Threads per block of the element-wise and row kernels (a multiple of 32).
pub(crate) const BLOCK: u32 = 256;

/// An opened GPU with its kernels ready.
pub struct CudaDevice {
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
}

/// Number of CUDA devices; [`CudaError::NoDriver`] when `libcuda.so` cannot be loaded.
pub fn device_count() -> Result<usize, CudaError> {
    library::driver()?;
    Ok(CudaContext::device_count()?.max(0) as usize)
}

impl CudaDevice {
    /// Opens device `ordinal` and compiles the kernels for it (NVRTC, a few seconds). Every missing
    /// piece is an error, never a panic: the driver, the device, NVRTC, cuBLAS.
    pub fn new(ordinal: usize) -> Result<CudaDevice, CudaError> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        library::nvrtc()?;
        library::cublas()?;
        let ctx = CudaContext::new(ordinal)?;
        let name = ctx.name()?;
        let compute_capability = ctx.compute_capability()?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())?;
        let arch = format!("compute_{}{}", compute_capability.0, compute_capability.1);
        let mut functions = HashMap::new();
        for src in SOURCES {
            let module = ctx.load_module(compile_ptx(src, Some(&arch))?)?;
            for &f in src.functions {
                functions.insert(f, module.load_function(f)?);
            }
        }
        Ok(CudaDevice {
            ordinal,
            name,
            compute_capability,
            stream,
            blas,
            functions,
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's marketing name ("NVIDIA H100 80GB HBM3").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// (major, minor), e.g. (9, 0) for an H100.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Waits for all queued work (kernels and copies run asynchronously on the stream).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(self.stream.synchronize()?)
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// A loaded kernel by its `extern "C"` name (every name of `SOURCES` was loaded by `new`).
    pub(crate) fn function(&self, name: &str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("CUDA kernel `{name}` is not in kernels::SOURCES"))
    }

    /// A host slice copied to the device.
    pub(crate) fn upload<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>, CudaError> {
        Ok(self.stream.clone_htod(data)?)
    }

    /// `n` zeros on the device.
    pub(crate) fn zeros(&self, n: usize) -> Result<CudaSlice<f32>, CudaError> {
        Ok(self.stream.alloc_zeros::<f32>(n)?)
    }

    /// A grid-stride launch over `n` elements.
    pub(crate) fn grid_for(n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(BLOCK as usize).clamp(1, 65_535) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per row.
    pub(crate) fn per_row(rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}
