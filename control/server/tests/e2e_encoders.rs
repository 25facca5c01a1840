//! Other real encoders and encoder settings: GStreamer's `rtmp2sink` (the librtmp-free RTMP
//! client OBS-like pipelines use), and x264 with B-frames (ffmpeg's defaults without
//! `-tune zerolatency`). Each stream is forwarded as RTP and decoded by ffmpeg.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Attaches a forwarder and decodes `seconds` of it with ffmpeg; returns (video frames,
/// audio frames, framemd5 text).
fn forward_and_decode(gw: &Gateway, channel: &str, seconds: u32) -> (usize, usize, String) {
    let sid = gw.wait_online(channel, Duration::from_secs(20))["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let video_port = free_rtp_port_pair();
    let mut audio_port = free_rtp_port_pair();
    while audio_port == video_port {
        audio_port = free_rtp_port_pair();
    }
    let mut sdp = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while sdp.is_none() {
        let (status, body) = gw.api(
            "POST",
            &format!("{}/online-streams/{sid}/forwarders", gw.base()),
            Some(serde_json::json!({"host": "127.0.0.1", "videoPort": video_port, "audioPort": audio_port})),
        );
        assert_eq!(status, 200, "{body}");
        sdp = body["data"]["sdp"].as_str().map(str::to_string);
        if sdp.is_none() {
            let id = body["data"]["id"].as_str().unwrap_or_default().to_string();
            gw.api(
                "DELETE",
                &format!("{}/online-streams/{sid}/forwarders/{id}", gw.base()),
                None,
            );
            assert!(
                Instant::now() < deadline,
                "stream never reported its codec parameters"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let path = write_file(gw.dir.path(), &format!("{channel}.sdp"), &sdp.unwrap());
    let out = Command::new("timeout")
        .args([
            "40",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
        ])
        .arg(&path)
        .args(["-t", &seconds.to_string(), "-f", "framemd5", "-"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = text.lines().filter(|l| l.starts_with("0,")).count();
    let a = text.lines().filter(|l| l.starts_with("1,")).count();
    (v, a, text)
}

#[test]
fn gstreamer_rtmp2sink_publishes() {
    require_tool("gst-launch-1.0");
    let gw = Gateway::start();
    let key = gw.create_key("gstchan", "5");
    let url = gw.rtmp_url(&key);
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! h264parse ! flvmux name=mux streamable=true \
         ! rtmp2sink location={url} \
         audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 \
         ! avenc_aac ! aacparse ! mux."
    );
    let gst = Command::new("sh")
        .args(["-c", &format!("exec gst-launch-1.0 -q {pipeline}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (v, a, text) = forward_and_decode(&gw, "gstchan", 3);
    let err = finish(gst);
    assert!(text.contains("#dimensions 0: 320x240"), "{text}\n{err}");
    assert!(v >= 45, "only {v} frames from GStreamer\n{err}");
    assert!(a >= 30, "only {a} audio frames from GStreamer");
}

#[test]
fn b_frames_are_detected_and_passed_through() {
    let gw = Gateway::start();
    let key = gw.create_key("bchan", "6");
    // x264 with B-frames and no zerolatency tuning: decode order differs from display order.
    let publisher =
        ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 40, &["-preset", "veryfast", "-bf", "2"]);
    let (v, a, text) = forward_and_decode(&gw, "bchan", 3);
    assert!(text.contains("#dimensions 0: 320x240"), "{text}");
    assert!(v >= 55, "only {v} frames decoded from a B-frame stream");
    assert!(a >= 40, "only {a} audio frames");
    let table = sluice_table::Table::open(&gw.table_path).unwrap();
    let stats = table.all_stats();
    let s = stats
        .iter()
        .find(|s| s.channel == "bchan")
        .expect("stream stats");
    assert!(
        s.video.as_ref().is_some_and(|v| v.bframes),
        "B-frames not detected: {s:?}"
    );
    finish(publisher);
}
