pub mod data;
pub mod metrics;
pub mod nn;
pub mod show;
