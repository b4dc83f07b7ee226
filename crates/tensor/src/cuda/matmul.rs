//! Matrix products through cuBLAS `sgemm` / `sgemmStridedBatched`.
//!
//! attend's tensors are row-major and cuBLAS is column-major. A row-major `[r, c]` matrix read as
//! column-major is its transpose, so the row-major product `C = op(A)·op(B)` (`[m, n]`) is computed as
//! the column-major product `Cᵀ = op(B)ᵀ·op(A)ᵀ` (`[n, m]`): the operands are swapped, each keeps its
//! own transpose flag, and the leading dimensions are the row lengths as stored:
//! `lda' = tb ? k : n` (B), `ldb' = ta ? m : k` (A), `ldc' = n`.

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// One (batched) row-major product `C[i] (+)= op(A[i]) · op(B[i])`, `i < batch`; strides in elements
/// between consecutive matrices (0: the same matrix for every `i`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ta: bool,
    pub tb: bool,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    /// `C += …` instead of `C = …`.
    pub accumulate: bool,
}

impl GemmShape {
    /// A single product, no batch.
    pub fn single(m: usize, k: usize, n: usize, ta: bool, tb: bool, accumulate: bool) -> GemmShape {
        GemmShape {
            m,
            k,
            n,
            ta,
            tb,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
            accumulate,
        }
    }
}

fn op(t: bool) -> cublasOperation_t {
    if t {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

fn int(x: usize, what: &str) -> Result<i32, CudaError> {
    i32::try_from(x)
        .map_err(|_| CudaError::Unsupported(format!("{what} = {x} exceeds cuBLAS's i32")))
}

/// Runs one (batched) product on device memory (see the module doc for the operand swap).
pub(crate) fn gemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
    dev: &CudaDevice,
    s: GemmShape,
    a: &A,
    b: &B,
    c: &mut C,
) -> Result<(), CudaError> {
    if s.m == 0 || s.n == 0 || s.batch == 0 {
        return Ok(());
    }
    let cfg = GemmConfig {
        transa: op(s.tb),
        transb: op(s.ta),
        m: int(s.n, "n")?,
        n: int(s.m, "m")?,
        k: int(s.k, "k")?,
        alpha: 1.0f32,
        lda: int(if s.tb { s.k } else { s.n }.max(1), "lda")?,
        ldb: int(if s.ta { s.m } else { s.k }.max(1), "ldb")?,
        beta: if s.accumulate { 1.0 } else { 0.0 },
        ldc: int(s.n, "ldc")?,
    };
    // SAFETY: the shapes were checked against the buffers' lengths by the callers; cuBLAS reads
    // `batch` matrices of A, B and writes C within them.
    unsafe {
        if s.batch == 1 {
            dev.blas().gemm(cfg, b, a, c)?;
        } else {
            let batched = StridedBatchedConfig {
                gemm: cfg,
                batch_size: int(s.batch, "batch")?,
                stride_a: s.stride_b as i64,
                stride_b: s.stride_a as i64,
                stride_c: s.stride_c as i64,
            };
            dev.blas().gemm_strided_batched(batched, b, a, c)?;
        }
    }
    Ok(())
}

/// `op(a) · op(b)` as [`Var::matmul_t`](crate::Var::matmul_t) on the CPU: `a [..., m, k]` (stored
/// `[..., k, m]` when `ta`), `b [..., k, n]` with the same leading axes (stored `[..., n, k]` when
/// `tb`), or a 2-D `b` shared by every matrix of `a`. Returns `[..., m, n]`.
pub fn matmul(
    dev: &CudaDevice,
    a: &GpuTensor,
    b: &GpuTensor,
    ta: bool,
    tb: bool,
) -> Result<GpuTensor, CudaError> {
    let (sa, sb) = (a.shape(), b.shape());
    assert!(
        sa.len() >= 2 && sb.len() >= 2 && (sb.len() == 2 || sa.len() == sb.len()),
        "cuda matmul: shapes {sa:?} and {sb:?}"
    );
    let lead = &sa[..sa.len() - 2];
    let batch: usize = lead.iter().product();
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if tb { (cb, rb) } else { (rb, cb) };
    let shared = sb.len() == 2;
    assert!(
        k == kb && (shared || &sb[..sb.len() - 2] == lead),
        "cuda matmul: {sa:?}{} · {sb:?}{}",
        if ta { "ᵀ" } else { "" },
        if tb { "ᵀ" } else { "" }
    );
    let mut shape = lead.to_vec();
    shape.extend([m, n]);
    let mut c = GpuTensor::zeros(dev, &shape)?;
    let s = if shared && !ta {
        // A shared right operand: the batch folds into the rows of one product.
        GemmShape::single(batch * m, k, n, false, tb, false)
    } else {
        GemmShape {
            m,
            k,
            n,
            ta,
            tb,
            batch,
            stride_a: m * k,
            stride_b: if shared { 0 } else { k * n },
            stride_c: m * n,
            accumulate: false,
        }
    };
    gemm(dev, s, a.slice(), b.slice(), c.slice_mut())?;
    Ok(c)
}
