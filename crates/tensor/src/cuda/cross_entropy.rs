//! Label-smoothed cross-entropy with an ignored index on the device (kernels:
//! `kernels/cross_entropy.cu`; the same definition as [`Var::cross_entropy`](crate::Var::cross_entropy)).

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::PushKernelArg;

/// The loss and what the backward needs.
pub struct CrossEntropyOut {
    /// Mean of the per-row losses over the counted rows (0 when every row is ignored).
    pub loss: f32,
    /// Number of rows whose target is not the ignored index.
    pub count: usize,
    /// Per-row log-sum-exp of the logits `[N]`.
    pub lse: GpuTensor,
}

fn launch_args(ignore: Option<u32>) -> (i32, u32) {
    (ignore.is_some() as i32, ignore.unwrap_or(0))
}

/// Loss of logits `z [..., V]` against `targets` (one per row).
pub fn forward(
    dev: &CudaDevice,
    z: &GpuTensor,
    targets: &[u32],
    ignore: Option<u32>,
    smoothing: f32,
) -> Result<CrossEntropyOut, CudaError> {
    let v = z.dim(-1);
    let rows = z.numel() / v.max(1);
    assert_eq!(
        rows,
        targets.len(),
        "cuda cross_entropy: {rows} rows, {} targets",
        targets.len()
    );
    assert!(
        targets
            .iter()
            .all(|&y| Some(y) == ignore || (y as usize) < v),
        "cuda cross_entropy: target ≥ {v}"
    );
    let count = targets.iter().filter(|&&y| Some(y) != ignore).count();
    let mut lse = GpuTensor::zeros(dev, &[rows])?;
    if rows == 0 {
        return Ok(CrossEntropyOut {
            loss: 0.0,
            count,
            lse,
        });
    }
    let mut per_row = GpuTensor::zeros(dev, &[rows])?;
    let y = dev.upload(targets)?;
    let (has, ign) = launch_args(ignore);
    let vi = v as i32;
    let mut l = dev
        .stream()
        .launch_builder(dev.function("cross_entropy_forward"));
    l.arg(z.slice())
        .arg(&y)
        .arg(per_row.slice_mut())
        .arg(lse.slice_mut())
        .arg(&vi)
        .arg(&smoothing)
        .arg(&has)
        .arg(&ign);
    // SAFETY: one block per row of v floats; targets were checked against v.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    let sum: f64 = per_row
        .download(dev)?
        .data()
        .iter()
        .map(|&x| x as f64)
        .sum();
    let loss = if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    };
    Ok(CrossEntropyOut { loss, count, lse })
}

/// `dz` for an upstream gradient `g` of the loss.
pub fn backward(
    dev: &CudaDevice,
    z: &GpuTensor,
    targets: &[u32],
    ignore: Option<u32>,
    smoothing: f32,
    saved: &CrossEntropyOut,
    g: f32,
) -> Result<GpuTensor, CudaError> {
    let v = z.dim(-1);
    let rows = z.numel() / v.max(1);
    assert_eq!(rows, targets.len(), "cuda cross_entropy backward: targets");
    let mut dz = GpuTensor::zeros(dev, z.shape())?;
    if rows == 0 || saved.count == 0 {
        return Ok(dz);
    }
    let y = dev.upload(targets)?;
    let (has, ign) = launch_args(ignore);
    let vi = v as i32;
    let s = g / saved.count as f32;
    let mut l = dev
        .stream()
        .launch_builder(dev.function("cross_entropy_backward"));
    l.arg(z.slice())
        .arg(&y)
        .arg(saved.lse.slice())
        .arg(dz.slice_mut())
        .arg(&vi)
        .arg(&smoothing)
        .arg(&has)
        .arg(&ign)
        .arg(&s);
    // SAFETY: one block per row of v floats.
    unsafe { l.launch(CudaDevice::per_row(rows)) }?;
    Ok(dz)
}
