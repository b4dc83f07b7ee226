//! NCCL's all-reduce on the GPUs of this machine: one rank per GPU (one thread each, as one
//! process per GPU would), every rank's buffer `(r + 1)·x`, each ends with `Σ_r (r + 1)·x`. Needs
//! the NVIDIA driver, NVRTC, cuBLAS and NCCL on the loader path; without them the test prints why
//! it was skipped and passes:
//! `cargo test -p attend-tensor --features cuda --test cuda_nccl -- --nocapture`
#![cfg(feature = "cuda")]

use tensor::cuda::nccl::{unique_id, NcclComm};
use tensor::cuda::{self, CudaDevice, CudaError, GpuTensor};
use tensor::{Rng, Tensor};

#[test]
fn all_reduce_sums_every_ranks_buffer() {
    let count = match cuda::device_count() {
        Err(e) => return println!("SKIPPED (no GPU checks): {e}"),
        Ok(0) => return println!("SKIPPED (no GPU checks): the CUDA driver reports no device"),
        Ok(n) => n,
    };
    let id = match unique_id() {
        Err(e @ CudaError::NoNccl(_)) => return println!("SKIPPED (no NCCL checks): {e}"),
        r => r.expect("an NCCL id"),
    };
    let x = Tensor::randn(&[3, 1000], 0.0, 1.0, &mut Rng::new(7));
    let sum: f32 = (1..=count).map(|r| r as f32).sum();
    let results: Vec<Tensor> = std::thread::scope(|s| {
        let ranks: Vec<_> = (0..count)
            .map(|r| {
                let x = &x;
                s.spawn(move || {
                    let dev = CudaDevice::new(r).expect("the GPU opens");
                    let comm = NcclComm::new(&dev, &id, r, count).expect("the rank joins");
                    assert_eq!((comm.rank(), comm.size()), (r, count));
                    let mine = x.map(|v| v * (r + 1) as f32);
                    let mut buf = GpuTensor::upload(&dev, &mine).unwrap();
                    comm.all_reduce_sum(&mut buf).expect("all-reduce");
                    buf.download(&dev).unwrap()
                })
            })
            .collect();
        ranks.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let want = x.map(|v| v * sum);
    for (r, got) in results.iter().enumerate() {
        let err = got.max_abs_diff(&want);
        println!("rank {r} of {count}: max |all-reduce − Σ| = {err:.2e}");
        assert!(err <= 1e-5 * sum * 5.0, "rank {r}: {err}");
    }
}

#[test]
fn a_rank_outside_the_job_is_an_error() {
    let Ok(1..) = cuda::device_count() else {
        return println!("SKIPPED (no GPU checks): no CUDA device");
    };
    let id = match unique_id() {
        Err(e) => return println!("SKIPPED (no NCCL checks): {e}"),
        Ok(id) => id,
    };
    let dev = CudaDevice::new(0).expect("the GPU opens");
    let err = NcclComm::new(&dev, &id, 2, 2)
        .err()
        .expect("rank 2 of 2 is refused");
    assert!(err.to_string().contains("rank 2 of 2"), "{err}");
}
