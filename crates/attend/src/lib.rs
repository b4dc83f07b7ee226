//! attend: attention-based sequence-to-sequence learning — RNN encoder-decoders with and without
//! attention, the Transformer, and pictures of what the attention does — on a purpose-built engine
//! (the `tensor` crate).

pub mod allocator;
pub mod attention;
pub mod caption;
pub mod config;
pub mod data;
pub mod device;
pub mod import;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod search;
pub mod show;
pub mod train;
pub mod translate;
