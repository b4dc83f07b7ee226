//! `Engine`: a run written by `attend train` (or imported), loaded once, that translates batches
//! and explains sentences the way `attend translate` and `attend explain --json` do.
//!
//! Text sources are normalised like the command line's lines (whitespace runs collapsed, ends
//! trimmed) and tokenized by the run's tokenizer; pre-tokenized sources are token strings looked up
//! in its source vocabulary. A source longer than the model reads (a Transformer's positional
//! table, 1024 tokens for an RNN) is refused before anything is decoded.

use crate::engine_error;
use crate::run::{run_quiet, Lent};
use attend::data::normalize::normalize;
use attend::search::Hypothesis;
use attend::show::explain::explain;
use attend::show::plots::{display_tokens, target_labels};
use attend::train::checkpoint::{load_model, LoadedModel};
use attend::translate::{max_source_tokens, translate_ids_until};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// One translation handed to Python: its tokens, its text, its score (log-probability with the
/// length penalty), its log-probability, its attention as `f32` bytes (`[rows, columns]`,
/// row-major: one row per emitted token, `</s>` included when emitted), and the row and column
/// labels as the pictures show them.
type Raw = (
    Vec<String>,
    String,
    f32,
    f32,
    Py<PyBytes>,
    Vec<String>,
    Vec<String>,
);

/// A loaded run. Its network is not `Send`, so it stays on the Python thread that loaded it.
#[pyclass(unsendable, module = "attend._attend")]
pub struct Engine {
    loaded: LoadedModel,
}

#[pymethods]
impl Engine {
    /// Loads `model_dir`'s `best` or `last` checkpoint with its config and tokenizers.
    #[new]
    #[pyo3(signature = (model_dir, checkpoint = "best"))]
    fn new(py: Python<'_>, model_dir: PathBuf, checkpoint: &str) -> PyResult<Engine> {
        if !matches!(checkpoint, "best" | "last") {
            return Err(PyValueError::new_err(format!(
                "checkpoint {checkpoint:?}: give \"best\" or \"last\""
            )));
        }
        let loaded = run_quiet(py, |_| load_model(&model_dir, checkpoint).map(Lent))?
            .map_err(engine_error)?;
        Ok(Engine {
            loaded: loaded.into_inner(),
        })
    }

    /// The run's beam size (`search.beam`).
    #[getter]
    fn beam(&self) -> usize {
        self.loaded.config.search.beam
    }

    /// The run's length-penalty exponent (`search.alpha`).
    #[getter]
    fn alpha(&self) -> f32 {
        self.loaded.config.search.alpha
    }

    /// The longest source, in tokens, the model reads.
    #[getter]
    fn source_limit(&self) -> usize {
        max_source_tokens(&*self.loaded.model)
    }

    /// Translates `sources` (each a string or a list of token strings) with beam search (`beam`
    /// 1: greedy); `max_length` replaces the run's output limit (`search.max_len_a · source
    /// length + search.max_len_b`) by a fixed number of tokens. Without `attention`, the
    /// attention bytes and labels come back empty.
    #[pyo3(signature = (sources, beam, alpha, max_length = None, attention = false))]
    fn translate(
        &self,
        py: Python<'_>,
        sources: Vec<Bound<'_, PyAny>>,
        beam: usize,
        alpha: f32,
        max_length: Option<usize>,
        attention: bool,
    ) -> PyResult<Vec<Raw>> {
        if sources.is_empty() {
            return Err(PyValueError::new_err(
                "the batch is empty: give at least one source",
            ));
        }
        if !(1..=16).contains(&beam) {
            return Err(PyValueError::new_err(format!(
                "beam_size = {beam}: give 1 (greedy) to 16"
            )));
        }
        if !(0.0..=10.0).contains(&alpha) {
            return Err(PyValueError::new_err(format!(
                "length penalty alpha = {alpha}: give 0 to 10"
            )));
        }
        let ids = sources
            .iter()
            .enumerate()
            .map(|(i, s)| self.source_ids(i, s))
            .collect::<PyResult<Vec<_>>>()?;
        let mut config = self.loaded.config.clone();
        if let Some(n) = max_length {
            config.search.max_len_a = 0.0;
            config.search.max_len_b = n;
        }
        let lent = Lent((&self.loaded, &config));
        let hyps = run_quiet(py, |stop| {
            let (loaded, config) = lent.into_inner();
            translate_ids_until(&*loaded.model, &ids, config, beam, alpha, &|| {
                stop.load(Ordering::Relaxed)
            })
        })?
        .ok_or_else(|| PyKeyboardInterrupt::new_err("translation stopped"))?;
        Ok(ids
            .iter()
            .zip(&hyps)
            .map(|(src, h)| self.raw(py, src, h, attention))
            .collect())
    }

    /// The source tokens of `text`, normalised as the command line normalises a line.
    fn tokenize(&self, text: &str) -> PyResult<Vec<String>> {
        let vocab = &self.loaded.vocabs.src;
        let ids = vocab
            .encode(&normalize(text))
            .map_err(|e| engine_error(e.into()))?;
        Ok(ids.iter().map(|&id| vocab.token(id)).collect())
    }

    /// `attend explain --json` of `sentence`: every greedy decoding step's scores and weights.
    fn explain(&self, py: Python<'_>, sentence: &str) -> PyResult<String> {
        let sentence = normalize(sentence);
        let lent = Lent(&self.loaded);
        run_quiet(py, |_| {
            let loaded = lent.into_inner();
            let words = loaded.vocabs.src.encode(&sentence)?.len();
            let max_len = loaded.config.max_output_len(words);
            let ex = explain(&*loaded.model, &loaded.vocabs, &sentence, max_len)?;
            Ok(serde_json::to_string_pretty(&ex)?)
        })?
        .map_err(engine_error)
    }
}

impl Engine {
    /// The source ids of source `i`: a string is normalised and tokenized, a list of strings is
    /// looked up token by token; either must fit the model's source limit.
    fn source_ids(&self, i: usize, source: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let limit = self.source_limit();
        let too_long = |n: String| {
            PyValueError::new_err(format!(
                "source {i}: {n} tokens, more than the {limit} source tokens this model reads; split it"
            ))
        };
        let vocab = &self.loaded.vocabs.src;
        let ids = if let Ok(text) = source.cast::<PyString>() {
            let line = normalize(&text.to_cow()?);
            // Every space-separated word is at least one token: refuse before tokenizing.
            if line.split_whitespace().nth(limit).is_some() {
                return Err(too_long("more than".to_string()));
            }
            vocab
                .encode(&line)
                .map_err(|e| engine_error(anyhow::Error::new(e).context(format!("source {i}"))))?
        } else if source.is_instance_of::<PyList>() || source.is_instance_of::<PyTuple>() {
            let n = source.len()?;
            if n > limit {
                return Err(too_long(n.to_string()));
            }
            let mut ids = Vec::with_capacity(n);
            for token in source.try_iter()? {
                let token = token?;
                let Ok(token) = token.cast::<PyString>() else {
                    return Err(PyTypeError::new_err(format!(
                        "source {i}: a pre-tokenized source is a list of strings, but it holds a {}",
                        token.get_type().name()?
                    )));
                };
                let token = token.to_cow()?;
                ids.push(vocab.token_id(&token).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "source {i}: token {token:?} is not in the model's source vocabulary"
                    ))
                })?);
            }
            ids
        } else {
            return Err(PyTypeError::new_err(format!(
                "source {i}: expected a string or a list of token strings, got {}",
                source.get_type().name()?
            )));
        };
        if ids.len() > limit {
            return Err(too_long(ids.len().to_string()));
        }
        Ok(ids)
    }

    /// A hypothesis as Python gets it (see [`Raw`]); without `attention`, no weights or labels.
    fn raw(&self, py: Python<'_>, src: &[u32], h: &Hypothesis, attention: bool) -> Raw {
        let vocabs = &self.loaded.vocabs;
        let tokens = h.ids.iter().map(|&id| vocabs.tgt.token(id)).collect();
        let text = vocabs.tgt.decode(&h.ids);
        if !attention {
            let none = PyBytes::new(py, &[]).unbind();
            return (tokens, text, h.score, h.log_prob, none, vec![], vec![]);
        }
        // The attention covers what the encoder reads (with `</s>` where the model appends it).
        let read = self
            .loaded
            .model
            .as_transformer()
            .map_or_else(|| src.to_vec(), |t| t.encoder_input(src));
        let weights: Vec<u8> = h
            .attention
            .iter()
            .flatten()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        (
            tokens,
            text,
            h.score,
            h.log_prob,
            PyBytes::new(py, &weights).unbind(),
            target_labels(&vocabs.tgt, h),
            display_tokens(&vocabs.src, &read),
        )
    }
}
