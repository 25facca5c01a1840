//! WHEP under bad input, against a whole gateway with a live RTMP publisher: malformed SDP,
//! offers with no codec Sluice can send, unknown streams, the per-channel viewer limit,
//! DELETE semantics, and garbage / STUN floods at the WebRTC port. Each gets a clear refusal
//! and a counter; the gateway keeps serving.

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use support::*;

/// A browser-shaped WHEP offer (recvonly video and audio) with the given payloads.
fn offer(video_rtpmaps: &str, video_pts: &str, audio_rtpmaps: &str, audio_pts: &str) -> String {
    format!(
        "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF {video_pts}\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 3F:0E:8B:4C:3A:9B:0E:57:3C:2A:6B:1E:0F:77:38:3E:4A:55:16:71:4A:52:7B:31:05:3F:2F:1B:6A:0B:6C:21\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
{video_rtpmaps}\
m=audio 9 UDP/TLS/RTP/SAVPF {audio_pts}\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 3F:0E:8B:4C:3A:9B:0E:57:3C:2A:6B:1E:0F:77:38:3E:4A:55:16:71:4A:52:7B:31:05:3F:2F:1B:6A:0B:6C:21\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
{audio_rtpmaps}"
    )
}

fn h264_offer() -> String {
    offer(
        "a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
        "102",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n",
        "111",
    )
}

fn vp8_offer() -> String {
    offer(
        "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n",
        "96",
        "a=rtpmap:0 PCMU/8000\r\n",
        "0",
    )
}

fn post(gw: &Gateway, path: &str, body: &str) -> Response {
    http_raw(
        gw.http_port,
        "POST",
        path,
        &[("Content-Type", "application/sdp")],
        Some(body.as_bytes()),
    )
    .expect("viewer HTTP reachable")
}

fn stats(gw: &Gateway) -> serde_json::Value {
    let r = http("GET", gw.http_port, "/api/webrtc-stats", None, None).unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn whep_refusals_limits_and_floods() {
    require_tool("ffmpeg");
    let gw = Gateway::start_with(GatewayOptions {
        extra_dataplane_toml: "max_viewers_per_channel = 1".into(),
        ..Default::default()
    });
    let key = gw.create_key("badchan", "7");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 40, &["-tune", "zerolatency"]);
    gw.wait_online("badchan", Duration::from_secs(15));
    let path = format!("/whep/{}/badchan/7", gw.app_id);
    // The video configuration reaches the stream with the first packets.
    std::thread::sleep(Duration::from_millis(1500));

    // Nothing published there.
    let r = post(
        &gw,
        &format!("/whep/{}/badchan/8", gw.app_id),
        &h264_offer(),
    );
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));

    // Not SDP.
    let r = post(&gw, &path, "this is not sdp\r\n\u{0}\u{1}");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("SDP"));
    let r = post(&gw, &path, "");
    assert_eq!(r.status, 400);

    // A codec Sluice cannot send: the refusal names what it can.
    let r = post(&gw, &path, &vp8_offer());
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 406, "{text}");
    assert!(text.contains("H264"), "{text}");
    assert!(text.contains("VP8"), "{text}");

    // A good offer: 201, an ICE-lite answer with a host candidate, and a Location.
    let r = post(&gw, &path, &h264_offer());
    let answer = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 201, "{answer}\n{}", gw.log());
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(answer.contains("opus/48000"), "{answer}");
    let location = r.header("Location").expect("Location").to_string();
    assert!(location.starts_with("/whep/session/"), "{location}");
    let port: u16 = answer
        .lines()
        .find(|l| l.starts_with("a=candidate:") && l.contains("127.0.0.1"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .expect("loopback host candidate");

    // The channel allows one viewer: a second is refused, with a counter.
    let r = post(&gw, &path, &h264_offer());
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("limit"));

    // Garbage, DTLS-looking junk and a STUN flood with unknown ufrags at the WebRTC port.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x1234_5678u32;
    for i in 0..3000u32 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let mut pkt = seed.to_be_bytes().repeat(1 + (i % 40) as usize);
        match i % 3 {
            0 => pkt[0] = 22, // DTLS handshake content type
            1 => {
                // STUN Binding request naming a ufrag nobody has.
                pkt = vec![0, 1, 0, 12, 0x21, 0x12, 0xA4, 0x42];
                pkt.extend_from_slice(&[7; 12]);
                pkt.extend_from_slice(&[0, 6, 0, 8]);
                pkt.extend_from_slice(b"nope:abc");
            }
            _ => {}
        }
        let _ = sock.send_to(&pkt, ("127.0.0.1", port));
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = stats(&gw);
    assert!(s["unknownDatagrams"].as_u64().unwrap() >= 2000, "{s}");
    assert_eq!(s["refusedViewerLimit"], 1, "{s}");
    assert!(s["badOffers"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["noCommonCodec"], 1, "{s}");

    // DELETE ends the session and frees the viewer slot; a second DELETE is a 404.
    let r = http("DELETE", gw.http_port, &location, None, None).unwrap();
    assert_eq!(r.status, 200);
    let r = http("DELETE", gw.http_port, &location, None, None).unwrap();
    assert_eq!(r.status, 404);
    let r = post(&gw, &path, &h264_offer());
    assert_eq!(
        r.status,
        201,
        "slot not freed: {}",
        String::from_utf8_lossy(&r.body)
    );

    // Trickle is not needed with ICE-lite.
    let loc = r.header("Location").unwrap().to_string();
    let r = http("PATCH", gw.http_port, &loc, Some("a=candidate:x"), None).unwrap();
    assert_eq!(r.status, 405);

    // A viewer that never connects is reaped (ICE/DTLS timeout), freeing its slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(&gw);
        if s["sessionsTimedOut"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reaped: {s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = post(&gw, &path, &h264_offer());
    assert_eq!(r.status, 201, "slot not freed after timeout");

    // Still serving the listing, and the publisher is still live.
    let r = http(
        "GET",
        gw.http_port,
        &format!("/api/live/{}/badchan", gw.app_id),
        None,
        None,
    )
    .unwrap();
    let live: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(live["streams"][0]["uid"], "7", "{live}");
    finish(publisher);
}
