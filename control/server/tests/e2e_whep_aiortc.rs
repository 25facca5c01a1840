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

/// Runs the aiortc client against `url` and returns its JSON result line.
fn run_aiortc(gw: &Gateway, url: &str, seconds: u32, pairs: u32, plis: u32) -> serde_json::Value {
    let py = aiortc_python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/whep_client/aiortc_whep.py");
    let out = Command::new("timeout")
        .args(["60"])
        .arg(&py)
        .arg(script)
        .arg(url)
        .arg(seconds.to_string())
        .arg(pairs.to_string())
        .arg(plis.to_string())
        .output()
        .expect("running aiortc client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
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
        })
}

/// The dataplane's WebRTC counters.
fn webrtc_stats(gw: &Gateway) -> serde_json::Value {
    let r = http("GET", gw.http_port, "/api/webrtc-stats", None, None).expect("webrtc-stats");
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).expect("webrtc-stats JSON")
}

#[test]
fn aiortc_decodes_whep_stream() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("aiochan", "3003");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 40, &["-tune", "zerolatency"]);
    gw.wait_online("aiochan", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1000));

    let url = format!(
        "http://127.0.0.1:{}/whep/{}/aiochan/3003",
        gw.http_port, gw.app_id
    );
    let result = run_aiortc(&gw, &url, 6, 1, 0);
    finish(publisher);
    assert!(
        result["frames"].as_u64().unwrap_or(0) >= 50,
        "too few frames decoded by aiortc: {result}\n{}",
        gw.log()
    );
    assert_eq!(result["width"], 320, "{result}");
    assert_eq!(result["height"], 240, "{result}");
    assert!(
        result["audio_frames"].as_u64().unwrap_or(0) >= 50,
        "{result}"
    );
    assert_eq!(result["delete_status"], 200, "{result}");
    // The SRTP packets left in GSO runs (the kernel supports it here, and a frame's
    // packets go to one viewer).
    let stats = webrtc_stats(&gw);
    if stats["udpGso"] == true {
        assert!(stats["gsoDatagrams"].as_u64().unwrap_or(0) > 0, "{stats}");
    }
    assert_eq!(stats["gsoFallbacks"], 0, "{stats}");
}

/// A burst of PLIs from one viewer is answered once (the cached GOP resent to that viewer),
/// the rest are counted as rate-limited (one answer per GOP duration), and playback goes on.
#[test]
fn aiortc_pli_burst_is_answered_once_per_gop() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("plichan", "3004");
    // 25 fps, a keyframe every 25 frames: a 1 s GOP.
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 40, &["-tune", "zerolatency"]);
    gw.wait_online("plichan", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(2500));
    let url = format!(
        "http://127.0.0.1:{}/whep/{}/plichan/3004",
        gw.http_port, gw.app_id
    );
    let before = webrtc_stats(&gw);
    let result = run_aiortc(&gw, &url, 6, 1, 5);
    let after = webrtc_stats(&gw);
    finish(publisher);
    assert_eq!(result["plis_sent"], 5, "{result}");
    let d = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    assert!(d("keyframeRequests") >= 5, "{before}\n{after}");
    assert!(d("keyframeAnswers") >= 1, "{before}\n{after}");
    // Five back-to-back requests fall in one GOP: at most one of them is answered.
    assert!(d("keyframeRequestsLimited") >= 4, "{before}\n{after}");
    // Over a 6 s session with 1 s GOPs, never more than one answer per GOP.
    assert!(d("keyframeAnswers") <= 8, "{before}\n{after}");
    assert!(
        result["frames"].as_u64().unwrap_or(0) >= 50,
        "{result}\n{}",
        gw.log()
    );
}

/// A channel-level viewer gets every publisher of the channel, whichever core owns each:
/// two publishers whose uids hash to different owner cores, one aiortc session with two
/// video+audio pairs, and frames decoded on both video tracks.
#[test]
fn channel_viewer_receives_publishers_owned_by_both_cores() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let channel = "xcore";
    // The first uids (from 4000 up) owned by core 0 and core 1 of the two-core dataplane.
    let owned_by = |core: usize| {
        (4000..5000)
            .map(|n: u32| n.to_string())
            .find(|uid| sluice_table::owner_core(&gw.app_id, channel, uid, 2) == core)
            .expect("a uid for each core")
    };
    let uids = [owned_by(0), owned_by(1)];
    let publishers: Vec<_> = uids
        .iter()
        .map(|uid| {
            let key = gw.create_key(channel, uid);
            ffmpeg_publish_rtmp_small(&gw.rtmp_url(&key), 40)
        })
        .collect();
    // Both live, with their codecs summarised in the directory (once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = http(
            "GET",
            gw.http_port,
            &format!("/api/live/{}/{channel}", gw.app_id),
            None,
            None,
        )
        .expect("live");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let with_video = body["streams"]
            .as_array()
            .map(|a| a.iter().filter(|s| s["video"]["width"] == 160).count())
            .unwrap_or(0);
        if with_video == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "publishers not live: {body}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The premise: the two streams run on different cores.
    let table = sluice_table::Table::open(&gw.table_path).expect("open table");
    let cores: std::collections::HashSet<u32> = table
        .all_stats()
        .iter()
        .filter(|s| s.channel == channel)
        .map(|s| s.core)
        .collect();
    assert_eq!(cores.len(), 2, "both publishers on one core: {cores:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let url = format!(
        "http://127.0.0.1:{}/whep/{}/{channel}",
        gw.http_port, gw.app_id
    );
    let result = run_aiortc(&gw, &url, 6, 2, 0);
    let stats = webrtc_stats(&gw);
    for p in publishers {
        finish(p);
    }
    let header = result["tracks_header"].as_str().unwrap_or_default();
    for uid in &uids {
        assert!(header.contains(uid.as_str()), "uid {uid} not in {header}");
    }
    let per_track: Vec<u64> = result["video_tracks"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    assert_eq!(per_track.len(), 2, "{result}");
    // 10 fps for 6 s: both tracks decode well over 20 frames, the remote one included.
    for (i, n) in per_track.iter().enumerate() {
        assert!(
            *n >= 20,
            "video track {i} decoded {n} frames: {result}\n{stats}\n{}",
            gw.log()
        );
    }
    assert!(stats["remoteFrames"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert_eq!(result["delete_status"], 200, "{result}");
}
