//! [`Tensor`]: a contiguous, row-major f32 array with a shape.
//!
//! The data are shared between clones and copied on the first write through a shared handle
//! ([`Tensor::data_mut`]), so that a clone, a reshape or a tape node's copy of a value costs nothing
//! until one side changes it.

use crate::kernels::fill;
use crate::rng::Rng;
use crate::shape::numel;
use rayon::prelude::*;
use std::sync::Arc;

/// Elements per parallel chunk of the element-wise loops that run over the threads.
const ELEMENTWISE_CHUNK: usize = 1 << 15;

/// A contiguous, row-major f32 array. `shape = []` is a scalar holding one value.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    /// Shared by clones; copied on write.
    data: Arc<Vec<f32>>,
}

impl Tensor {
    /// Wraps `data` with `shape`; panics if the element counts differ.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "Tensor::from_vec: {} values do not fill shape {:?}",
            data.len(),
            shape
        );
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        }
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(vec![value; numel(shape)]),
        }
    }

    pub fn scalar(value: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: Arc::new(vec![value]),
        }
    }

    /// Values drawn from N(mean, std²).
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        }
    }

    /// Values drawn from U(lo, hi).
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Size of axis `axis`; negative axes count from the end.
    pub fn dim(&self, axis: isize) -> usize {
        self.shape[crate::shape::axis_index(axis, self.shape.len())]
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// The data for writing; copied first if another clone shares them.
    pub fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// The data, copied only if another clone shares them.
    pub fn into_data(self) -> Vec<f32> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| shared.as_ref().clone())
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> f32 {
        assert_eq!(self.data.len(), 1, "Tensor::item on shape {:?}", self.shape);
        self.data[0]
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> Tensor {
        assert_eq!(
            numel(shape),
            self.data.len(),
            "reshape: {:?} cannot become {:?}",
            self.shape,
            shape
        );
        self.shape = shape.to_vec();
        self
    }

    /// Element-wise map into a new tensor of the same shape.
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
        // Large tensors are spread over the threads.
        let data = fill::generate(self.data.len(), |offset, out| {
            for (o, &x) in out.iter_mut().zip(&self.data[offset..]) {
                o.write(f(x));
            }
        });
        Tensor {
            shape: self.shape.clone(),
            data: Arc::new(data),
        }
    }

    /// Element-wise combination of two tensors of the same shape.
    pub fn zip(&self, other: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Tensor {
        assert_eq!(self.shape, other.shape, "zip: shapes differ");
        // Large tensors are spread over the threads.
        let data = fill::generate(self.data.len(), |offset, out| {
            let (a, b) = (&self.data[offset..], &other.data[offset..]);
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                o.write(f(a, b));
            }
        });
        Tensor {
            shape: self.shape.clone(),
            data: Arc::new(data),
        }
    }

    /// `self += other` (same shape).
    pub fn add_assign(&mut self, other: &Tensor) {
        assert_eq!(
            self.shape, other.shape,
            "add_assign: {:?} vs {:?}",
            self.shape, other.shape
        );
        fn add(a: &mut [f32], b: &[f32]) {
            for (a, &b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
        // Gradient accumulation adds tensors of up to millions of elements: large ones are spread
        // over the threads.
        let data = Arc::make_mut(&mut self.data);
        if data.len() >= 2 * ELEMENTWISE_CHUNK {
            data.par_chunks_mut(ELEMENTWISE_CHUNK)
                .zip(other.data.par_chunks(ELEMENTWISE_CHUNK))
                .for_each(|(a, b)| add(a, b));
        } else {
            add(data, &other.data);
        }
    }

    /// Largest absolute element-wise difference (for tests and checks).
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        assert_eq!(self.shape, other.shape, "max_abs_diff: shapes differ");
        self.data
            .iter()
            .zip(other.data.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Rows of the last axis: `data` viewed as `[numel / last, last]`.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        let last = self.shape.last().copied().unwrap_or(1).max(1);
        self.data.chunks_exact(last)
    }
}

impl Tensor {
    /// Rows `rows` of axis 0, in that order (repeats allowed): `[N, ...] → [rows.len(), ...]`.
    pub fn select_rows(&self, rows: &[usize]) -> Tensor {
        let n = self.shape.first().copied().unwrap_or(0);
        let width = self.data.len().checked_div(n).unwrap_or(0);
        let mut data = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            assert!(r < n, "select_rows: row {r} of {n}");
            data.extend_from_slice(&self.data[r * width..(r + 1) * width]);
        }
        let mut shape = self.shape.clone();
        shape[0] = rows.len();
        Tensor {
            shape,
            data: Arc::new(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_their_data_until_one_of_them_writes() {
        let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let mut b = a.clone();
        assert!(std::ptr::eq(a.data().as_ptr(), b.data().as_ptr()));
        b.data_mut()[0] = 9.0;
        assert_eq!(a.data(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(b.data(), &[9.0, 2.0, 3.0, 4.0]);
        let mut c = a.clone().reshape(&[4]);
        c.add_assign(&Tensor::ones(&[4]));
        assert_eq!(a.data(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.into_data(), vec![2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a.into_data(), vec![1.0, 2.0, 3.0, 4.0]);
    }
}
