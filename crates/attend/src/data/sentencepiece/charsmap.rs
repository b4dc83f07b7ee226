//! The precompiled character map of a SentencePiece normalizer: a double-array trie (the
//! darts-clone layout) from UTF-8 byte strings to offsets into a block of NUL-terminated
//! replacement strings.
//!
//! Blob layout (little endian): `[trie size in bytes: u32][trie units: u32 × size/4][replacements]`.
//! A unit packs, as darts-clone does, `has_leaf` (bit 8), `label` (bits 0–7 and 31), `value`
//! (bits 0–30, in leaf units) and the child `offset` (bits 10–31, shifted by 8 when bit 9 is set).
//! [`CharsMap::longest_prefix`] answers the normalizer's question "which rule matches the
//! longest prefix of this text?" exactly as the reference does: among the first 32 matches of a
//! common-prefix search, the longest.

/// The reference keeps the first 32 matches of a common-prefix search.
const MAX_MATCHES: usize = 32;

/// A parsed precompiled character map.
#[derive(Debug, Clone)]
pub struct CharsMap {
    units: Vec<u32>,
    replacements: String,
}

fn has_leaf(unit: u32) -> bool {
    (unit >> 8) & 1 == 1
}

fn value(unit: u32) -> u32 {
    unit & ((1 << 31) - 1)
}

fn label(unit: u32) -> u32 {
    unit & ((1 << 31) | 0xFF)
}

fn offset(unit: u32) -> usize {
    ((unit >> 10) << ((unit & (1 << 9)) >> 6)) as usize
}

impl CharsMap {
    /// Parses the blob of `NormalizerSpec.precompiled_charsmap`.
    pub fn parse(blob: &[u8]) -> Result<Self, String> {
        let broken =
            |what: &str| format!("the normalizer's precompiled_charsmap is broken: {what}");
        if blob.len() <= 4 {
            return Err(broken("shorter than its header"));
        }
        let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let rest = &blob[4..];
        if trie_size >= blob.len() || !trie_size.is_multiple_of(4) || trie_size == 0 {
            return Err(broken("trie size does not fit the blob"));
        }
        let units = rest[..trie_size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let replacements = String::from_utf8(rest[trie_size..].to_vec())
            .map_err(|_| broken("replacement strings are not UTF-8"))?;
        Ok(CharsMap {
            units,
            replacements,
        })
    }

    /// The longest rule matching a prefix of `text`: its length in bytes and its replacement.
    /// `None` when no rule matches (or the match is not on a character boundary of `text`).
    pub fn longest_prefix<'a>(&'a self, text: &str) -> Option<(usize, &'a str)> {
        let mut longest: Option<(usize, u32)> = None;
        let mut matches = 0;
        let mut node = offset(*self.units.first()?);
        for (i, &byte) in text.as_bytes().iter().enumerate() {
            node ^= byte as usize;
            let unit = *self.units.get(node)?;
            if label(unit) != byte as u32 {
                break;
            }
            node ^= offset(unit);
            if has_leaf(unit) {
                if matches < MAX_MATCHES {
                    longest = Some((i + 1, value(*self.units.get(node)?)));
                }
                matches += 1;
            }
        }
        let (length, start) = longest?;
        if !text.is_char_boundary(length) {
            return None;
        }
        let rest = self.replacements.get(start as usize..)?;
        Some((length, &rest[..rest.find('\0').unwrap_or(rest.len())]))
    }
}
