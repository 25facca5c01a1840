//! `sluice-perf`: load generator, benchmark runner and a deterministic UDP impairment proxy.

mod impair;

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "sluice-perf",
    version,
    about = "Sluice load and impairment tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Relay UDP between clients and an upstream with seeded loss, delay, jitter,
    /// reordering and duplication (this kernel has no netem).
    Impair(impair::ImpairArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Impair(a) => impair::run(a),
    }
}
