//! `sluice-perf`: load generator, benchmark runner and a deterministic UDP impairment proxy.

use clap::{Parser, Subcommand};
use sluice_perf::{impair, load};

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
    /// RTMP publishers, RTMP players and RTP receivers against a server, with latency
    /// markers and the server's CPU and memory sampled from /proc.
    Load(Box<load::LoadArgs>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Impair(a) => impair::run(a),
        Cmd::Load(a) => load::run(*a).map(|_| ()),
    }
}
