//! 2-D convolution (cross-correlation, as PyTorch's `conv2d`) through im2col and one matrix product.
//!
//! Layout NCHW: `x [N, C, H, W]`, weight `[O, C, KH, KW]` (PyTorch's layout), optional bias `[O]`,
//! square `stride` and zero `padding` on both axes:
//!
//! ```text
//! OH = (H + 2p − KH) / s + 1,   OW = (W + 2p − KW) / s + 1
//! y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p]   (0 outside)
//! ```
//!
//! im2col unrolls every receptive field into a column: `cols [C·KH·KW, N·OH·OW]`, so that
//! `y' = W [O, C·KH·KW] · cols` is a single product (threaded by the gemm kernel) and `y` is `y'`
//! with its `O` and `N` axes swapped. Backward, with `dy'` = `dy` laid out as `[O, N·OH·OW]`:
//! `dW = dy' · colsᵀ`, `db = Σ dy'` over columns, `dcols = Wᵀ · dy'`, and `dx = col2im(dcols)`
//! (the adjoint of im2col: every column entry is added back to the input pixel it was read from).

use crate::kernels::gemm;
use crate::tensor::Tensor;
use crate::var::Var;

/// The geometry of one convolution: input, kernel and output sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeometry {
    /// Checks `x [N, C, H, W]` against a `[O, C, KH, KW]` kernel; panics (a programming error)
    /// on a rank or channel mismatch, a zero stride, or a kernel larger than the padded input.
    pub fn new(
        x: &[usize],
        weight: &[usize],
        stride: usize,
        padding: usize,
        op: &str,
    ) -> ConvGeometry {
        assert!(
            x.len() == 4 && weight.len() == 4 && x[1] == weight[1],
            "{op}: input {x:?} (expected [N, C, H, W]) and weight {weight:?} (expected [O, C, KH, KW])"
        );
        Self::with_kernel(x, weight[2], weight[3], stride, padding, op)
    }

    /// As [`ConvGeometry::new`] for a `kh × kw` window without weights (pooling).
    pub fn with_kernel(
        x: &[usize],
        kh: usize,
        kw: usize,
        stride: usize,
        padding: usize,
        op: &str,
    ) -> ConvGeometry {
        assert!(x.len() == 4, "{op}: input {x:?} must be [N, C, H, W]");
        assert!(
            stride > 0 && kh > 0 && kw > 0,
            "{op}: stride and kernel must be positive"
        );
        let (h, w) = (x[2], x[3]);
        assert!(
            h + 2 * padding >= kh && w + 2 * padding >= kw,
            "{op}: kernel {kh}×{kw} is larger than the padded input {}×{}",
            h + 2 * padding,
            w + 2 * padding
        );
        ConvGeometry {
            n: x[0],
            c: x[1],
            h,
            w,
            kh,
            kw,
            stride,
            padding,
            oh: (h + 2 * padding - kh) / stride + 1,
            ow: (w + 2 * padding - kw) / stride + 1,
        }
    }

    /// Rows of the column matrix, `C·KH·KW`.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the column matrix, `N·OH·OW`.
    pub fn columns(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// The input coordinate read by output position `o` with kernel offset `k` on an axis of size
    /// `len`, or `None` in the zero padding.
    fn source(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }
}

/// Unrolls `x [N, C, H, W]` into `cols [C·KH·KW, N·OH·OW]` (row `(c, u, v)`, column `(n, i, j)`).
pub fn im2col(x: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (l, cols_n) = (g.oh * g.ow, g.columns());
    let mut cols = vec![0.0; g.patch() * cols_n];
    for c in 0..g.c {
        for u in 0..g.kh {
            for v in 0..g.kw {
                let row = &mut cols[((c * g.kh + u) * g.kw + v) * cols_n..][..cols_n];
                for n in 0..g.n {
                    let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                    for i in 0..g.oh {
                        let Some(y) = g.source(i, u, g.h) else {
                            continue;
                        };
                        let dst = &mut row[n * l + i * g.ow..][..g.ow];
                        for (j, d) in dst.iter_mut().enumerate() {
                            if let Some(xx) = g.source(j, v, g.w) {
                                *d = plane[y * g.w + xx];
                            }
                        }
                    }
                }
            }
        }
    }
    cols
}

/// The adjoint of [`im2col`]: adds every entry of `cols` back onto the input pixel it came from.
pub fn col2im(cols: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (l, cols_n) = (g.oh * g.ow, g.columns());
    let mut x = vec![0.0; g.n * g.c * g.h * g.w];
    for c in 0..g.c {
        for u in 0..g.kh {
            for v in 0..g.kw {
                let row = &cols[((c * g.kh + u) * g.kw + v) * cols_n..][..cols_n];
                for n in 0..g.n {
                    let plane = &mut x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                    for i in 0..g.oh {
                        let Some(y) = g.source(i, u, g.h) else {
                            continue;
                        };
                        let src = &row[n * l + i * g.ow..][..g.ow];
                        for (j, &s) in src.iter().enumerate() {
                            if let Some(xx) = g.source(j, v, g.w) {
                                plane[y * g.w + xx] += s;
                            }
                        }
                    }
                }
            }
        }
    }
    x
}

/// Swaps the two leading axes of `[A, B, L]` data into `[B, A, L]`.
fn swap_leading(data: &[f32], a: usize, b: usize, l: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * l..][..l].copy_from_slice(&data[(i * b + j) * l..][..l]);
        }
    }
    out
}

/// Forward kernel on tensors: `conv2d(x [N, C, H, W], weight [O, C, KH, KW], bias [O])`
/// → `[N, O, OH, OW]`.
pub fn conv2d_tensor(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Tensor {
    let g = ConvGeometry::new(x.shape(), weight.shape(), stride, padding, "conv2d");
    let o = weight.dim(0);
    if let Some(b) = bias {
        assert_eq!(
            b.shape(),
            [o],
            "conv2d: bias {:?} for {o} output channels",
            b.shape()
        );
    }
    let cols = im2col(x.data(), &g);
    let (k, m) = (g.patch(), g.columns());
    // y': [O, N·OH·OW]
    let mut y = vec![0.0; o * m];
    gemm::matmul(&mut y, weight.data(), &cols, o, k, m, false, false, false);
    if let Some(b) = bias {
        for (row, &bo) in y.chunks_exact_mut(m).zip(b.data()) {
            row.iter_mut().for_each(|v| *v += bo);
        }
    }
    let l = g.oh * g.ow;
    Tensor::from_vec(swap_leading(&y, o, g.n, l), &[g.n, o, g.oh, g.ow])
}

impl Var {
    /// 2-D convolution of `self [N, C, H, W]` with `weight [O, C, KH, KW]` and optional
    /// `bias [O]` → `[N, O, OH, OW]` (see the module doc for the formula).
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, stride: usize, padding: usize) -> Var {
        let out = conv2d_tensor(
            &self.value(),
            &weight.value(),
            bias.map(|b| b.value()).as_deref(),
            stride,
            padding,
        );
        let mut parents = vec![self.clone(), weight.clone()];
        parents.extend(bias.cloned());
        Var::from_op(
            out,
            parents,
            Box::new(move |gy, _, p| {
                let (x, w) = (p[0].value(), p[1].value());
                let g = ConvGeometry::new(x.shape(), w.shape(), stride, padding, "conv2d");
                let (o, k, m) = (w.dim(0), g.patch(), g.columns());
                // dy': [O, N·OH·OW]
                let dy = swap_leading(gy.data(), g.n, o, g.oh * g.ow);
                let dx = p[0].requires_grad().then(|| {
                    let mut dcols = vec![0.0; k * m];
                    gemm::matmul(&mut dcols, w.data(), &dy, k, o, m, true, false, false);
                    Tensor::from_vec(col2im(&dcols, &g), x.shape())
                });
                let dw = p[1].requires_grad().then(|| {
                    let cols = im2col(x.data(), &g);
                    let mut dw = vec![0.0; o * k];
                    gemm::matmul(&mut dw, &dy, &cols, o, m, k, false, true, false);
                    Tensor::from_vec(dw, w.shape())
                });
                let mut grads = vec![dx, dw];
                if p.len() == 3 {
                    let db: Vec<f32> = dy.chunks_exact(m).map(|r| r.iter().sum()).collect();
                    grads.push(Some(Tensor::from_vec(db, &[o])));
                }
                grads
            }),
        )
    }
}
