//! Durability: a `sluice control` child serving a stream of writes is killed with SIGKILL at
//! random points; after each restart, every write that was acknowledged (HTTP 200) is present.

mod common;

use common::*;
use rand::Rng;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("control")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn post_key(addr: SocketAddr, channel: &str) -> Option<String> {
    let body = json!({"settings": {"channel": channel, "uid": "1", "expiresAfter": 0}}).to_string();
    let auth = basic();
    let target = format!("/na/v1/projects/{APP}/rtls/ingress/streamkeys");
    let r = std::panic::catch_unwind(|| {
        raw(
            addr,
            "POST",
            &target,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    })
    .ok()?;
    if r.status != 200 {
        return None;
    }
    r.json()["data"]["streamKey"].as_str().map(str::to_string)
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let cfg_path = dir.path().join("sluice.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut rng = rand::thread_rng();
    // Silence the panic hook for connections cut by the kill.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for round in 0..4 {
        let (mut child, addr) = spawn(&cfg_path);
        let pid = child.id();
        let kill_after = Duration::from_millis(rng.gen_range(100..600));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            // SAFETY: kill(2) on the child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < kill_after + Duration::from_millis(200) {
            if let Some(k) = post_key(addr, &format!("r{round}-{i}")) {
                acked.push(k);
            }
            i += 1;
        }
        killer.join().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "child was killed");
    }
    std::panic::set_hook(hook);
    assert!(
        acked.len() > 10,
        "too few writes to mean anything: {}",
        acked.len()
    );

    let (mut child, addr) = spawn(&cfg_path);
    let auth = basic();
    for k in &acked {
        let r = raw(
            addr,
            "GET",
            &format!("/na/v1/projects/{APP}/rtls/ingress/streamkeys/{k}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "acknowledged key {k} lost");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
