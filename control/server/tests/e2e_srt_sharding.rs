//! SRT streams on their owner core: several ffmpeg callers publish over SRT to a two-core
//! gateway. Whatever core the kernel steers a caller's datagrams to, its stream (stats slot,
//! packetizers, forwarders) runs on the core that owns its channel+uid, and a stream fed from
//! another core plays: its RTP forwarder is decoded by ffmpeg.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const CHANNEL: &str = "srtshard";

/// A cheap SRT publisher (160x120 at 10 fps, AAC) for tests that run several at once.
fn ffmpeg_publish_srt_small(port: u16, key: &str, seconds: u32) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-f",
            "mpegts",
        ])
        .arg(format!(
            "srt://127.0.0.1:{port}?streamid={key}&latency=200000"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ffmpeg")
}

/// `(core, owner, sid)` of every "SRT caller accepted" log line.
fn accepted(log: &str) -> Vec<(usize, usize, String)> {
    let log = strip_ansi(log);
    log.lines()
        .filter(|l| l.contains("SRT caller accepted"))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(str::to_string)
            };
            Some((
                field("core")?.parse().ok()?,
                field("owner")?.parse().ok()?,
                field("sid")?,
            ))
        })
        .collect()
}

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

/// The uids `2000..` whose streams two cores own, `n` for each core, alternating owners.
fn uids_per_owner(app: &str, n: usize) -> Vec<String> {
    let mut per = [Vec::new(), Vec::new()];
    let mut i = 0u32;
    while per.iter().any(|v| v.len() < n) {
        let uid = format!("{}", 2000 + i);
        let owner = sluice_table::owner_core(app, CHANNEL, &uid, 2);
        if per[owner].len() < n {
            per[owner].push(uid);
        }
        i += 1;
    }
    let [a, b] = per;
    a.into_iter().zip(b).flat_map(|(a, b)| [a, b]).collect()
}

#[test]
fn srt_streams_run_on_their_owner_core_and_play() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let table = sluice_table::Table::open(&gw.table_path).expect("open table");
    // Three streams for each owner core, and more callers (up to ten) until one lands on the
    // core that does not own it: the kernel's SO_REUSEPORT hash is the only thing deciding
    // that, so each caller has even odds of being fed across cores.
    let mut uids = uids_per_owner(&gw.app_id, 8);
    let mut extra = uids.split_off(6);
    extra.reverse();
    let mut publishers = Vec::new();
    let mut started = Vec::new();
    let start = |uid: String, publishers: &mut Vec<Child>| {
        let key = gw.create_key(CHANNEL, &uid);
        publishers.push(ffmpeg_publish_srt_small(gw.srt_port, &key, 40));
        uid
    };
    for uid in uids {
        started.push(start(uid, &mut publishers));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let cross = loop {
        let acc = accepted(&gw.log());
        if acc.len() >= started.len()
            && let Some(c) = acc.iter().find(|(core, owner, _)| core != owner)
        {
            break c.clone();
        }
        if acc.len() >= started.len() {
            let uid = extra
                .pop()
                .unwrap_or_else(|| panic!("no caller was fed across cores: {acc:?}"));
            started.push(start(uid, &mut publishers));
        }
        assert!(
            Instant::now() < deadline,
            "callers not accepted: {acc:?}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // Every stream's stats come from its owner core, and both cores own some.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = table.all_stats();
        let running: Vec<_> = stats
            .iter()
            .filter(|s| s.channel == CHANNEL && s.video.as_ref().is_some_and(|v| v.width == 160))
            .collect();
        if running.len() == started.len() {
            for s in &running {
                let owner = sluice_table::owner_core(&s.app_id, &s.channel, &s.uid, 2);
                assert_eq!(
                    s.core as usize, owner,
                    "stream {} reported by core {} but owned by {owner}",
                    s.uid, s.core
                );
                assert!(s.bytes_in_video > 0);
            }
            let cores: std::collections::HashSet<u32> = running.iter().map(|s| s.core).collect();
            assert_eq!(cores.len(), 2, "{cores:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} streams running: {stats:#?}",
            running.len(),
            started.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The stream fed across cores plays: forward it over RTP and decode it.
    let (_, owner, sid) = cross;
    let sdp = forward(&gw, &sid);
    let sdp_path = write_file(gw.dir.path(), "cross.sdp", &sdp);
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
        .args(["-t", "3", "-f", "framemd5", "-"])
        .output()
        .expect("running ffmpeg receiver");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("#dimensions 0: 160x120"), "{text}\n{err}");
    let video = text.lines().filter(|l| l.starts_with("0,")).count();
    let audio = text.lines().filter(|l| l.starts_with("1,")).count();
    assert!(video >= 15, "only {video} video frames\n{err}");
    assert!(audio >= 30, "only {audio} audio frames\n{err}");
    let stats = table.all_stats();
    let s = stats
        .iter()
        .find(|s| s.sid == sid)
        .expect("the decoded stream is live");
    assert_eq!(s.core as usize, owner);
    assert!(s.bytes_out_video > 0, "owner core sent no RTP: {s:?}");

    // Nothing was dropped on the way between cores.
    let drops = table
        .counters()
        .into_iter()
        .find(|(c, _)| *c == sluice_table::Counter::SrtFeedDrops)
        .map(|(_, n)| n);
    assert_eq!(drops, Some(0));
    for p in publishers {
        finish(p);
    }
    // Every stream ended on its owner (the feed's end crossed the mesh too).
    let deadline = Instant::now() + Duration::from_secs(15);
    while table.all_stats().iter().any(|s| s.channel == CHANNEL) {
        assert!(
            Instant::now() < deadline,
            "streams still listed after the callers left"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

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
