//! `attend report length --models DIR,DIR… --data en-es-bible|PATH.tsv [--split test]
//! [--buckets 0-10,10-20,…] --out DIR`: BLEU per source-length bucket per model, as a table
//! (`length.md`, printed) and a line chart (`length.png`, `length.svg`).

use crate::report::length::{length_study, parse_buckets, Translations, DEFAULT_BUCKETS};
use anyhow::{bail, Context, Result};
use attend::data::bundled::load_bundled;
use attend::data::corpus::{read_tsv, Split};
use attend::show::plots::save_png_svg;
use attend::train::checkpoint::load_model;
use attend::translate::translate_text;
use std::path::{Path, PathBuf};

/// Compare trained models on a test set.
#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    report: Report,
}

#[derive(clap::Subcommand)]
enum Report {
    /// BLEU by source sentence length per model (Bahdanau et al. 2015, figure 2).
    Length(LengthArgs),
}

#[derive(clap::Args)]
struct LengthArgs {
    /// Run directories written by `attend train`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    models: Vec<PathBuf>,
    /// Names of the models in the chart and table, comma-separated (default: directory names).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// A bundled corpus (en-fr, en-es-bible) or a TSV file (source in column 0, reference in 1).
    #[arg(long)]
    data: String,
    /// Split of a bundled corpus: train, dev or test (a TSV file is used whole).
    #[arg(long, default_value = "test")]
    split: String,
    /// Source-length buckets in words: `lo-hi` holds lo < n ≤ hi, a last `lo-` everything above.
    #[arg(long, default_value = DEFAULT_BUCKETS)]
    buckets: String,
    /// Beam size, 1 (greedy) to 16 (default: each run's search.beam).
    #[arg(long, value_parser = super::checks::beam())]
    beam: Option<usize>,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best", value_parser = super::checks::CHECKPOINTS)]
    checkpoint: String,
    /// Output directory for length.md, length.png, length.svg.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    match a.report {
        Report::Length(l) => length(l),
    }
}

fn length(a: LengthArgs) -> Result<()> {
    let buckets = parse_buckets(&a.buckets)?;
    if !a.names.is_empty() && a.names.len() != a.models.len() {
        bail!(
            "--names gives {} names for {} --models; give one per model or none",
            a.names.len(),
            a.models.len()
        );
    }
    let (pairs, data_label) = if Path::new(&a.data).is_file() {
        let name = Path::new(&a.data).file_name().map(|n| n.to_string_lossy());
        let label = name.map_or_else(|| a.data.clone(), |n| n.into_owned());
        (read_tsv(&a.data, 0, 1, false)?.pairs, label)
    } else {
        let split: Split = a.split.parse()?;
        let corpus = load_bundled(&a.data, split).with_context(|| {
            format!("--data {:?} is neither a file nor a bundled corpus", a.data)
        })?;
        (corpus.pairs, format!("{} {split}", a.data))
    };
    if pairs.is_empty() {
        bail!("{data_label} has no sentence pairs");
    }
    let sources: Vec<String> = pairs.iter().map(|(s, _)| s.clone()).collect();
    let mut systems = Vec::with_capacity(a.models.len());
    for (k, dir) in a.models.iter().enumerate() {
        let name = match a.names.get(k) {
            Some(n) => n.clone(),
            None => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
        };
        let loaded = load_model(dir, &a.checkpoint)?;
        let beam = a.beam.unwrap_or(loaded.config.search.beam);
        eprintln!(
            "translating {} sentences with {name} (beam {beam})",
            sources.len()
        );
        let (hypotheses, _) = translate_text(
            &*loaded.model,
            &loaded.vocabs,
            &sources,
            &loaded.config,
            beam,
            loaded.config.search.alpha,
        )
        .with_context(|| format!("translating with {}", dir.display()))?;
        systems.push(Translations {
            model: name,
            hypotheses,
        });
    }
    let title = format!("BLEU by source length: {data_label}");
    let study = length_study(&title, &pairs, &systems, &buckets)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut md = format!("## {title}\n\n{}", study.chart.markdown());
    md.push_str(&format!(
        "\nSource length in whitespace-separated words; corpus BLEU (sacreBLEU defaults) per \
         bucket over {} sentences. Models: {}.\n",
        pairs.len() - study.outside,
        a.models
            .iter()
            .zip(&systems)
            .map(|(d, s)| format!("{} = `{}`", s.model, d.display()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if study.outside > 0 {
        md.push_str(&format!(
            "{} sentences fall outside the buckets and are not counted.\n",
            study.outside
        ));
    }
    if !study.empty_buckets.is_empty() {
        md.push_str(&format!(
            "Buckets without sentences, left out: {}.\n",
            study.empty_buckets.join(", ")
        ));
    }
    let md_path = a.out.join("length.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let [png, svg] = save_png_svg(&study.chart, &a.out.join("length"))?;
    print!("{md}");
    println!();
    println!(
        "wrote {}, {}, {}",
        md_path.display(),
        png.display(),
        svg.display()
    );
    Ok(())
}
