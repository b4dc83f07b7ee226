//! The corpora bundled with attend (`data/` at the repository root, see its README), compiled into
//! the binary so that training works from any directory: `en-fr` and `en-es-bible`, each a gzip TSV
//! `source<TAB>target` per split, read with the same rules as any TSV corpus
//! ([`super::corpus::read_tsv`]).

use std::io::BufReader;
use std::path::PathBuf;

use flate2::read::MultiGzDecoder;

use super::corpus::{parse_tsv, Corpus, CorpusError, Split};

/// The corpora bundled with attend (see `data/README.md`), each a gzip TSV `source<TAB>target`
/// per split, compiled into the binary so that training works from any directory.
const BUNDLED: &[(&str, [&[u8]; 3])] = &[
    (
        "en-fr",
        [
            include_bytes!("../../../../data/en-fr/train.tsv.gz"),
            include_bytes!("../../../../data/en-fr/dev.tsv.gz"),
            include_bytes!("../../../../data/en-fr/test.tsv.gz"),
        ],
    ),
    (
        "en-es-bible",
        [
            include_bytes!("../../../../data/en-es-bible/train.tsv.gz"),
            include_bytes!("../../../../data/en-es-bible/dev.tsv.gz"),
            include_bytes!("../../../../data/en-es-bible/test.tsv.gz"),
        ],
    ),
];

/// Names of the bundled corpora: `en-fr` (Wesnoth + emoji labels + Tux Paint captions,
/// English→French) and `en-es-bible` (KJV → Reina-Valera 1909, English→Spanish).
pub fn bundled_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(name, _)| *name).collect()
}

/// Loads one split of a bundled corpus by name (see [`bundled_names`]).
pub fn load_bundled(name: &str, split: Split) -> Result<Corpus, CorpusError> {
    let (_, files) =
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| CorpusError::UnknownBundled {
                name: name.to_string(),
                available: bundled_names().join(", "),
            })?;
    let bytes = files[split as usize];
    let label = PathBuf::from(format!("data/{name}/{split}.tsv.gz"));
    let reader = BufReader::new(MultiGzDecoder::new(bytes));
    parse_tsv(reader, &label, 0, 1, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_en_fr_has_the_documented_rows() {
        let train = load_bundled("en-fr", Split::Train).unwrap();
        let dev = load_bundled("en-fr", Split::Dev).unwrap();
        let test = load_bundled("en-fr", Split::Test).unwrap();
        assert_eq!(
            (train.pairs.len(), dev.pairs.len(), test.pairs.len()),
            (11213, 469, 566)
        );
        assert_eq!(
            train.skipped_empty + dev.skipped_empty + test.skipped_empty,
            0
        );
        // Train-only additions: a Tux Paint caption and an emoji label.
        let has = |c: &Corpus, s: &str, t: &str| c.pairs.iter().any(|(a, b)| a == s && b == t);
        assert!(has(&train, "A black cat.", "Un chat noir."));
        assert!(has(&train, "black cat", "chat noir"));
        // No English dev/test sentence leaks into train.
        let train_src: std::collections::HashSet<&str> =
            train.pairs.iter().map(|(s, _)| s.as_str()).collect();
        assert!(dev
            .pairs
            .iter()
            .chain(&test.pairs)
            .all(|(s, _)| !train_src.contains(s.as_str())));
    }

    #[test]
    fn bundled_bible_has_the_documented_rows() {
        let counts: Vec<usize> = Split::ALL
            .iter()
            .map(|&s| load_bundled("en-es-bible", s).unwrap().pairs.len())
            .collect();
        assert_eq!(counts, vec![30120, 85, 879]);
        let dev = load_bundled("en-es-bible", Split::Dev).unwrap();
        assert!(dev.pairs[0].0.contains("judges ruled"));
    }

    #[test]
    fn unknown_bundled_name_lists_the_available_ones() {
        let err = load_bundled("en-xx", Split::Train).unwrap_err().to_string();
        assert!(
            err.contains("en-fr") && err.contains("en-es-bible"),
            "{err}"
        );
        assert!("valid".parse::<Split>().unwrap() == Split::Dev);
        assert!("trian".parse::<Split>().is_err());
    }
}
