//! Checks of command-line values, run by clap while it parses: a value out of its range is refused
//! before anything is loaded, with clap's message naming the flag and the range
//! (`invalid value '0' for '--beam <BEAM>': 0 is not in 1..=16`). The bounds are the library's
//! ([`MAX_BEAM`], [`ALPHA_RANGE`]), so that a flag, a config key and a server request obey one rule.

use attend::config::{ALPHA_RANGE, MAX_BEAM};
use clap::builder::RangedU64ValueParser;

/// Most kernel threads (`--threads`): more than any machine has cores, and a typo such as
/// `--threads 100000` would otherwise try to start that many threads.
const MAX_THREADS: u64 = 1024;

/// Largest enlargement of an image in the caption pictures (`caption --scale`).
const MAX_SCALE: u64 = 64;

/// The checkpoints of a run directory that `--checkpoint` may name.
pub const CHECKPOINTS: [&str; 2] = ["best", "last"];

/// A count of at least 1 (sizes, tokens, numbers of items).
pub fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..)
}

/// A beam size: 1 (greedy) to [`MAX_BEAM`].
pub fn beam() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_BEAM as u64)
}

/// Kernel threads: 1 to [`MAX_THREADS`].
pub fn threads() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_THREADS)
}

/// An image enlargement: 1 to [`MAX_SCALE`].
pub fn scale() -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::new().range(1..=MAX_SCALE)
}

/// A length-penalty exponent: a finite number in [`ALPHA_RANGE`] (`nan` and `inf` are refused).
pub fn alpha(text: &str) -> Result<f32, String> {
    let a: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if ALPHA_RANGE.contains(&a) {
        Ok(a)
    } else {
        Err(format!(
            "{a} is not a finite number in [{}, {}]",
            ALPHA_RANGE.start(),
            ALPHA_RANGE.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Flags {
        #[arg(long, value_parser = beam())]
        beam: Option<usize>,
        #[arg(long, value_parser = alpha)]
        alpha: Option<f32>,
        #[arg(long, value_parser = threads())]
        threads: Option<usize>,
        #[arg(long, value_parser = at_least_one())]
        count: Option<usize>,
        #[arg(long, value_parser = scale())]
        scale: Option<u32>,
    }

    fn parse(args: &[&str]) -> Result<Flags, String> {
        Flags::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn values_in_range_parse() {
        let f = parse(&[
            "--beam",
            "16",
            "--alpha",
            "0.6",
            "--threads",
            "2",
            "--count",
            "1",
            "--scale",
            "4",
        ])
        .unwrap();
        assert_eq!(
            (f.beam, f.alpha, f.threads, f.count, f.scale),
            (Some(16), Some(0.6), Some(2), Some(1), Some(4))
        );
    }

    #[test]
    fn values_out_of_range_name_the_flag_and_the_range() {
        for (args, needles) in [
            (&["--beam", "100000"][..], &["--beam", "1..=16"][..]),
            (&["--beam", "0"], &["--beam", "1..=16"]),
            (&["--alpha", "NaN"], &["--alpha", "[0, 10]"]),
            (&["--alpha", "inf"], &["--alpha", "[0, 10]"]),
            (&["--alpha=-1"], &["--alpha", "[0, 10]"]),
            (&["--alpha", "x"], &["--alpha", "not a number"]),
            (&["--threads", "0"], &["--threads", "1..=1024"]),
            (&["--threads", "100000"], &["--threads", "1..=1024"]),
            (&["--count", "0"], &["--count", "1.."]),
            (&["--scale", "0"], &["--scale", "1..=64"]),
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            for needle in needles {
                assert!(
                    err.contains(needle),
                    "{args:?}: {needle:?} missing from {err}"
                );
            }
        }
    }
}
