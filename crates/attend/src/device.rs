//! `--device cpu|cuda[:N]`: which device runs the engine, parsed and checked with errors that say
//! what to do next (never a panic).
//!
//! The CUDA device layer lives in the engine (`tensor::cuda`, cargo feature `cuda`); attend's models
//! still run on the CPU, so asking for CUDA checks that the driver and the GPU are there and then
//! says so plainly instead of silently running on the CPU (docs/cuda.md).

use std::fmt;
use std::str::FromStr;

/// Where the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// GPU with this index (`cuda` = `cuda:0`).
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N` (N = the GPU's index, from 0)"
    )]
    Parse(String),
    #[error("CUDA was asked for but this binary was built without the `cuda` feature (rebuild with `cargo build --release --features cuda`, see docs/cuda.md)")]
    NotBuilt,
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] tensor::cuda::CudaError),
    #[error("CUDA device {0} is present, but attend's models do not run on the GPU yet (the engine's CUDA ops are tested on their own, see docs/cuda.md); use --device cpu")]
    ModelsNotOnGpu(usize),
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Device, DeviceError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Device {
    /// Checks that the models can run on this device: the CPU always; CUDA needs the `cuda` feature,
    /// a loadable driver and a GPU with that index — and then still fails, as the models do not run
    /// on the GPU yet.
    pub fn check(self) -> Result<(), DeviceError> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(n) => cuda_check(n),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_check(ordinal: usize) -> Result<(), DeviceError> {
    let count = tensor::cuda::device_count()?;
    if ordinal >= count {
        return Err(tensor::cuda::CudaError::NoDevice { ordinal, count }.into());
    }
    Err(DeviceError::ModelsNotOnGpu(ordinal))
}

#[cfg(not(feature = "cuda"))]
fn cuda_check(_ordinal: usize) -> Result<(), DeviceError> {
    Err(DeviceError::NotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_cuda_and_an_index() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let err = bad.parse::<Device>().unwrap_err().to_string();
            assert!(err.starts_with("unknown device"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_cpu_is_always_there() {
        Device::Cpu.check().unwrap();
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = Device::Cuda(0).check().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "CUDA was asked for but this binary was built without the `cuda` feature"
            ),
            "{err}"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_without_a_driver_is_a_clear_error() {
        if tensor::cuda::library::driver().is_ok() {
            println!("SKIPPED: libcuda.so is loadable here");
            return;
        }
        let err = Device::Cuda(0).check().unwrap_err().to_string();
        assert!(
            err.starts_with("no CUDA driver found (libcuda.so not loadable): "),
            "{err}"
        );
    }
}
