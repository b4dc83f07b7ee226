//! `attend bench attention|seq2seq|transformer|translate|gemm`: the peers' benchmarks (PyTorch, CTranslate2) on
//! attend, printing their JSON fields, one object per line with `--json` (`benches/vs-peers*.sh`
//! compare both sides). Threads: the global `--threads N` (default: all cores).

use crate::bench::attention::{bench_attention, AttentionBench, Mode};
use crate::bench::gemm::{bench_gemm, GemmBench};
use crate::bench::model_bench::{BenchMode, Protocol};
use crate::bench::seq2seq::{bench_seq2seq, Seq2SeqBench};
use crate::bench::transformer::{bench_transformer, TransformerBench};
use crate::bench::translate::{bench_translate, TranslateBench};
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Time attend on the peers' benchmarks (same work, same JSON fields).
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// Fused scaled-dot-product attention: the work of `sdpa_bench.py` (one shape per call).
    Attention(AttentionArgs),
    /// GRU encoder-decoder with (or without) Bahdanau attention: the work of `seq2seq_bench.py`.
    Seq2seq(Seq2SeqArgs),
    /// Pre-norm Transformer 3+3 layers, d = 256: the work of `transformer_bench.py` (incremental
    /// greedy decoding), optionally with the peer's exported weights.
    Transformer(TransformerArgs),
    /// Translation of a text file with a run directory's model, batch by batch: the work of
    /// `benches/ct2_marian.py` (CTranslate2 on the same weights).
    Translate(TranslateArgs),
    /// The single-precision matrix-product ceiling (`C = A·B`, n × n): the yardstick of the
    /// attention benchmark.
    Gemm(GemmArgs),
}

#[derive(Args)]
struct GemmArgs {
    /// Matrix size n (`[n, n] · [n, n]`).
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Least timed seconds.
    #[arg(long, default_value_t = 1.0)]
    min_time: f64,
    /// One JSON object per line (default: a one-line summary).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TranslateArgs {
    /// Run directory (e.g. from `attend import marian`).
    #[arg(long)]
    model: PathBuf,
    /// Text file, one sentence a line (tokenized before the timing starts).
    #[arg(long)]
    input: PathBuf,
    /// Sentences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Beam size (1 = greedy).
    #[arg(long, default_value_t = 4)]
    beam: usize,
    /// Most output tokens a sentence, `</s>` included.
    #[arg(long, default_value_t = 256)]
    max_len: usize,
    /// Untimed passes over the file.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed passes over the file.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Write the last pass's source and output pieces here (JSON lines).
    #[arg(long)]
    output: Option<PathBuf>,
    /// One JSON object per line (default: a one-line summary).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AttentionArgs {
    /// Shape `B,H,T,D` (batch, heads, length, head size).
    #[arg(long, default_value = "32,8,64,64")]
    shape: String,
    /// Causal mask.
    #[arg(long)]
    causal: bool,
    /// `fwd` (no tape) or `fwdbwd`.
    #[arg(long, default_value = "fwdbwd")]
    mode: String,
    /// Least timed seconds (the peer's `--min-time`).
    #[arg(long, default_value_t = 1.0)]
    min_time: f64,
    /// One JSON object per line with the peer's fields (default: a one-line summary).
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Train,
    Decode,
    Both,
}

/// The model benchmarks' shared flags: what to time, the data's shapes (defaults: the peers').
#[derive(Args)]
struct ProtocolArgs {
    /// `both` = decoding first, then training (as the peers).
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    /// Timed training steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps / decoding calls.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed greedy-decoding calls.
    #[arg(long, default_value_t = 20)]
    decode_reps: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 24)]
    src_len: usize,
    #[arg(long, default_value_t = 24)]
    tgt_len: usize,
    #[arg(long, default_value_t = 8000)]
    vocab: usize,
    /// Distinct synthetic training batches, cycled.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// One JSON object per line with the peer's fields (default: a one-line summary).
    #[arg(long)]
    json: bool,
}

impl ProtocolArgs {
    /// The protocol these flags ask for, at the global `--threads`.
    fn protocol(&self, decode_only: bool) -> Protocol {
        let mode = match (decode_only, self.mode) {
            (true, _) | (false, ModeArg::Decode) => BenchMode::Decode,
            (false, ModeArg::Train) => BenchMode::Train,
            (false, ModeArg::Both) => BenchMode::Both,
        };
        Protocol {
            mode,
            steps: self.steps,
            warmup: self.warmup,
            decode_reps: self.decode_reps,
            threads: tensor::threads::threads(),
            batch: self.batch,
            src_len: self.src_len,
            tgt_len: self.tgt_len,
            vocab: self.vocab,
            pool: self.pool,
            seed: self.seed,
        }
    }
}

#[derive(Args)]
struct Seq2SeqArgs {
    /// Classic encoder-decoder: no attention, the bridge only initialises the decoder.
    #[arg(long)]
    no_attention: bool,
    /// Alias for `--mode decode` (the peer's `--decode`).
    #[arg(long)]
    decode: bool,
    #[arg(long, default_value_t = 256)]
    emb: usize,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 256)]
    attn_dim: usize,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

#[derive(Args)]
struct TransformerArgs {
    #[arg(long, default_value_t = 256)]
    d_model: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Inner size of the feed-forward blocks.
    #[arg(long, default_value_t = 1024)]
    ff: usize,
    #[arg(long, default_value_t = 3)]
    enc_layers: usize,
    #[arg(long, default_value_t = 3)]
    dec_layers: usize,
    /// Dropout while training (also on the attention probabilities).
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Decode with this run directory's weights (e.g. `attend import-torch --state X.npz --config
    /// benches/transformer-bench.toml --out DIR`); `--mode decode` only.
    #[arg(long, value_name = "RUN_DIR")]
    weights: Option<PathBuf>,
    /// `transformer_bench.py`'s `X.npz.json`: also decode its check batch and report the rows equal
    /// to torch's greedy output (needs --weights from the same export).
    #[arg(long, value_name = "PATH.npz.json")]
    check: Option<PathBuf>,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

pub fn run(a: BenchArgs) -> Result<()> {
    match a.which {
        Which::Attention(a) => attention(a),
        Which::Seq2seq(a) => seq2seq(a),
        Which::Transformer(a) => transformer(a),
        Which::Translate(a) => {
            let cfg = TranslateBench {
                model: a.model,
                input: a.input,
                batch: a.batch,
                beam: a.beam,
                max_len: a.max_len,
                warmup: a.warmup,
                reps: a.reps,
                output: a.output,
            };
            print(&bench_translate(&cfg)?, a.json);
            Ok(())
        }
        Which::Gemm(a) => {
            let cfg = GemmBench {
                size: a.size,
                threads: tensor::threads::threads(),
                min_time: a.min_time,
            };
            print(&bench_gemm(&cfg)?, a.json);
            Ok(())
        }
    }
}

fn attention(a: AttentionArgs) -> Result<()> {
    let dims: Vec<usize> = a
        .shape
        .split([',', 'x'])
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--shape {}: expected B,H,T,D", a.shape))?;
    let [batch, heads, seq, head_dim] = dims[..] else {
        bail!("--shape {}: expected four sizes B,H,T,D", a.shape)
    };
    let mode = match a.mode.as_str() {
        "fwd" => Mode::Fwd,
        "fwdbwd" => Mode::FwdBwd,
        other => bail!("--mode {other}: expected fwd or fwdbwd"),
    };
    let cfg = AttentionBench {
        batch,
        heads,
        seq,
        head_dim,
        causal: a.causal,
        mode,
        threads: tensor::threads::threads(),
        min_time: a.min_time,
    };
    print(&bench_attention(&cfg)?, a.json);
    Ok(())
}

fn seq2seq(a: Seq2SeqArgs) -> Result<()> {
    let cfg = Seq2SeqBench {
        attention: !a.no_attention,
        emb: a.emb,
        hidden: a.hidden,
        attn_dim: a.attn_dim,
        protocol: a.protocol.protocol(a.decode),
    };
    for obj in bench_seq2seq(&cfg)? {
        print(&obj, a.protocol.json);
    }
    Ok(())
}

fn transformer(a: TransformerArgs) -> Result<()> {
    let cfg = TransformerBench {
        d_model: a.d_model,
        heads: a.heads,
        ff: a.ff,
        enc_layers: a.enc_layers,
        dec_layers: a.dec_layers,
        dropout: a.dropout,
        protocol: a.protocol.protocol(false),
        weights: a.weights,
        check: a.check,
    };
    for obj in bench_transformer(&cfg)? {
        print(&obj, a.protocol.json);
    }
    Ok(())
}

/// Prints a measurement as JSON, or as one readable line: the bench, the median time and the
/// throughput at the median.
fn print(obj: &serde_json::Value, json: bool) {
    if json {
        println!("{obj}");
        return;
    }
    let num = |k: &str| obj[k].as_f64().unwrap_or(f64::NAN);
    let (median, rate) = match obj.get("gflops_median") {
        Some(g) => (
            num("median_ms"),
            format!("{:.1} GFLOP/s", g.as_f64().unwrap_or(f64::NAN)),
        ),
        None => (
            num("step_ms_median"),
            format!("{:.0} tokens/s", num("tokens_per_s_median")),
        ),
    };
    let check = match (
        obj.get("greedy_rows_identical_vs_torch"),
        obj.get("greedy_rows_vs_torch_total"),
    ) {
        (Some(same), Some(total)) => format!(", greedy = torch's for {same}/{total} rows"),
        _ => String::new(),
    };
    println!(
        "{} ({} threads): median {median:.2} ms, {rate}, foreign_cpu {}{check}",
        obj["bench"].as_str().unwrap_or("?"),
        obj["threads"],
        obj["foreign_cpu"]
    );
}
