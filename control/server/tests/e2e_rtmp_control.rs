//! Operator commands and refusals on live RTMP streams, end to end: mute and force-disconnect
//! through the REST API take effect within a second or two; refused publishes (illegal key,
//! duplicate channel+uid) are refused with the documented abort codes; hostile connections
//! (garbage handshakes, silent peers, chunk-size and AMF bombs, FLV tags that lie about their
//! size) are dropped without disturbing a stream that is already live.

mod support;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// Counts datagrams arriving on a socket, in the background.
fn counter(sock: UdpSocket) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            if sock.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    n
}

/// Packets counted during the next `window`.
fn rate(c: &AtomicU64, window: Duration) -> u64 {
    let a = c.load(Ordering::Relaxed);
    std::thread::sleep(window);
    c.load(Ordering::Relaxed) - a
}

fn events(gw: &Gateway) -> Vec<serde_json::Value> {
    let (status, body) = gw.api("GET", &format!("{}/events?limit=500", gw.base()), None);
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .cloned()
        .or_else(|| body["data"]["events"].as_array().cloned())
        .unwrap_or_default()
}

/// Asserts that `child` (an encoder) exits within `timeout`: the gateway closed it.
fn assert_exits_within(child: &mut std::process::Child, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_event(
    gw: &Gateway,
    pred: impl Fn(&serde_json::Value) -> bool,
    what: &str,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = events(gw).into_iter().find(|e| pred(e)) {
            return e;
        }
        if Instant::now() > deadline {
            panic!("no {what} event; events: {:#?}", events(gw));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn mute_and_force_disconnect_take_effect() {
    let gw = Gateway::start();
    let key = gw.create_key("ctlchan", "42");
    let mut publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    let sid = gw.wait_online("ctlchan", Duration::from_secs(15))["sid"]
        .as_str()
        .unwrap()
        .to_string();

    let video = UdpSocket::bind("127.0.0.1:0").unwrap();
    let audio = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (vp, ap) = (
        video.local_addr().unwrap().port(),
        audio.local_addr().unwrap().port(),
    );
    let (status, body) = gw.api(
        "POST",
        &format!("{}/online-streams/{sid}/forwarders", gw.base()),
        Some(json!({"host": "127.0.0.1", "videoPort": vp, "audioPort": ap})),
    );
    assert_eq!(status, 200, "{body}");
    let (v, a) = (counter(video), counter(audio));
    std::thread::sleep(Duration::from_millis(500));
    assert!(rate(&v, Duration::from_secs(1)) > 0, "no video forwarded");

    let mute = |video_muted: bool| {
        let (status, body) = gw.api(
            "POST",
            &format!("{}/online-streams/mute/{sid}", gw.base()),
            Some(json!({"settings": {"videoMuted": video_muted, "audioMuted": false}})),
        );
        assert_eq!(status, 200, "{body}");
    };
    mute(true);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        rate(&v, Duration::from_secs(1)),
        0,
        "video still forwarded while muted"
    );
    assert!(
        rate(&a, Duration::from_secs(1)) > 0,
        "audio stopped while only video was muted"
    );
    mute(false);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        rate(&v, Duration::from_secs(1)) > 0,
        "video did not resume after unmute"
    );

    let (status, body) = gw.api(
        "DELETE",
        &format!("{}/online-streams/{sid}", gw.base()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_exits_within(
        &mut publisher,
        Duration::from_secs(3),
        "publisher still connected 3 s after force disconnect",
    );
    let (_, body) = gw.api(
        "GET",
        &format!("{}/online-streams?channel=ctlchan", gw.base()),
        None,
    );
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");
    wait_event(
        &gw,
        |e| e["sid"] == sid.as_str() && e["eventType"] == 1,
        "connected",
    );
    wait_event(
        &gw,
        |e| e["sid"] == sid.as_str() && e["eventType"] == 2,
        "disconnected",
    );
}

#[test]
fn refusals_and_hostile_connections_leave_live_streams_alone() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_dataplane_toml: "handshake_timeout_ms = 1500".into(),
        ..Default::default()
    });
    // A stream that must survive everything below.
    let key = gw.create_key("safe", "1");
    let publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    let sid = gw.wait_online("safe", Duration::from_secs(15))["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let table = sluice_table::Table::open(&gw.table_path).unwrap();
    let bytes_in = || {
        table
            .all_stats()
            .iter()
            .find(|s| s.sid == sid)
            .map(|s| s.bytes_in_video)
            .unwrap_or(0)
    };

    // An illegal key: refused with code 1, and ffmpeg gives up.
    let mut bad = ffmpeg_publish_rtmp(&gw.rtmp_url("not-a-key-at-all"), 10, &[]);
    assert_exits_within(
        &mut bad,
        Duration::from_secs(10),
        "ffmpeg kept publishing with an illegal key",
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 1,
        "aborted (illegal key)",
    );

    // A second publisher of the same channel+uid: refused with code 5.
    let dup_key = gw.create_key("safe", "1");
    let mut dup = ffmpeg_publish_rtmp(&gw.rtmp_url(&dup_key), 10, &[]);
    assert_exits_within(
        &mut dup,
        Duration::from_secs(10),
        "duplicate publisher was not refused",
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 5,
        "aborted (conflict)",
    );

    // Garbage instead of a handshake.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.rtmp_port)).unwrap();
    use std::io::Write;
    s.write_all(&[0x55; 1537]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "garbage handshake not dropped"
    );

    // A peer that connects and says nothing: dropped at the handshake timeout.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", gw.rtmp_port)).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "silent peer held the connection"
    );

    // Set Chunk Size far over the cap.
    let mut raw = RawRtmp::connect(gw.rtmp_port).unwrap();
    raw.send(2, 1, 0, &0x7fff_ffffu32.to_be_bytes()).unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(3)),
        "huge chunk size accepted"
    );

    // An AMF nesting bomb in a command.
    let mut raw = RawRtmp::connect(gw.rtmp_port).unwrap();
    let mut v = sluice_proto::amf0::Amf0Value::Null;
    for _ in 0..200 {
        v = sluice_proto::amf0::Amf0Value::Object(vec![("a".into(), v)]);
    }
    raw.command(
        0,
        &[
            sluice_proto::amf0::Amf0Value::String("connect".into()),
            sluice_proto::amf0::Amf0Value::Number(1.0),
            v,
        ],
    )
    .unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(3)),
        "AMF nesting bomb accepted"
    );

    // A publisher whose FLV video tag claims a NAL unit far longer than the message.
    let liar_key = gw.create_key("liar", "9");
    let mut raw = RawRtmp::connect(gw.rtmp_port).unwrap();
    raw.publish(&liar_key).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    raw.send(
        6,
        9,
        1,
        &[
            0x17, 0x01, 0, 0, 0, 0x00, 0x00, 0xff, 0xff, 0x65, 0x88, 0x84,
        ],
    )
    .unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(3)),
        "lying FLV tag accepted"
    );

    // Every refusal and drop was counted for /metrics.
    use sluice_table::Counter;
    for (c, what) in [
        (Counter::RefusedIllegalKey, "illegal key"),
        (Counter::RefusedConflict, "conflict"),
        (Counter::ProtocolErrors, "protocol errors"),
        (Counter::HandshakeTimeouts, "handshake timeouts"),
    ] {
        assert!(
            table.counter(c) >= 1,
            "{what} not counted: {:?}",
            table.counters()
        );
    }

    // The live stream never noticed.
    let before = bytes_in();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bytes_in() > before,
        "live stream stopped during the hostile traffic"
    );
    let (_, body) = gw.api(
        "GET",
        &format!("{}/online-streams?channel=safe", gw.base()),
        None,
    );
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    finish(publisher);
}

#[test]
fn limits_abort_with_documented_codes() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_app_toml: "max_streams = 2\nmax_bitrate_kbps = 60".into(),
        extra_dataplane_toml: "media_timeout_ms = 2000\nmax_connections_per_ip = 4".into(),
        ..Default::default()
    });

    // Publishing without ever sending media: aborted with code 7 after the media timeout.
    let silent_key = gw.create_key("limits", "1");
    let mut raw = RawRtmp::connect(gw.rtmp_port).unwrap();
    raw.publish(&silent_key).unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(6)),
        "a publisher sending no media was kept"
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 7,
        "aborted (no media)",
    );

    // Above the app's bitrate limit for several seconds: aborted with code 6.
    let fat_key = gw.create_key("limits", "2");
    let mut fat = ffmpeg_publish_rtmp(
        &gw.rtmp_url(&fat_key),
        30,
        &["-b:v", "400k", "-tune", "zerolatency"],
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 6,
        "aborted (bitrate)",
    );
    assert_exits_within(
        &mut fat,
        Duration::from_secs(5),
        "over-limit publisher still connected",
    );

    // The app's stream quota (2): a third concurrent publish is refused with code 4.
    let mut held = Vec::new();
    for uid in ["3", "4"] {
        let k = gw.create_key("limits", uid);
        let mut r = RawRtmp::connect(gw.rtmp_port).unwrap();
        r.publish(&k).unwrap();
        held.push(r);
    }
    std::thread::sleep(Duration::from_millis(500));
    let third = gw.create_key("limits", "5");
    let mut r = RawRtmp::connect(gw.rtmp_port).unwrap();
    r.publish(&third).unwrap();
    assert!(
        r.closed_within(Duration::from_secs(3)),
        "third stream over the quota was admitted"
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 4,
        "aborted (quota)",
    );

    // Connections per source address (4, two held above): the fifth is closed at once.
    let _c3 = std::net::TcpStream::connect(("127.0.0.1", gw.rtmp_port)).unwrap();
    let _c4 = std::net::TcpStream::connect(("127.0.0.1", gw.rtmp_port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut c5 = std::net::TcpStream::connect(("127.0.0.1", gw.rtmp_port)).unwrap();
    assert!(
        closed_within(&mut c5, Duration::from_secs(2)),
        "connection over the per-IP limit kept"
    );
    drop(held);
}

/// With `duplicate_policy = "replace_old"` a second publisher of a live channel+uid takes
/// over: the first connection is closed by the gateway and reported with code 5, and the new
/// one stays. (The silent publisher in `limits_abort_with_documented_codes` is the case where
/// only housekeeping's socket shutdown can wake a publishing connection.)
#[test]
fn replace_old_policy_disconnects_the_running_publisher() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_app_toml: "duplicate_policy = \"replace_old\"".into(),
        ..Default::default()
    });
    let first_key = gw.create_key("swap", "1");
    let mut first = ffmpeg_publish_rtmp(&gw.rtmp_url(&first_key), 60, &["-tune", "zerolatency"]);
    let first_sid = gw.wait_online("swap", Duration::from_secs(15))["sid"]
        .as_str()
        .unwrap()
        .to_string();

    let second_key = gw.create_key("swap", "1");
    let mut second = ffmpeg_publish_rtmp(&gw.rtmp_url(&second_key), 60, &["-tune", "zerolatency"]);
    assert_exits_within(
        &mut first,
        Duration::from_secs(10),
        "the replaced publisher is still connected",
    );
    wait_event(
        &gw,
        |e| e["eventType"] == 3 && e["errorCode"] == 5 && e["sid"] == first_sid.as_str(),
        "aborted (replaced)",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now_sid = gw.wait_online("swap", Duration::from_secs(15))["sid"]
            .as_str()
            .unwrap()
            .to_string();
        if now_sid != first_sid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new publisher never went live"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        second.try_wait().unwrap().is_none(),
        "the new publisher was disconnected"
    );
    let _ = second.kill();
    let _ = second.wait();
}
