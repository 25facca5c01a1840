//! Webhooks against a real HTTP receiver: signatures checked independently with HMAC-SHA1 and
//! HMAC-SHA256 over the raw body, a retry after a 500, and, end to end, a real ffmpeg push
//! through `sluice up` producing connected → profile updated → disconnected, and a refused key
//! producing aborted with code 1 or 2.

mod support;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sluice::config::WebhookConfig;
use sluice::table::{EventInfo, EventKind};
use sluice::webhook::{DeliveryPolicy, Webhooks};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "hook-secret";

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    body: Value,
    signatures_ok: bool,
    status_sent: u16,
    content_type: String,
}

/// A tiny HTTP/1.1 receiver: answers 500 to the first `fail_first` requests, then 200.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_string();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let h = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let len: usize = h("content-length").parse().unwrap_or(0);
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut m1 = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
                m1.update(&body);
                let mut m2 = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                m2.update(&body);
                let signatures_ok = h("agora-signature") == hex(&m1.finalize().into_bytes())
                    && h("agora-signature-v2") == hex(&m2.finalize().into_bytes());
                let mut g = s2.lock().unwrap();
                let status = if g.len() < fail_first { 500 } else { 200 };
                g.push(Seen {
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signatures_ok,
                    status_sent: status,
                    content_type: h("content-type"),
                });
                drop(g);
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Receiver { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `pred` holds on what was seen.
    fn wait(&self, timeout: Duration, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.seen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("receiver condition not met; seen: {s:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits for a child to exit by itself (killing it after `timeout`).
fn wait_exit(mut child: std::process::Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    support::finish(child);
}

fn event(kind: EventKind) -> EventInfo {
    EventInfo {
        kind,
        at_ms: 1_704_070_871_001,
        sid: "SID1".into(),
        app_id: "app".into(),
        channel: "ch".into(),
        uid: "1001".into(),
        error_code: 0,
        reason: String::new(),
        stream_key: "THE-STREAM-KEY".into(),
        domain: "ingest.example.com:1935".into(),
        protocol: "rtmp".into(),
        begin_at_ms: 1_704_070_861_001,
        stats: None,
    }
}

#[test]
fn receiver_checks_both_signatures_and_sees_the_retry_after_a_500() {
    let rx = Receiver::start(1);
    let hooks = Webhooks::start(
        vec![WebhookConfig {
            url: rx.url(),
            secret: SECRET.into(),
            events: Vec::new(),
            apps: Vec::new(),
        }],
        "na",
        DeliveryPolicy {
            timeout: Duration::from_secs(5),
            backoff: vec![Duration::from_millis(200); 3],
        },
    );
    let t0 = Instant::now();
    hooks.submit(&event(EventKind::Connected));
    let seen = rx.wait(Duration::from_secs(10), |s| s.len() >= 2);
    assert!(t0.elapsed() >= Duration::from_millis(200), "retry waited");
    assert_eq!(seen.len(), 2, "one failure, one success, no more");
    assert_eq!(seen[0].status_sent, 500);
    assert_eq!(seen[1].status_sent, 200);
    for s in &seen {
        assert!(s.signatures_ok, "bad signature: {s:?}");
        assert!(s.content_type.starts_with("application/json"));
    }
    assert_eq!(
        seen[0].body, seen[1].body,
        "a retry resends the same notice"
    );
    let b = &seen[1].body;
    assert_eq!(b["productId"], 10);
    assert_eq!(b["eventType"], 1);
    assert_eq!(b["payload"]["streamKey"], "THE-STREAM-KEY");
    // Counters settle once the success is recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hooks.counters().snapshot()[1] != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let [queued, delivered, attempts_failed, failed, dropped] = hooks.counters().snapshot();
    assert_eq!(
        (queued, delivered, attempts_failed, failed, dropped),
        (1, 1, 1, 0, 0)
    );
}

#[test]
fn gives_up_after_three_retries_and_ids_are_unique() {
    let rx = Receiver::start(usize::MAX);
    let hooks = Webhooks::start(
        vec![WebhookConfig {
            url: rx.url(),
            secret: SECRET.into(),
            events: vec![3],
            apps: Vec::new(),
        }],
        "na",
        DeliveryPolicy {
            timeout: Duration::from_secs(5),
            backoff: vec![Duration::from_millis(50); 3],
        },
    );
    hooks.submit(&event(EventKind::Connected)); // filtered out: events = [3]
    let mut aborted = event(EventKind::Aborted);
    aborted.error_code = 100;
    hooks.submit(&aborted);
    hooks.submit(&aborted);
    let seen = rx.wait(Duration::from_secs(10), |s| s.len() >= 8);
    std::thread::sleep(Duration::from_millis(300));
    let seen_after = rx.seen();
    assert_eq!(seen_after.len(), 8, "2 notices x (1 + 3 retries)");
    assert!(seen.iter().all(|s| s.body["eventType"] == 3));
    assert!(seen.iter().all(|s| s.body["payload"]["errorCode"] == 100));
    let mut ids: Vec<String> = seen
        .iter()
        .map(|s| s.body["noticeId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one noticeId per event, kept across retries");
    let deadline = Instant::now() + Duration::from_secs(5);
    while hooks.counters().snapshot()[3] != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hooks.counters().snapshot()[3], 2, "both given up");
}

#[test]
fn e2e_ffmpeg_push_and_refused_key_produce_notifications() {
    support::require_tool("ffmpeg");
    let rx = Receiver::start(0);
    let gw = support::Gateway::start_with(support::GatewayOptions {
        extra_toml: format!(
            "\n[[webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            rx.url()
        ),
        ..Default::default()
    });
    let key = gw.create_key("hookchan", "1001");
    let publisher = support::ffmpeg_publish_rtmp(&gw.rtmp_url(&key), 4, &["-tune", "zerolatency"]);
    wait_exit(publisher, Duration::from_secs(20));

    let seen = rx.wait(Duration::from_secs(30), |s| {
        [1, 4, 2]
            .iter()
            .all(|t| s.iter().any(|x| x.body["eventType"] == *t))
    });
    assert!(seen.iter().all(|s| s.signatures_ok));
    let pos = |t: u32| {
        seen.iter()
            .position(|x| x.body["eventType"] == t)
            .unwrap_or(usize::MAX)
    };
    // Deliveries run in parallel, so arrival order is not event order (the docs warn
    // receivers of that too); notice IDs are issued in event order.
    let seq = |t: u32| -> u64 {
        let id = seen[pos(t)].body["noticeId"].as_str().unwrap();
        id.rsplit(':').next().unwrap().parse().unwrap()
    };
    assert!(seq(1) < seq(4) && seq(4) < seq(2), "order: {seen:#?}");
    let connected = &seen[pos(1)].body;
    let sid = connected["sid"].as_str().unwrap().to_string();
    assert!(
        seen.iter().all(|s| s.body["sid"] == sid),
        "one session: {seen:#?}"
    );
    assert_eq!(connected["payload"]["rtcInfo"]["channel"], "hookchan");
    assert_eq!(connected["payload"]["rtcInfo"]["uid"], "1001");
    assert_eq!(connected["payload"]["streamKey"], key);
    let profile = &seen[pos(4)].body["payload"];
    assert!(
        profile["videoProfile"]["width"].as_u64().unwrap_or(0) > 0,
        "{profile}"
    );
    let stats = &seen[pos(2)].body["payload"]["streamStats"];
    assert!(
        stats["inputVideoBytes"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );

    // A key that is not a key: aborted with code 1 (illegal) or 2 (expired/deleted).
    let before = rx.seen().len();
    let bad =
        support::ffmpeg_publish_rtmp(&gw.rtmp_url("notARealStreamKeyAtAll0123456789"), 2, &[]);
    wait_exit(bad, Duration::from_secs(20));
    let seen = rx.wait(Duration::from_secs(20), |s| {
        s[before..].iter().any(|x| x.body["eventType"] == 3)
    });
    let aborted = seen[before..]
        .iter()
        .find(|x| x.body["eventType"] == 3)
        .unwrap();
    let code = aborted.body["payload"]["errorCode"].as_u64().unwrap();
    assert!(code == 1 || code == 2, "{:?}", aborted.body);
    assert!(aborted.signatures_ok);

    // The log never shows the whole stream key.
    assert!(
        !gw.log().contains(&key),
        "stream key in the log:\n{}",
        gw.log()
    );
}
