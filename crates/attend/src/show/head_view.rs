//! Which of a Transformer's cross-attention maps a reader is shown: one head of one decoder layer,
//! or the mean of a layer's heads.
//!
//! ```text
//! head view     α^{l,h}_ij = softmax_j(q^{l,h}_i · k^{l,h}_j / √d_k)         one layer l, head h
//! mean view     ᾱ^l_ij = (1/H) Σ_h α^{l,h}_ij                                rows still sum to 1
//! ```
//!
//! A Transformer has no single alignment: every decoder layer has H heads, and heads specialise
//! (some look at the next source word, some at punctuation or `</s>`). The *alignment view* that
//! a reader takes for the seed notes' figure (Bahdanau et al. 2015, fig. 3) is the mean of the
//! heads of the **penultimate** decoder layer ([`alignment_layer`]): Garg et al. 2019 (*Jointly
//! Learning to Align and Translate with Transformer Models*) compared the alignments read off each
//! layer of a 6-layer Transformer and found the penultimate layer's best, which their fairseq model
//! keeps as its default (`transformer_align`: `alignment_layer = 4`, counted from 0); the last
//! layer attends for the sake of the next word and aligns worse. With a single decoder layer, that
//! layer is the view.

use super::ShowError;

/// A decoder layer and, optionally, one of its heads; both counted from 1 as shown to readers.
/// Serialised in `attend explain --json` as `{"layer": 2, "head": 3}` (`"head": null`: the mean
/// of the layer's heads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadView {
    /// Decoder layer, from 1.
    pub layer: usize,
    /// Head, from 1; `None`: the mean of the layer's heads.
    pub head: Option<usize>,
}

/// The decoder layer (from 1) whose head average is the alignment view: the penultimate of
/// `layers` (see the module doc), or the only one.
pub fn alignment_layer(layers: usize) -> usize {
    layers.saturating_sub(1).max(1)
}

impl HeadView {
    /// The alignment view of a decoder of `layers` layers: the mean of the heads of
    /// [`alignment_layer`].
    pub fn alignment(layers: usize) -> HeadView {
        HeadView {
            layer: alignment_layer(layers),
            head: None,
        }
    }

    /// The view a reader asked for (`--layer`, `--head`, each from 1): a missing layer is the
    /// alignment layer; a missing head is the mean of the heads. Checked against a decoder of
    /// `layers` layers of `heads` heads.
    pub fn choose(
        layer: Option<usize>,
        head: Option<usize>,
        layers: usize,
        heads: usize,
    ) -> Result<HeadView, ShowError> {
        let view = HeadView {
            layer: layer.unwrap_or_else(|| alignment_layer(layers)),
            head,
        };
        view.check(layers, heads)?;
        Ok(view)
    }

    /// The layer and head exist in a decoder of `layers` layers of `heads` heads.
    pub fn check(&self, layers: usize, heads: usize) -> Result<(), ShowError> {
        if !(1..=layers).contains(&self.layer) {
            return Err(ShowError::Invalid(format!(
                "layer {} does not exist: the decoder has {layers} layers; choose 1 to {layers}",
                self.layer
            )));
        }
        match self.head {
            Some(h) if !(1..=heads).contains(&h) => Err(ShowError::Invalid(format!(
                "head {h} does not exist: each layer has {heads} heads; choose 1 to {heads}"
            ))),
            _ => Ok(()),
        }
    }

    /// Words for titles: `layer 2, head 3` or `layer 1, mean of 4 heads`.
    pub fn describe(&self, heads: usize) -> String {
        match self.head {
            Some(h) => format!("layer {}, head {h}", self.layer),
            None => format!("layer {}, mean of {heads} heads", self.layer),
        }
    }

    /// This view of one layer's weights `[H, rows, cols]` (row-major) → `rows` rows of `cols`: the
    /// chosen head's rows, or the mean over the heads (summed in head order, then divided by H).
    pub fn rows_of(
        &self,
        weights: &[f32],
        heads: usize,
        rows: usize,
        cols: usize,
    ) -> Vec<Vec<f32>> {
        let plane = rows * cols;
        let data: Vec<f32> = match self.head {
            Some(h) => weights[(h - 1) * plane..h * plane].to_vec(),
            None => (0..plane)
                .map(|i| (0..heads).map(|h| weights[h * plane + i]).sum::<f32>() / heads as f32)
                .collect(),
        };
        data.chunks(cols.max(1)).map(<[f32]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alignment_layer_is_the_penultimate_or_the_only_one() {
        assert_eq!(alignment_layer(1), 1);
        assert_eq!(alignment_layer(2), 1);
        assert_eq!(alignment_layer(6), 5);
        assert_eq!(
            HeadView::alignment(6),
            HeadView {
                layer: 5,
                head: None
            }
        );
    }

    #[test]
    fn a_missing_layer_or_head_is_refused_with_the_range() {
        let e = HeadView::choose(Some(3), None, 2, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 3") && e.contains("1 to 2"), "{e}");
        let e = HeadView::choose(Some(0), None, 2, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 0"), "{e}");
        let e = HeadView::choose(None, Some(5), 2, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("head 5") && e.contains("1 to 4"), "{e}");
        let v = HeadView::choose(None, Some(4), 6, 4).unwrap();
        assert_eq!(
            v,
            HeadView {
                layer: 5,
                head: Some(4)
            }
        );
    }

    #[test]
    fn rows_are_one_head_or_the_mean_of_all() {
        // 2 heads, 2 rows, 3 columns.
        let w = [
            0.2, 0.3, 0.5, 1.0, 0.0, 0.0, // head 1
            0.6, 0.1, 0.3, 0.0, 0.5, 0.5, // head 2
        ];
        let one = HeadView {
            layer: 1,
            head: Some(2),
        }
        .rows_of(&w, 2, 2, 3);
        assert_eq!(one, vec![vec![0.6, 0.1, 0.3], vec![0.0, 0.5, 0.5]]);
        let mean = HeadView {
            layer: 1,
            head: None,
        }
        .rows_of(&w, 2, 2, 3);
        let expected = [[0.4, 0.2, 0.4], [0.5, 0.25, 0.25]];
        for (row, e) in mean.iter().zip(expected) {
            for (x, y) in row.iter().zip(e) {
                assert!((x - y).abs() < 1e-7, "{row:?}");
            }
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
