pub mod data;
pub mod nn;
pub mod show;
