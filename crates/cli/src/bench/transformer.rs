//! `attend bench transformer`: the work of the PyTorch peer `transformer_bench.py` on attend's
//! Transformer (built through [`models::build`](attend::models::build), so it is the product's
//! model), printing the peer's JSON fields. Decoding is incremental (a per-layer self-attention
//! K/V cache, cross-attention K/V projected once): the peer's `--decode-impl incremental`, which
//! is what CTranslate2 does too.
//!
//! The model (`nn.Transformer(norm_first=True)` plus embeddings and an output layer): V = 8000
//! (separate source and target tables), d = 256, 4 heads, FF = 1024, ReLU, 3 encoder + 3 decoder
//! layers, dropout 0.1 (also on the attention probabilities) while training, nothing tied,
//! 11,682,624 parameters:
//!
//! ```text
//! x = dropout(emb(tokens) · √d + pe[0:L])     pe sinusoidal, positions from 0         [B, L, d]
//! encoder layer:  x += drop(SelfAttn(LN1(x)));  x += drop(W2 · drop(relu(W1 · LN2(x))))
//! decoder layer:  x += drop(CausalSelfAttn(LN1(x)));  x += drop(CrossAttn(LN2(x), memory))
//!                 x += drop(W2 · drop(relu(W1 · LN3(x))))
//! memory = LN_enc(encoder stack);  logits = out_proj(LN_dec(decoder stack))             [B, T, V]
//! ```
//!
//! The data and the protocol (training step, fixed-length greedy decoding, JSON fields) are
//! [`model_bench`](super::model_bench)'s, shared with `attend bench seq2seq`.
//!
//! Same weights as the peers: `--weights DIR` decodes with a run directory's model instead of a
//! fresh one (`attend import-torch` of `transformer_bench.py --export-npz X.npz`, sizes
//! `benches/transformer-bench.toml`), and `--check X.npz.json` also decodes the check batch stored
//! beside the export and counts the rows equal to torch's greedy output (the fields of
//! `ct2_from_numpy.py`'s `ct2_check`).

use super::current_rss_mb;
use super::model_bench::{
    common_fields, extend, prepare_process, run_decode, run_train, ModelBenchError, Protocol,
};
use super::torch_check::check_against_torch;
use attend::config::{
    Activation, Config, ModelConfig, NormPlacement, PositionKind, TransformerConfig,
};
use attend::models::{build, Seq2Seq};
use attend::train::checkpoint::load_model;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use tensor::Rng;

/// Rows of the sinusoidal table, as the peer's `pos_enc` buffer.
const MAX_POSITIONS: usize = 1024;

/// What can be wrong with a Transformer benchmark request.
#[derive(Debug, thiserror::Error)]
pub enum TransformerBenchError {
    #[error(transparent)]
    Protocol(#[from] ModelBenchError),
    #[error("--dropout must be in [0, 1), got {0}")]
    Dropout(f64),
    #[error("--weights decodes a given model; use it with --mode decode (training starts from the peer's initialisation)")]
    WeightsTrain,
    #[error(
        "--check compares with the torch model whose weights --weights loads; pass --weights too"
    )]
    CheckWithoutWeights,
    #[error("--weights {dir}: {reason}")]
    Weights { dir: String, reason: String },
    #[error("--check {path}: {reason}")]
    Check { path: String, reason: String },
}

/// One Transformer measurement (defaults: the peer's).
#[derive(Clone, Debug)]
pub struct TransformerBench {
    pub d_model: usize,
    pub heads: usize,
    /// Inner size of the feed-forward blocks.
    pub ff: usize,
    pub enc_layers: usize,
    pub dec_layers: usize,
    /// Dropout while training (also on the attention probabilities).
    pub dropout: f64,
    /// The work: shapes, steps, threads.
    pub protocol: Protocol,
    /// Decode with this run directory's `best` weights instead of a fresh model.
    pub weights: Option<PathBuf>,
    /// The peer's `X.npz.json`: decode its check batch and compare with torch's greedy ids.
    pub check: Option<PathBuf>,
}

impl Default for TransformerBench {
    fn default() -> TransformerBench {
        TransformerBench {
            d_model: 256,
            heads: 4,
            ff: 1024,
            enc_layers: 3,
            dec_layers: 3,
            dropout: 0.1,
            protocol: Protocol::default(),
            weights: None,
            check: None,
        }
    }
}

impl TransformerBench {
    fn validate(&self) -> Result<(), TransformerBenchError> {
        self.protocol.validate(&[
            ("d-model", self.d_model),
            ("heads", self.heads),
            ("ff", self.ff),
            ("enc-layers", self.enc_layers),
            ("dec-layers", self.dec_layers),
        ])?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TransformerBenchError::Dropout(self.dropout));
        }
        if self.weights.is_some() && self.protocol.mode.trains() {
            return Err(TransformerBenchError::WeightsTrain);
        }
        if self.check.is_some() && self.weights.is_none() {
            return Err(TransformerBenchError::CheckWithoutWeights);
        }
        Ok(())
    }

    /// The model's config: the product's Transformer at the peer's sizes.
    pub fn config(&self) -> Result<Config, ModelBenchError> {
        let mut config =
            Config::load(None, &[]).map_err(|e| ModelBenchError::Model(e.to_string()))?;
        config.model = ModelConfig::Transformer(TransformerConfig {
            d_model: self.d_model,
            heads: self.heads,
            ff_size: self.ff,
            encoder_layers: self.enc_layers,
            decoder_layers: self.dec_layers,
            activation: Activation::Relu,
            norm: NormPlacement::Pre,
            positions: PositionKind::Sinusoidal,
            max_positions: MAX_POSITIONS,
            scale_embeddings: true,
            shared_embeddings: false,
            tie_output: false,
            final_norm: true,
            source_bos: false,
            source_eos: false,
            dropout: self.dropout as f32,
            attention_dropout: Some(self.dropout as f32),
        });
        config
            .validate()
            .map_err(|e| ModelBenchError::Model(e.to_string()))?;
        Ok(config)
    }

    /// The model to time: a fresh one from the config, or the run directory's (checked to be the
    /// benchmark's architecture).
    fn model(&self) -> Result<Box<dyn Seq2Seq>, TransformerBenchError> {
        let p = &self.protocol;
        let Some(dir) = &self.weights else {
            return build(&self.config()?, p.vocab, p.vocab, p.seed)
                .map_err(|e| ModelBenchError::Model(e.to_string()).into());
        };
        let weights_error = |reason: String| TransformerBenchError::Weights {
            dir: dir.display().to_string(),
            reason,
        };
        let loaded = load_model(dir, "best").map_err(|e| weights_error(format!("{e:#}")))?;
        let want = self.config()?.model;
        let have_vocab = (
            loaded.vocabs.src.vocab_size(),
            loaded.vocabs.tgt.vocab_size(),
        );
        // Every shape key of [model.transformer] (dropout and the table length do not change the work).
        let shape = |m: &ModelConfig| -> Vec<(String, String)> {
            let mut table = match m {
                ModelConfig::Transformer(t) => toml::Table::try_from(t).unwrap_or_default(),
                _ => toml::Table::new(),
            };
            table.insert("kind".into(), m.kind().name().into());
            table
                .into_iter()
                .filter(|(k, _)| {
                    !["dropout", "attention_dropout", "max_positions"].contains(&k.as_str())
                })
                .map(|(k, v)| (k, v.to_string()))
                .collect()
        };
        let have: std::collections::BTreeMap<_, _> =
            shape(&loaded.config.model).into_iter().collect();
        let differences: Vec<String> = shape(&want)
            .into_iter()
            .map(|(key, want)| {
                let have = have.get(&key).cloned().unwrap_or_else(|| "(none)".into());
                (key, have, want)
            })
            .chain([
                (
                    "source vocabulary".to_string(),
                    have_vocab.0.to_string(),
                    p.vocab.to_string(),
                ),
                (
                    "target vocabulary".to_string(),
                    have_vocab.1.to_string(),
                    p.vocab.to_string(),
                ),
            ])
            .filter(|(_, have, want)| have != want)
            .map(|(key, have, want)| format!("{key} = {have} (the benchmark's: {want})"))
            .collect();
        if !differences.is_empty() {
            return Err(weights_error(format!(
                "not the benchmark's model: {}; pass the model's sizes (--vocab, --d-model, --heads, --ff, --enc-layers, --dec-layers)",
                differences.join(", ")
            )));
        }
        Ok(loaded.model)
    }
}

/// Runs the measurement(s) and returns one JSON object per mode with the peer's fields
/// (`impl = "attend"`): decoding first (`bench = "transformer_decode_greedy"`, `decode_impl =
/// "incremental"`), then training (`bench = "transformer_train"`).
pub fn bench_transformer(cfg: &TransformerBench) -> Result<Vec<Value>, TransformerBenchError> {
    cfg.validate()?;
    let p = &cfg.protocol;
    prepare_process(p.threads);
    let rss_before = current_rss_mb();
    let model = cfg.model()?;
    let sizes = json!({
        "d_model": cfg.d_model,
        "heads": cfg.heads,
        "ff": cfg.ff,
        "enc_layers": cfg.enc_layers,
        "dec_layers": cfg.dec_layers,
        "dropout": cfg.dropout,
    });
    let mut common = common_fields(p, "transformer", model.params().count(), rss_before, sizes);
    if let Some(dir) = &cfg.weights {
        common.insert("weights".into(), dir.display().to_string().into());
    }
    let mut out = Vec::new();
    if p.mode.decodes() {
        let mut fields: Map<String, Value> = common.clone();
        fields.insert("bench".into(), "transformer_decode_greedy".into());
        fields.insert("decode_impl".into(), "incremental".into());
        if let Some(path) = &cfg.check {
            extend(
                &mut fields,
                check_against_torch(model.as_ref(), p.vocab, path)?,
            );
        }
        out.push(run_decode(model.as_ref(), p, fields));
    }
    if p.mode.trains() {
        let mut fields = common;
        fields.insert("bench".into(), "transformer_train".into());
        // Dropout masks come from their own seeded generator; none at all without dropout.
        let dropout = (cfg.dropout > 0.0).then(|| Rng::new(p.seed.wrapping_add(2)));
        out.push(run_train(model.as_ref(), p, fields, dropout));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::model_bench::{greedy_fixed_length, tiny_protocol, BenchMode};
    use super::*;
    use attend::data::tokenizer::EOS;
    use attend::models::transformer::Transformer;

    fn tiny() -> TransformerBench {
        TransformerBench {
            d_model: 8,
            heads: 2,
            ff: 16,
            enc_layers: 2,
            dec_layers: 1,
            protocol: tiny_protocol(),
            ..TransformerBench::default()
        }
    }

    #[test]
    fn the_peer_model_has_the_peer_parameter_count() {
        let cfg = TransformerBench::default();
        let model =
            Transformer::from_config(&cfg.config().expect("config"), 8000, 8000, 0).expect("model");
        // transformer_bench.py: sum(p.numel() for p in model.parameters()); pos_enc is a buffer.
        assert_eq!(model.params().count(), 11_682_624);
    }

    #[test]
    fn both_modes_report_the_peer_fields() {
        let out = bench_transformer(&tiny()).expect("runs");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["bench"], "transformer_decode_greedy");
        assert_eq!(out[0]["decode_impl"], "incremental");
        assert_eq!(out[0]["decode_steps"], 4);
        assert_eq!(out[1]["bench"], "transformer_train");
        for o in &out {
            assert_eq!(o["impl"], "attend");
            assert_eq!(o["model"], "transformer");
            assert_eq!(o["enc_layers"], 2);
            assert_eq!(o["dropout"], 0.1);
            assert!(o["tokens_per_s_median"].as_f64().expect("number") > 0.0);
            assert!(o["step_ms_min"].as_f64() <= o["step_ms_max"].as_f64());
        }
        let first = out[1]["loss_first"].as_f64().expect("loss");
        // Near-uniform predictions over 11 tokens at the start.
        assert!((first - 11f64.ln()).abs() < 0.7, "loss_first {first}");
    }

    #[test]
    fn training_without_dropout_is_deterministic_and_learns() {
        let mut cfg = tiny();
        cfg.dropout = 0.0;
        cfg.protocol.mode = BenchMode::Train;
        cfg.protocol.steps = 20;
        let a = bench_transformer(&cfg).expect("runs");
        let b = bench_transformer(&cfg).expect("runs");
        assert_eq!(a[0]["loss_last"], b[0]["loss_last"]);
        let (first, last) = (a[0]["loss_first"].as_f64(), a[0]["loss_last"].as_f64());
        assert!(last < first, "{first:?} → {last:?}");
    }

    #[test]
    fn the_check_counts_rows_equal_to_the_given_greedy_output() {
        let cfg = tiny();
        let model = build(&cfg.config().expect("config"), 11, 11, 5).expect("model");
        let src = vec![vec![4, 5, 6], vec![7, 8, 9]];
        let flat: Vec<u32> = src.concat();
        let ours = greedy_fixed_length(model.as_ref(), &flat, &[3, 3], 3, 4);
        assert!(ours.iter().all(|&y| y != EOS));
        let mut torch = vec![ours[..4].to_vec(), ours[4..].to_vec()];
        torch[1][3] = if torch[1][3] == 4 { 5 } else { 4 };
        let path = std::env::temp_dir().join(format!("attend-check-{}.json", std::process::id()));
        let text = json!({"check": {"src": src, "greedy": torch, "greedy_steps": 4}});
        std::fs::write(&path, text.to_string()).expect("writes");
        let got = check_against_torch(model.as_ref(), 11, &path).expect("checks");
        assert_eq!(got["greedy_rows_identical_vs_torch"], 1);
        assert_eq!(got["greedy_rows_vs_torch_total"], 2);
        assert_eq!(got["greedy_token_agreement_vs_torch"], 7.0 / 8.0);
        let bad = json!({"check": {"src": [[4, 50]], "greedy": [[4, 4, 4, 4]], "greedy_steps": 4}});
        std::fs::write(&path, bad.to_string()).expect("writes");
        let err = check_against_torch(model.as_ref(), 11, &path).expect_err("id 50");
        assert!(err.to_string().contains("outside"), "{err}");
        std::fs::write(&path, "{}").expect("writes");
        let err = check_against_torch(model.as_ref(), 11, &path).expect_err("no check");
        assert!(err.to_string().contains("sidecar"), "{err}");
        std::fs::remove_file(&path).expect("cleans up");
    }

    #[test]
    fn bad_requests_are_errors() {
        let mut heads = tiny();
        heads.heads = 0;
        assert!(matches!(
            bench_transformer(&heads),
            Err(TransformerBenchError::Protocol(ModelBenchError::Zero(
                "heads"
            )))
        ));
        let mut dropout = tiny();
        dropout.dropout = 1.0;
        assert!(matches!(
            bench_transformer(&dropout),
            Err(TransformerBenchError::Dropout(_))
        ));
        let mut train = tiny();
        train.weights = Some("/nonexistent".into());
        assert!(matches!(
            bench_transformer(&train),
            Err(TransformerBenchError::WeightsTrain)
        ));
        let mut check = tiny();
        check.protocol.mode = BenchMode::Decode;
        check.check = Some("/nonexistent.npz.json".into());
        assert!(matches!(
            bench_transformer(&check),
            Err(TransformerBenchError::CheckWithoutWeights)
        ));
        check.weights = Some("/nonexistent".into());
        let err = bench_transformer(&check).expect_err("no such directory");
        assert!(
            matches!(err, TransformerBenchError::Weights { .. }),
            "{err}"
        );
    }
}
