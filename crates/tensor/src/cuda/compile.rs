//! NVRTC: the kernel sources ([`super::kernels::SOURCES`]) to PTX at run time.

use super::error::CudaError;
use super::kernels::KernelSource;
use super::library;
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

/// Compiles one kernel source to PTX for the virtual architecture `arch` (`"compute_90"`; `None`:
/// NVRTC's default). Fails with [`CudaError::NoNvrtc`] when `libnvrtc.so` cannot be loaded.
pub fn compile_ptx(src: &KernelSource, arch: Option<&str>) -> Result<Ptx, CudaError> {
    library::nvrtc()?;
    let mut options = vec!["--std=c++17".to_string()];
    if let Some(arch) = arch {
        options.push(format!("--gpu-architecture={arch}"));
    }
    let opts = CompileOptions {
        options,
        name: Some(format!("{}.cu", src.name)),
        ..Default::default()
    };
    compile_ptx_with_opts(src.full_source(), opts).map_err(|e| CudaError::Compile {
        name: src.name.to_string(),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })
}
