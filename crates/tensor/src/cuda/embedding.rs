//! Embedding rows on the device (kernels: `kernels/embedding.cu`): gather `table[ids]` and its
//! backward, a scatter-add into a zero table.

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::PushKernelArg;

fn check(table_rows: usize, ids: &[u32]) {
    assert!(
        ids.iter().all(|&i| (i as usize) < table_rows),
        "cuda embedding: an id is ≥ the {table_rows} rows of the table"
    );
}

/// `table [V, D]`, `ids [N]` → `[N, D]`.
pub fn gather_rows(
    dev: &CudaDevice,
    table: &GpuTensor,
    ids: &[u32],
) -> Result<GpuTensor, CudaError> {
    assert_eq!(
        table.shape().len(),
        2,
        "cuda gather_rows: table must be [V, D]"
    );
    let (v, d) = (table.shape()[0], table.shape()[1]);
    check(v, ids);
    let mut out = GpuTensor::zeros(dev, &[ids.len(), d])?;
    if ids.is_empty() || d == 0 {
        return Ok(out);
    }
    let idx = dev.upload(ids)?;
    let (n, di) = (ids.len() as i64, d as i32);
    let mut l = dev.stream().launch_builder(dev.function("gather_rows"));
    l.arg(table.slice())
        .arg(&idx)
        .arg(out.slice_mut())
        .arg(&n)
        .arg(&di);
    // SAFETY: ids were checked against V; out holds n·d floats.
    unsafe { l.launch(CudaDevice::grid_for(ids.len() * d)) }?;
    Ok(out)
}

/// `dtable [V, D]` with `dtable[ids[n]] += dout[n]`.
pub fn scatter_add_rows(
    dev: &CudaDevice,
    dout: &GpuTensor,
    ids: &[u32],
    vocab: usize,
) -> Result<GpuTensor, CudaError> {
    let d = dout.dim(-1);
    assert_eq!(dout.numel(), ids.len() * d, "cuda scatter_add_rows: dout");
    check(vocab, ids);
    let mut dt = GpuTensor::zeros(dev, &[vocab, d])?;
    if ids.is_empty() || d == 0 {
        return Ok(dt);
    }
    let idx = dev.upload(ids)?;
    let (n, di) = (ids.len() as i64, d as i32);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("scatter_add_rows"));
    l.arg(dout.slice())
        .arg(&idx)
        .arg(dt.slice_mut())
        .arg(&n)
        .arg(&di);
    // SAFETY: ids were checked against V; dout holds n·d floats.
    unsafe { l.launch(CudaDevice::grid_for(ids.len() * d)) }?;
    Ok(dt)
}
