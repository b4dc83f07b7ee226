//! Positional encodings (Vaswani et al. 2017, *Attention Is All You Need*, §3.5).
//!
//! Self-attention is permutation-equivariant: without positions, shuffling the input rows shuffles the
//! outputs the same way, so word order is invisible. Adding a vector that depends on the position
//! breaks the symmetry.
//!
//! ```text
//! sinusoidal:  pe[p, 2i]   = sin(p / 10000^(2i/d))
//!              pe[p, 2i+1] = cos(p / 10000^(2i/d))        p = 0, 1, …  (interleaved layout)
//! halves:      pe[p, i]       = sin(p / 10000^(2i/d))
//!              pe[p, d/2 + i] = cos(p / 10000^(2i/d))     i < d/2     (Marian's layout)
//! learned:     pe[p, :]    = weight[p, :]                  weight [max_len, d], trained
//! ```
//!
//! The sinusoidal table is computed in f64 and rounded to f32, as `transformer_bench.py` builds its
//! `pos_enc` buffer. The learned table is the parameter `{prefix}.weight [max_len, d]`, initialised
//! `N(0, 0.02²)`. Both give `[len, d]` for positions `start..start + len` (`start > 0` during
//! incremental decoding).
//!
//! Past the table: positions beyond `max_len` are an error, [`AttentionError::TooLong`], naming the
//! position needed and `max_len`, for both kinds alike. A learned table has nothing to say there,
//! and computing sinusoids further would give the model positions it never saw in training. The
//! Transformer passes the error on (`TransformerError::TooLong`); translation checks every source
//! against the table before decoding and stops an output at the table's end.

use crate::attention::{shape_error, AttentionError};
use crate::nn::Params;
use tensor::{Rng, Tensor, Var};

/// The sinusoidal table `[max_len, d]` (see the module doc).
pub fn sinusoidal_table(max_len: usize, d: usize) -> Tensor {
    let mut data = vec![0.0f32; max_len * d];
    for (p, row) in data.chunks_mut(d.max(1)).enumerate().take(max_len) {
        for (j, x) in row.iter_mut().enumerate() {
            let two_i = (j - j % 2) as f64;
            let angle = p as f64 / 10000f64.powf(two_i / d as f64);
            *x = if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_vec(data, &[max_len, d])
}

/// The sinusoidal table `[max_len, d]` in Marian's layout: the sines of every frequency, then the
/// cosines (see the module doc; for odd `d` the sines take the extra column, as Hugging Face's
/// `MarianSinusoidalPositionalEmbedding` does).
pub fn sinusoidal_halves_table(max_len: usize, d: usize) -> Tensor {
    let half = d.div_ceil(2);
    let mut data = vec![0.0f32; max_len * d];
    for (p, row) in data.chunks_mut(d.max(1)).enumerate().take(max_len) {
        for (j, x) in row.iter_mut().enumerate() {
            let (i, sine) = if j < half {
                (j, true)
            } else {
                (j - half, false)
            };
            let angle = p as f64 / 10000f64.powf((2 * i) as f64 / d as f64);
            *x = if sine { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_vec(data, &[max_len, d])
}

fn check_range(start: usize, len: usize, max_len: usize) -> Result<(), AttentionError> {
    if start + len > max_len {
        return Err(AttentionError::TooLong {
            needed: start + len,
            max_len,
        });
    }
    Ok(())
}

/// Fixed sinusoidal positions.
pub struct SinusoidalPositions {
    table: Tensor,
}

impl SinusoidalPositions {
    pub fn new(max_len: usize, d: usize) -> SinusoidalPositions {
        SinusoidalPositions {
            table: sinusoidal_table(max_len, d),
        }
    }

    /// Marian's layout (sines, then cosines): [`sinusoidal_halves_table`].
    pub fn halves(max_len: usize, d: usize) -> SinusoidalPositions {
        SinusoidalPositions {
            table: sinusoidal_halves_table(max_len, d),
        }
    }

    /// The whole table `[max_len, d]`.
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Positions `start..start + len` → `[len, d]` (a constant).
    pub fn encoding(&self, start: usize, len: usize) -> Result<Var, AttentionError> {
        check_range(start, len, self.table.dim(0))?;
        Ok(Var::constant(tensor::ops::layout::narrow_tensor(
            &self.table,
            0,
            start,
            len,
        )))
    }
}

/// Trained positions: `{prefix}.weight [max_len, d]`.
pub struct LearnedPositions {
    pub weight: Var,
}

impl LearnedPositions {
    pub fn new(
        params: &mut Params,
        prefix: &str,
        max_len: usize,
        d: usize,
        rng: &mut Rng,
    ) -> LearnedPositions {
        LearnedPositions {
            weight: params.normal(&format!("{prefix}.weight"), &[max_len, d], 0.02, rng),
        }
    }

    /// Positions `start..start + len` → `[len, d]` (gradients flow into those rows of the table).
    pub fn encoding(&self, start: usize, len: usize) -> Result<Var, AttentionError> {
        check_range(start, len, self.weight.dim(0))?;
        let ids: Vec<u32> = (start..start + len).map(|p| p as u32).collect();
        Ok(self.weight.gather_rows(&ids))
    }
}

/// Either kind of positional encoding.
pub enum Positions {
    Sinusoidal(SinusoidalPositions),
    Learned(LearnedPositions),
}

impl Positions {
    /// The most positions the encoding covers.
    pub fn max_len(&self) -> usize {
        match self {
            Positions::Sinusoidal(s) => s.table.dim(0),
            Positions::Learned(l) => l.weight.dim(0),
        }
    }

    /// The model width `d`.
    pub fn d_model(&self) -> usize {
        match self {
            Positions::Sinusoidal(s) => s.table.dim(1),
            Positions::Learned(l) => l.weight.dim(1),
        }
    }

    /// Positions `start..start + len` → `[len, d]`.
    pub fn encoding(&self, start: usize, len: usize) -> Result<Var, AttentionError> {
        match self {
            Positions::Sinusoidal(s) => s.encoding(start, len),
            Positions::Learned(l) => l.encoding(start, len),
        }
    }

    /// `x [B, T, d] + pe[start..start + T]` (broadcast over the batch).
    pub fn add(&self, x: &Var, start: usize) -> Result<Var, AttentionError> {
        let xs = x.shape();
        let d = self.d_model();
        if xs.len() != 3 || xs[2] != d {
            return Err(shape_error("positions", "x", &xs, format!("[B, T, {d}]")));
        }
        Ok(x.add(&self.encoding(start, xs[1])?))
    }
}
