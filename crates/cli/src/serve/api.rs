//! The HTTP API's messages: what `POST /translate` accepts and answers, what `GET /model` tells,
//! and the JSON errors with their status codes.
//!
//! ```text
//! POST /translate  {"text": "a cat", "beam": 4}          → Translation
//!                  {"texts": ["a cat", "a dog"], "alpha": 0.6} → {"translations": [Translation, ..]}
//! Translation      {"translation": "un chat",
//!                   "source_tokens": ["▁a", "▁cat"],
//!                   "target_tokens": ["▁un", "▁chat", "</s>"],
//!                   "attention": [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]}   // [target_tokens, source_tokens]
//! errors           {"error": "what went wrong and what to do"}  with 400, 413, 503 (+ Retry-After), 500
//! ```
//! `attention[t][s]` is how much target token t attended to source token s (each row sums to 1);
//! it is empty for a model without attention. `target_tokens` ends with `</s>` when the model
//! emitted it and has attention, so that the rows of `attention` and `target_tokens` pair up.
//! `beam` and `alpha` default to the model's `search` settings. With `"layers": true` a Transformer
//! also answers `"layers"`: the cross-attention of every decoder layer and head,
//! `[layers][heads][target_tokens][source_tokens]` (what the page's layer/head switch shows).

use super::limits::Limits;
use attend::config::{Config, DataConfig, ModelConfig, ALPHA_RANGE};
use attend::data::normalize::normalize;
use attend::data::tokenizer::Vocabs;
use attend::show::explain::Explanation;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The body of `POST /translate`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    text: Option<String>,
    texts: Option<Vec<String>>,
    beam: Option<usize>,
    alpha: Option<f32>,
    #[serde(default)]
    layers: bool,
}

/// A checked `POST /translate` request.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslateRequest {
    /// The texts to translate (one for `"text"`), normalised as every input to attend
    /// ([`normalize`]); an all-space text is empty and translates to `""`.
    pub texts: Vec<String>,
    /// Whether the request used `"text"` (answer: one Translation) rather than `"texts"`.
    pub single: bool,
    /// Beam size (1 = greedy); `None`: the model's default.
    pub beam: Option<usize>,
    /// Length-penalty exponent; `None`: the model's default.
    pub alpha: Option<f32>,
    /// Also return every layer's and head's cross-attention (Transformers).
    pub layers: bool,
}

impl TranslateRequest {
    /// Parses and checks a request body: malformed JSON, unknown or missing fields and bad values
    /// are 400; a text or a list over the limits is 413.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<TranslateRequest, ApiError> {
        let raw: RawRequest = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not a valid request ({e}); send {{\"text\": \"...\"}} or {{\"texts\": [\"...\"]}}"
            ))
        })?;
        let (texts, single) = match (raw.text, raw.texts) {
            (Some(t), None) => (vec![t], true),
            (None, Some(ts)) => (ts, false),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "send either \"text\" or \"texts\", not both",
                ))
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "missing field: send {\"text\": \"...\"} or {\"texts\": [\"...\"]}",
                ))
            }
        };
        if texts.is_empty() {
            return Err(ApiError::bad_request("\"texts\" is empty"));
        }
        if texts.len() > limits.max_texts {
            return Err(ApiError::too_large(format!(
                "{} texts in one request; at most {} (split the request)",
                texts.len(),
                limits.max_texts
            )));
        }
        for (i, t) in texts.iter().enumerate() {
            let n = t.chars().count();
            if n > limits.max_chars {
                return Err(ApiError::too_large(format!(
                    "text {i} has {n} characters; at most {} (split it into sentences)",
                    limits.max_chars
                )));
            }
        }
        if let Some(b) = raw.beam {
            if b == 0 || b > limits.max_beam {
                return Err(ApiError::bad_request(format!(
                    "\"beam\" is {b}; it must be between 1 (greedy) and {}",
                    limits.max_beam
                )));
            }
        }
        if let Some(a) = raw.alpha {
            if !ALPHA_RANGE.contains(&a) {
                return Err(ApiError::bad_request(format!(
                    "\"alpha\" is {a}; it must be between {} and {}",
                    ALPHA_RANGE.start(),
                    ALPHA_RANGE.end()
                )));
            }
        }
        Ok(TranslateRequest {
            texts: texts.iter().map(|t| normalize(t)).collect(),
            single,
            beam: raw.beam,
            alpha: raw.alpha,
            layers: raw.layers,
        })
    }
}

/// One translated text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Translation {
    /// The detokenized translation.
    pub translation: String,
    /// The source tokens the model read.
    pub source_tokens: Vec<String>,
    /// The target tokens it emitted, `</s>` included when emitted.
    pub target_tokens: Vec<String>,
    /// `[target_tokens, source_tokens]` attention weights (empty without attention).
    pub attention: Vec<Vec<f32>>,
    /// Transformers, when asked (`"layers": true`): the cross-attention of every decoder layer
    /// and head, `[layers][heads][target_tokens][source_tokens]`; `attention` is the last layer's
    /// averaged over heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    /// For `POST /explain`: the step-by-step explanation (what that route answers; never part
    /// of a `/translate` answer).
    #[serde(skip)]
    pub explanation: Option<Box<Explanation>>,
}

/// The answer to a `"texts"` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Translations {
    pub translations: Vec<Translation>,
}

/// What `GET /model` tells about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The experiment's name (`name` in its config).
    pub name: String,
    /// `rnn` or `transformer`.
    pub kind: String,
    /// RNN cell (`gru`/`lstm`), for RNN models.
    pub cell: Option<String>,
    /// Attention variant (`none`, `additive`, `dot`, `general`, or `multi-head`).
    pub attention: String,
    /// Attention heads (Transformers).
    pub heads: Option<usize>,
    /// The checkpoint served (`best` or `last`).
    pub checkpoint: String,
    /// Number of parameters.
    pub params: usize,
    pub src_vocab: usize,
    pub tgt_vocab: usize,
    /// Embedding size (`d_model` for a Transformer).
    pub embedding: usize,
    /// RNN hidden size (the feed-forward size for a Transformer).
    pub hidden: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Source and target language codes, where the corpus names them.
    pub source_language: Option<String>,
    pub target_language: Option<String>,
    /// The training corpus (`data.corpus`).
    pub corpus: String,
    /// Default search settings.
    pub beam: usize,
    pub alpha: f32,
    /// Test BLEU from the run's `summary.json`, when training finished.
    pub bleu: Option<f64>,
    /// The whole `summary.json`, when present.
    pub summary: Option<serde_json::Value>,
}

impl ModelInfo {
    /// The facts of a loaded model: its config, sizes, and `dir/summary.json` when training
    /// finished (an unreadable summary is left out rather than failing the server).
    pub fn describe(
        dir: &Path,
        checkpoint: &str,
        c: &Config,
        vocabs: &Vocabs,
        params: usize,
    ) -> ModelInfo {
        // (cell, attention, heads, embedding, hidden or feed-forward size, layers)
        let (cell, attention, heads, embedding, hidden, layers) = match &c.model {
            ModelConfig::Rnn(m) => (
                Some(m.cell.name().to_string()),
                m.attention.name(),
                None,
                m.embedding,
                m.hidden,
                (m.encoder_layers, m.decoder_layers),
            ),
            ModelConfig::Transformer(m) => (
                None,
                "multi-head",
                Some(m.heads),
                m.d_model,
                m.ff_size,
                (m.encoder_layers, m.decoder_layers),
            ),
            ModelConfig::Captioner(m) => (
                Some("lstm".to_string()),
                "additive",
                None,
                m.embedding,
                m.hidden,
                (c.caption.conv_channels.len(), 1),
            ),
        };
        let summary: Option<serde_json::Value> = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let (source_language, target_language) = languages(&c.data);
        ModelInfo {
            name: c.name.clone(),
            kind: c.model.kind().name().to_string(),
            cell,
            attention: attention.to_string(),
            heads,
            checkpoint: checkpoint.to_string(),
            params,
            src_vocab: vocabs.src.vocab_size(),
            tgt_vocab: vocabs.tgt.vocab_size(),
            embedding,
            hidden,
            encoder_layers: layers.0,
            decoder_layers: layers.1,
            source_language,
            target_language,
            corpus: c.data.corpus.name().to_string(),
            beam: c.search.beam,
            alpha: c.search.alpha,
            bleu: summary
                .as_ref()
                .and_then(|s| s.get("test_bleu"))
                .and_then(|b| b.as_f64()),
            summary,
        }
    }
}

/// Language codes: `data.src_lang`/`tgt_lang` when set, else the corpus name's `xx-yy` prefix
/// (`en-fr`, `en-es-bible`); `None` for corpora that name no languages (`reverse`).
fn languages(d: &DataConfig) -> (Option<String>, Option<String>) {
    if !d.src_lang.is_empty() && !d.tgt_lang.is_empty() {
        return (Some(d.src_lang.clone()), Some(d.tgt_lang.clone()));
    }
    let mut parts = d.corpus.name().split('-');
    match (parts.next(), parts.next()) {
        (Some(a), Some(b))
            if [a, b]
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|ch| ch.is_ascii_lowercase())) =>
        {
            (Some(a.to_string()), Some(b.to_string()))
        }
        _ => (None, None),
    }
}

/// An error answered as `{"error": message}` with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which to retry (sent as `Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 413: the request is over a size limit.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 503 with `Retry-After: 1`: every worker is busy and the queue is full, or the server is
    /// shutting down.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 500: the server failed on a valid request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attend::config::CorpusName;

    fn parse(body: &str) -> Result<TranslateRequest, ApiError> {
        let limits = Limits {
            max_chars: 5,
            max_texts: 2,
            ..Limits::default()
        };
        TranslateRequest::parse(body.as_bytes(), &limits)
    }

    #[test]
    fn single_and_list_requests_parse() {
        let r = parse(r#"{"text": "1 2", "beam": 4}"#).unwrap();
        assert_eq!(r.texts, vec!["1 2"]);
        assert!(r.single);
        assert_eq!(r.beam, Some(4));
        assert_eq!(r.alpha, None);
        let r = parse(r#"{"texts": ["a", "bcdé"], "alpha": 0.6}"#).unwrap();
        assert_eq!(r.texts, vec!["a", "bcdé"]);
        assert!(!r.single);
        assert_eq!(r.alpha, Some(0.6));
        assert!(!r.layers);
        assert!(parse(r#"{"text": "1", "layers": true}"#).unwrap().layers);
    }

    #[test]
    fn bad_requests_are_400_with_a_reason() {
        for (body, needle) in [
            ("{", "not a valid request"),
            ("[1]", "not a valid request"),
            (r#"{"text": 3}"#, "invalid type"),
            (r#"{"txt": "a"}"#, "unknown field"),
            ("{}", "missing field"),
            (r#"{"text": "a", "texts": ["b"]}"#, "not both"),
            (r#"{"texts": []}"#, "empty"),
            (r#"{"text": "a", "beam": 0}"#, "between 1"),
            (r#"{"text": "a", "beam": 17}"#, "between 1"),
            (r#"{"text": "a", "beam": -1}"#, "invalid value"),
            (r#"{"text": "a", "alpha": -0.5}"#, "between 0"),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }

    #[test]
    fn oversized_requests_are_413() {
        // 6 characters (5 allowed): counted in characters, not bytes.
        let e = parse(r#"{"text": "éééééé"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("6 characters"), "{}", e.message);
        assert!(parse(r#"{"text": "ééééé"}"#).is_ok());
        let e = parse(r#"{"texts": ["a", "b", "c"]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn languages_come_from_the_config_or_the_corpus_name() {
        let mut d = attend::config::Config::load(None, &[]).unwrap().data;
        d.src_lang.clear();
        d.tgt_lang.clear();
        d.corpus = CorpusName::EnEsBible;
        assert_eq!(languages(&d), (Some("en".into()), Some("es".into())));
        d.corpus = CorpusName::Reverse;
        assert_eq!(languages(&d), (None, None));
        d.corpus = CorpusName::Parallel;
        d.src_lang = "de".into();
        d.tgt_lang = "en".into();
        assert_eq!(languages(&d), (Some("de".into()), Some("en".into())));
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let r = ApiError::unavailable("busy").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::bad_request("x").into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
