//! End to end in a real browser: ffmpeg pushes RTMP (H.264 + AAC) into a whole gateway,
//! headless Chromium opens the watch page, which plays the stream over WHEP; the page's
//! getStats numbers must show frames decoded at the source's resolution and Opus audio
//! (transcoded from the AAC) arriving. A screenshot of the
//! playing page is saved for the reviewer (`target/e2e-whep/`).

mod support;

use std::time::Duration;

use support::*;

#[test]
fn chromium_plays_rtmp_h264_over_whep() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("whepchan", "2001");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    gw.wait_online("whepchan", Duration::from_secs(15));
    // Nobody watches yet: the AAC is not transcoded (the Opus is only for WebRTC viewers).
    std::thread::sleep(Duration::from_secs(2));
    let idle = http("GET", gw.http_port, "/api/webrtc-stats", None, None).expect("stats");
    let idle: serde_json::Value = serde_json::from_slice(&idle.body).unwrap_or_default();
    assert_eq!(
        idle["audioOpusFrames"], 0,
        "transcoding without viewers: {idle}"
    );

    let url = format!(
        "http://127.0.0.1:{}/watch/{}/whepchan",
        gw.http_port, gw.app_id
    );
    let shot = browser_artifacts_dir().join("rtmp_h264.png");
    let samples = watch_in_chromium(&url, 12, &shot);
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
