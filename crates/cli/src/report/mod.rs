//! Reports that compare trained models on a test set.
//!
//! | report | file | what it measures |
//! |---|---|---|
//! | length | `length.rs` | BLEU per source-length bucket per model (Bahdanau et al. 2015, fig. 2) |

pub mod length;
