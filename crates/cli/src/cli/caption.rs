//! `attend caption --model DIR IMAGE.png… [--plot DIR] [--beam K]`: one caption per image on stdout;
//! with `--plot`, per image `DIR/NAME.NN-WORD.png` (the attention of each word over the image) and
//! `DIR/NAME.steps.png` (all words, one panel under the other).

use anyhow::{Context, Result};
use attend::caption::images::stack;
use attend::caption::trainer::max_words;
use attend::caption::{load_captioner, read_image, resize, AttentionOverlay, ImageRows};
use attend::show::Picture;
use std::path::PathBuf;

/// Caption images with a trained captioner (and draw where it looked for every word).
#[derive(clap::Args)]
pub struct CaptionArgs {
    /// Run directory written by `attend train` with model.kind = "captioner".
    #[arg(long)]
    model: PathBuf,
    /// PNG images; each is resized to the model's image size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Write attention overlays into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Beam size, 1 (greedy) to 16 (default: the run's search.beam).
    #[arg(long, value_parser = super::checks::beam())]
    beam: Option<usize>,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best", value_parser = super::checks::CHECKPOINTS)]
    checkpoint: String,
    /// Enlargement of the image in the pictures, 1 to 64.
    #[arg(long, default_value_t = 4, value_parser = super::checks::scale())]
    scale: u32,
}

pub fn run(a: CaptionArgs) -> Result<()> {
    let loaded = load_captioner(&a.model, &a.checkpoint)?;
    let beam = a.beam.unwrap_or(loaded.config.search.beam);
    let c = &loaded.config.caption;
    let originals = a
        .images
        .iter()
        .map(|p| read_image(p, c.channels))
        .collect::<Result<Vec<_>, _>>()?;
    let resized: Vec<_> = originals
        .iter()
        .map(|i| resize(i, c.image_height, c.image_width))
        .collect();
    let images = stack(&resized);
    let hyps = ImageRows {
        model: &loaded.model,
        images: &images,
    }
    .caption_all(beam, loaded.config.search.alpha, max_words(&loaded.config));
    for h in &hyps {
        println!("{}", loaded.vocab.decode(&h.ids));
    }
    let Some(dir) = a.plot else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for ((path, image), h) in a.images.iter().zip(resized).zip(&hyps) {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let mut words: Vec<String> = h.ids.iter().map(|&id| loaded.vocab.decode(&[id])).collect();
        words.truncate(h.attention.len());
        if h.attention.len() > words.len() {
            words.push("<end>".into());
        }
        let overlay = AttentionOverlay::new(
            image,
            loaded.model.grid(),
            words,
            h.attention.clone(),
            a.scale,
        )?;
        for (k, word) in overlay.words().iter().enumerate() {
            let name = format!("{stem}.{:02}-{}.png", k + 1, file_safe(word));
            overlay.word(k).save(&dir.join(name))?;
        }
        let all = dir.join(format!("{stem}.steps.png"));
        overlay.save(&all)?;
        eprintln!("wrote {}", all.display());
    }
    Ok(())
}

/// A word as a file-name part: letters and digits kept, anything else `_`.
fn file_safe(word: &str) -> String {
    word.chars()
        .map(|ch| if ch.is_alphanumeric() { ch } else { '_' })
        .collect()
}
