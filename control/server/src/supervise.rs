//! Running the control process: `sluice control` (the server alone) and `sluice up` (first-run
//! bootstrap, the server, and a supervised `sluice-dataplane`).

use crate::api::{self, AppState};
use crate::config::{AppConfig, Config, Credential, DuplicatePolicy};
use crate::store::SqliteStore;
use crate::table::{ConfigSink, StatsSource};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What `sluice up` generates on first start and reuses afterwards (`bootstrap.json`, 0600).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// Generated App ID.
    pub app_id: String,
    /// Generated App certificate (32 hex).
    pub certificate: String,
    /// Generated REST customer ID.
    pub customer_id: String,
    /// Generated REST customer secret.
    pub customer_secret: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `data` to `path` with mode 0600, atomically (temp file + rename).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads `dir/bootstrap.json`, creating it on first start.
pub fn load_or_create_bootstrap(dir: &Path) -> anyhow::Result<Bootstrap> {
    let path = dir.join("bootstrap.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let b = Bootstrap {
        app_id: hex(&rand::random::<[u8; 8]>()),
        certificate: hex(&rand::random::<[u8; 16]>()),
        customer_id: hex(&rand::random::<[u8; 8]>()),
        customer_secret: hex(&rand::random::<[u8; 16]>()),
    };
    let text = serde_json::to_vec_pretty(&b)?;
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(b)
}

/// Opens (creating if needed) the shared-memory table at `[table] path`, resuming the event
/// cursor saved in `<data_dir>/event-cursor`.
pub fn open_table(cfg: &Config) -> anyhow::Result<(Arc<dyn ConfigSink>, Arc<dyn StatsSource>)> {
    let cursor = cfg.control.data_dir.join("event-cursor");
    let t = Arc::new(
        crate::table_shm::ShmTable::open_sized(
            &cfg.table.path,
            &cfg.table.capacities(),
            Some(cursor),
        )
        .with_context(|| format!("opening the table {}", cfg.table.path.display()))?,
    );
    Ok((t.clone(), t))
}

/// A running control server.
pub struct Running {
    /// Bound address.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<AppState>,
    /// The server task.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens the store, rebuilds the table and starts serving; returns once listening.
pub async fn start_control(
    cfg: Config,
    sink: Arc<dyn ConfigSink>,
    stats: Arc<dyn StatsSource>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let dir = cfg.control.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
        .await?
        .context("opening the store")?;
    let listen = cfg.control.listen;
    let state = Arc::new(
        tokio::task::spawn_blocking(move || AppState::new(cfg, Arc::new(store), sink, stats))
            .await??,
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    // Drain the dataplane's event ring into the events list and the webhook queue. The
    // task ends with the runtime.
    let pump = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(api::EVENT_PUMP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            pump.pump_events();
        }
    });
    // Remove forwarders and commands of streams that have ended; the sweep writes the store,
    // so it runs on the blocking pool.
    let swept = state.clone();
    tokio::spawn(async move {
        let mut sweeper = Some(crate::sweep::Sweeper::default());
        let mut tick = tokio::time::interval(crate::sweep::SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(mut sw), st) = (sweeper.take(), swept.clone()) else {
                return;
            };
            match tokio::task::spawn_blocking(move || {
                sw.sweep(&st);
                sw
            })
            .await
            {
                Ok(sw) => sweeper = Some(sw),
                Err(e) => {
                    tracing::error!("forwarder sweep failed: {e}");
                    sweeper = Some(crate::sweep::Sweeper::default());
                }
            }
        }
    });
    let task = tokio::spawn(api::serve(listener, state.clone(), shutdown));
    Ok(Running { addr, state, task })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `sluice control --config FILE`.
pub async fn run_control(cfg: Config) -> anyhow::Result<()> {
    let (sink, stats) = open_table(&cfg)?;
    let r = start_control(cfg, sink, stats, shutdown_signal()).await?;
    // Machine-readable line: tests and scripts read the bound address from it.
    println!("listening on {}", r.addr);
    r.task.await??;
    Ok(())
}

/// Host name for printed URLs.
pub fn public_host(cfg: &Config, addr: SocketAddr) -> String {
    if let Some(h) = &cfg.control.public_host {
        return h.clone();
    }
    if addr.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        addr.ip().to_string()
    }
}

/// Environment variable naming the dataplane binary explicitly (takes precedence).
pub const DATAPLANE_ENV: &str = "SLUICE_DATAPLANE";

/// Finds `sluice-dataplane`: `$SLUICE_DATAPLANE`, else next to the current executable, else
/// on PATH.
pub fn find_dataplane() -> Option<PathBuf> {
    // An explicit choice wins (packaging layouts, tests with a stand-in dataplane).
    if let Some(p) = std::env::var_os(DATAPLANE_ENV) {
        return Some(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("sluice-dataplane");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("sluice-dataplane"))
            .find(|p| p.is_file())
    })
}

/// Back-off before restarting a dataplane that ran for `uptime` after `failures` quick exits.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << failures.min(6)))
        .min(Duration::from_secs(30))
}

/// Name of the file, in the data dir, holding the pid of the dataplane `sluice up` runs.
pub const DATAPLANE_PID_FILE: &str = "dataplane.pid";

/// The pid in `pid_file` if that process is alive and is a `sluice-dataplane` (checked by
/// its `/proc/PID/comm`, so a recycled pid of another program is never adopted or signalled).
pub fn live_dataplane(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if pid <= 0 {
        return None;
    }
    // The kernel truncates comm to 15 bytes: "sluice-dataplan".
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie (state Z after the closing parenthesis) is dead for our purposes.
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    ("sluice-dataplane".starts_with(comm.trim()) && !comm.trim().is_empty() && !zombie)
        .then_some(pid)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; callers only pass pids checked by
    // `live_dataplane` or of children they spawned.
    unsafe { libc::kill(pid, sig) };
}

/// Watches a dataplane this process did not spawn (left running by a previous `sluice up`
/// that was killed): returns when it exits, or stops it (SIGTERM, SIGKILL after 5 s) when
/// `stop` fires. Returns `true` when `stop` fired.
async fn watch_adopted(
    pid_file: &Path,
    pid: i32,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if live_dataplane(pid_file) != Some(pid) {
                    tracing::warn!("adopted dataplane (pid {pid}) exited");
                    let _ = std::fs::remove_file(pid_file);
                    return false;
                }
            }
            _ = stop.changed() => {
                signal(pid, libc::SIGTERM);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while live_dataplane(pid_file) == Some(pid) {
                    if tokio::time::Instant::now() > deadline {
                        signal(pid, libc::SIGKILL);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = std::fs::remove_file(pid_file);
                return true;
            }
        }
    }
}

/// Keeps `sluice-dataplane --config <file>` running until `stop` fires; then SIGTERM, and
/// SIGKILL after 5 s. The child logs with `log_filter` (its `SLUICE_LOG`), so one setting
/// governs both processes.
///
/// The child's pid is kept in `pid_file`. The dataplane does not die with this process (no
/// parent-death signal): when control is killed, media keeps flowing, and the next
/// `sluice up` finds the dataplane through `pid_file` and adopts it instead of starting a
/// second one on the same ports and table.
pub async fn supervise_dataplane(
    bin: PathBuf,
    config_file: PathBuf,
    log_filter: String,
    pid_file: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if let Some(pid) = live_dataplane(&pid_file) {
        tracing::info!("adopting the dataplane left running by a previous control (pid {pid})");
        if watch_adopted(&pid_file, pid, &mut stop).await {
            return;
        }
    }
    let mut failures = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        let mut child = match tokio::process::Command::new(&bin)
            .arg("--config")
            .arg(&config_file)
            .env(crate::logging::LOG_ENV, &log_filter)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot start {}: {e}", bin.display());
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(backoff(failures)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        tracing::info!("dataplane started (pid {:?})", child.id());
        if let Some(pid) = child.id()
            && let Err(e) = write_private(&pid_file, pid.to_string().as_bytes())
        {
            tracing::warn!("cannot write {}: {e}", pid_file.display());
        }
        tokio::select! {
            status = child.wait() => {
                tracing::warn!("dataplane exited: {status:?}");
                let _ = std::fs::remove_file(&pid_file);
                // A dataplane that ran for a minute is healthy again: start over at the
                // shortest delay.
                if started.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let d = backoff(failures);
                tracing::info!("restarting the dataplane in {d:?}");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.changed() => return,
                }
            }
            _ = stop.changed() => {
                if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                    // A pid we spawned and still own (not yet reaped).
                    signal(pid, libc::SIGTERM);
                }
                if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                let _ = std::fs::remove_file(&pid_file);
                return;
            }
        }
    }
}

/// `sluice up [--config FILE] [--data-dir DIR]`.
pub async fn run_up(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = match &config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        cfg.control.data_dir = d;
    }
    crate::logging::init(&cfg.control);
    let dir = cfg.control.data_dir.clone();
    let boot = load_or_create_bootstrap(&dir)?;
    if cfg.apps.is_empty() {
        cfg.apps.push(AppConfig {
            id: boot.app_id.clone(),
            certificate: boot.certificate.clone(),
            domains: Vec::new(),
            srt_passphrase: None,
            srt_pbkeylen: 0,
            max_streams: 0,
            max_bitrate_kbps: 0,
            duplicate_policy: DuplicatePolicy::RefuseNew,
        });
    }
    if cfg.control.credentials.is_empty() {
        cfg.control.credentials.push(Credential {
            id: boot.customer_id.clone(),
            secret: boot.customer_secret.clone(),
        });
    }
    cfg.validate()?;
    let effective = dir.join("sluice.toml");
    write_private(&effective, cfg.to_toml().as_bytes())
        .with_context(|| format!("writing {}", effective.display()))?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut srv_stop = stop_rx.clone();
    let (sink, stats) = open_table(&cfg)?;
    let r = start_control(cfg.clone(), sink, stats, async move {
        let _ = srv_stop.changed().await;
    })
    .await?;

    let app = cfg.apps.first().map(|a| a.id.clone()).unwrap_or_default();
    let channel = "demo";
    let key = api::keys::create_key(&r.state, &app, channel, "1001", 0, None)
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo stream key: {}", e.message))?;
    let host = public_host(&cfg, r.addr);
    let cred = cfg.control.credentials.first();
    let rtmp_port = cfg.dataplane.rtmp_listen.port();
    let rtmp_host = if rtmp_port == 1935 {
        host.clone()
    } else {
        format!("{host}:{rtmp_port}")
    };
    println!("listening on {}", r.addr);
    println!("Sluice is up.");
    println!(
        "  REST API      http://{host}:{}/{}/v1/projects/{app}/rtls/ingress/",
        r.addr.port(),
        cfg.control.region
    );
    if let Some(c) = cred {
        println!("  customer id   {}", c.id);
        println!("  secret        {}", c.secret);
    }
    println!("  RTMP          rtmp://{rtmp_host}/live/{}", key.key);
    println!(
        "  SRT           srt://{host}:{}?streamid={}",
        cfg.dataplane.srt_listen.port(),
        key.key
    );
    println!(
        "  watch         http://{host}:{}/watch/{app}/{channel}",
        cfg.dataplane.http_listen.port()
    );
    println!("  data dir      {}", dir.display());

    let sup = match find_dataplane() {
        Some(bin) => {
            let env = std::env::var(crate::logging::LOG_ENV).ok();
            let filter = crate::logging::filter_text(&cfg.control, env.as_deref());
            let pid_file = dir.join(DATAPLANE_PID_FILE);
            Some(tokio::spawn(supervise_dataplane(
                bin, effective, filter, pid_file, stop_rx,
            )))
        }
        None => {
            eprintln!(
                "warning: sluice-dataplane not found next to sluice or on PATH; media ingest is off"
            );
            None
        }
    };
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    if let Some(s) = sup {
        let _ = s.await;
    }
    r.task.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bootstrap_is_private_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create_bootstrap(d.path()).unwrap();
        let b = load_or_create_bootstrap(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.certificate.len(), 32);
        let mode = std::fs::metadata(d.path().join("bootstrap.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(50), Duration::from_secs(30));
    }
}
