//! Layer normalisation over the last axis on the device (kernels: `kernels/layer_norm.cu`).

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::PushKernelArg;

/// The forward's output and what its backward needs: per-row mean and reciprocal std (`[rows]`).
pub struct LayerNormOut {
    pub y: GpuTensor,
    pub mean: GpuTensor,
    pub rstd: GpuTensor,
}

/// `y = (x − μ)/√(σ² + ε) · γ + β` over the last axis; `gamma, beta [D]`.
pub fn forward(
    dev: &CudaDevice,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    eps: f32,
) -> Result<LayerNormOut, CudaError> {
    let d = x.dim(-1);
    assert!(
        gamma.shape() == [d] && beta.shape() == [d],
        "cuda layer_norm: x {:?}, gamma {:?}, beta {:?}",
        x.shape(),
        gamma.shape(),
        beta.shape()
    );
    let rows = x.numel() / d.max(1);
    let mut out = LayerNormOut {
        y: GpuTensor::zeros(dev, x.shape())?,
        mean: GpuTensor::zeros(dev, &[rows])?,
        rstd: GpuTensor::zeros(dev, &[rows])?,
    };
    if rows == 0 {
        return Ok(out);
    }
    let di = d as i32;
    let mut l = dev
        .stream()
        .launch_builder(dev.function("layer_norm_forward"));
    l.arg(x.slice())
        .arg(gamma.slice())
        .arg(beta.slice())
        .arg(out.y.slice_mut())
        .arg(out.mean.slice_mut())
        .arg(out.rstd.slice_mut())
        .arg(&di)
        .arg(&eps);
    // SAFETY: one block per row of d floats; mean and rstd hold one float per row.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    Ok(out)
}

/// `(dx, dγ, dβ)` from the forward's input, γ, saved statistics and `dy`.
pub fn backward(
    dev: &CudaDevice,
    x: &GpuTensor,
    gamma: &GpuTensor,
    saved: &LayerNormOut,
    dy: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor, GpuTensor), CudaError> {
    assert_eq!(x.shape(), dy.shape(), "cuda layer_norm backward: shapes");
    let d = x.dim(-1);
    let rows = x.numel() / d.max(1);
    let mut dx = GpuTensor::zeros(dev, x.shape())?;
    let mut dgamma = GpuTensor::zeros(dev, &[d])?;
    let mut dbeta = GpuTensor::zeros(dev, &[d])?;
    if rows == 0 {
        return Ok((dx, dgamma, dbeta));
    }
    let (di, rows_i) = (d as i32, rows as i64);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("layer_norm_backward_x"));
    l.arg(x.slice())
        .arg(gamma.slice())
        .arg(dy.slice())
        .arg(saved.mean.slice())
        .arg(saved.rstd.slice())
        .arg(dx.slice_mut())
        .arg(&di);
    // SAFETY: one block per row of d floats.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    let mut l = dev
        .stream()
        .launch_builder(dev.function("layer_norm_backward_params"));
    l.arg(x.slice())
        .arg(dy.slice())
        .arg(saved.mean.slice())
        .arg(saved.rstd.slice())
        .arg(dgamma.slice_mut())
        .arg(dbeta.slice_mut())
        .arg(&rows_i)
        .arg(&di);
    // SAFETY: one thread per column j < d reading rows·d floats.
    unsafe { l.launch(CudaDevice::grid_for(d)) }?;
    Ok((dx, dgamma, dbeta))
}
