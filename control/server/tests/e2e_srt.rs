//! End to end over SRT: real libsrt callers (ffmpeg, srt-live-transmit) publish MPEG-TS to the
//! gateway's SRT listener; the stream is forwarded over RTP and decoded by ffmpeg; refusals
//! come back as SRT reject reasons and as aborted events.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const PASSPHRASE: &str = "correct-horse-battery";

/// An ffmpeg publishing synthetic video + audio as MPEG-TS over SRT (the shared helper).
fn ffmpeg_publish_srt(url: &str, seconds: u32, video: &[&str], audio: &[&str]) -> Child {
    ffmpeg_publish_srt_with(url, seconds, video, audio)
}

const H264: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-g",
    "25",
];
const AAC: &[&str] = &["-c:a", "aac", "-b:a", "64k"];

/// Attaches an RTP forwarder once the stream's codecs are known; returns the SDP.
fn forward(gw: &Gateway, sid: &str) -> String {
    let video_port = free_rtp_port_pair();
    let mut audio_port = free_rtp_port_pair();
    while audio_port == video_port {
        audio_port = free_rtp_port_pair();
    }
    for _ in 0..75 {
        let (status, body) = gw.api(
            "POST",
            &format!("{}/online-streams/{sid}/forwarders", gw.base()),
            Some(serde_json::json!({"host": "127.0.0.1", "videoPort": video_port, "audioPort": audio_port})),
        );
        assert_eq!(status, 200, "create forwarder: {body}");
        if let Some(s) = body["data"]["sdp"].as_str()
            && s.contains("m=audio")
            && s.contains("m=video")
        {
            return s.to_string();
        }
        let id = body["data"]["id"].as_str().unwrap_or_default().to_string();
        gw.api(
            "DELETE",
            &format!("{}/online-streams/{sid}/forwarders/{id}", gw.base()),
            None,
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no SDP with audio and video; log:\n{}", gw.log());
}

/// Decodes `seconds` of the forwarded stream; returns (framemd5 text, stderr).
fn decode(gw: &Gateway, sdp: &str, seconds: u32) -> (String, String) {
    let sdp_path = write_file(gw.dir.path(), "stream.sdp", sdp);
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
        .args(["-t", &seconds.to_string(), "-f", "framemd5", "-"])
        .output()
        .expect("running ffmpeg receiver");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn count(text: &str, track: &str) -> usize {
    text.lines().filter(|l| l.starts_with(track)).count()
}

fn srt_url(port: u16, key: &str, extra: &str) -> String {
    format!("srt://127.0.0.1:{port}?streamid={key}&latency=200000{extra}")
}

#[test]
fn ffmpeg_h264_aac_over_srt_forwarded_and_decoded() {
    let gw = Gateway::start();
    let key = gw.create_key("srtchan", "2001");
    let publisher = ffmpeg_publish_srt(&srt_url(gw.srt_port, &key, ""), 30, H264, AAC);
    let online = gw.wait_online("srtchan", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();
    assert_eq!(online["uid"], "2001");
    let sdp = forward(&gw, &sid);
    assert!(
        sdp.contains("H264") && sdp.contains("MPEG4-GENERIC"),
        "{sdp}"
    );
    let (text, err) = decode(&gw, &sdp, 4);
    let (_, body) = gw.api("GET", &format!("{}/online-streams/{sid}", gw.base()), None);
    let s = &body["data"][0];
    assert_eq!(s["video"]["width"], 320, "{body}");
    let pub_err = finish(publisher);
    assert!(
        text.contains("#dimensions 0: 320x240"),
        "{text}\n{err}\n{pub_err}"
    );
    let (v, a) = (count(&text, "0,"), count(&text, "1,"));
    assert!(
        v >= 60,
        "only {v} video frames\n{err}\npublisher: {pub_err}"
    );
    assert!(a >= 50, "only {a} audio frames");
}

#[test]
fn ffmpeg_h265_opus_over_srt_forwarded_and_decoded() {
    let gw = Gateway::start();
    let key = gw.create_key("srthevc", "2002");
    let h265 = [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-x265-params",
        "keyint=25:log-level=none",
    ];
    let opus = ["-c:a", "libopus", "-b:a", "64k"];
    let publisher = ffmpeg_publish_srt(&srt_url(gw.srt_port, &key, ""), 30, &h265, &opus);
    let online = gw.wait_online("srthevc", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();
    let sdp = forward(&gw, &sid);
    assert!(
        sdp.contains("H265") && sdp.to_lowercase().contains("opus"),
        "{sdp}"
    );
    let (text, err) = decode(&gw, &sdp, 4);
    let pub_err = finish(publisher);
    assert!(
        text.contains("#dimensions 0: 320x240"),
        "{text}\n{err}\n{pub_err}"
    );
    let (v, a) = (count(&text, "0,"), count(&text, "1,"));
    assert!(
        v >= 60,
        "only {v} video frames\n{err}\npublisher: {pub_err}"
    );
    assert!(a >= 100, "only {a} audio frames (20 ms each)");
}

/// Runs `srt-live-transmit file://con URL` fed with a short TS file; returns its output.
/// One connection attempt (`-a:no`): a refused caller exits instead of reconnecting, so each
/// call is exactly one admission.
fn srt_live_transmit(ts: &std::path::Path, url: &str, wait: Duration) -> String {
    require_tool("srt-live-transmit");
    let mut child = Command::new("srt-live-transmit")
        .args(["-v", "-a:no", "file://con", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning srt-live-transmit");
    let data = std::fs::read(ts).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Paced roughly at real time (the file is ~5 s long).
        for chunk in data.chunks(1316 * 7) {
            if stdin.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    });
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = feeder.join();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn make_ts(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("in.ts");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "5",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(H264)
        .args(AAC)
        .args(["-f", "mpegts"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    path
}

#[test]
fn passphrase_accepts_the_right_secret_and_rejects_others_cleanly() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_app_toml: format!("srt_passphrase = \"{PASSPHRASE}\""),
        ..Default::default()
    });
    let ts = make_ts(gw.dir.path());
    // A healthy stream on the gateway that the failed attempts must not disturb.
    let bystander_key = gw.create_key("bystander", "1");
    let bystander = ffmpeg_publish_srt(
        &srt_url(
            gw.srt_port,
            &bystander_key,
            &format!("&passphrase={PASSPHRASE}"),
        ),
        60,
        H264,
        AAC,
    );
    let online = gw.wait_online("bystander", Duration::from_secs(15));
    let bystander_sid = online["sid"].as_str().unwrap().to_string();

    // Wrong passphrase: BADSECRET.
    let key = gw.create_key("secret", "2");
    let out = srt_live_transmit(
        &ts,
        &format!(
            "srt://127.0.0.1:{}?streamid={key}&passphrase=wrong-passphrase",
            gw.srt_port
        ),
        Duration::from_secs(5),
    );
    assert!(
        out.contains("REJECT") && out.contains("Incorrect passphrase"),
        "expected a bad-secret rejection, got:\n{out}"
    );
    // No passphrase against an encrypted app: UNSECURE.
    let out = srt_live_transmit(
        &ts,
        &format!("srt://127.0.0.1:{}?streamid={key}", gw.srt_port),
        Duration::from_secs(5),
    );
    assert!(
        out.contains("REJECT") && out.contains("Password required or unexpected"),
        "expected an unsecure rejection, got:\n{out}"
    );
    // The right passphrase, another key length (pbkeylen 32): accepted, the key length is
    // taken from the caller's key material.
    let out_ok = std::thread::spawn({
        let url = format!(
            "srt://127.0.0.1:{}?streamid={key}&passphrase={}&pbkeylen=32",
            gw.srt_port, PASSPHRASE
        );
        let ts = ts.clone();
        move || srt_live_transmit(&ts, &url, Duration::from_secs(8))
    });
    let online = gw.wait_online("secret", Duration::from_secs(15));
    assert_eq!(online["uid"], "2");
    let _ = out_ok.join();

    // The bystander kept streaming throughout.
    let (status, body) = gw.api(
        "GET",
        &format!("{}/online-streams/{bystander_sid}", gw.base()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["sid"], bystander_sid.as_str(), "{body}");
    finish(bystander);
}

#[test]
fn refused_key_is_rejected_with_1403_and_an_aborted_event() {
    let gw = Gateway::start();
    let bogus = "not-a-real-stream-key";
    let mut child = ffmpeg_publish_srt(&srt_url(gw.srt_port, bogus, ""), 5, H264, AAC);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = finish(child);
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("SRT caller rejected") && l.contains("1403")),
        "gateway did not reject with 1403:\n{log}\nffmpeg: {err}"
    );
    // libsrt reports 1000+ codes as application-defined rejections.
    assert!(
        err.contains("Application-defined rejection reason"),
        "{err}"
    );
    let (status, body) = gw.api("GET", &format!("{}/events", gw.base()), None);
    assert_eq!(status, 200);
    let aborted = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "aborted" || e["eventType"] == 3)
        .cloned();
    let aborted = aborted.unwrap_or_else(|| panic!("no aborted event: {body}"));
    assert_eq!(aborted["errorCode"], 1, "{aborted}");
}

#[test]
fn srt_through_loss_jitter_and_reordering_arrives_intact() {
    let perf = bin_dir().join("sluice-perf");
    assert!(
        perf.exists(),
        "{} missing: build the workspace first (cargo build)",
        perf.display()
    );
    let gw = Gateway::start();
    let proxy_port = free_udp_port();
    let mut proxy = Command::new(&perf)
        .args(["impair", "--listen"])
        .arg(format!("127.0.0.1:{proxy_port}"))
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", gw.srt_port))
        .args([
            "--loss",
            "5",
            "--jitter-ms",
            "50",
            "--reorder",
            "2",
            "--seed",
            "7",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning sluice-perf impair");
    std::thread::sleep(Duration::from_millis(300));
    let key = gw.create_key("lossy", "3001");
    // Latency well above RTT + jitter (and the scheduling delays of a loaded 2-core test
    // machine), so retransmissions land before delivery time.
    let url = format!("srt://127.0.0.1:{proxy_port}?streamid={key}&latency=800000");
    let publisher = ffmpeg_publish_srt(&url, 40, H264, AAC);
    let online = gw.wait_online("lossy", Duration::from_secs(20));
    let sid = online["sid"].as_str().expect("sid").to_string();
    let sdp = forward(&gw, &sid);
    let (text, err) = decode(&gw, &sdp, 6);
    let pub_err = finish(publisher);
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(
        text.contains("#dimensions 0: 320x240"),
        "{text}\n{err}\n{pub_err}"
    );
    // 6 s at 25 fps: every frame, give or take the edge of the window.
    // Intact: the decoded pictures are contiguous (no timestamp gap at 25 fps, time base
    // 1/25) and fill most of the window (the start waits for the forwarder's first GOP).
    let pts: Vec<i64> = text
        .lines()
        .filter(|l| l.starts_with("0,"))
        .filter_map(|l| l.split(',').nth(2)?.trim().parse().ok())
        .collect();
    assert!(
        pts.len() >= 100,
        "only {} video frames\n{err}\npublisher: {pub_err}",
        pts.len()
    );
    let gaps: Vec<(i64, i64)> = pts
        .windows(2)
        .filter(|w| w[1] - w[0] != 1)
        .map(|w| (w[0], w[1]))
        .collect();
    // The caller was killed: the connection ends on the idle timeout, and its counters show
    // that losses happened and were repaired by retransmission.
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let log: String = strip_ansi(&gw.log());
        if let Some(l) = log.lines().find(|l| l.contains("SRT connection closed")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "connection never closed:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let field = |name: &str| -> u64 {
        closed
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {closed}"))
    };
    assert!(
        gaps.is_empty(),
        "missing pictures at {gaps:?}; {closed}\n{text}"
    );
    assert!(field("lost") > 0, "{closed}");
    assert!(field("retransmitted") > 0, "{closed}");
    assert!(
        !err.contains("error while decoding") && !err.contains("concealing"),
        "decoder saw damage:\n{err}"
    );
}

#[test]
fn several_callers_each_served_on_their_core() {
    let gw = Gateway::start();
    let mut publishers = Vec::new();
    for i in 0..4 {
        let key = gw.create_key(&format!("multi{i}"), &format!("{}", 4000 + i));
        // All three stream id forms (ffmpeg passes the value up to the next `&` verbatim),
        // the host picking the app.
        let streamid = match i {
            0 => key.clone(),
            1 => format!("{key}?h=ingest.example.com"),
            2 => format!("#!::r={key},h=ingest.example.com"),
            _ => format!("#!::r={key},m=publish"),
        };
        publishers.push(ffmpeg_publish_srt(
            &srt_url(gw.srt_port, &streamid, ""),
            30,
            H264,
            AAC,
        ));
    }
    for i in 0..4 {
        gw.wait_online(&format!("multi{i}"), Duration::from_secs(15));
    }
    // Every caller keeps streaming: each one's ACKs, NAKs and data stay on one core, or
    // its connection would stall and time out.
    std::thread::sleep(Duration::from_secs(4));
    let (_, body) = gw.api("GET", &format!("{}/online-streams", gw.base()), None);
    let streams = body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(streams.len(), 4, "{body}");
    let log = gw.log();
    let accepted = log
        .lines()
        .filter(|l| l.contains("SRT caller accepted"))
        .count();
    assert_eq!(accepted, 4, "{log}");
    assert!(!log.contains("SRT connection closed"), "{log}");
    for p in publishers {
        finish(p);
    }
}

#[test]
fn force_disconnect_sends_shutdown_to_the_caller() {
    let gw = Gateway::start();
    let key = gw.create_key("kicked", "5001");
    let mut publisher = ffmpeg_publish_srt(&srt_url(gw.srt_port, &key, ""), 60, H264, AAC);
    let online = gw.wait_online("kicked", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();
    let (status, body) = gw.api(
        "DELETE",
        &format!("{}/online-streams/{sid}", gw.base()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The SHUTDOWN makes libsrt report the connection lost, and ffmpeg gives up well before
    // its 60 s of input (without it, the caller would only notice after its peer idle timeout).
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut exited = false;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = publisher.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = finish(publisher);
    let log = strip_ansi(&gw.log());
    assert!(
        log.contains("closing SRT connection"),
        "no kick seen by the SRT path:\n{log}"
    );
    assert!(exited, "ffmpeg still publishing after the kick: {err}");
}

/// The app's dataplane counter `name`, read from the shared-memory table.
fn counter(gw: &Gateway, c: sluice_table::Counter) -> u64 {
    let table = sluice_table::Table::open(&gw.table_path).expect("open table");
    table
        .counters()
        .into_iter()
        .find(|(k, _)| *k == c)
        .map(|(_, n)| n)
        .expect("counter listed")
}

/// Aborted events in the event log, oldest first.
fn aborted_events(gw: &Gateway) -> Vec<serde_json::Value> {
    let (status, body) = gw.api("GET", &format!("{}/events", gw.base()), None);
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["event"] == "aborted" || e["eventType"] == 3)
        .collect()
}

#[test]
fn enforced_pbkeylen_refuses_other_key_lengths_and_wrong_secrets() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_app_toml: format!("srt_passphrase = \"{PASSPHRASE}\"\nsrt_pbkeylen = 32"),
        ..Default::default()
    });
    let ts = make_ts(gw.dir.path());
    // A healthy encrypted stream (AES-256, as enforced) that the refusals must not disturb.
    let bystander_key = gw.create_key("bystander", "1");
    let bystander = ffmpeg_publish_srt(
        &srt_url(
            gw.srt_port,
            &bystander_key,
            &format!("&passphrase={PASSPHRASE}&pbkeylen=32"),
        ),
        60,
        H264,
        AAC,
    );
    let online = gw.wait_online("bystander", Duration::from_secs(15));
    let bystander_sid = online["sid"].as_str().unwrap().to_string();
    let bytes_before = online_bytes(&gw, &bystander_sid);

    let key = gw.create_key("keylen", "2");
    // The right passphrase with AES-128 against an app enforcing AES-256: BADSECRET.
    let out = srt_live_transmit(
        &ts,
        &format!(
            "srt://127.0.0.1:{}?streamid={key}&passphrase={PASSPHRASE}&pbkeylen=16",
            gw.srt_port
        ),
        Duration::from_secs(5),
    );
    assert!(
        out.contains("REJECT") && out.contains("Incorrect passphrase"),
        "expected a bad-secret rejection for pbkeylen 16, got:\n{out}"
    );
    // The enforced length with a wrong passphrase: BADSECRET too.
    let out = srt_live_transmit(
        &ts,
        &format!(
            "srt://127.0.0.1:{}?streamid={key}&passphrase=wrong-passphrase&pbkeylen=32",
            gw.srt_port
        ),
        Duration::from_secs(5),
    );
    assert!(
        out.contains("REJECT") && out.contains("Incorrect passphrase"),
        "expected a bad-secret rejection for a wrong passphrase, got:\n{out}"
    );
    let log = strip_ansi(&gw.log());
    assert!(
        log.lines().any(|l| l.contains("SRT caller rejected")
            && l.contains("reason=10")
            && l.contains("key length mismatch: configured 32, peer uses 16")),
        "{log}"
    );
    // Counted, and one aborted event each under the key's channel and uid (code 3).
    assert_eq!(counter(&gw, sluice_table::Counter::SrtRefusedEncryption), 2);
    let aborted = aborted_events(&gw);
    let ours: Vec<_> = aborted
        .iter()
        .filter(|e| e["channel"] == "keylen")
        .collect();
    assert_eq!(ours.len(), 2, "{aborted:?}");
    for e in &ours {
        assert_eq!(e["errorCode"], 3, "{e}");
        assert_eq!(e["uid"], "2", "{e}");
    }

    // The enforced length with the right passphrase publishes.
    let out_ok = std::thread::spawn({
        let url = format!(
            "srt://127.0.0.1:{}?streamid={key}&passphrase={PASSPHRASE}&pbkeylen=32",
            gw.srt_port
        );
        let ts = ts.clone();
        move || srt_live_transmit(&ts, &url, Duration::from_secs(8))
    });
    let online = gw.wait_online("keylen", Duration::from_secs(15));
    assert_eq!(online["uid"], "2");
    let _ = out_ok.join();

    // The bystander kept streaming throughout.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(online_bytes(&gw, &bystander_sid) > bytes_before);
    finish(bystander);
}

/// Input bytes of a live stream, from the table's stats.
fn online_bytes(gw: &Gateway, sid: &str) -> u64 {
    let table = sluice_table::Table::open(&gw.table_path).expect("open table");
    table
        .all_stats()
        .iter()
        .find(|s| s.sid == sid)
        .map(|s| s.bytes_in_video)
        .unwrap_or_else(|| panic!("stream {sid} not live"))
}

#[test]
fn retried_refusals_are_all_counted_but_events_are_rate_limited() {
    let gw = Gateway::start();
    let ts = make_ts(gw.dir.path());
    let attempts: u64 = 6;
    let start = Instant::now();
    for _ in 0..attempts {
        let out = srt_live_transmit(
            &ts,
            &format!(
                "srt://127.0.0.1:{}?streamid=not-a-real-stream-key",
                gw.srt_port
            ),
            Duration::from_secs(5),
        );
        assert!(out.contains("REJECT"), "{out}");
    }
    let elapsed = start.elapsed();
    // Every refusal counted; the event log holds the burst allowed per source IP (3) plus one
    // per 10 s the attempts took (a slow machine spreads them out), the rest counted as
    // suppressed: logged and suppressed add up to the attempts exactly.
    assert_eq!(
        counter(&gw, sluice_table::Counter::RefusedIllegalKey),
        attempts
    );
    let logged = aborted_events(&gw).len() as u64;
    let suppressed = counter(&gw, sluice_table::Counter::RefusalEventsSuppressed);
    let allowed = 3 + elapsed.as_secs() / 10;
    assert!(
        (3..=allowed).contains(&logged),
        "{logged} aborted events for {attempts} refusals in {elapsed:?} (allowed 3..={allowed})"
    );
    assert_eq!(
        logged + suppressed,
        attempts,
        "{logged} logged, {suppressed} suppressed"
    );
    if allowed < attempts {
        assert!(suppressed >= 1, "nothing suppressed in {elapsed:?}");
    }
}

#[test]
fn callers_over_the_per_ip_limit_are_rejected_with_1402_and_counted() {
    let gw = Gateway::start_with(GatewayOptions {
        extra_dataplane_toml: "max_connections_per_ip = 1".into(),
        ..Default::default()
    });
    let first = gw.create_key("srtperip", "1");
    let second = gw.create_key("srtperip", "2");
    let publisher = ffmpeg_publish_srt(&srt_url(gw.srt_port, &first, ""), 20, H264, AAC);
    gw.wait_online("srtperip", Duration::from_secs(15));

    // A second caller from the same address is refused while the first one publishes.
    let mut child = ffmpeg_publish_srt(&srt_url(gw.srt_port, &second, ""), 5, H264, AAC);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = finish(child);
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("SRT caller rejected") && l.contains("1402")),
        "gateway did not reject with 1402 (overload):\n{log}\nffmpeg: {err}"
    );
    let metrics = http("GET", gw.rest_port, "/metrics", None, None).expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sluice_dataplane_events_total{counter=\"refused_per_ip\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "refused_per_ip not counted:\n{text}");
    // The first stream was not disturbed.
    let online = gw.wait_online("srtperip", Duration::from_secs(2));
    assert_eq!(online["uid"], "1", "{online}");
    finish(publisher);
}
