//! Training: the loop shared by every task, its checkpoints, optimizers and schedules, and the
//! translation task with its final evaluation.

pub mod checkpoint;
pub mod data;
pub mod evaluate;
pub mod optimizer;
pub mod progress;
pub mod run_loop;
pub mod schedule;
pub mod trainer;
