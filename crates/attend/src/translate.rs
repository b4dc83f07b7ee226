//! Translating many sentences: sort by length, decode in batches, restore the input order.

use crate::config::{Config, SearchStyle};
use crate::data::tokenizer::Vocabs;
use crate::models::transformer::TransformerError;
use crate::models::Seq2Seq;
use crate::search::{
    beam_search_with_limits, greedy_with_limits, hf_generate, BeamConfig, Hypothesis,
};

/// Sentences decoded together in one batch.
const BATCH: usize = 64;

/// Longest source, in tokens, that an RNN is given by default: an RNN reads any length, but its
/// memory and time grow with it (the attention keeps a row per target token over every source
/// token); 1024 is the length of a Transformer's default positional table.
pub const DEFAULT_MAX_SOURCE_TOKENS: usize = 1024;

/// The longest source `model` reads: a Transformer's positional table (`max_positions`), for an
/// RNN [`DEFAULT_MAX_SOURCE_TOKENS`].
pub fn max_source_tokens(model: &dyn Seq2Seq) -> usize {
    model
        .as_transformer()
        .map_or(DEFAULT_MAX_SOURCE_TOKENS, |t| t.max_source_len())
}

/// Sources the model can read: a Transformer's positional table bounds their length (the error
/// names the length and the table size); an RNN reads any length.
pub fn check_sources(model: &dyn Seq2Seq, sources: &[Vec<u32>]) -> Result<(), TransformerError> {
    match model.as_transformer() {
        Some(t) => sources.iter().try_for_each(|s| t.check_source_len(s.len())),
        None => Ok(()),
    }
}

/// Decodes id sequences with greedy search (`beam == 1`) or beam search, by the rules of
/// `search.style`; one best hypothesis per input, in input order. Empty inputs give empty hypotheses. Sources must pass
/// [`check_sources`]; a Transformer's output stops at its positional table (`max_positions`
/// tokens) where the configured limit is longer.
pub fn translate_ids(
    model: &dyn Seq2Seq,
    sources: &[Vec<u32>],
    config: &Config,
    beam: usize,
    alpha: f32,
) -> Vec<Hypothesis> {
    translate_ids_until(model, sources, config, beam, alpha, &|| false)
        .expect("never asked to stop")
}

/// [`translate_ids`] that asks `stop` before every batch and returns `None` as soon as it says
/// `true` (an embedding program's interrupt, e.g. Ctrl-C in Python).
pub fn translate_ids_until(
    model: &dyn Seq2Seq,
    sources: &[Vec<u32>],
    config: &Config,
    beam: usize,
    alpha: f32,
    stop: &dyn Fn() -> bool,
) -> Option<Vec<Hypothesis>> {
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&i| sources[i].len());
    let mut out: Vec<Option<Hypothesis>> = vec![None; sources.len()];
    let positions = model
        .as_transformer()
        .map_or(usize::MAX, |t| t.spec().max_positions);
    for chunk in order.chunks(BATCH) {
        if stop() {
            return None;
        }
        let live: Vec<usize> = chunk
            .iter()
            .copied()
            .filter(|&i| !sources[i].is_empty())
            .collect();
        for &i in chunk.iter().filter(|&&i| sources[i].is_empty()) {
            out[i] = Some(Hypothesis::empty());
        }
        if live.is_empty() {
            continue;
        }
        let src_len: Vec<usize> = live.iter().map(|&i| sources[i].len()).collect();
        let src_max = *src_len.iter().max().unwrap_or(&1);
        let mut src = vec![0u32; live.len() * src_max];
        for (r, &i) in live.iter().enumerate() {
            src[r * src_max..r * src_max + sources[i].len()].copy_from_slice(&sources[i]);
        }
        // Each sentence's own output limit (not the longest batch-mate's).
        let max_len: Vec<usize> = src_len
            .iter()
            .map(|&l| config.max_output_len(l).min(positions))
            .collect();
        let hyps = if config.search.style == SearchStyle::HuggingFace {
            hf_generate(model, (&src, &src_len, src_max), beam, alpha, &max_len)
        } else if beam <= 1 {
            greedy_with_limits(model, &src, &src_len, src_max, &max_len)
        } else {
            let cfg = BeamConfig {
                beam,
                alpha,
                max_len: max_len.iter().copied().max().unwrap_or(0),
                n_best: 1,
            };
            beam_search_with_limits(model, &src, &src_len, src_max, cfg, &max_len)
                .into_iter()
                .map(|mut n| {
                    // A limit of 0 tokens leaves a sentence without hypotheses.
                    if n.is_empty() {
                        Hypothesis::empty()
                    } else {
                        n.swap_remove(0)
                    }
                })
                .collect()
        };
        for (h, &i) in hyps.into_iter().zip(&live) {
            out[i] = Some(h);
        }
    }
    Some(
        out.into_iter()
            .map(|h| h.expect("every input is decoded"))
            .collect(),
    )
}

/// Tokenizes, translates and detokenizes sentences.
pub fn translate_text(
    model: &dyn Seq2Seq,
    vocabs: &Vocabs,
    sentences: &[String],
    config: &Config,
    beam: usize,
    alpha: f32,
) -> anyhow::Result<(Vec<String>, Vec<Hypothesis>)> {
    let ids = sentences
        .iter()
        .map(|s| vocabs.src.encode(s))
        .collect::<Result<Vec<_>, _>>()?;
    let hyps = translate_ids(model, &ids, config, beam, alpha);
    let text = hyps.iter().map(|h| vocabs.tgt.decode(&h.ids)).collect();
    Ok((text, hyps))
}
