//! The colour map of attention weights: grey for low, green for high, as the seed notes draw it.
//!
//! A sequential ramp through the ColorBrewer "Greens" scheme (Brewer, colorbrewer2.org), whose
//! lightness falls steadily from one end to the other, so that a darker cell always means a larger
//! weight, in colour and in greyscale print. The lowest stop is a neutral light grey.
//!
//! colour(v) = linear interpolation between the two stops around t = (v − lo) / (hi − lo),
//! with t clamped to [0, 1].
//!
//! Lines in charts take their colours from [`SERIES`] instead.

use plotters::style::RGBColor;

/// Stops at t = 0, 1/7, …, 1: neutral grey, then ColorBrewer Greens (9-class) from its third
/// class to its darkest (the grey is darker than the two lightest greens, which it replaces, so the
/// lightness still falls monotonically).
const STOPS: [(u8, u8, u8); 8] = [
    (0xe8, 0xe8, 0xe8),
    (0xc7, 0xe9, 0xc0),
    (0xa1, 0xd9, 0x9b),
    (0x74, 0xc4, 0x76),
    (0x41, 0xab, 0x5d),
    (0x23, 0x8b, 0x45),
    (0x00, 0x6d, 0x2c),
    (0x00, 0x44, 0x1b),
];

/// The colour of `value` on a scale from `lo` (grey) to `hi` (dark green); outside values clamp.
pub fn weight_colour(value: f32, lo: f32, hi: f32) -> RGBColor {
    let t = if hi > lo {
        ((value - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mix = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Line colours for one series per model (Okabe & Ito 2008, readable with colour blindness),
/// used in turn.
pub(crate) const SERIES: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Whether text on `c` should be white (dark background) rather than black.
pub(crate) fn is_dark(c: RGBColor) -> bool {
    // Relative luminance with Rec. 709 weights on the sRGB values (good enough to pick a text colour).
    0.2126 * f32::from(c.0) + 0.7152 * f32::from(c.1) + 0.0722 * f32::from(c.2) < 128.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        assert_eq!(weight_colour(0.0, 0.0, 1.0), RGBColor(0xe8, 0xe8, 0xe8));
        assert_eq!(weight_colour(1.0, 0.0, 1.0), RGBColor(0x00, 0x44, 0x1b));
        assert_eq!(weight_colour(-3.0, 0.0, 1.0), weight_colour(0.0, 0.0, 1.0));
        assert_eq!(weight_colour(7.0, 0.0, 1.0), weight_colour(1.0, 0.0, 1.0));
        // The midpoint t = 3.5/7 mixes stops 3 (#74c476) and 4 (#41ab5d) half and half.
        assert_eq!(weight_colour(0.5, 0.0, 1.0), RGBColor(0x5b, 0xb8, 0x6a));
        // The scale is affine: the middle of [-2, 6] is the middle colour.
        assert_eq!(weight_colour(2.0, -2.0, 6.0), RGBColor(0x5b, 0xb8, 0x6a));
        // Stop 1 exactly.
        assert_eq!(weight_colour(1.0, 0.0, 7.0), RGBColor(0xc7, 0xe9, 0xc0));
    }

    #[test]
    fn darker_means_larger() {
        let lum = |c: RGBColor| {
            0.2126 * f32::from(c.0) + 0.7152 * f32::from(c.1) + 0.0722 * f32::from(c.2)
        };
        // The stops themselves darken strictly.
        for w in STOPS.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(lum(RGBColor(b.0, b.1, b.2)) < lum(RGBColor(a.0, a.1, a.2)));
        }
        // In between, only rounding each channel to a byte (±0.5 each) may lift the luminance.
        let mut last = f32::INFINITY;
        for k in 0..=100 {
            let l = lum(weight_colour(k as f32 / 100.0, 0.0, 1.0));
            assert!(l <= last + 1.0, "luminance rises at {k}: {l} > {last}");
            last = l;
        }
        assert!(lum(weight_colour(1.0, 0.0, 1.0)) < lum(weight_colour(0.0, 0.0, 1.0)) - 150.0);
        assert!(!is_dark(weight_colour(0.0, 0.0, 1.0)));
        assert!(is_dark(weight_colour(1.0, 0.0, 1.0)));
    }
}
