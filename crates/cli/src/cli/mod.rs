//! The `attend` command line: one file per command; this file parses and dispatches.
//!
//! Commands: `train`, `translate`, `score` (and more as they land: `explain`, `report`, `bench`,
//! `import` (`import-torch`), `serve`, `caption`).

mod bench;
mod caption;
mod checks;
mod explain;
mod import;
mod import_torch;
mod progress;
mod report;
mod score;
mod serve;
mod train;
mod translate;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "attend",
    version,
    about = "Attention-based sequence-to-sequence learning: train, translate, and see the attention"
)]
struct Cli {
    /// Threads for the kernels, 1 to 1024 (default: all cores; also ATTEND_THREADS).
    #[arg(long, global = true, value_parser = checks::threads())]
    threads: Option<usize>,
    /// Device for the engine: `cpu`, or `cuda` / `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: attend::device::Device,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Train(train::TrainArgs),
    Translate(translate::TranslateArgs),
    Score(score::ScoreArgs),
    Explain(explain::ExplainArgs),
    Report(report::ReportArgs),
    Serve(serve::ServeArgs),
    Bench(bench::BenchArgs),
    Caption(caption::CaptionArgs),
    Import(import::ImportArgs),
    ImportTorch(import_torch::ImportTorchArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    // Reuse freed tensor memory instead of returning it to the kernel after every step.
    attend::allocator::retain_freed_memory();
    if let Some(n) = cli.threads {
        tensor::threads::set_threads(n);
    }
    cli.device.check()?;
    // The server's workers are threads of their own; every other command runs on the pool.
    if matches!(cli.command, Command::Serve(_)) {
        run_command(cli.command)
    } else {
        tensor::threads::on_pool(|| run_command(cli.command))
    }
}

fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => train::run(a),
        Command::Translate(a) => translate::run(a),
        Command::Score(a) => score::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Report(a) => report::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Caption(a) => caption::run(a),
        Command::Import(a) => import::run(a),
        Command::ImportTorch(a) => import_torch::run(a),
    }
}
