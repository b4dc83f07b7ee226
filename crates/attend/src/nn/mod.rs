//! Layers built on the engine: each owns named parameters in a [`Params`] store.

pub mod checksum;
pub mod dropout;
pub mod embedding;
pub mod gru;
pub mod layer_norm;
pub mod linear;
pub mod lstm;
pub mod npz;
pub mod params;
pub mod rnn;

pub use dropout::Dropout;
pub use embedding::Embedding;
pub use gru::GruCell;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use lstm::LstmCell;
pub use params::Params;
pub use rnn::{CellKind, Rnn, RnnConfig, RnnOutput, RnnState};
