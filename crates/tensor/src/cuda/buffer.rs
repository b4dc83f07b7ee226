//! [`GpuTensor`]: a contiguous, row-major f32 array in device memory with a shape — the device twin of
//! [`Tensor`](crate::Tensor). Data moves only through [`GpuTensor::upload`] and [`GpuTensor::download`].

use super::device::CudaDevice;
use super::error::CudaError;
use crate::shape::numel;
use crate::tensor::Tensor;
use cudarc::driver::CudaSlice;

pub struct GpuTensor {
    shape: Vec<usize>,
    data: CudaSlice<f32>,
}

impl GpuTensor {
    /// Copies a host tensor to the device.
    pub fn upload(dev: &CudaDevice, t: &Tensor) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor {
            shape: t.shape().to_vec(),
            data: dev.upload(t.data())?,
        })
    }

    /// A zero tensor on the device.
    pub fn zeros(dev: &CudaDevice, shape: &[usize]) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor {
            shape: shape.to_vec(),
            data: dev.zeros(numel(shape))?,
        })
    }

    /// Copies the values back to the host (waits for the work that produces them).
    pub fn download(&self, dev: &CudaDevice) -> Result<Tensor, CudaError> {
        let data = dev.stream().clone_dtoh(&self.data)?;
        Ok(Tensor::from_vec(data, &self.shape))
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Size of axis `axis`; negative axes count from the end.
    pub fn dim(&self, axis: isize) -> usize {
        self.shape[crate::shape::axis_index(axis, self.shape.len())]
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> GpuTensor {
        assert_eq!(
            numel(shape),
            self.data.len(),
            "GpuTensor::reshape: {:?} cannot become {:?}",
            self.shape,
            shape
        );
        self.shape = shape.to_vec();
        self
    }

    /// Wraps a device buffer of `numel(shape)` floats.
    pub(crate) fn from_slice(data: CudaSlice<f32>, shape: &[usize]) -> GpuTensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "GpuTensor::from_slice: length and shape differ"
        );
        GpuTensor {
            shape: shape.to_vec(),
            data,
        }
    }

    pub(crate) fn slice(&self) -> &CudaSlice<f32> {
        &self.data
    }

    pub(crate) fn slice_mut(&mut self) -> &mut CudaSlice<f32> {
        &mut self.data
    }
}
