//! End to end: either process restarts without disturbing the other.
//!
//! - Control killed (SIGKILL) and restarted while a real ffmpeg RTMP push is forwarded over
//!   RTP: the forwarded packets never pause, the publisher stays connected, and the restarted
//!   control sees the live stream, changes the table (a new key admits a second push) and
//!   sends commands (deleting the forwarder stops the packets).
//! - Dataplane killed (SIGKILL) while the REST API is in use: every request during the outage
//!   is answered, the dead dataplane's stream stops being listed, the supervisor restarts the
//!   dataplane, and a key created during the outage admits a push.
//! - `sluice up` killed and run again: the new control adopts the dataplane the old one left
//!   running instead of starting a second one, and stops it on shutdown.

mod support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// Longest pause between forwarded RTP packets tolerated while a process restarts. The
/// stream sends about 50 packets per second; a restart that disturbed the dataplane (a
/// reconnecting publisher, a rebuilt stream) pauses for seconds.
const MAX_GAP: Duration = Duration::from_millis(1_000);

/// Receives forwarded RTP on a UDP port and records each packet's arrival time.
struct RtpWatch {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtpWatch {
    fn start() -> RtpWatch {
        let port = free_rtp_port_pair();
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind RTP port");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (arrivals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf)
                    && n >= 12
                    && buf[0] >> 6 == 2
                {
                    a.lock().unwrap().push(Instant::now());
                }
            }
        });
        RtpWatch {
            port,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Waits until at least `n` more packets than now have arrived.
    fn wait_more(&self, n: usize, timeout: Duration) -> bool {
        let target = self.count() + n;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count() >= target {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The longest pause between consecutive packets that arrived between `from` and `to`,
    /// counting the edges of the window as well (a stream that stopped at `from` shows).
    fn max_gap(&self, from: Instant, to: Instant) -> Duration {
        let a = self.arrivals.lock().unwrap();
        let mut last = from;
        let mut worst = Duration::ZERO;
        for &t in a.iter().filter(|&&t| t >= from && t <= to) {
            worst = worst.max(t - last);
            last = t;
        }
        worst.max(to.saturating_duration_since(last))
    }
}

impl Drop for RtpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Attaches an RTP forwarder sending video to `port` (audio to `port + 2`); returns its id.
fn attach_forwarder(gw: &Gateway, sid: &str, port: u16) -> String {
    let (status, body) = gw.api(
        "POST",
        &format!("{}/online-streams/{sid}/forwarders", gw.base()),
        Some(serde_json::json!({"host": "127.0.0.1", "videoPort": port, "audioPort": port + 2})),
    );
    assert_eq!(status, 200, "create forwarder: {body}");
    body["data"]["id"]
        .as_str()
        .expect("forwarder id")
        .to_string()
}

fn online_sids(gw: &Gateway) -> Vec<String> {
    let (status, body) = gw.api("GET", &format!("{}/online-streams", gw.base()), None);
    assert_eq!(status, 200, "online streams: {body}");
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["sid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn sigkill(pid: i32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -9 {pid}");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn still_publishing(p: &mut std::process::Child) -> bool {
    matches!(p.try_wait(), Ok(None))
}

#[test]
fn control_restart_leaves_live_media_undisturbed() {
    require_tool("ffmpeg");
    let mut gw = Gateway::start_with(GatewayOptions {
        split: true,
        ..Default::default()
    });
    let key = gw.create_key("restartchan", "1001");
    let mut publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    let online = gw.wait_online("restartchan", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();

    let rtp = RtpWatch::start();
    let fwd = attach_forwarder(&gw, &sid, rtp.port);
    assert!(
        rtp.wait_more(50, Duration::from_secs(10)),
        "no RTP before the restart"
    );

    // Kill control the hard way, mid-stream; it is down for two seconds.
    let window_start = Instant::now();
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    assert!(
        http("GET", gw.rest_port, "/healthz", None, None).is_err(),
        "control still answering after SIGKILL"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        rtp.wait_more(20, Duration::from_secs(2)),
        "RTP stopped while control was down"
    );
    gw.restart_control();

    // The restarted control sees the same live stream from the table.
    assert!(
        online_sids(&gw).contains(&sid),
        "restarted control does not list the live stream {sid}"
    );
    // Its table writes reach the running dataplane: a key made now admits a second push.
    let key2 = gw.create_key("restartchan2", "2002");
    let mut publisher2 = ffmpeg_publish_rtmp(&gw.rtmp_url(&key2), 10, &["-tune", "zerolatency"]);
    gw.wait_online("restartchan2", Duration::from_secs(15));
    assert!(
        rtp.wait_more(50, Duration::from_secs(5)),
        "RTP stopped after the restart"
    );
    let window_end = Instant::now();
    let gap = rtp.max_gap(window_start, window_end);
    assert!(
        gap < MAX_GAP,
        "forwarded RTP paused for {gap:?} around the control restart"
    );
    assert!(
        still_publishing(&mut publisher),
        "the publisher was disconnected by the control restart"
    );

    // Commands from the restarted control still act on the stream: deleting the forwarder
    // stops the packets.
    let (status, body) = gw.api(
        "DELETE",
        &format!("{}/online-streams/{sid}/forwarders/{fwd}", gw.base()),
        None,
    );
    assert_eq!(status, 200, "delete forwarder: {body}");
    std::thread::sleep(Duration::from_millis(1_500));
    let before = rtp.count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rtp.count(),
        before,
        "RTP still arriving after the forwarder was deleted"
    );

    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = publisher2.kill();
    let _ = publisher2.wait();
}

#[test]
fn dataplane_restart_leaves_control_serving() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let key = gw.create_key("dpchan", "1001");
    let mut publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    let online = gw.wait_online("dpchan", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();

    let old_pid = gw
        .dataplane_pid()
        .expect("sluice up records the dataplane pid");
    sigkill(old_pid);

    // While the dataplane is gone every API call is still answered, and writes land.
    let outage = Instant::now();
    let mut made = Vec::new();
    let mut gone = false;
    while outage.elapsed() < Duration::from_secs(7) {
        let (status, body) = gw.api("GET", &format!("{}/streamkeys", gw.base()), None);
        assert_eq!(status, 200, "list keys during the outage: {body}");
        if made.len() < 3 {
            made.push(gw.create_key("dpchan2", &format!("{}", 3001 + made.len())));
        }
        if !online_sids(&gw).contains(&sid) {
            gone = true;
        }
        let h = http("GET", gw.rest_port, "/healthz", None, None).expect("healthz");
        assert_eq!(h.status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        gone,
        "the killed dataplane's stream was still listed as online"
    );
    // ffmpeg lost its connection with the dead dataplane; it is not needed any more.
    let _ = publisher.kill();
    let _ = publisher.wait();

    // The supervisor starts a new dataplane; a key created during the outage admits a push.
    let deadline = Instant::now() + Duration::from_secs(20);
    let new_pid = loop {
        if let Some(p) = gw.dataplane_pid()
            && p != old_pid
            && alive(p)
        {
            break p;
        }
        assert!(Instant::now() < deadline, "dataplane was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(new_pid, old_pid);
    gw.wait_ready();
    let mut p2 = ffmpeg_publish_rtmp(&gw.rtmp_url(&made[0]), 10, &["-tune", "zerolatency"]);
    let s2 = gw.wait_online("dpchan2", Duration::from_secs(15));
    assert_eq!(s2["uid"], "3001");
    let _ = p2.kill();
    let _ = p2.wait();
}

#[test]
fn up_restart_adopts_the_running_dataplane() {
    require_tool("ffmpeg");
    let mut gw = Gateway::start();
    let key = gw.create_key("adoptchan", "1001");
    let mut publisher = ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 60, &["-tune", "zerolatency"]);
    let online = gw.wait_online("adoptchan", Duration::from_secs(15));
    let sid = online["sid"].as_str().expect("sid").to_string();
    let dp_pid = gw.dataplane_pid().expect("dataplane pid");
    let rtp = RtpWatch::start();
    attach_forwarder(&gw, &sid, rtp.port);
    assert!(rtp.wait_more(50, Duration::from_secs(10)), "no RTP");

    let window_start = Instant::now();
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(dp_pid), "the dataplane died with `sluice up`");
    gw.restart_control();
    // Give a wrongly started second dataplane time to show up in the pid file.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        gw.dataplane_pid(),
        Some(dp_pid),
        "a second dataplane was started instead of adopting the running one; log:\n{}",
        gw.log()
    );
    assert!(
        gw.log().contains("adopting the dataplane"),
        "no adoption logged"
    );
    assert!(online_sids(&gw).contains(&sid));
    assert!(rtp.wait_more(50, Duration::from_secs(5)), "RTP stopped");
    let gap = rtp.max_gap(window_start, Instant::now());
    assert!(gap < MAX_GAP, "RTP paused for {gap:?} across the restart");
    assert!(still_publishing(&mut publisher));

    // Stopping the new `sluice up` stops the adopted dataplane too.
    let _ = std::process::Command::new("kill")
        .arg(gw.child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(dp_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !alive(dp_pid),
        "adopted dataplane kept running after shutdown"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}
