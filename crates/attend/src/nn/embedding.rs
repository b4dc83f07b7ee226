//! Embedding: a lookup table of learned vectors, `out[..., :] = weight[id, :]`.
//!
//! `ids` (any shape `S`, flattened) → `[S..., D]`, `weight [V, D]` named `{name}.weight`, initialised
//! `N(0, 1)` as PyTorch's `nn.Embedding`. With a `padding_idx` the row of that id starts at zero and
//! receives no gradient (so it stays zero), as in PyTorch.

use crate::nn::Params;
use tensor::{Rng, Tensor, Var};

/// Invalid embedding configuration or ids.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error(
        "embedding `{name}`: padding index {padding_idx} is outside the vocabulary of {vocab}"
    )]
    PaddingIdx {
        name: String,
        padding_idx: u32,
        vocab: usize,
    },
    #[error("embedding: token id {id} is outside the vocabulary of {vocab} (the vocabulary does not match the model)")]
    Id { id: u32, vocab: usize },
    #[error("embedding: {ids} ids do not fill the shape {shape:?}")]
    Shape { ids: usize, shape: Vec<usize> },
}

pub struct Embedding {
    pub weight: Var,
    padding_idx: Option<u32>,
}

impl Embedding {
    /// Registers `{name}.weight [vocab, dim]` ~ `N(0, 1)` (row `padding_idx` zero).
    pub fn new(
        params: &mut Params,
        name: &str,
        vocab: usize,
        dim: usize,
        padding_idx: Option<u32>,
        rng: &mut Rng,
    ) -> Result<Embedding, EmbeddingError> {
        let mut w = Tensor::randn(&[vocab, dim], 0.0, 1.0, rng);
        if let Some(p) = padding_idx {
            if p as usize >= vocab {
                return Err(EmbeddingError::PaddingIdx {
                    name: name.to_string(),
                    padding_idx: p,
                    vocab,
                });
            }
            w.data_mut()[p as usize * dim..(p as usize + 1) * dim].fill(0.0);
        }
        Ok(Embedding {
            weight: params.add(&format!("{name}.weight"), w),
            padding_idx,
        })
    }

    /// A table over an existing parameter `weight [vocab, dim]`, without a padding index (a model
    /// that initialises its tables itself, or uses one table in two places).
    pub fn from_weight(weight: Var) -> Embedding {
        Embedding {
            weight,
            padding_idx: None,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.weight.dim(0)
    }

    pub fn dim(&self) -> usize {
        self.weight.dim(1)
    }

    /// Looks up `ids` laid out as `shape` (e.g. `[B, T]`) → `[shape..., D]`.
    pub fn forward(&self, ids: &[u32], shape: &[usize]) -> Result<Var, EmbeddingError> {
        if shape.iter().product::<usize>() != ids.len() {
            return Err(EmbeddingError::Shape {
                ids: ids.len(),
                shape: shape.to_vec(),
            });
        }
        let vocab = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EmbeddingError::Id { id, vocab });
        }
        // rows: [N, D]
        let mut rows = self.weight.gather_rows(ids);
        if let Some(p) = self.padding_idx.filter(|p| ids.contains(p)) {
            // The padding row gets no gradient: mask the rows that read it.
            let mask: Vec<f32> = ids.iter().map(|&id| f32::from(id == p)).collect();
            rows = rows.masked_fill(&Tensor::from_vec(mask, &[ids.len(), 1]), 0.0);
        }
        let mut out_shape = shape.to_vec();
        out_shape.push(self.dim());
        Ok(rows.reshape(&out_shape))
    }
}
