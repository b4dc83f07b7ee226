//! Fused flash-style attention on the device (kernels: `kernels/flash_attention.cu`, with the
//! formulas): the same op as [`crate::ops::flash_attention::flash_attention`] — `Q [B, H, T, D]`,
//! `K, V [B, H, S, D]`, optional causal mask and key-padding lengths — with no `T × S` matrix in
//! memory; the forward keeps the log-sum-exp `[B·H·T]` for the backward.

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// Queries (forward, dQ) or keys (dK, dV) per block: one thread each (`FA_BR` in the source).
const ROWS_PER_BLOCK: usize = 64;
/// Head sizes with a compiled kernel.
pub const HEAD_SIZES: [usize; 4] = [16, 32, 64, 128];

/// The forward's output `[B, H, T, D]` and what the backward needs.
pub struct FlashOut {
    pub out: GpuTensor,
    /// Log-sum-exp of every query row, `[B·H·T]` (`+∞` for a row that sees no key).
    pub lse: GpuTensor,
    valid: CudaSlice<i32>,
    causal: bool,
    scale: f32,
}

#[derive(Clone, Copy)]
struct Dims {
    h: usize,
    t: usize,
    s: usize,
    d: usize,
    bh: usize,
}

fn dims(q: &GpuTensor, k: &GpuTensor, v: &GpuTensor) -> Result<Dims, CudaError> {
    let (qs, ks) = (q.shape(), k.shape());
    assert!(
        qs.len() == 4 && ks.len() == 4 && k.shape() == v.shape(),
        "cuda flash_attention: q {qs:?}, k {ks:?}, v {:?} must be [B, H, T, d], [B, H, S, d] twice",
        v.shape()
    );
    assert!(
        qs[0] == ks[0] && qs[1] == ks[1] && qs[3] == ks[3],
        "cuda flash_attention: q {qs:?} and k {ks:?} differ in batch, heads or head size"
    );
    let d = Dims {
        h: qs[1],
        t: qs[2],
        s: ks[2],
        d: qs[3],
        bh: qs[0] * qs[1],
    };
    if !HEAD_SIZES.contains(&d.d) {
        return Err(CudaError::Unsupported(format!(
            "flash attention with head size {} (compiled: {HEAD_SIZES:?})",
            d.d
        )));
    }
    if d.bh > 65_535 || d.t.max(d.s) > i32::MAX as usize {
        return Err(CudaError::Unsupported(format!(
            "flash attention over {} batch·heads, {} queries, {} keys",
            d.bh, d.t, d.s
        )));
    }
    Ok(d)
}

fn grid(rows: usize, bh: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS_PER_BLOCK).max(1) as u32, bh as u32, 1),
        block_dim: (ROWS_PER_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `softmax(Q Kᵀ · scale + mask) V`; `key_padding`: `Some(len)` with one length `≤ S` per batch row.
pub fn forward(
    dev: &CudaDevice,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
) -> Result<FlashOut, CudaError> {
    let dm = dims(q, k, v)?;
    assert!(
        scale.is_finite() && scale > 0.0,
        "cuda flash_attention: scale must be finite and positive, got {scale}"
    );
    let batch = q.shape()[0];
    let valid: Vec<i32> = match key_padding {
        Some(len) => {
            assert!(
                len.len() == batch && len.iter().all(|&l| l <= dm.s),
                "cuda flash_attention: key-padding lengths {len:?} for a batch of {batch} and {} keys",
                dm.s
            );
            len.iter().map(|&l| l as i32).collect()
        }
        None => vec![dm.s as i32; batch],
    };
    let valid = dev.upload(&valid)?;
    let mut out = GpuTensor::zeros(dev, q.shape())?;
    let mut lse = GpuTensor::zeros(dev, &[dm.bh * dm.t])?;
    if dm.bh > 0 && dm.t > 0 {
        let name = format!("flash_forward_d{}", dm.d);
        let (h, t, s, c) = (dm.h as i32, dm.t as i32, dm.s as i32, causal as i32);
        let mut l = dev.stream().launch_builder(dev.function(&name));
        l.arg(q.slice())
            .arg(k.slice())
            .arg(v.slice())
            .arg(out.slice_mut())
            .arg(lse.slice_mut())
            .arg(&valid)
            .arg(&h)
            .arg(&t)
            .arg(&s)
            .arg(&c)
            .arg(&scale);
        // SAFETY: grid (⌈T/64⌉, B·H) × 64 threads; each thread reads its query row and the head's
        // first valid[b] ≤ S keys, and writes its output row and log-sum-exp.
        unsafe { l.launch(grid(dm.t, dm.bh)) }?;
    }
    Ok(FlashOut {
        out,
        lse,
        valid,
        causal,
        scale,
    })
}

/// `(dQ, dK, dV)` from the forward's inputs, its saved output and the output gradient `dout`.
pub fn backward(
    dev: &CudaDevice,
    q: &GpuTensor,
    k: &GpuTensor,
    v: &GpuTensor,
    saved: &FlashOut,
    dout: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor, GpuTensor), CudaError> {
    let dm = dims(q, k, v)?;
    assert_eq!(
        dout.shape(),
        q.shape(),
        "cuda flash_attention backward: dout shape"
    );
    let mut dq = GpuTensor::zeros(dev, q.shape())?;
    let mut dk = GpuTensor::zeros(dev, k.shape())?;
    let mut dv = GpuTensor::zeros(dev, v.shape())?;
    if dm.bh == 0 || dm.t == 0 || dm.s == 0 {
        return Ok((dq, dk, dv));
    }
    let rows = dm.bh * dm.t;
    let mut delta = dev.zeros(rows)?;
    let (rows_i, d_i) = (rows as i64, dm.d as i32);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("flash_backward_delta"));
    l.arg(saved.out.slice())
        .arg(dout.slice())
        .arg(&mut delta)
        .arg(&rows_i)
        .arg(&d_i);
    // SAFETY: rows·d floats in O and dO, rows in Δ.
    unsafe { l.launch(CudaDevice::grid_for(rows)) }?;
    let (h, t, s, c) = (dm.h as i32, dm.t as i32, dm.s as i32, saved.causal as i32);
    let name = format!("flash_backward_dq_d{}", dm.d);
    let mut l = dev.stream().launch_builder(dev.function(&name));
    l.arg(q.slice())
        .arg(k.slice())
        .arg(v.slice())
        .arg(dout.slice())
        .arg(saved.lse.slice())
        .arg(&delta)
        .arg(dq.slice_mut())
        .arg(&saved.valid)
        .arg(&h)
        .arg(&t)
        .arg(&s)
        .arg(&c)
        .arg(&saved.scale);
    // SAFETY: as the forward, one thread per query row.
    unsafe { l.launch(grid(dm.t, dm.bh)) }?;
    let name = format!("flash_backward_dkdv_d{}", dm.d);
    let mut l = dev.stream().launch_builder(dev.function(&name));
    l.arg(q.slice())
        .arg(k.slice())
        .arg(v.slice())
        .arg(dout.slice())
        .arg(saved.lse.slice())
        .arg(&delta)
        .arg(dk.slice_mut())
        .arg(dv.slice_mut())
        .arg(&saved.valid)
        .arg(&h)
        .arg(&t)
        .arg(&s)
        .arg(&c)
        .arg(&saved.scale);
    // SAFETY: grid (⌈S/64⌉, B·H), one thread per key row, reading the head's T query rows.
    unsafe { l.launch(grid(dm.s, dm.bh)) }?;
    Ok((dq, dk, dv))
}
