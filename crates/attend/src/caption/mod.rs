//! Show, Attend and Tell (Xu et al. 2015): an image captioner whose decoder attends over a grid of
//! CNN features, so that it looks at a different part of the image for every word.
//!
//! ```text
//! image [N, C, H, W] ─► CNN (conv3×3 + ReLU + max-pool 2×2, × L) ─► grid a [N, S = H'·W', D] (+ positions)
//!   ─► LSTM decoder, per word: e = vᵀ tanh(W_q h + W_k a_i), α = softmax(e), z = Σ α_i a_i
//!   ─► logits over caption words ─► greedy or beam search (the translation search, shared)
//! ```
//!
//! | file | what |
//! |---|---|
//! | [`digits`] | the bundled task: strips of 3–5 MNIST digits captioned in words ("three one four") |
//! | [`images`] | PNG decoding, resizing, and a TSV reader of real image + caption sets |
//! | [`cnn`] | the convolutional encoder that turns an image into a grid of feature vectors |
//! | [`captioner`] | the model, and [`ImageRows`], its adapter to the shared search |
//! | [`trainer`] | `attend train` for `model.kind = "captioner"`: the captioning task of the shared loop |
//! | [`evaluate`] | after training: test captions, exact accuracy, BLEU, where the attention looks |
//! | [`overlay`] | the picture: the image with each word's attention weights laid over it |
//!
//! The caption settings live in the config's `[caption]` section ([`CaptionConfig`]); the decoder
//! sizes come from `[model]` (`embedding`, `hidden`, `attention_size`, `dropout`).

pub mod captioner;
pub mod cnn;
pub mod digits;
pub mod evaluate;
pub mod images;
pub mod overlay;
pub mod trainer;

pub use captioner::{Captioner, ImageRows};
pub use cnn::CnnEncoder;
pub use digits::{DigitBank, Strip};
pub use images::{read_image, read_image_tsv, resize, Image};
pub use overlay::AttentionOverlay;
pub use trainer::{load_captioner, train_captioner, CaptionSummary, LoadedCaptioner};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tensor::Tensor;

/// The `[caption]` section of a config: image size, the digit-strip task, the CNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptionConfig {
    /// Height and width every image is resized to (the digit strips are drawn at this size).
    pub image_height: usize,
    pub image_width: usize,
    /// 1 = grey (luminance), 3 = RGB.
    pub channels: usize,
    /// Digit strips: number of train, dev and test strips generated.
    pub strips: [usize; 3],
    /// Digit strips: fewest and most digits per strip.
    pub min_digits: usize,
    pub max_digits: usize,
    /// Output channels of the CNN's conv + ReLU + pool blocks (each halves height and width).
    pub conv_channels: Vec<usize>,
    /// Whether a self-attention block ([`ImageSelfAttention`](crate::attention::ImageSelfAttention))
    /// follows the conv blocks, so that every grid cell can look at every other before the decoder
    /// attends over them (off by default).
    pub self_attention: bool,
    /// Size of the block's queries, keys and values (read only with `self_attention`).
    pub self_attention_size: usize,
    /// λ of the doubly stochastic attention penalty λ Σ_i (1 − Σ_t α_ti)² (Xu et al. 2015, §4.2.1);
    /// 0 = off.
    pub doubly_stochastic: f32,
    /// Images per training batch.
    pub batch_size: usize,
    /// For `data.corpus = "image-tsv"`: the folder image paths are relative to (default: the folder
    /// of each TSV file).
    pub image_root: String,
}

impl CaptionConfig {
    /// Whether every key has its default (then a saved config leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == CaptionConfig::default()
    }
}

impl Default for CaptionConfig {
    fn default() -> CaptionConfig {
        CaptionConfig {
            image_height: 32,
            image_width: 160,
            channels: 1,
            strips: [20_000, 500, 500],
            min_digits: 3,
            max_digits: 5,
            conv_channels: vec![16, 32, 64],
            self_attention: false,
            self_attention_size: 16,
            doubly_stochastic: 0.0,
            batch_size: 32,
            image_root: String::new(),
        }
    }
}

impl CaptionConfig {
    /// Height and width of the feature grid: each conv block halves both (rounding down).
    pub fn grid(&self) -> (usize, usize) {
        let halve = |x: usize| (0..self.conv_channels.len()).fold(x, |x, _| x / 2);
        (halve(self.image_height), halve(self.image_width))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), CaptionError> {
        let bad = |m: String| Err(CaptionError::Config(m));
        if self.channels != 1 && self.channels != 3 {
            return bad(format!(
                "caption.channels = {}; use 1 (grey) or 3 (RGB)",
                self.channels
            ));
        }
        if self.conv_channels.is_empty() || self.conv_channels.contains(&0) {
            return bad("caption.conv_channels needs at least one positive channel count".into());
        }
        if self.self_attention && self.self_attention_size == 0 {
            return bad("caption.self_attention_size must be positive".into());
        }
        let (gh, gw) = self.grid();
        if gh == 0 || gw == 0 {
            return bad(format!(
                "a {}×{} image is too small for {} conv blocks (each halves it); enlarge the image or remove blocks",
                self.image_height,
                self.image_width,
                self.conv_channels.len()
            ));
        }
        if self.batch_size == 0 {
            return bad("caption.batch_size must be positive".into());
        }
        if self.strips.contains(&0) {
            return bad(format!(
                "caption.strips = {:?}: the train, dev and test counts must each be ≥ 1",
                self.strips
            ));
        }
        if self.min_digits == 0 || self.min_digits > self.max_digits {
            return bad(format!(
                "caption.min_digits = {} and max_digits = {}: need 1 ≤ min ≤ max",
                self.min_digits, self.max_digits
            ));
        }
        if !(0.0..=100.0).contains(&self.doubly_stochastic) {
            return bad(format!(
                "caption.doubly_stochastic = {} must be in [0, 100]",
                self.doubly_stochastic
            ));
        }
        Ok(())
    }
}

/// What can go wrong in the captioner's data and model code.
#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("invalid caption configuration: {0}")]
    Config(String),
    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Tsv {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bundled MNIST digits are corrupt: {0}")]
    Bundle(String),
    #[error("{0}")]
    Invalid(String),
}

/// Images with one caption each: one split of a captioning data set.
#[derive(Debug, Clone)]
pub struct CaptionSet {
    /// `[N, C, H, W]`, values in [0, 1].
    pub images: Tensor,
    /// One caption per image.
    pub captions: Vec<String>,
    /// For digit strips, where each digit lies (left to right); empty for other sets.
    pub strips: Vec<Strip>,
}

impl CaptionSet {
    pub fn len(&self) -> usize {
        self.captions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }
}
