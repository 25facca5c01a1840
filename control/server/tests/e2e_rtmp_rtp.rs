//! End to end: a key made through the REST API admits a real ffmpeg RTMP push (H.264 + AAC),
//! an RTP forwarder is attached through the REST API, and a real ffmpeg decodes the forwarded
//! stream from the SDP the API returned.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn rest_key_rtmp_push_rtp_forward_ffmpeg_decodes() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("e2echan", "1001");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 30, &["-tune", "zerolatency"]);

    let online = gw.wait_online("e2echan", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();
    assert_eq!(online["uid"], "1001");

    let video_port = free_rtp_port_pair();
    let mut audio_port = free_rtp_port_pair();
    while audio_port == video_port {
        audio_port = free_rtp_port_pair();
    }
    // Wait until the stream reports its codec parameters, which the SDP needs.
    let mut sdp = String::new();
    for _ in 0..50 {
        let (status, body) = gw.api(
            "POST",
            &format!("{}/online-streams/{sid}/forwarders", gw.base()),
            Some(serde_json::json!({"host": "127.0.0.1", "videoPort": video_port, "audioPort": audio_port})),
        );
        assert_eq!(status, 200, "create forwarder: {body}");
        if let Some(s) = body["data"]["sdp"].as_str() {
            sdp = s.to_string();
            break;
        }
        let id = body["data"]["id"].as_str().unwrap_or_default().to_string();
        gw.api(
            "DELETE",
            &format!("{}/online-streams/{sid}/forwarders/{id}", gw.base()),
            None,
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sdp.contains("m=video"), "SDP without video: {sdp}");
    assert!(sdp.contains("H264"), "SDP without H264: {sdp}");
    assert!(sdp.contains("MPEG4-GENERIC"), "SDP without AAC: {sdp}");

    let sdp_path = write_file(gw.dir.path(), "stream.sdp", &sdp);
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
        .arg(&sdp_path)
        .args(["-t", "4", "-f", "framemd5", "-"])
        .output()
        .expect("running ffmpeg receiver");
    let text = String::from_utf8_lossy(&out.stdout);
    let video_frames = text.lines().filter(|l| l.starts_with("0,")).count();
    let audio_frames = text.lines().filter(|l| l.starts_with("1,")).count();
    // The online-streams API reports the input's properties while it runs.
    let (_, body) = gw.api("GET", &format!("{}/online-streams/{sid}", gw.base()), None);
    let s = &body["data"][0];
    assert_eq!(s["video"]["width"], 320, "{body}");
    assert_eq!(s["video"]["height"], 240, "{body}");
    let fwd_path = format!("{}/online-streams/{sid}/forwarders", gw.base());
    let (_, live) = gw.api("GET", &fwd_path, None);
    assert_eq!(live["data"].as_array().map(Vec::len), Some(1), "{live}");
    // The gateway's own ingest-to-egress latency (kernel receive timestamp to the
    // forwarder's send) was recorded for the forwarded media units, on the same wall clock.
    let lat = http("GET", gw.http_port, "/api/latency", None, None).expect("latency");
    assert_eq!(lat.status, 200);
    let lat: serde_json::Value = serde_json::from_slice(&lat.body).expect("latency JSON");
    let rtp = &lat["rtmpToRtp"];
    assert!(
        rtp["count"].as_u64().unwrap_or(0) >= video_frames as u64,
        "fewer latency samples than frames decoded ({video_frames}): {lat}"
    );
    let p50 = rtp["p50Us"].as_u64().unwrap_or(0);
    assert!(
        (1..200_000).contains(&p50),
        "median ingest-to-RTP latency {p50} us: {lat}"
    );
    assert_eq!(lat["rtmpToWebrtc"]["count"], 0, "no WebRTC viewer: {lat}");
    let stderr = finish(publisher);
    assert!(
        text.contains("#dimensions 0: 320x240"),
        "decoded video not 320x240:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 4 s at 25 fps is 100 frames; allow for starting at the next keyframe.
    assert!(
        video_frames >= 60,
        "only {video_frames} video frames decoded\n{}\npublisher: {stderr}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        audio_frames >= 50,
        "only {audio_frames} audio frames decoded"
    );
    // Once the stream has ended, control removes its forwarder (the stream must be absent
    // at two sweeps 10 s apart, so this takes 10 to 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let (status, body) = gw.api("GET", &fwd_path, None);
        assert_eq!(status, 200, "{body}");
        if body["data"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ended stream's forwarder was kept: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        gw.log().contains("removed the state of ended streams"),
        "no sweep logged"
    );
}
