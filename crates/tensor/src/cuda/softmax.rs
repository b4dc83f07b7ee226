//! Softmax and log-softmax over the last axis on the device (kernels: `kernels/softmax.cu`).
//! `log = true` selects log-softmax.

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::PushKernelArg;

/// `softmax(x)` or `log_softmax(x)` over the last axis.
pub fn forward(dev: &CudaDevice, x: &GpuTensor, log: bool) -> Result<GpuTensor, CudaError> {
    let d = x.shape().last().copied().unwrap_or(1).max(1);
    let rows = x.numel() / d;
    let mut y = GpuTensor::zeros(dev, x.shape())?;
    if rows == 0 {
        return Ok(y);
    }
    let (di, li) = (d as i32, log as i32);
    let mut l = dev.stream().launch_builder(dev.function("softmax_forward"));
    l.arg(x.slice()).arg(y.slice_mut()).arg(&di).arg(&li);
    // SAFETY: one block per row of d floats.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    Ok(y)
}

/// `dx` from the forward output `y` and `dy`.
pub fn backward(
    dev: &CudaDevice,
    y: &GpuTensor,
    dy: &GpuTensor,
    log: bool,
) -> Result<GpuTensor, CudaError> {
    assert_eq!(y.shape(), dy.shape(), "cuda softmax backward: shapes");
    let d = y.shape().last().copied().unwrap_or(1).max(1);
    let rows = y.numel() / d;
    let mut dx = GpuTensor::zeros(dev, y.shape())?;
    if rows == 0 {
        return Ok(dx);
    }
    let (di, li) = (d as i32, log as i32);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("softmax_backward"));
    l.arg(y.slice())
        .arg(dy.slice())
        .arg(dx.slice_mut())
        .arg(&di)
        .arg(&li);
    // SAFETY: one block per row of d floats.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    Ok(dx)
}
