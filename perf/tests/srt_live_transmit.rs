//! The load tool's SRT callers against a real SRT listener: `srt-live-transmit` (Debian
//! `srt-tools`, installed by `scripts/bench-lib.sh ensure_peers` when missing) listens and
//! writes what it receives to a file; two callers push the same TS for a few seconds (one
//! listener each, as `scripts/bench.sh` runs it). The files must hold the bytes the callers
//! sent, in order, and ffprobe must read H.264 and AAC from them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kills the listeners even when an assertion fails.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_udp_pair() -> u16 {
    // Two consecutive free ports (one listener per stream).
    for _ in 0..50 {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65535 && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free UDP ports");
}

#[test]
fn srt_callers_push_to_srt_live_transmit() {
    let st = Command::new("bash")
        .arg(root().join("scripts/bench-lib.sh"))
        .arg("ensure_peers")
        .status()
        .expect("running scripts/bench-lib.sh");
    assert!(st.success(), "srt-live-transmit is required (srt-tools)");
    let dir = std::env::temp_dir().join(format!("sluice-perf-srt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ts = dir.join("in.ts");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000", "-t", "6"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k"])
        .args(["-g", "60", "-bf", "0", "-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "mpegts"])
        .arg(&ts)
        .status()
        .expect("ffmpeg is required");
    assert!(st.success(), "ffmpeg could not make the test TS");

    let port = free_udp_pair();
    let mut kids = Kill(Vec::new());
    for i in 0..2u16 {
        let out = dir.join(format!("out-{i}.ts"));
        kids.0.push(
            Command::new("srt-live-transmit")
                .arg("-q")
                .arg(format!(
                    "srt://127.0.0.1:{}?mode=listener&latency=120",
                    port + i
                ))
                // This srt-live-transmit writes files only as stdout (`file://con`).
                .arg("file://con")
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("srt-live-transmit is required"),
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));

    let json = dir.join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(["load", "--srt", &format!("127.0.0.1:{port}")])
        .args(["--srt-port-step", "1", "-n", "2", "--duration-s", "4"])
        .args(["--label", "srt test", "--input"])
        .arg(&ts)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sluice-perf failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Give the listeners their latency window to release the tail, then stop them.
    std::thread::sleep(std::time::Duration::from_millis(800));
    drop(kids);

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let t = &r["totals"];
    assert_eq!(t["publish_started"], 2, "{text}");
    let sent = t["bytes_sent"].as_u64().unwrap();
    // About 4 s of a ~600 kbit/s file from two callers.
    assert!(sent > 400_000, "only {sent} bytes sent: {text}");
    assert!(t["srt_acks"].as_u64().unwrap() > 0, "no ACK seen: {text}");
    assert!(t["errors"].as_object().unwrap().is_empty(), "{text}");

    let input = std::fs::read(&ts).unwrap();
    let mut got = 0;
    for i in 0..2 {
        let f = dir.join(format!("out-{i}.ts"));
        let b = std::fs::read(&f).unwrap_or_default();
        assert!(b.len() > 100_000, "listener {i} wrote {} bytes", b.len());
        assert!(
            b.len() <= input.len(),
            "listener {i} wrote more than the file"
        );
        // Loopback loses nothing: the listener's file is a prefix of the input.
        assert_eq!(&input[..b.len()], &b[..], "listener {i}: bytes differ");
        got += b.len();
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&f)
            .output()
            .expect("ffprobe is required");
        let codecs = String::from_utf8_lossy(&probe.stdout);
        assert!(
            codecs.contains("h264") && codecs.contains("aac"),
            "ffprobe of listener {i}: {codecs}"
        );
    }
    assert!(got as u64 <= sent, "listeners wrote more than was sent");
    let _ = std::fs::remove_dir_all(&dir);
}
