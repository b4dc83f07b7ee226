//! Layers built on the engine: each owns named parameters in a [`Params`] store.

pub mod linear;
pub mod params;

pub use linear::Linear;
pub use params::Params;
