//! Training: the loop shared by every task, its checkpoints, optimizers and schedules, and the
//! translation task with its final evaluation.

pub mod checkpoint;
pub mod collective;
pub mod data;
pub mod evaluate;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(all(feature = "mpi", feature = "cuda"))]
pub mod nccl;
pub mod optimizer;
pub mod progress;
pub mod run_loop;
pub mod schedule;
pub mod trainer;
