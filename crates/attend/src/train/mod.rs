//! Training: loss, optimizers, schedules, the trainer loop and checkpoints.

pub mod checkpoint;
pub mod data;
pub mod optimizer;
pub mod schedule;
pub mod trainer;
