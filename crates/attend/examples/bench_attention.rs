//! `attend bench attention` as a stand-alone program (same flags, same JSON line):
//! `cargo run --release -p attend --example bench_attention -- --shape 32,8,64,64 --causal --mode fwdbwd --threads 2`

use anyhow::{bail, Context, Result};
use attend::bench::attention::{bench_attention, AttentionBench, Mode};

fn main() -> Result<()> {
    let mut cfg = AttentionBench {
        batch: 32,
        heads: 8,
        seq: 64,
        head_dim: 64,
        causal: false,
        mode: Mode::FwdBwd,
        threads: tensor::threads::threads(),
        min_time: 1.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--shape" => {
                let v = value()?;
                let dims: Vec<usize> = v
                    .split([',', 'x'])
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--shape {v}: expected B,H,T,D"))?;
                let [b, h, t, d] = dims[..] else { bail!("--shape {v}: expected B,H,T,D") };
                (cfg.batch, cfg.heads, cfg.seq, cfg.head_dim) = (b, h, t, d);
            }
            "--causal" => cfg.causal = true,
            "--mode" => {
                cfg.mode = match value()?.as_str() {
                    "fwd" => Mode::Fwd,
                    "fwdbwd" => Mode::FwdBwd,
                    other => bail!("--mode {other}: expected fwd or fwdbwd"),
                }
            }
            "--threads" => cfg.threads = value()?.parse().context("--threads")?,
            "--min-time" => cfg.min_time = value()?.parse().context("--min-time")?,
            "--json" => {}
            other => bail!("unknown flag {other} (flags: --shape B,H,T,D --causal --mode fwd|fwdbwd --threads N --min-time S --json)"),
        }
    }
    println!("{}", bench_attention(&cfg)?);
    Ok(())
}
