//! The digit-strip generator: seeded and deterministic, every caption names exactly the digits
//! drawn (each digit's pixels are found, unchanged, in the bundle's range for the split), nothing
//! is drawn outside the digits, and the three splits use disjoint digit images.

use attend::caption::digits::{DigitBank, PER_CLASS, SIDE, WORDS};
use attend::caption::{CaptionConfig, CaptionSet};
use attend::data::corpus::Split;

fn config() -> CaptionConfig {
    CaptionConfig::default()
}

/// The bundle image index (within `range`) that equals `patch`, if any.
fn find(
    bank: &DigitBank,
    digit: usize,
    patch: &[f32],
    range: std::ops::Range<usize>,
) -> Option<usize> {
    range.into_iter().find(|&i| bank.digit(digit, i) == patch)
}

fn check_split(bank: &DigitBank, set: &CaptionSet, split: Split) {
    let range = match split {
        Split::Train => 0..700,
        Split::Dev => 700..750,
        Split::Test => 750..800,
    };
    let [n, c, h, w] = set.images.shape().try_into().unwrap();
    assert_eq!((c, h, w), (1, 32, 160));
    assert_eq!(set.captions.len(), n);
    for (k, strip) in set.strips.iter().enumerate() {
        let canvas = &set.images.data()[k * h * w..(k + 1) * h * w];
        assert!((3..=5).contains(&strip.digits.len()));
        let words: Vec<&str> = strip.digits.iter().map(|&d| WORDS[d as usize]).collect();
        assert_eq!(set.captions[k], words.join(" "), "strip {k}");
        let mut covered = vec![false; h * w];
        for (&d, &left) in strip.digits.iter().zip(&strip.left) {
            // The digit sits at some row offset; its 28×28 patch is one bundle image of class d.
            let found = (0..=h - SIDE).find_map(|y0| {
                let patch: Vec<f32> = (0..SIDE * SIDE)
                    .map(|p| canvas[(y0 + p / SIDE) * w + left + p % SIDE])
                    .collect();
                find(bank, d as usize, &patch, range.clone()).map(|_| y0)
            });
            let y0 = found.unwrap_or_else(|| panic!("strip {k}: digit {d} at x = {left} is not an image of class {d} from the {split:?} range"));
            for p in 0..SIDE * SIDE {
                covered[(y0 + p / SIDE) * w + left + p % SIDE] = true;
            }
        }
        assert!(
            strip.left.windows(2).all(|p| p[1] >= p[0] + SIDE),
            "digits overlap or are out of order"
        );
        let stray = (0..h * w)
            .filter(|&i| !covered[i] && canvas[i] != 0.0)
            .count();
        assert_eq!(stray, 0, "strip {k}: ink outside the digits");
    }
}

#[test]
fn captions_name_the_digits_drawn_from_the_split_s_own_images() {
    let bank = DigitBank::load().unwrap();
    for (split, n) in [(Split::Train, 40), (Split::Dev, 20), (Split::Test, 20)] {
        let set = bank.strips(&config(), split, n, 7).unwrap();
        check_split(&bank, &set, split);
    }
}

#[test]
fn generation_is_deterministic_and_seeded() {
    let bank = DigitBank::load().unwrap();
    let a = bank.strips(&config(), Split::Train, 30, 11).unwrap();
    let b = bank.strips(&config(), Split::Train, 30, 11).unwrap();
    let c = bank.strips(&config(), Split::Train, 30, 12).unwrap();
    assert_eq!(a.images.data(), b.images.data());
    assert_eq!(a.captions, b.captions);
    assert_ne!(a.captions, c.captions);
    // The dev strips do not depend on how many train strips were drawn.
    let d1 = bank.strips(&config(), Split::Dev, 5, 11).unwrap();
    let d2 = bank.strips(&config(), Split::Dev, 8, 11).unwrap();
    assert_eq!(d1.captions[..], d2.captions[..5]);
}

#[test]
fn strips_use_every_length_and_every_digit() {
    let bank = DigitBank::load().unwrap();
    let set = bank.strips(&config(), Split::Train, 300, 3).unwrap();
    for len in 3..=5 {
        assert!(
            set.strips.iter().any(|s| s.digits.len() == len),
            "no strip of {len} digits"
        );
    }
    for d in 0..10u8 {
        assert!(
            set.strips.iter().any(|s| s.digits.contains(&d)),
            "digit {d} never drawn"
        );
    }
    assert_eq!(PER_CLASS, 800);
}

#[test]
fn a_canvas_too_small_for_the_digits_is_an_error() {
    let bank = DigitBank::load().unwrap();
    let cfg = CaptionConfig {
        image_width: 100,
        ..config()
    };
    let err = bank
        .strips(&cfg, Split::Train, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("slots of 20 pixels"), "{err}");
}
