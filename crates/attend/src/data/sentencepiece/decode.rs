//! Decoding pieces back to text, as the reference's `SentencePieceProcessor::Decode` does.
//!
//! Each piece is looked up (an unknown string reads as the unknown id) and becomes:
//! - a control piece (`<s>`, `</s>`): nothing;
//! - the unknown piece `<unk>` itself: the unknown surface (` ⁇ `); any other string with the
//!   unknown id (an unknown character kept by encoding): itself, unchanged;
//! - a run of byte pieces `<0xNN>`: those bytes read as UTF-8, each byte that does not start a
//!   valid character becoming U+FFFD;
//! - any other piece: its text with `▁` turned into spaces; at the start of the text (until
//!   something non-empty was written) a leading `▁` is dropped when the model adds a dummy
//!   prefix or removes extra whitespace (with the latter, from every piece until then).

use super::model_file::{piece_to_byte, ModelFile, PieceKind};
use super::normalizer::SPACE_SYMBOL;

/// The id of `piece` as decoding sees it: reserved pieces first, then normal ones, else unknown.
pub fn piece_id(model: &ModelFile, piece: &str) -> u32 {
    model
        .reserved
        .get(piece)
        .or_else(|| model.normal.get(piece))
        .copied()
        .unwrap_or(model.unk_id)
}

/// Appends `bytes` read as UTF-8 to `text`; a byte that does not start a valid character is
/// replaced by U+FFFD and skipped alone.
fn push_bytes(text: &mut String, bytes: &[u8]) {
    let mut offset = 0;
    while offset < bytes.len() {
        let len = match bytes[offset] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 0,
        };
        let char = bytes
            .get(offset..offset + len.max(1))
            .filter(|_| len > 0)
            .and_then(|b| std::str::from_utf8(b).ok());
        match char {
            Some(c) => {
                text.push_str(c);
                offset += len;
            }
            None => {
                text.push(char::REPLACEMENT_CHARACTER);
                offset += 1;
            }
        }
    }
}

/// The text of `pieces`.
pub fn decode(model: &ModelFile, pieces: &[&str]) -> String {
    let spec = &model.normalizer;
    let strip_bos_space = spec.add_dummy_prefix || spec.remove_extra_whitespaces;
    let mut text = String::new();
    let mut bytes = Vec::new();
    let mut is_bos_ws = true;
    let mut bos_ws_seen = false;
    for &piece in pieces {
        let id = piece_id(model, piece);
        let kind = model.kinds[id as usize];
        if kind == PieceKind::Byte {
            bytes.extend(piece_to_byte(piece));
            continue;
        }
        push_bytes(&mut text, &bytes);
        bytes.clear();
        if bos_ws_seen || !text.is_empty() {
            is_bos_ws = false;
        }
        bos_ws_seen = false;
        match kind {
            PieceKind::Control => {}
            PieceKind::Unknown if model.texts[id as usize] == piece => {
                text.push_str(&model.unk_surface)
            }
            PieceKind::Unknown => text.push_str(piece),
            _ => {
                let mut piece = piece;
                if is_bos_ws && strip_bos_space {
                    if let Some(rest) = piece.strip_prefix(SPACE_SYMBOL) {
                        piece = rest;
                        bos_ws_seen = !spec.remove_extra_whitespaces;
                    }
                }
                text.push_str(&piece.replace(SPACE_SYMBOL, " "));
            }
        }
    }
    push_bytes(&mut text, &bytes);
    text
}
