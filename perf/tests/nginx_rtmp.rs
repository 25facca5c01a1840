//! The load tool against a real RTMP server: nginx with libnginx-mod-rtmp, installed by
//! `scripts/bench-lib.sh ensure_peers` when missing (the test fails, with the reason, when it
//! cannot be installed). Two publishers and one player per stream for a few seconds; the
//! server must acknowledge the publishers' bytes and the players must receive the markers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lib(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(root().join("scripts/bench-lib.sh"))
        .args(args)
        .output()
        .expect("running scripts/bench-lib.sh");
    assert!(
        out.status.success(),
        "bench-lib.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Stops nginx even when an assertion fails.
struct Nginx(PathBuf);

impl Drop for Nginx {
    fn drop(&mut self) {
        let dir = self.0.to_string_lossy().into_owned();
        let _ = Command::new("bash")
            .arg(root().join("scripts/bench-lib.sh"))
            .args(["stop_nginx", &dir])
            .status();
    }
}

#[test]
fn load_against_nginx_rtmp() {
    lib(&["ensure_peers"]);
    let dir = std::env::temp_dir().join(format!("sluice-perf-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flv = dir.join("in.flv");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x240:rate=30")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "4",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "500k",
            "-g",
            "60",
            "-bf",
            "0",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&flv)
        .status()
        .expect("ffmpeg is required");
    assert!(st.success(), "ffmpeg could not make the test FLV");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pid = lib(&[
        "start_nginx",
        &dir.to_string_lossy(),
        &port.to_string(),
        "0",
    ]);
    let _guard = Nginx(dir.clone());
    assert!(pid.parse::<u32>().is_ok(), "nginx pid: {pid:?}");

    let json = dir.join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(["load", "--rtmp", &format!("rtmp://127.0.0.1:{port}/live")])
        .args([
            "-n",
            "2",
            "--players",
            "1",
            "--duration-s",
            "4",
            "--ack-window",
            "50000",
        ])
        .args(["--gateway-pid", &pid, "--label", "test"])
        .arg("--input")
        .arg(&flv)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let t = &r["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(0);
    assert_eq!(n("publish_started"), 2, "{text}");
    assert_eq!(n("play_started"), 2, "{text}");
    assert!(n("bytes_sent") > 200_000, "{text}");
    assert!(
        n("bytes_acked") > 50_000,
        "server acknowledged the publishers' bytes: {text}"
    );
    assert!(n("player_frames") > 60, "{text}");
    assert!(r["latency"]["count"].as_u64().unwrap_or(0) > 60, "{text}");
    assert!(
        r["gw_peak_rss_kb"].as_u64().unwrap_or(0) > 1000,
        "server sampled: {text}"
    );
    assert!(
        t["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{text}"
    );
    assert!(dir.join("run.txt").exists() && dir.join("run-cpu.svg").exists());
}
