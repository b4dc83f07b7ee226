//! `attend caption --model DIR IMAGE.png… [--plot DIR] [--beam K]`: one caption per image on stdout;
//! with `--plot`, per image `DIR/NAME.NN-WORD.png` (the attention of each word over the image) and
//! `DIR/NAME.steps.png` (all words, one panel under the other); with `--cell R,C` (a model with
//! `caption.self_attention`) also `DIR/NAME.self-attention.png`: where each chosen grid cell looks
//! in the image, one panel per cell.

use anyhow::{bail, Context, Result};
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
    /// Grid cell ROW,COLUMN (from 0) whose self-attention map to draw into the --plot directory
    /// (repeatable; the model needs caption.self_attention).
    #[arg(long = "cell", value_name = "ROW,COLUMN", value_parser = grid_cell)]
    cells: Vec<(usize, usize)>,
}

/// Parses `ROW,COLUMN`.
fn grid_cell(text: &str) -> Result<(usize, usize), String> {
    let parse = |part: Option<&str>| part.and_then(|p| p.trim().parse::<usize>().ok());
    let mut parts = text.split(',');
    match (parse(parts.next()), parse(parts.next()), parts.next()) {
        (Some(r), Some(c), None) => Ok((r, c)),
        _ => Err(format!(
            "{text:?} is not ROW,COLUMN (two whole numbers, e.g. 1,5)"
        )),
    }
}

pub fn run(a: CaptionArgs) -> Result<()> {
    let loaded = load_captioner(&a.model, &a.checkpoint)?;
    let (gh, gw) = loaded.model.grid();
    if !a.cells.is_empty() {
        if a.plot.is_none() {
            bail!("--cell draws into the --plot directory; add --plot DIR");
        }
        if loaded.model.self_attention().is_none() {
            bail!(
                "{}: the model has no self-attention block (caption.self_attention = false), so --cell has no map to draw",
                a.model.display()
            );
        }
        if let Some((r, c)) = a.cells.iter().find(|&&(r, c)| r >= gh || c >= gw) {
            bail!("--cell {r},{c} is outside the model's {gh}×{gw} grid (rows 0..{gh}, columns 0..{gw})");
        }
    }
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
    let maps = if a.cells.is_empty() {
        None
    } else {
        loaded.model.self_attention_maps(&images) // [N, S, S]
    };
    for (n, ((path, image), h)) in a.images.iter().zip(resized).zip(&hyps).enumerate() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let mut words: Vec<String> = h.ids.iter().map(|&id| loaded.vocab.decode(&[id])).collect();
        words.truncate(h.attention.len());
        if h.attention.len() > words.len() {
            words.push("<end>".into());
        }
        if let Some(maps) = &maps {
            let s = gh * gw;
            let cells: Vec<usize> = a.cells.iter().map(|&(r, c)| r * gw + c).collect();
            let rows = cells
                .iter()
                .map(|&i| maps.data()[(n * s + i) * s..(n * s + i + 1) * s].to_vec())
                .collect();
            let labels = a
                .cells
                .iter()
                .map(|(r, c)| format!("cell {r},{c}"))
                .collect();
            let picture = AttentionOverlay::new(image.clone(), (gh, gw), labels, rows, a.scale)?
                .with_marked_cells(cells)?;
            let file = dir.join(format!("{stem}.self-attention.png"));
            picture.save(&file)?;
            eprintln!("wrote {}", file.display());
        }
        let overlay = AttentionOverlay::new(image, (gh, gw), words, h.attention.clone(), a.scale)?;
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
