//! The GPUs of an MPI job joined into one NCCL communicator (features `mpi` and `cuda`), as Marian
//! does: MPI starts the processes and carries the NCCL id from rank 0 to the others; NCCL then sums
//! the gradients on the GPUs ([`tensor::cuda::nccl::NcclComm::all_reduce_sum`]). Each process
//! takes the GPU numbered by its rank among the ranks of its machine.

use super::collective::{from_lead, Collective};
use super::mpi::Mpi;
use ::mpi::topology::Communicator;
use anyhow::{Context, Result};
use tensor::cuda::nccl::{unique_id, NcclComm, ID_BYTES};
use tensor::cuda::{device_count, CudaDevice};

/// The ordinal of this rank's GPU: its rank among the ranks of its machine, modulo the GPUs there.
pub fn local_device(mpi: &Mpi) -> Result<usize> {
    let local = mpi.world().split_shared(mpi.rank() as i32).rank() as usize;
    let count = device_count()?;
    if count == 0 {
        anyhow::bail!("rank {}: no CUDA device on this machine", mpi.rank());
    }
    Ok(local % count)
}

/// Joins every rank of `mpi` into one NCCL communicator on `dev`: rank 0 makes the id (or its
/// error reaches every rank), MPI broadcasts it, and all ranks open their member together.
pub fn nccl_over_mpi(mpi: &Mpi, dev: &CudaDevice) -> Result<NcclComm> {
    let id = from_lead(mpi, || Ok(unique_id()?.to_vec()))?;
    let id: [u8; ID_BYTES] = id
        .try_into()
        .map_err(|_| anyhow::anyhow!("the NCCL id from rank 0 is not {ID_BYTES} bytes"))?;
    // Returns once every rank has joined.
    NcclComm::new(dev, &id, mpi.rank(), mpi.size())
        .with_context(|| format!("rank {}: joining the NCCL communicator", mpi.rank()))
}
