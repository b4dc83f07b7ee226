//! What an encoder reads around a source sentence: `<s>` before it and `</s>` after it, where the
//! model was trained so (Marian appends `</s>`; PyTorch tutorials write `<bos> … <eos>` or append
//! `EOS`).
//!
//! ```text
//! ids  x₁ … x_n   →   [<s>] x₁ … x_n [</s>]        a padded batch [B, S] → [B, S + bos + eos]
//! ```

use crate::data::tokenizer::{BOS, EOS, PAD};

/// Which tokens wrap every source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceWrap {
    /// `<s>` before the source.
    pub bos: bool,
    /// `</s>` after the source.
    pub eos: bool,
}

impl SourceWrap {
    /// Tokens added to every source.
    pub fn extra(self) -> usize {
        usize::from(self.bos) + usize::from(self.eos)
    }

    /// The tokens the encoder reads for one source.
    pub fn tokens(self, ids: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len() + self.extra());
        if self.bos {
            out.push(BOS);
        }
        out.extend_from_slice(ids);
        if self.eos {
            out.push(EOS);
        }
        out
    }

    /// `src [B, src_max]` (padded with [`PAD`], real lengths `src_len`) wrapped row by row:
    /// `(src, src_len, src_max)` of what the encoder reads.
    pub fn batch(
        self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> (Vec<u32>, Vec<usize>, usize) {
        if self.extra() == 0 {
            return (src.to_vec(), src_len.to_vec(), src_max);
        }
        let width = src_max + self.extra();
        let mut out = vec![PAD; src_len.len() * width];
        for ((row, ids), &len) in out
            .chunks_mut(width)
            .zip(src.chunks(src_max.max(1)))
            .zip(src_len)
        {
            let wrapped = self.tokens(&ids[..len]);
            row[..wrapped.len()].copy_from_slice(&wrapped);
        }
        let lens = src_len.iter().map(|l| l + self.extra()).collect();
        (out, lens, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_each_row_before_its_padding() {
        let w = SourceWrap {
            bos: true,
            eos: true,
        };
        let (src, len, max) = w.batch(&[7, 8, 9, 5, 0, 0], &[3, 1], 3);
        assert_eq!(max, 5);
        assert_eq!(len, [5, 3]);
        assert_eq!(src, [BOS, 7, 8, 9, EOS, BOS, 5, EOS, PAD, PAD]);
        assert_eq!(w.tokens(&[4]), [BOS, 4, EOS]);
        let none = SourceWrap::default();
        assert_eq!(none.batch(&[7, 0], &[1], 2), (vec![7, 0], vec![1], 2));
    }
}
