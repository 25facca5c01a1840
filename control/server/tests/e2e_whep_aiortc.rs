//! Interop with a second WebRTC stack: aiortc (Python) pulls an RTMP-published stream over
//! WHEP and decodes H.264 frames at the source resolution, and Opus audio.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

/// The Python of the venv `scripts/setup.sh --test` makes for aiortc.
fn aiortc_python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/aiortc-venv/bin/python");
    assert!(
        py.exists(),
        "aiortc venv missing at {}: run scripts/setup.sh --test",
        py.display()
    );
    py
}

#[test]
fn aiortc_decodes_whep_stream() {
    require_tool("ffmpeg");
    let py = aiortc_python();
    let gw = Gateway::start();
    let key = gw.create_key("aiochan", "3003");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 40, &["-tune", "zerolatency"]);
    gw.wait_online("aiochan", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1000));

    let url = format!(
        "http://127.0.0.1:{}/whep/{}/aiochan/3003",
        gw.http_port, gw.app_id
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/whep_client/aiortc_whep.py");
    let out = Command::new("timeout")
        .args(["60"])
        .arg(&py)
        .arg(script)
        .arg(&url)
        .arg("6")
        .output()
        .expect("running aiortc client");
    finish(publisher);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from aiortc: {}\n{stdout}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                gw.log()
            )
        });
    assert!(
        result["frames"].as_u64().unwrap_or(0) >= 50,
        "too few frames decoded by aiortc: {result}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    assert_eq!(result["width"], 320, "{result}");
    assert_eq!(result["height"], 240, "{result}");
    assert!(
        result["audio_frames"].as_u64().unwrap_or(0) >= 50,
        "{result}"
    );
    assert_eq!(result["delete_status"], 200, "{result}");
}
