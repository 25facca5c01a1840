//! `sluice-dataplane`: the media process.
//!
//! One glommio executor per core. Every executor listens on the RTMP port (SO_REUSEPORT lets
//! the kernel spread connections), parses what arrives without copying, and owns the streams
//! whose identity hashes to it. See `docs/architecture.md` for the data flow.

mod admission;
mod config;
mod core;
mod egress;
mod gso;
mod http;
mod ingest;
mod latency;
mod packetize;
mod readiness;
mod recv;
mod registry;
mod rtmp_ingest;
mod srt_ingest;
mod stream;
mod time;
mod webrtc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};
use sluice_table::Table;

use crate::config::FileConfig;
use crate::core::Shared;
use crate::registry::Registry;

/// Command line of the dataplane process.
#[derive(Debug, Parser)]
#[command(name = "sluice-dataplane", version, about = "Sluice media dataplane")]
struct Args {
    /// Configuration file (TOML); its [dataplane] and [table] sections are read.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let args = Args::parse();
    let cfg = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let table = open_table(&cfg.table.path, Duration::from_secs(30))?;
    // Streams of a previous dataplane instance are gone: their stats slots are stale.
    table.reset_stats();
    let table = Arc::new(table);

    let cores = if cfg.dataplane.cores == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cfg.dataplane.cores
    };
    // The CPUs this process may run on (taskset, systemd's CPUAffinity=, a cgroup's cpuset):
    // executor `i` is pinned to the i-th of them, never to CPU `i` itself, which may be one
    // the operator kept for something else (the load tool, in the benchmarks).
    let allowed = allowed_cpus();
    tracing::info!(cores, rtmp = %cfg.dataplane.rtmp_listen, table = %cfg.table.path.display(), "starting dataplane");

    let shared = Arc::new(Shared {
        cfg: cfg.dataplane.clone(),
        table: table.clone(),
        registry: Registry::default(),
        cores,
        webrtc: crate::webrtc::WebrtcShared::new(cores),
        latency: crate::latency::LatencyStats::new(cores),
    });

    // Connections move to their stream's owner core through this mesh.
    let mesh = (cores > 1).then(|| {
        glommio::channels::channel_mesh::MeshBuilder::<crate::rtmp_ingest::Handoff, _>::full(
            cores, 256,
        )
    });
    // SRT media travels to its stream's owner core through this one (see `srt_ingest`).
    let srt_mesh = (cores > 1).then(|| {
        glommio::channels::channel_mesh::MeshBuilder::<crate::srt_ingest::SrtFeed, _>::full(
            cores,
            crate::srt_ingest::FEED_QUEUE,
        )
    });
    let mut handles = Vec::with_capacity(cores);
    for core in 0..cores {
        let shared = shared.clone();
        let mesh = mesh.clone();
        let srt_mesh = srt_mesh.clone();
        let placement = match allowed.get(core) {
            Some(&cpu) if cores <= allowed.len() => Placement::Fixed(cpu),
            _ => Placement::Unbound,
        };
        let h = LocalExecutorBuilder::new(placement)
            .name(&format!("sluice-core-{core}"))
            .spawn(move || crate::core::run(core, shared, mesh, srt_mesh))
            .map_err(|e| anyhow::anyhow!("starting executor {core}: {e}"))?;
        handles.push(h);
    }

    // Liveness for the control process, from a plain thread so a stalled reactor shows.
    let hb_table = table.clone();
    std::thread::Builder::new()
        .name("sluice-heartbeat".into())
        .spawn(move || {
            let mut warned_missing = false;
            loop {
                hb_table.dataplane_heartbeat(time::unix_ms());
                if hb_table.is_replaced() {
                    if hb_table.path().exists() {
                        // Control rebuilt the table with another layout (an upgrade): this
                        // process must map the new one. Exit so the supervisor restarts it.
                        tracing::error!(path = %hb_table.path().display(),
                            "table file replaced by a new layout; restarting to map it");
                        std::process::exit(3);
                    } else if !warned_missing {
                        // Deleted under us: keep serving from the mapping we have.
                        warned_missing = true;
                        tracing::warn!(path = %hb_table.path().display(),
                            "table file deleted; serving from the last mapping");
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })?;

    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => anyhow::bail!("executor failed: {e:?}"),
        }
    }
    Ok(())
}

/// The CPUs in this process's affinity mask, in ascending order (empty if it cannot be
/// read, which leaves the executors unpinned).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills; the CPU_* helpers only
    // read and write within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Opens the table the control process creates, waiting for it to appear.
fn open_table(path: &std::path::Path, wait: Duration) -> anyhow::Result<Table> {
    let start = Instant::now();
    loop {
        match Table::open(path) {
            Ok(t) => return Ok(t),
            Err(e) if start.elapsed() < wait => {
                tracing::debug!(error = %e, "table not ready yet");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("opening table {}", path.display()));
            }
        }
    }
}
