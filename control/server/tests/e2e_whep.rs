//! End to end in a real browser: ffmpeg pushes RTMP (H.264 + AAC) into a whole gateway,
//! headless Chromium opens the watch page, which plays the stream over WHEP; the page's
//! getStats numbers must show frames decoded at the source's resolution and Opus audio
//! (transcoded from the AAC) arriving. A screenshot of the
//! playing page is saved for the reviewer (`target/e2e-whep/`).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

/// `control/server/tests/browser`, with its node_modules installed (scripts/setup.sh --test).
fn browser_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/setup.sh --test",
        dir.display()
    );
    dir
}

/// Output directory for screenshots kept after the test.
fn artifacts_dir() -> PathBuf {
    let d = bin_dir().join("../e2e-whep");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the watch page in Chromium for `seconds` and returns the per-second stats samples.
fn watch(url: &str, seconds: u32, screenshot: &std::path::Path) -> Vec<serde_json::Value> {
    require_tool("chromium");
    require_tool("node");
    let out = Command::new("timeout")
        .arg(format!("{}", seconds + 60))
        .arg("node")
        .arg(browser_dir().join("watch.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg(screenshot)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn chromium_plays_rtmp_h264_over_whep() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("whepchan", "2001");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    gw.wait_online("whepchan", Duration::from_secs(15));

    let url = format!(
        "http://127.0.0.1:{}/watch/{}/whepchan",
        gw.http_port, gw.app_id
    );
    let shot = artifacts_dir().join("rtmp_h264.png");
    let samples = watch(&url, 12, &shot);
    let counters = http("GET", gw.http_port, "/api/webrtc-stats", None, None)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap_or_default();
    let stderr = finish(publisher);

    let last = samples
        .last()
        .and_then(|s| s["stats"].get("2001"))
        .unwrap_or_else(|| panic!("no stats for uid 2001: {samples:?}\n{}\n{stderr}", gw.log()));
    let decoded = |s: &serde_json::Value| s["stats"]["2001"]["framesDecoded"].as_u64().unwrap_or(0);
    let first_decoding = samples.iter().position(|s| decoded(s) > 0);
    assert!(
        first_decoding.is_some(),
        "no frame decoded: {samples:?}\n{}",
        gw.log()
    );
    // Rising: the count keeps growing after playback starts (25 fps source).
    let early = decoded(&samples[first_decoding.unwrap()]);
    let late = decoded(samples.last().unwrap());
    assert!(
        late >= early + 50,
        "framesDecoded not rising: {early} -> {late}"
    );
    // AAC from RTMP is transcoded to Opus by default: audio packets arrive.
    let audio = |s: &serde_json::Value| s["stats"]["2001"]["audioPackets"].as_u64().unwrap_or(0);
    assert!(
        audio(samples.last().unwrap()) >= 100,
        "too few Opus packets: {last}\n{counters}\n{}",
        gw.log()
    );
    assert_eq!(last["width"], 320, "{last}");
    assert_eq!(last["height"], 240, "{last}");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
