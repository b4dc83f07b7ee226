//! The corpora an experiment trains, validates and tests on, as the config names them.

use crate::config::{Config, CorpusName};
use crate::data::bundled::load_bundled;
use crate::data::corpus::{read_parallel, read_tsv, Corpus, Split};
use crate::data::reverse::ReverseConfig;
use anyhow::{bail, Context, Result};

/// Train, dev and test corpora.
pub struct Corpora {
    pub train: Corpus,
    pub dev: Corpus,
    pub test: Corpus,
}

/// Loads the three splits named by `config.data`.
pub fn load_corpora(config: &Config) -> Result<Corpora> {
    let d = &config.data;
    let load = |split: Split| -> Result<Corpus> {
        let path = match split {
            Split::Train => &d.train,
            Split::Dev => &d.dev,
            Split::Test => &d.test,
        };
        match d.corpus {
            CorpusName::Reverse => {
                let [train, dev, test] = d.reverse_sizes.unwrap_or([20_000, 500, 500]);
                let rc = ReverseConfig {
                    train,
                    dev,
                    test,
                    seed: config.train.seed,
                    ..ReverseConfig::default()
                };
                Ok(rc.generate(split))
            }
            CorpusName::Tsv => {
                if path.is_empty() {
                    bail!("data.corpus = \"tsv\" needs data.{} = PATH", split.name());
                }
                Ok(read_tsv(path, d.src_col, d.tgt_col, false)?)
            }
            CorpusName::Parallel => {
                if path.is_empty() || d.src_lang.is_empty() || d.tgt_lang.is_empty() {
                    bail!("data.corpus = \"parallel\" needs data.{} = PREFIX, data.src_lang and data.tgt_lang", split.name());
                }
                Ok(read_parallel(
                    format!("{path}.{}", d.src_lang),
                    format!("{path}.{}", d.tgt_lang),
                )?)
            }
            CorpusName::MnistStrips | CorpusName::ImageTsv | CorpusName::Imported => bail!(
                "data.corpus = {:?} has no sentence pairs to train on",
                d.corpus.name()
            ),
            bundled => load_bundled(bundled.name(), split)
                .with_context(|| format!("loading the bundled corpus {:?}", bundled.name())),
        }
    };
    Ok(Corpora {
        train: load(Split::Train)?,
        dev: load(Split::Dev)?,
        test: load(Split::Test)?,
    })
}
