//! End to end in a real browser, SRT leg: ffmpeg pushes MPEG-TS over SRT with H.264 video and
//! Opus audio; headless Chromium plays it from the watch page over WHEP. The Opus passes
//! through untouched (no transcoding), so audio packets must arrive; video frames must be
//! decoded at the source's resolution. The screenshot lands in `target/e2e-whep/`.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn chromium_plays_srt_h264_opus_over_whep() {
    let gw = Gateway::start();
    let key = gw.create_key("srtwhep", "3003");
    let url = format!(
        "srt://127.0.0.1:{}?streamid={key}&latency=200000",
        gw.srt_port
    );
    let video = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "25",
    ];
    let audio = ["-c:a", "libopus", "-b:a", "64k"];
    let publisher = ffmpeg_publish_srt_with(&url, 60, &video, &audio);
    // The stream reports its audio once the first Opus frames are parsed (Opus runs at 48 kHz).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let online = gw.wait_online("srtwhep", Duration::from_secs(15));
        if online["audio"]["sampleRate"] == 48000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audio never reported: {online}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let page = format!(
        "http://127.0.0.1:{}/watch/{}/srtwhep",
        gw.http_port, gw.app_id
    );
    let shot = browser_artifacts_dir().join("srt_h264_opus.png");
    let samples = watch_in_chromium(&page, 12, &shot);
    let counters = http("GET", gw.http_port, "/api/webrtc-stats", None, None)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap_or_default();
    let stderr = finish(publisher);

    let uid = "3003";
    let last = samples
        .last()
        .and_then(|s| s["stats"].get(uid))
        .unwrap_or_else(|| {
            panic!(
                "no stats for uid {uid}: {samples:?}\n{}\n{stderr}",
                gw.log()
            )
        });
    let decoded = |s: &serde_json::Value| s["stats"][uid]["framesDecoded"].as_u64().unwrap_or(0);
    let first = samples
        .iter()
        .position(|s| decoded(s) > 0)
        .unwrap_or_else(|| panic!("no frame decoded: {samples:?}\n{}", gw.log()));
    let (early, late) = (decoded(&samples[first]), decoded(samples.last().unwrap()));
    assert!(
        late >= early + 50,
        "framesDecoded not rising: {early} -> {late}"
    );
    let audio_packets = last["audioPackets"].as_u64().unwrap_or(0);
    assert!(
        audio_packets >= 100,
        "too few Opus packets ({audio_packets}): {last}\n{counters}\n{}",
        gw.log()
    );
    assert_eq!(last["width"], 320, "{last}");
    assert_eq!(last["height"], 240, "{last}");
    // Opus from SRT passes through: the AAC->Opus transcoder produced nothing.
    let c: serde_json::Value = serde_json::from_str(&counters).unwrap_or_default();
    assert_eq!(c["audioOpusFrames"], 0, "audio was transcoded: {counters}");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
