//! End to end: stream templates decide what a channel gets of a publisher's audio. The app's
//! default template turns AAC->Opus transcoding off; a key bound to its own template turns it
//! back on. Checked where users see it: the WHEP answer (AAC is then not offered, with a
//! note saying why) and the v2 online-streams `output.audio`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

fn template(audio_enabled: bool) -> serde_json::Value {
    json!({"settings": {"transcoding": {
        "video": {"enabled": false},
        "audio": {"enabled": audio_enabled, "profile": 3}}}})
}

/// A browser-shaped recvonly offer for H.264 video and Opus audio.
fn offer() -> String {
    let media = |kind: &str, mid: u8, pts: &str, maps: &str| {
        format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pts}\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 3F:0E:8B:4C:3A:9B:0E:57:3C:2A:6B:1E:0F:77:38:3E:4A:55:16:71:4A:52:7B:31:05:3F:2F:1B:6A:0B:6C:21\r\n\
a=setup:actpass\r\n\
a=mid:{mid}\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
{maps}"
        )
    };
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n{}{}",
        media(
            "video",
            0,
            "102",
            "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        ),
        media(
            "audio",
            1,
            "111",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
        )
    )
}

/// POSTs a WHEP offer for `channel`/`uid`; returns the notes header ("" when none).
fn whep_notes(gw: &Gateway, channel: &str, uid: &str) -> String {
    let r = http_raw(
        gw.http_port,
        "POST",
        &format!("/whep/{}/{channel}/{uid}", gw.app_id),
        &[("Content-Type", "application/sdp")],
        Some(offer().as_bytes()),
    )
    .expect("viewer HTTP reachable");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.header("X-Sluice-Notes").unwrap_or_default().to_string()
}

/// Waits for the v2 online stream on `channel` to report its audio; returns `output.audio`.
fn v2_output_audio(gw: &Gateway, channel: &str) -> serde_json::Value {
    let path = format!(
        "/na/v2/projects/{}/rtls/ingress/online-streams?channel={channel}",
        gw.app_id
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = gw.api("GET", &path, None);
        assert_eq!(status, 200, "{body}");
        let a = &body["data"][0]["output"]["audio"];
        if !a.is_null() {
            return a.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audio reported: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn templates_switch_audio_transcoding_for_webrtc() {
    let gw = Gateway::start();
    let base = gw.base();
    for (id, on) in [("noaudio", false), ("withaudio", true)] {
        let (s, b) = gw.api(
            "PUT",
            &format!("{base}/stream-templates/{id}"),
            Some(template(on)),
        );
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = gw.api(
        "PUT",
        &format!("{base}/appconfig"),
        Some(json!({"settings": {"defaultStreamTemplate": "noaudio"}})),
    );
    assert_eq!(s, 200, "{b}");

    // A key without a template: the app default (audio off) applies.
    let plain = gw.create_key("tplchan", "1001");
    let p1 = ffmpeg_publish_rtmp(&gw.rtmp_url(&plain), 30, &["-tune", "zerolatency"]);
    // A key bound to its own template (audio on): it wins over the default.
    let (s, b) = gw.api(
        "POST",
        &format!("{base}/streamkeys"),
        Some(
            json!({"settings": {"channel": "tplchan2", "uid": "1002", "expiresAfter": 0,
            "templateId": "withaudio"}}),
        ),
    );
    assert_eq!(s, 200, "{b}");
    let bound = b["data"]["streamKey"].as_str().expect("key").to_string();
    let p2 = ffmpeg_publish_rtmp(&gw.rtmp_url(&bound), 30, &["-tune", "zerolatency"]);

    let off = v2_output_audio(&gw, "tplchan");
    assert_eq!(off["codec"], "NONE", "{off}");
    let on = v2_output_audio(&gw, "tplchan2");
    assert_eq!(on["codec"], "OPUS", "{on}");
    assert_eq!(on["sampleRate"], 48000, "{on}");

    let notes = whep_notes(&gw, "tplchan", "1001");
    assert!(
        notes.contains("audio is not sent to WebRTC (transcoding off)"),
        "default template's audio switch ignored; notes: {notes:?}\n{}",
        gw.log()
    );
    let notes = whep_notes(&gw, "tplchan2", "1002");
    assert!(
        !notes.contains("transcoding off"),
        "key template did not win over the default; notes: {notes:?}"
    );

    for p in [p1, p2] {
        finish(p);
    }
}
