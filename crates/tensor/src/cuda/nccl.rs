//! [`NcclComm`]: the GPUs of a data-parallel job summing a buffer with NCCL's all-reduce (rings
//! and trees over NVLink, PCIe or the network), through cudarc's `nccl` module. `libnccl.so` is
//! loaded at run time like the other CUDA libraries, so a build needs no NCCL.
//!
//! One process drives one GPU. The processes agree on an id that rank 0 makes
//! ([`unique_id`]) and hands to the others over a channel the job already has (attend sends it
//! over MPI: `attend::train::nccl`); then each opens its communicator ([`NcclComm::new`]).
//!
//! ```text
//! all_reduce_sum:  x ← Σ_r x_r        (every rank's buffer, same length, in place)
//! ```

use super::buffer::GpuTensor;
use super::device::CudaDevice;
use super::error::CudaError;
use super::library;
use cudarc::nccl::{Comm, Id, ReduceOp};

/// The bytes of an NCCL unique id (`ncclUniqueId`).
pub const ID_BYTES: usize = 128;

/// A new id for a job's communicators: rank 0 calls this and sends the bytes to the others.
pub fn unique_id() -> Result<[u8; ID_BYTES], CudaError> {
    library::nccl()?;
    let id = Id::new().map_err(|e| CudaError::Nccl(format!("ncclGetUniqueId: {:?}", e.0)))?;
    Ok(id.internal().map(|c| c as u8))
}

/// This process's member of a job's NCCL communicator, on one GPU.
pub struct NcclComm {
    comm: Comm,
}

impl NcclComm {
    /// Joins the communicator of `size` ranks named by `id` as rank `rank`, on `dev`. Every rank
    /// calls this with the same id; it returns once all have joined.
    pub fn new(
        dev: &CudaDevice,
        id: &[u8; ID_BYTES],
        rank: usize,
        size: usize,
    ) -> Result<NcclComm, CudaError> {
        library::nccl()?;
        if rank >= size {
            return Err(CudaError::Nccl(format!("rank {rank} of {size} ranks")));
        }
        let id = Id::uninit(id.map(|b| b as core::ffi::c_char));
        let comm = Comm::from_rank(dev.stream().clone(), rank, size, id)
            .map_err(|e| CudaError::Nccl(format!("ncclCommInitRank: {:?}", e.0)))?;
        Ok(NcclComm { comm })
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn size(&self) -> usize {
        self.comm.world_size()
    }

    /// Sums `x` over the ranks in place (queued on the device's stream, like the kernels).
    pub fn all_reduce_sum(&self, x: &mut GpuTensor) -> Result<(), CudaError> {
        self.comm
            .all_reduce_in_place(x.slice_mut(), &ReduceOp::Sum)
            .map_err(|e| CudaError::Nccl(format!("ncclAllReduce: {:?}", e.0)))?;
        Ok(())
    }
}
