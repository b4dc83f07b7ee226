//! One Adam / AdamW step on the device (kernel: `kernels/adam.cu`), the same update as attend's CPU
//! optimizer (`train/optimizer.rs`, PyTorch's `torch.optim.Adam` / `AdamW`).

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::driver::PushKernelArg;

/// Hyper-parameters of one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// λ; 0 disables weight decay.
    pub weight_decay: f32,
    /// `true`: AdamW (decay the weights); `false`: Adam (add λp to the gradient).
    pub decoupled: bool,
    /// The parameter's step count after this step (1 on the first).
    pub step: u64,
}

/// Updates `p`, `m`, `v` in place from the gradient `g` (all the same shape).
pub fn step(
    dev: &CudaDevice,
    a: AdamStep,
    p: &mut GpuTensor,
    g: &GpuTensor,
    m: &mut GpuTensor,
    v: &mut GpuTensor,
) -> Result<(), CudaError> {
    assert!(
        p.shape() == g.shape() && p.shape() == m.shape() && p.shape() == v.shape(),
        "cuda adam: shapes differ"
    );
    assert!(a.step >= 1, "cuda adam: step counts from 1");
    // Bias corrections in f64, as PyTorch (and the CPU optimizer) compute them.
    let t = a.step.min(i32::MAX as u64) as i32;
    let step_size = (a.lr as f64 / (1.0 - (a.beta1 as f64).powi(t))) as f32;
    let bc2_sqrt = (1.0 - (a.beta2 as f64).powi(t)).sqrt() as f32;
    let (l2, decay) = if a.decoupled {
        (0.0f32, 1.0 - a.lr * a.weight_decay)
    } else {
        (a.weight_decay, 1.0f32)
    };
    let n = p.numel() as i64;
    let cfg = CudaDevice::grid_for(p.numel());
    let mut l = dev.stream().launch_builder(dev.function("adam_step"));
    l.arg(p.slice_mut())
        .arg(g.slice())
        .arg(m.slice_mut())
        .arg(v.slice_mut())
        .arg(&n)
        .arg(&a.beta1)
        .arg(&a.beta2)
        .arg(&a.eps)
        .arg(&l2)
        .arg(&decay)
        .arg(&step_size)
        .arg(&bc2_sqrt);
    // SAFETY: the four buffers hold n floats.
    unsafe { l.launch(cfg) }?;
    Ok(())
}
