//! Whether the CUDA shared libraries can be loaded, asked before cudarc touches them (cudarc panics
//! when a library it needs is missing; the engine turns that into a [`CudaError`] instead).

use super::error::CudaError;

/// Tries every file name cudarc would try for `lib` (`"cuda"`, `"nvrtc"`, `"cublas"`, `"nccl"`); on failure
/// returns the loader's last message and the names tried.
fn loadable(lib: &str) -> Result<(), String> {
    let names = cudarc::get_lib_name_candidates(lib);
    let mut last = String::new();
    for name in &names {
        // SAFETY: loading a CUDA library runs its initialisers, which is what cudarc does next anyway.
        match unsafe { libloading::Library::new(name) } {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("{last} (tried {})", names.join(", ")))
}

/// The NVIDIA driver, `libcuda.so`.
pub fn driver() -> Result<(), CudaError> {
    loadable("cuda").map_err(CudaError::NoDriver)
}

/// The run-time compiler, `libnvrtc.so`.
pub fn nvrtc() -> Result<(), CudaError> {
    loadable("nvrtc").map_err(CudaError::NoNvrtc)
}

/// cuBLAS, `libcublas.so`.
pub fn cublas() -> Result<(), CudaError> {
    loadable("cublas").map_err(CudaError::NoCublas)
}

/// NCCL, `libnccl.so` (the collectives of a multi-GPU job).
pub fn nccl() -> Result<(), CudaError> {
    loadable("nccl").map_err(CudaError::NoNccl)
}
