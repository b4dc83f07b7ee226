//! The convolutional encoder: an image becomes a grid of feature vectors, one per region.
//!
//! ```text
//! x [N, C, H, W] ─► L × (conv 3×3, padding 1 ─► ReLU ─► max-pool 2×2)  ─►  [N, D, H', W']
//!               ─► cells in row-major order + a learned embedding per cell  ─►  a [N, S = H'·W', D]
//! ```
//!
//! `H' = H / 2^L`, `W' = W / 2^L` (rounding down at every pool), `D` = the last block's channels.
//! Each cell sees a receptive field of a few tens of pixels, so attending to a cell means looking
//! at one region of the image (Xu et al. 2015 §3.1.1 take a lower conv layer for the same reason).
//! The cell embedding `pos [S, D]` tells the decoder where a cell is, so that it can read in order:
//! "the next digit is to the right of the one I just read". With `caption.self_attention` the
//! captioner puts an [`ImageSelfAttention`](crate::attention::ImageSelfAttention) block between
//! [`cells`](CnnEncoder::cells) and [`add_positions`](CnnEncoder::add_positions), where the grid
//! has no positions yet, as in SAGAN.
//!
//! Parameters: `cnn.conv{l}.weight [D_l, D_{l−1}, 3, 3]` (He-normal, std √(2 / (9·D_{l−1}))),
//! `cnn.conv{l}.bias [D_l]` (zeros), `cnn.pos [S, D]` (N(0, 0.1²)).

use crate::nn::Params;
use tensor::{Rng, Tensor, Var};

/// The CNN encoder (see the module doc).
pub struct CnnEncoder {
    convs: Vec<(Var, Var)>,
    pos: Var,
    grid: (usize, usize),
}

impl CnnEncoder {
    /// Registers the conv blocks (`in_channels` → each of `channels`) and the cell embeddings of
    /// the `grid` (height × width of the feature map for the configured image size).
    pub fn new(
        params: &mut Params,
        in_channels: usize,
        channels: &[usize],
        grid: (usize, usize),
        rng: &mut Rng,
    ) -> CnnEncoder {
        let mut convs = Vec::with_capacity(channels.len());
        let mut prev = in_channels;
        for (l, &c) in channels.iter().enumerate() {
            let std = (2.0 / (9 * prev) as f32).sqrt();
            let w = params.normal(&format!("cnn.conv{l}.weight"), &[c, prev, 3, 3], std, rng);
            let b = params.add(&format!("cnn.conv{l}.bias"), Tensor::zeros(&[c]));
            convs.push((w, b));
            prev = c;
        }
        let pos = params.normal("cnn.pos", &[grid.0 * grid.1, prev], 0.1, rng);
        CnnEncoder { convs, pos, grid }
    }

    /// Feature size `D` of a grid cell.
    pub fn feature_size(&self) -> usize {
        self.pos.dim(1)
    }

    /// Grid height and width.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// `x [N, C, H, W]` → `a [N, S, D]`: [`cells`](CnnEncoder::cells) plus the cell embeddings.
    pub fn forward(&self, x: &Var) -> Var {
        self.add_positions(&self.cells(x))
    }

    /// The grid cells before the cell embeddings are added, `[N, S, D]` (row-major). The image
    /// size must give the grid the encoder was built for (the caller resizes images to the
    /// configured size).
    pub fn cells(&self, x: &Var) -> Var {
        let mut h = x.clone();
        for (w, b) in &self.convs {
            h = h.conv2d(w, Some(b), 1, 1).relu().max_pool2d(2, 2); // [N, D_l, H_l, W_l]
        }
        let (n, d) = (h.dim(0), h.dim(1));
        let s = h.dim(2) * h.dim(3);
        assert_eq!(
            (h.dim(2), h.dim(3)),
            self.grid,
            "cnn: image size does not give the configured grid"
        );
        h.reshape(&[n, d, s]).transpose(1, 2) // [N, S, D]
    }

    /// `cells [N, S, D]` plus the cell embedding `pos [S, D]` of every image.
    pub fn add_positions(&self, cells: &Var) -> Var {
        cells.add(&self.pos)
    }
}
