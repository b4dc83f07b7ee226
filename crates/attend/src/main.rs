//! The `attend` binary: see [`attend::cli`] for the commands.

fn main() {
    if let Err(e) = attend::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
