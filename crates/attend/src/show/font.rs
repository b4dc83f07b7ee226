//! The bundled font: DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans-LICENSE.txt`).
//!
//! plotters draws bitmap text with `ab_glyph` from a registered font instead of asking the system,
//! so PNG labels (accents, «guillemets», arrows) look the same on a laptop, in CI and in a container
//! with no fonts installed. SVG files name the family `sans-serif` and let the viewer choose.

use super::ShowError;
use plotters::style::{register_font, FontStyle, IntoFont, TextStyle};
use std::sync::OnceLock;

/// DejaVu Sans 2.37, from the Debian package fonts-dejavu-core.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name every picture draws with; DejaVu Sans is registered under it.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font once per process; every picture calls this before drawing.
pub(crate) fn ensure_registered() -> Result<(), ShowError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ShowError::Font)
    }
}

/// A text style of `px` pixels in the bundled font.
pub(crate) fn text(px: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, f64::from(px)).into_font())
}

/// Width and height in pixels of `s` drawn at `px` pixels.
pub(crate) fn measure(s: &str, px: u32) -> Result<(u32, u32), ShowError> {
    ensure_registered()?;
    (FAMILY, f64::from(px))
        .into_font()
        .box_size(s)
        .map_err(|e| ShowError::Draw(format!("cannot measure text {s:?}: {e}")))
}

/// The widest of `labels` at `px` pixels, 0 for none.
pub(crate) fn widest(labels: &[String], px: u32) -> Result<u32, ShowError> {
    labels
        .iter()
        .map(|l| measure(l, px).map(|(w, _)| w))
        .try_fold(0, |acc, w| w.map(|w| acc.max(w)))
}
