//! A GRU or LSTM recurrence over a padded batch on the device, forward and backward through time —
//! the same op as [`Var::recurrence`](crate::Var::recurrence) (see `ops/recurrence.rs` for the
//! formulas and the packed output layout). Per step the products run through cuBLAS
//! (`gh = 1·b_hhᵀ + h W_hhᵀ`; backward `dh += dgh W_hh`, `dW_hh += dghᵀ h_prev`, `db_hh += 1ᵀ dgh`)
//! and the gates through one kernel (`kernels/recurrence.cu`).

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use super::matmul::{gemm, GemmShape};
use crate::ops::recurrence::CellKind;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// The forward's output `[B, T + k, H]` (outputs, final h, final c for an LSTM) and what the
/// backward needs.
pub struct Recurrence {
    pub out: GpuTensor,
    kind: CellKind,
    reverse: bool,
    dims: Dims,
    /// `h` (and `c`) before each processing step, `[T, B, H]`.
    hs: CudaSlice<f32>,
    cs: CudaSlice<f32>,
    /// Gate activations per step, `[T, B, (4 | 5)·H]`.
    acts: CudaSlice<f32>,
    len: CudaSlice<i32>,
}

/// Gradients of the inputs of [`forward`].
pub struct RecurrenceGrads {
    pub dxp: GpuTensor,
    pub dh0: GpuTensor,
    pub dw_hh: GpuTensor,
    pub db_hh: GpuTensor,
    /// LSTM only.
    pub dc0: Option<GpuTensor>,
}

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    g: usize,
    k: usize,
}

/// Floats of gate activations kept per row and step.
fn saved_width(kind: CellKind) -> usize {
    match kind {
        CellKind::Gru => 4,
        CellKind::Lstm => 5,
    }
}

/// Runs the recurrence: `xp [B, T, G]`, `h0 [B, H]`, `c0 [B, H]` (LSTM only), `w_hh [G, H]`,
/// `b_hh [G]`, `lengths[b] ≤ T`; processes time backwards when `reverse`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    dev: &CudaDevice,
    kind: CellKind,
    xp: &GpuTensor,
    h0: &GpuTensor,
    c0: Option<&GpuTensor>,
    w_hh: &GpuTensor,
    b_hh: &GpuTensor,
    lengths: &[usize],
    reverse: bool,
) -> Result<Recurrence, CudaError> {
    let xs = xp.shape();
    assert!(
        xs.len() == 3,
        "cuda recurrence: xp must be [B, T, G], got {xs:?}"
    );
    let (b, t, g) = (xs[0], xs[1], xs[2]);
    let h = w_hh.dim(-1);
    assert!(
        w_hh.shape() == [kind.gates() * h, h] && g == kind.gates() * h && b_hh.shape() == [g],
        "cuda recurrence: xp {xs:?}, w_hh {:?}, b_hh {:?} for {kind:?}",
        w_hh.shape(),
        b_hh.shape()
    );
    assert_eq!(h0.shape(), [b, h], "cuda recurrence: h0 shape");
    assert_eq!(
        c0.is_some(),
        kind == CellKind::Lstm,
        "cuda recurrence: c0 is given exactly for an LSTM"
    );
    assert!(
        lengths.len() == b && lengths.iter().all(|&l| l <= t),
        "cuda recurrence: lengths {lengths:?} for batch {b}, time {t}"
    );
    let d = Dims {
        b,
        t,
        h,
        g,
        k: kind.states(),
    };
    let lstm = kind == CellKind::Lstm;
    let w = saved_width(kind) * h;
    let len: Vec<i32> = lengths.iter().map(|&l| l as i32).collect();
    let len = dev.upload(&len)?;
    let ones = dev.upload(&vec![1.0f32; b])?;
    let mut hcur = dev.stream().clone_dtod(h0.slice())?;
    let mut ccur = match c0 {
        Some(c) => {
            assert_eq!(c.shape(), [b, h], "cuda recurrence: c0 shape");
            dev.stream().clone_dtod(c.slice())?
        }
        None => dev.zeros(0)?,
    };
    let mut out = GpuTensor::zeros(dev, &[b, t + d.k, h])?;
    let mut hs = dev.zeros(t * b * h)?;
    let mut cs = dev.zeros(if lstm { t * b * h } else { 0 })?;
    let mut acts = dev.zeros(t * b * w)?;
    let mut gh = dev.zeros(b * g)?;
    let (x_stride, o_stride) = ((t * g) as i64, ((t + d.k) * h) as i64);
    let (bi, hi) = (b as i32, h as i32);
    for s in 0..t {
        let tt = if reverse { t - 1 - s } else { s };
        // gh = 1 · b_hhᵀ + h · W_hhᵀ: [B, 1]·[1, G] + [B, H]·[H, G]
        gemm(
            dev,
            GemmShape::single(b, 1, g, false, false, false),
            &ones,
            b_hh.slice(),
            &mut gh,
        )?;
        gemm(
            dev,
            GemmShape::single(b, h, g, false, true, true),
            &hcur,
            w_hh.slice(),
            &mut gh,
        )?;
        let (x_off, s_off, a_off, o_off) = (
            (tt * g) as i64,
            (s * b * h) as i64,
            (s * b * w) as i64,
            (tt * h) as i64,
        );
        let tt_i = tt as i32;
        let name = if lstm {
            "lstm_step_forward"
        } else {
            "gru_step_forward"
        };
        let mut l = dev.stream().launch_builder(dev.function(name));
        l.arg(xp.slice())
            .arg(&x_off)
            .arg(&x_stride)
            .arg(&gh)
            .arg(&mut hcur);
        if lstm {
            l.arg(&mut ccur).arg(&mut hs).arg(&mut cs);
        } else {
            l.arg(&mut hs);
        }
        l.arg(&s_off)
            .arg(&mut acts)
            .arg(&a_off)
            .arg(out.slice_mut())
            .arg(&o_off)
            .arg(&o_stride)
            .arg(&len)
            .arg(&tt_i)
            .arg(&bi)
            .arg(&hi);
        // SAFETY: every offset stays inside its buffer: step s < T, row b < B, unit j < H.
        unsafe { l.launch(CudaDevice::grid_for(b * h)) }?;
    }
    state_copy(dev, &mut hcur, out.slice_mut(), t * h, o_stride, false, d)?;
    if lstm {
        state_copy(
            dev,
            &mut ccur,
            out.slice_mut(),
            (t + 1) * h,
            o_stride,
            false,
            d,
        )?;
    }
    Ok(Recurrence {
        out,
        kind,
        reverse,
        dims: d,
        hs,
        cs,
        acts,
        len,
    })
}

/// Copies a `[B, H]` state into (or, `to_state`, out of) row `row_off` of each batch row of a packed
/// `[B, T + k, H]` buffer.
fn state_copy(
    dev: &CudaDevice,
    state: &mut CudaSlice<f32>,
    packed: &mut CudaSlice<f32>,
    row_off: usize,
    o_stride: i64,
    to_state: bool,
    d: Dims,
) -> Result<(), CudaError> {
    let (off, to, bi, hi) = (row_off as i64, to_state as i32, d.b as i32, d.h as i32);
    let mut l = dev
        .stream()
        .launch_builder(dev.function("recurrence_state_copy"));
    l.arg(state)
        .arg(packed)
        .arg(&off)
        .arg(&o_stride)
        .arg(&to)
        .arg(&bi)
        .arg(&hi);
    // SAFETY: B·H elements, each inside the state and inside row `row_off` of the packed buffer.
    unsafe { l.launch(CudaDevice::grid_for(d.b * d.h)) }?;
    Ok(())
}

/// Backpropagation through time from the packed output gradient `gout [B, T + k, H]`.
pub fn backward(
    dev: &CudaDevice,
    r: &Recurrence,
    w_hh: &GpuTensor,
    gout: &GpuTensor,
) -> Result<RecurrenceGrads, CudaError> {
    let Dims { b, t, h, g, k } = r.dims;
    assert_eq!(
        gout.shape(),
        r.out.shape(),
        "cuda recurrence backward: gout shape"
    );
    let lstm = r.kind == CellKind::Lstm;
    let w = saved_width(r.kind) * h;
    let o_stride = ((t + k) * h) as i64;
    // The state-copy kernel reads the packed gradient through a mutable pointer; it only reads it.
    let mut gpacked = dev.stream().clone_dtod(gout.slice())?;
    let mut dh = dev.zeros(b * h)?;
    state_copy(dev, &mut dh, &mut gpacked, t * h, o_stride, true, r.dims)?;
    let mut dc = dev.zeros(if lstm { b * h } else { 0 })?;
    if lstm {
        state_copy(
            dev,
            &mut dc,
            &mut gpacked,
            (t + 1) * h,
            o_stride,
            true,
            r.dims,
        )?;
    }
    let mut dxp = GpuTensor::zeros(dev, &[b, t, g])?;
    let mut dw = GpuTensor::zeros(dev, &[g, h])?;
    let mut db = GpuTensor::zeros(dev, &[g])?;
    let mut dgh = dev.zeros(b * g)?;
    let ones = dev.upload(&vec![1.0f32; b])?;
    let (x_stride, bi, hi) = ((t * g) as i64, b as i32, h as i32);
    for s in (0..t).rev() {
        let tt = if r.reverse { t - 1 - s } else { s };
        let (go_off, s_off, a_off, x_off) = (
            (tt * h) as i64,
            (s * b * h) as i64,
            (s * b * w) as i64,
            (tt * g) as i64,
        );
        let tt_i = tt as i32;
        let name = if lstm {
            "lstm_step_backward"
        } else {
            "gru_step_backward"
        };
        let mut l = dev.stream().launch_builder(dev.function(name));
        l.arg(&gpacked).arg(&go_off).arg(&o_stride);
        l.arg(if lstm { &r.cs } else { &r.hs });
        l.arg(&s_off).arg(&r.acts).arg(&a_off).arg(&mut dh);
        if lstm {
            l.arg(&mut dc);
        }
        l.arg(dxp.slice_mut())
            .arg(&x_off)
            .arg(&x_stride)
            .arg(&mut dgh)
            .arg(&r.len)
            .arg(&tt_i)
            .arg(&bi)
            .arg(&hi);
        // SAFETY: as in the forward; dgh holds B·G floats.
        unsafe { l.launch(CudaDevice::grid_for(b * h)) }?;
        // dh_prev += dgh · W_hh: [B, G]·[G, H]
        gemm(
            dev,
            GemmShape::single(b, g, h, false, false, true),
            &dgh,
            w_hh.slice(),
            &mut dh,
        )?;
        // dW_hh += dghᵀ · h_prev: [G, B]·[B, H]
        let hp = r.hs.slice(s * b * h..(s + 1) * b * h);
        gemm(
            dev,
            GemmShape::single(g, b, h, true, false, true),
            &dgh,
            &hp,
            dw.slice_mut(),
        )?;
        // db_hh += 1ᵀ · dgh: [1, B]·[B, G]
        gemm(
            dev,
            GemmShape::single(1, b, g, false, false, true),
            &ones,
            &dgh,
            db.slice_mut(),
        )?;
    }
    let dh0 = GpuTensor::from_slice(dh, &[b, h]);
    let dc0 = lstm.then(|| GpuTensor::from_slice(dc, &[b, h]));
    Ok(RecurrenceGrads {
        dxp,
        dh0,
        dw_hh: dw,
        db_hh: db,
        dc0,
    })
}
