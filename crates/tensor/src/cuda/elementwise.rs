//! Element-wise ops on the device (kernels: `kernels/elementwise.cu`, with the formulas): unary
//! functions, broadcasting binary ops and masked fill, sums and means over one axis — each forward
//! and backward.

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use crate::shape::{broadcast_shape, broadcast_strides, numel};
use cudarc::driver::PushKernelArg;

/// A unary function `y = f(x)` (codes as in `elementwise.cu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    /// Exact (erf) GELU.
    Gelu,
    Sqrt,
    Square,
    /// `y = a·x`.
    Scale(f32),
    /// `y = x + a`.
    AddScalar(f32),
    Neg,
}

impl Unary {
    fn code(self) -> (i32, f32) {
        match self {
            Unary::Exp => (0, 0.0),
            Unary::Log => (1, 0.0),
            Unary::Tanh => (2, 0.0),
            Unary::Sigmoid => (3, 0.0),
            Unary::Relu => (4, 0.0),
            Unary::Gelu => (5, 0.0),
            Unary::Sqrt => (6, 0.0),
            Unary::Square => (7, 0.0),
            Unary::Scale(a) => (8, a),
            Unary::AddScalar(a) => (9, a),
            Unary::Neg => (10, 0.0),
        }
    }
}

/// A binary op with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// `y = mask ≠ 0 ? value : x` (the right operand is the mask; it gets no gradient).
    MaskedFill(f32),
}

impl Binary {
    fn code(self) -> (i32, f32) {
        match self {
            Binary::Add => (0, 0.0),
            Binary::Sub => (1, 0.0),
            Binary::Mul => (2, 0.0),
            Binary::Div => (3, 0.0),
            Binary::MaskedFill(v) => (4, v),
        }
    }
}

/// `y = f(x)`.
pub fn unary(dev: &CudaDevice, f: Unary, x: &GpuTensor) -> Result<GpuTensor, CudaError> {
    let mut y = GpuTensor::zeros(dev, x.shape())?;
    let (code, a) = f.code();
    let n = x.numel() as i64;
    let mut l = dev.stream().launch_builder(dev.function("unary_forward"));
    l.arg(x.slice())
        .arg(y.slice_mut())
        .arg(&n)
        .arg(&code)
        .arg(&a);
    // SAFETY: x and y hold n floats; the kernel touches i < n only.
    unsafe { l.launch(CudaDevice::grid_for(x.numel())) }?;
    Ok(y)
}

/// `dx = dy · f'(x)` given the forward's input `x` and output `y`.
pub fn unary_backward(
    dev: &CudaDevice,
    f: Unary,
    x: &GpuTensor,
    y: &GpuTensor,
    dy: &GpuTensor,
) -> Result<GpuTensor, CudaError> {
    assert!(
        x.shape() == y.shape() && x.shape() == dy.shape(),
        "cuda unary_backward: x {:?}, y {:?}, dy {:?}",
        x.shape(),
        y.shape(),
        dy.shape()
    );
    let mut dx = GpuTensor::zeros(dev, x.shape())?;
    let (code, a) = f.code();
    let n = x.numel() as i64;
    let mut l = dev.stream().launch_builder(dev.function("unary_backward"));
    l.arg(x.slice())
        .arg(y.slice())
        .arg(dy.slice())
        .arg(dx.slice_mut())
        .arg(&n)
        .arg(&code)
        .arg(&a);
    // SAFETY: all four buffers hold n floats.
    unsafe { l.launch(CudaDevice::grid_for(x.numel())) }?;
    Ok(dx)
}

/// The output shape and the broadcast layout `[out dims | a strides | b strides]` of `a ∘ b`.
fn layout(a: &[usize], b: &[usize]) -> (Vec<usize>, Vec<i64>) {
    let out = broadcast_shape(a, b)
        .unwrap_or_else(|| panic!("cuda broadcast: shapes {a:?} and {b:?} are incompatible"));
    let mut meta: Vec<i64> = out.iter().map(|&d| d as i64).collect();
    meta.extend(broadcast_strides(a, &out).iter().map(|&s| s as i64));
    meta.extend(broadcast_strides(b, &out).iter().map(|&s| s as i64));
    (out, meta)
}

/// `y = a ∘ b` with broadcasting.
pub fn binary(
    dev: &CudaDevice,
    op: Binary,
    a: &GpuTensor,
    b: &GpuTensor,
) -> Result<GpuTensor, CudaError> {
    let (shape, meta) = layout(a.shape(), b.shape());
    let meta = dev.upload(&meta)?;
    let mut y = GpuTensor::zeros(dev, &shape)?;
    let (code, v) = op.code();
    let (rank, n) = (shape.len() as i32, numel(&shape) as i64);
    let mut l = dev.stream().launch_builder(dev.function("binary_forward"));
    l.arg(a.slice())
        .arg(b.slice())
        .arg(y.slice_mut())
        .arg(&meta)
        .arg(&rank)
        .arg(&n)
        .arg(&code)
        .arg(&v);
    // SAFETY: the strides keep every read inside a and b; y holds n floats.
    unsafe { l.launch(CudaDevice::grid_for(n as usize)) }?;
    Ok(y)
}

/// Gradients `(da, db)` of `y = a ∘ b` (each of its operand's shape; `db` is zero for a mask).
pub fn binary_backward(
    dev: &CudaDevice,
    op: Binary,
    a: &GpuTensor,
    b: &GpuTensor,
    dy: &GpuTensor,
) -> Result<(GpuTensor, GpuTensor), CudaError> {
    let (shape, meta) = layout(a.shape(), b.shape());
    assert_eq!(shape, dy.shape(), "cuda binary_backward: dy shape");
    let meta = dev.upload(&meta)?;
    let mut da = GpuTensor::zeros(dev, a.shape())?;
    let mut db = GpuTensor::zeros(dev, b.shape())?;
    let (code, _) = op.code();
    let (rank, n) = (shape.len() as i32, numel(&shape) as i64);
    let mut l = dev.stream().launch_builder(dev.function("binary_backward"));
    l.arg(a.slice())
        .arg(b.slice())
        .arg(dy.slice())
        .arg(da.slice_mut())
        .arg(db.slice_mut())
        .arg(&meta)
        .arg(&rank)
        .arg(&n)
        .arg(&code);
    // SAFETY: as in `binary`; da and db are zeroed and receive atomic sums.
    unsafe { l.launch(CudaDevice::grid_for(n as usize)) }?;
    Ok((da, db))
}

/// `x [outer, len, inner]` around axis `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Sum (`mean = false`) or mean over `axis`, which is removed from the shape.
pub fn reduce_axis(
    dev: &CudaDevice,
    x: &GpuTensor,
    axis: isize,
    mean: bool,
) -> Result<GpuTensor, CudaError> {
    let ax = crate::shape::axis_index(axis, x.shape().len());
    let (outer, len, inner) = around(x.shape(), ax);
    let mut shape = x.shape().to_vec();
    shape.remove(ax);
    let mut y = GpuTensor::zeros(dev, &shape)?;
    let scale = if mean { 1.0 / len.max(1) as f32 } else { 1.0 };
    let (o, n, i) = (outer as i64, len as i64, inner as i64);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("reduce_axis_forward"));
    l.arg(x.slice())
        .arg(y.slice_mut())
        .arg(&o)
        .arg(&n)
        .arg(&i)
        .arg(&scale);
    // SAFETY: x holds outer·len·inner floats, y outer·inner.
    unsafe { l.launch(CudaDevice::grid_for(outer * inner)) }?;
    Ok(y)
}

/// `dx` of [`reduce_axis`]: `dy` repeated along `axis` of `x_shape` (scaled by `1/len` for a mean).
pub fn reduce_axis_backward(
    dev: &CudaDevice,
    dy: &GpuTensor,
    x_shape: &[usize],
    axis: isize,
    mean: bool,
) -> Result<GpuTensor, CudaError> {
    let ax = crate::shape::axis_index(axis, x_shape.len());
    let (outer, len, inner) = around(x_shape, ax);
    assert_eq!(dy.numel(), outer * inner, "cuda reduce_axis_backward: dy");
    let mut dx = GpuTensor::zeros(dev, x_shape)?;
    let scale = if mean { 1.0 / len.max(1) as f32 } else { 1.0 };
    let (o, n, i) = (outer as i64, len as i64, inner as i64);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("reduce_axis_backward"));
    l.arg(dy.slice())
        .arg(dx.slice_mut())
        .arg(&o)
        .arg(&n)
        .arg(&i)
        .arg(&scale);
    // SAFETY: dx holds outer·len·inner floats, dy outer·inner.
    unsafe { l.launch(CudaDevice::grid_for(outer * len * inner)) }?;
    Ok(dx)
}
