//! `attend bench seq2seq`: the work of the PyTorch peer `seq2seq_bench.py` on attend's RNN
//! encoder-decoder (built through [`models::build`](attend::models::build), so it is the product's
//! model), printing the peer's JSON fields.
//!
//! The model: V = 8000 (separate source and target vocabularies), E = H = A = 256, a 1-layer
//! bidirectional GRU encoder, a bridge, and a 1-layer GRU decoder with Bahdanau attention and input
//! feeding (or, `--no-attention`, without attention: the bridge only initialises the decoder).
//! No dropout.
//!
//! The data and the protocol (training step, fixed-length greedy decoding, JSON fields) is
//! [`model_bench`](super::model_bench)'s, shared with `attend bench transformer`.

use super::current_rss_mb;
use super::model_bench::{
    common_fields, prepare_process, run_decode, run_train, ModelBenchError, Protocol,
};
use attend::config::{AttentionScore, Cell, Config, ModelConfig, RnnConfig};
use attend::models::build;
use serde_json::{json, Value};

/// One seq2seq measurement (defaults: the peer's).
#[derive(Clone, Debug)]
pub struct Seq2SeqBench {
    /// Bahdanau attention with input feeding (`true`), or the classic encoder-decoder.
    pub attention: bool,
    pub emb: usize,
    pub hidden: usize,
    pub attn_dim: usize,
    /// The work: shapes, steps, threads.
    pub protocol: Protocol,
}

impl Default for Seq2SeqBench {
    fn default() -> Seq2SeqBench {
        Seq2SeqBench {
            attention: true,
            emb: 256,
            hidden: 256,
            attn_dim: 256,
            protocol: Protocol::default(),
        }
    }
}

impl Seq2SeqBench {
    fn validate(&self) -> Result<(), ModelBenchError> {
        self.protocol.validate(&[
            ("emb", self.emb),
            ("hidden", self.hidden),
            ("attn-dim", self.attn_dim),
        ])
    }

    /// The model's config: the product's RNN encoder-decoder at the peer's sizes, no dropout.
    fn config(&self) -> Result<Config, ModelBenchError> {
        let mut config =
            Config::load(None, &[]).map_err(|e| ModelBenchError::Model(e.to_string()))?;
        config.model = ModelConfig::Rnn(RnnConfig {
            cell: Cell::Gru,
            embedding: self.emb,
            hidden: self.hidden,
            decoder_hidden: Some(self.hidden),
            encoder_layers: 1,
            decoder_layers: 1,
            bidirectional: true,
            attention: if self.attention {
                AttentionScore::Additive
            } else {
                AttentionScore::None
            },
            attention_size: self.attn_dim,
            dropout: 0.0,
            ..RnnConfig::default()
        });
        config
            .validate()
            .map_err(|e| ModelBenchError::Model(e.to_string()))?;
        Ok(config)
    }
}

/// Runs the measurement(s) and returns one JSON object per mode with the peer's fields
/// (`impl = "attend"`): decoding first, then training.
pub fn bench_seq2seq(cfg: &Seq2SeqBench) -> Result<Vec<Value>, ModelBenchError> {
    cfg.validate()?;
    let p = &cfg.protocol;
    prepare_process(p.threads);
    let rss_before = current_rss_mb();
    let model = build(&cfg.config()?, p.vocab, p.vocab, p.seed)
        .map_err(|e| ModelBenchError::Model(e.to_string()))?;
    let name = if cfg.attention {
        "seq2seq_attn"
    } else {
        "seq2seq_noattn"
    };
    let sizes = json!({"emb": cfg.emb, "hidden": cfg.hidden, "attn_dim": cfg.attn_dim});
    let common = common_fields(p, name, model.params().count(), rss_before, sizes);
    let mut out = Vec::new();
    if p.mode.decodes() {
        let mut fields = common.clone();
        fields.insert("bench".into(), "seq2seq_decode_greedy".into());
        out.push(run_decode(model.as_ref(), p, fields));
    }
    if p.mode.trains() {
        let mut fields = common;
        fields.insert("bench".into(), "seq2seq_train".into());
        out.push(run_train(model.as_ref(), p, fields, None));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::model_bench::{greedy_fixed_length, make_pool, tiny_protocol};
    use super::*;
    use attend::data::tokenizer::EOS;

    fn tiny() -> Seq2SeqBench {
        Seq2SeqBench {
            emb: 4,
            hidden: 3,
            attn_dim: 2,
            protocol: tiny_protocol(),
            ..Seq2SeqBench::default()
        }
    }

    #[test]
    fn both_modes_report_the_peer_fields() {
        for attention in [true, false] {
            let cfg = Seq2SeqBench {
                attention,
                ..tiny()
            };
            let out = bench_seq2seq(&cfg).expect("runs");
            assert_eq!(out.len(), 2);
            assert_eq!(out[0]["bench"], "seq2seq_decode_greedy");
            assert_eq!(out[1]["bench"], "seq2seq_train");
            for o in &out {
                assert_eq!(o["impl"], "attend");
                assert_eq!(o["hidden"], 3);
                assert!(o["tokens_per_s_median"].as_f64().expect("number") > 0.0);
                assert!(o["step_ms_min"].as_f64() <= o["step_ms_max"].as_f64());
            }
            let first = out[1]["loss_first"].as_f64().expect("loss");
            // Uniform predictions over 11 tokens at the start.
            assert!((first - 11f64.ln()).abs() < 0.5, "loss_first {first}");
        }
    }

    #[test]
    fn greedy_never_emits_eos_and_runs_all_steps() {
        let cfg = tiny();
        let model = build(&cfg.config().expect("config"), 11, 11, 3).expect("model");
        let b = &make_pool(&cfg.protocol, 1, 4)[0];
        let ids = greedy_fixed_length(model.as_ref(), &b.src, &b.src_len, b.src_max, 7);
        assert_eq!(ids.len(), 3 * 7);
        assert!(ids.iter().all(|&y| y != EOS && y < 11));
    }

    #[test]
    fn bad_requests_are_errors() {
        let zero = Seq2SeqBench {
            hidden: 0,
            ..tiny()
        };
        assert!(matches!(
            bench_seq2seq(&zero),
            Err(ModelBenchError::Zero("hidden"))
        ));
        let mut long = tiny();
        long.protocol.tgt_len = 6;
        assert!(matches!(
            bench_seq2seq(&long),
            Err(ModelBenchError::Lengths { .. })
        ));
    }
}
