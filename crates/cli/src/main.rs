//! The `attend` binary: see [`attend_cli::cli`] for the commands.

fn main() {
    if let Err(e) = attend_cli::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
