//! The data side of attend: corpora, tokenizers, batches and the generated reverse task.
//! Everything here is plain data (`String`, `Vec<u32>`); nothing depends on the engine.

pub mod batcher;
pub mod bundled;
pub mod corpus;
pub mod normalize;
pub mod reverse;
pub mod sentencepiece;
pub mod tokenizer;
