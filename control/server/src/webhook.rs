//! Webhooks: dataplane events turned into Agora-style notifications (api-digest §5
//! "Webhooks", and its decisions section: the body field is `productId`, unknown abort codes
//! pass through).
//!
//! Each event becomes one notice `{noticeId, productId: 10, eventType, notifyMs, sid, payload}`,
//! POSTed as JSON to every configured receiver whose `events` and `apps` filters accept it,
//! with `Agora-Signature` = hex HMAC-SHA1(secret, raw body) and `Agora-Signature-V2` = hex
//! HMAC-SHA256(secret, raw body). A receiver that does not answer 200 within the timeout is
//! retried after 1 s, 3 s and 6 s (three retries), then the notice is counted as failed.
//!
//! Delivery never blocks the API: [`Webhooks::submit`] only `try_send`s into a bounded queue
//! ([`QUEUE_CAP`]; overflow is counted in [`WebhookCounters::dropped`]). A dedicated thread runs
//! a small tokio runtime that takes notices off the queue and runs up to [`MAX_IN_FLIGHT`]
//! deliveries at once; each HTTP exchange is a blocking `ureq` call on that runtime's blocking
//! pool. `ureq` was chosen over a hyper client because it is small, has rustls (ring backend)
//! built in for HTTPS receivers, and a blocking call per attempt is all a webhook needs.

use crate::config::WebhookConfig;
use crate::table::{EventInfo, EventKind};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `productId` of Media Gateway notifications.
pub const PRODUCT_ID: u32 = 10;
/// Notices waiting for delivery. Bounds memory when receivers are slow or down; a full queue
/// drops the new notice and counts it.
pub const QUEUE_CAP: usize = 1024;
/// Deliveries (including their back-off sleeps) in progress at once. Bounds threads of the
/// blocking pool and sockets held open towards slow receivers.
pub const MAX_IN_FLIGHT: usize = 32;
/// How long a receiver has to answer 200 (api-digest §5: "must return 200 within 10 s").
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Delays before the three retries, as the notification docs recommend.
pub const DEFAULT_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(6),
];

/// Timing of deliveries; tests shorten it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Whole-exchange timeout of one attempt.
    pub timeout: Duration,
    /// Delay before each retry; its length is the number of retries.
    pub backoff: Vec<Duration>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            timeout: DEFAULT_TIMEOUT,
            backoff: DEFAULT_BACKOFF.to_vec(),
        }
    }
}

/// Delivery counters, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Notices queued for a receiver.
    pub queued: AtomicU64,
    /// Notices a receiver accepted (HTTP 200).
    pub delivered: AtomicU64,
    /// Attempts that failed (non-200, timeout, connection error), retried or not.
    pub attempts_failed: AtomicU64,
    /// Notices given up after the last retry.
    pub failed: AtomicU64,
    /// Notices dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl WebhookCounters {
    /// `(queued, delivered, attempts_failed, failed, dropped)`.
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.queued.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
            self.attempts_failed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        ]
    }
}

/// Hex `(HMAC-SHA1, HMAC-SHA256)` of `body` under `secret`: the `Agora-Signature` and
/// `Agora-Signature-V2` header values.
pub fn signatures(secret: &[u8], body: &[u8]) -> (String, String) {
    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; an empty MAC would
    // only make the receiver refuse the notice.
    let v1 = Hmac::<sha1::Sha1>::new_from_slice(secret)
        .map(|mut m| {
            m.update(body);
            hex(&m.finalize().into_bytes())
        })
        .unwrap_or_default();
    let v2 = Hmac::<sha2::Sha256>::new_from_slice(secret)
        .map(|mut m| {
            m.update(body);
            hex(&m.finalize().into_bytes())
        })
        .unwrap_or_default();
    (v1, v2)
}

/// Formats Unix milliseconds as RFC 3339 in UTC (`2024-01-01T01:01:01.001Z`), the `beginAt`
/// and `endAt` form of notification payloads.
pub fn rfc3339(ms: u64) -> String {
    let s = crate::time::format_begin_at(ms);
    format!("{}Z", s.replacen(' ', "T", 1))
}

/// GOP as notifications report it: ms rounded to the nearest 1000, at least 1000.
pub fn rounded_gop_ms(gop_ms: u32) -> u32 {
    let r = gop_ms.saturating_add(500) / 1000 * 1000;
    r.max(1000)
}

/// The notice body for `e` (api-digest §5 payload shapes per event type).
pub fn notice_body(e: &EventInfo, region: &str, notice_id: &str, notify_ms: u64) -> Value {
    let mut p = json!({
        "sid": e.sid,
        "region": region,
        "domain": e.domain,
        "streamKey": e.stream_key,
        "rtcInfo": {"channel": e.channel, "uid": e.uid},
        "beginAt": rfc3339(if e.begin_at_ms == 0 { e.at_ms } else { e.begin_at_ms }),
    });
    let put = |p: &mut Value, k: &str, v: Value| {
        if let Some(o) = p.as_object_mut() {
            o.insert(k.to_string(), v);
        }
    };
    match e.kind {
        EventKind::Connected => {
            // Sluice passes media through untranscoded unless a template says otherwise.
            put(
                &mut p,
                "transcoding",
                json!({"audio": {"enabled": false}, "video": {"enabled": false}}),
            );
        }
        EventKind::Disconnected => {
            let s = e.stats.clone().unwrap_or_default();
            put(
                &mut p,
                "streamStats",
                json!({
                    "inputAudioBytes": s.bytes_in_audio,
                    "inputVideoBytes": s.bytes_in_video,
                    "outputAudioBytes": s.bytes_out_audio,
                    "outputVideoBytes": s.bytes_out_video,
                }),
            );
            put(&mut p, "endAt", json!(rfc3339(e.at_ms)));
        }
        EventKind::Aborted => {
            // Codes outside 1..=10 pass through unchanged (the docs' own example uses 100).
            put(&mut p, "errorCode", json!(e.error_code));
            put(&mut p, "reason", json!(e.reason));
        }
        EventKind::ProfileUpdated => {
            let s = e.stats.clone().unwrap_or_default();
            if let Some(v) = &s.video {
                put(
                    &mut p,
                    "videoProfile",
                    json!({"codec": v.codec, "width": v.width, "height": v.height,
                        "gop": rounded_gop_ms(v.gop_ms)}),
                );
            }
            if let Some(a) = &s.audio {
                put(
                    &mut p,
                    "audioProfile",
                    json!({"sampleRate": a.sample_rate, "channels": a.channels}),
                );
            }
        }
    }
    json!({
        "noticeId": notice_id,
        "productId": PRODUCT_ID,
        "eventType": e.kind.code(),
        "notifyMs": notify_ms,
        "sid": e.sid,
        "payload": p,
    })
}

/// Whether receiver `w` wants event `e` (empty filters accept everything).
pub fn wants(w: &WebhookConfig, e: &EventInfo) -> bool {
    (w.events.is_empty() || w.events.contains(&e.kind.code()))
        && (w.apps.is_empty() || w.apps.contains(&e.app_id))
}

/// One notice for one receiver.
struct Job {
    url: String,
    secret: String,
    notice_id: String,
    sid: String,
    body: Arc<[u8]>,
}

/// The webhook dispatcher: cheap to call from any thread, delivers in the background.
pub struct Webhooks {
    hooks: Vec<WebhookConfig>,
    region: String,
    tx: Option<tokio::sync::mpsc::Sender<Job>>,
    counters: Arc<WebhookCounters>,
    /// Random per-process prefix + sequence: notice IDs stay unique across restarts.
    id_prefix: u64,
    seq: AtomicU64,
}

impl Webhooks {
    /// A dispatcher that delivers nothing (no receivers configured).
    pub fn disabled() -> Webhooks {
        Webhooks {
            hooks: Vec::new(),
            region: String::new(),
            tx: None,
            counters: Arc::default(),
            id_prefix: 0,
            seq: AtomicU64::new(0),
        }
    }

    /// Starts the delivery thread for `hooks` (nothing is started when there are none).
    pub fn start(hooks: Vec<WebhookConfig>, region: &str, policy: DeliveryPolicy) -> Webhooks {
        let mut w = Webhooks::disabled();
        w.region = region.to_string();
        w.id_prefix = rand::random();
        if hooks.is_empty() {
            return w;
        }
        w.hooks = hooks;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_CAP);
        let counters = w.counters.clone();
        let spawned = std::thread::Builder::new()
            .name("sluice-webhooks".into())
            .spawn(move || run_worker(rx, policy, counters));
        match spawned {
            Ok(_) => w.tx = Some(tx),
            Err(e) => tracing::error!("webhooks disabled: cannot start the delivery thread: {e}"),
        }
        w
    }

    /// Delivery counters.
    pub fn counters(&self) -> &WebhookCounters {
        &self.counters
    }

    /// Queues the notice for `e` to every interested receiver; never blocks.
    pub fn submit(&self, e: &EventInfo) {
        let Some(tx) = &self.tx else { return };
        let targets: Vec<&WebhookConfig> = self.hooks.iter().filter(|w| wants(w, e)).collect();
        if targets.is_empty() {
            return;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let notice_id = format!("{:016x}:{seq}", self.id_prefix);
        let body = notice_body(e, &self.region, &notice_id, crate::time::now_ms());
        let body: Arc<[u8]> = serde_json::to_vec(&body).unwrap_or_default().into();
        for w in targets {
            let job = Job {
                url: w.url.clone(),
                secret: w.secret.clone(),
                notice_id: notice_id.clone(),
                sid: e.sid.clone(),
                body: body.clone(),
            };
            match tx.try_send(job) {
                Ok(()) => {
                    self.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        notice = %notice_id, sid = %e.sid, url = %w.url,
                        "webhook queue full: notice dropped"
                    );
                }
            }
        }
    }
}

fn run_worker(
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    policy: DeliveryPolicy,
    counters: Arc<WebhookCounters>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .max_blocking_threads(MAX_IN_FLIGHT)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("webhooks disabled: cannot build the delivery runtime: {e}");
            return;
        }
    };
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(policy.timeout))
            .http_status_as_error(false)
            .build(),
    );
    let policy = Arc::new(policy);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    rt.block_on(async move {
        while let Some(job) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (agent, policy, counters) = (agent.clone(), policy.clone(), counters.clone());
            tokio::spawn(async move {
                deliver(job, &agent, &policy, &counters).await;
                drop(permit);
            });
        }
    });
}

/// One attempt: the HTTP status, or why there was none.
fn post(agent: &ureq::Agent, job: &Job) -> Result<u16, String> {
    let (v1, v2) = signatures(job.secret.as_bytes(), &job.body);
    agent
        .post(&job.url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Agora-Signature", &v1)
        .header("Agora-Signature-V2", &v2)
        .send(&job.body[..])
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

async fn deliver(job: Job, agent: &ureq::Agent, policy: &DeliveryPolicy, c: &WebhookCounters) {
    let job = Arc::new(job);
    let attempts = policy.backoff.len().saturating_add(1);
    for attempt in 0..attempts {
        let (a, j) = (agent.clone(), job.clone());
        let outcome = tokio::task::spawn_blocking(move || post(&a, &j))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match outcome {
            Ok(200) => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(notice = %job.notice_id, sid = %job.sid, url = %job.url, attempt, "webhook delivered");
                return;
            }
            other => {
                c.attempts_failed.fetch_add(1, Ordering::Relaxed);
                let why = match other {
                    Ok(status) => format!("HTTP {status}"),
                    Err(e) => e,
                };
                tracing::warn!(notice = %job.notice_id, sid = %job.sid, url = %job.url, attempt, "webhook attempt failed: {why}");
            }
        }
        if let Some(d) = policy.backoff.get(attempt) {
            tokio::time::sleep(*d).await;
        }
    }
    c.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(notice = %job.notice_id, sid = %job.sid, url = %job.url, "webhook given up after {attempts} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{AudioInfo, StreamInfo, VideoInfo};

    fn event(kind: EventKind) -> EventInfo {
        EventInfo {
            kind,
            at_ms: 1_704_070_871_001,
            sid: "S1".into(),
            app_id: "app".into(),
            channel: "ch".into(),
            uid: "1001".into(),
            error_code: 0,
            reason: String::new(),
            stream_key: "KEY".into(),
            domain: "ingest.example.com:1935".into(),
            protocol: "rtmp".into(),
            begin_at_ms: 1_704_070_861_001,
            stats: None,
        }
    }

    #[test]
    fn signatures_match_rfc_2202_and_4231_vectors() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256).
        let (v1, v2) = signatures(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(v1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(
            v2,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn times_and_gop_are_formatted_as_documented() {
        assert_eq!(rfc3339(1_704_070_861_001), "2024-01-01T01:01:01.001Z");
        assert_eq!(rounded_gop_ms(0), 1000);
        assert_eq!(rounded_gop_ms(1499), 1000);
        assert_eq!(rounded_gop_ms(2500), 3000);
        assert_eq!(rounded_gop_ms(u32::MAX), 4_294_967_000);
    }

    #[test]
    fn connected_notice_has_the_envelope_and_common_fields() {
        let b = notice_body(&event(EventKind::Connected), "na", "n:1", 42);
        assert_eq!(b["noticeId"], "n:1");
        assert_eq!(b["productId"], 10);
        assert_eq!(b["eventType"], 1);
        assert_eq!(b["notifyMs"], 42);
        assert_eq!(b["sid"], "S1");
        let p = &b["payload"];
        assert_eq!(p["region"], "na");
        assert_eq!(p["streamKey"], "KEY");
        assert_eq!(p["domain"], "ingest.example.com:1935");
        assert_eq!(p["rtcInfo"]["channel"], "ch");
        assert_eq!(p["rtcInfo"]["uid"], "1001");
        assert_eq!(p["beginAt"], "2024-01-01T01:01:01.001Z");
        assert!(p["transcoding"].is_object());
    }

    #[test]
    fn aborted_passes_unknown_codes_through() {
        let mut e = event(EventKind::Aborted);
        e.error_code = 100;
        e.reason = "something new".into();
        let p = notice_body(&e, "na", "n", 0)["payload"].clone();
        assert_eq!(p["errorCode"], 100);
        assert_eq!(p["reason"], "something new");
    }

    #[test]
    fn disconnected_and_profile_carry_stats() {
        let mut e = event(EventKind::Disconnected);
        e.stats = Some(StreamInfo {
            bytes_in_video: 7,
            bytes_in_audio: 5,
            bytes_out_video: 3,
            bytes_out_audio: 2,
            video: Some(VideoInfo {
                codec: "H264".into(),
                width: 1280,
                height: 720,
                gop_ms: 1900,
                ..VideoInfo::default()
            }),
            audio: Some(AudioInfo {
                sample_rate: 48000,
                channels: 2,
                ..AudioInfo::default()
            }),
            ..StreamInfo::default()
        });
        let p = notice_body(&e, "na", "n", 0)["payload"].clone();
        assert_eq!(p["streamStats"]["inputVideoBytes"], 7);
        assert_eq!(p["streamStats"]["outputAudioBytes"], 2);
        assert_eq!(p["endAt"], "2024-01-01T01:01:11.001Z");
        e.kind = EventKind::ProfileUpdated;
        let p = notice_body(&e, "na", "n", 0)["payload"].clone();
        assert_eq!(p["videoProfile"]["width"], 1280);
        assert_eq!(p["videoProfile"]["gop"], 2000);
        assert_eq!(p["audioProfile"]["sampleRate"], 48000);
        assert!(p.get("streamStats").is_none());
    }

    #[test]
    fn filters_select_events_and_apps() {
        let mut w = WebhookConfig {
            url: "http://x/".into(),
            secret: "s".into(),
            events: Vec::new(),
            apps: Vec::new(),
        };
        let e = event(EventKind::Aborted);
        assert!(wants(&w, &e));
        w.events = vec![1, 2];
        assert!(!wants(&w, &e));
        w.events = vec![3];
        assert!(wants(&w, &e));
        w.apps = vec!["other".into()];
        assert!(!wants(&w, &e));
        w.apps.push("app".into());
        assert!(wants(&w, &e));
    }

    #[test]
    fn full_queue_drops_and_counts() {
        // A receiver on a closed port never answers: the queue fills and overflow is counted.
        let w = Webhooks::start(
            vec![WebhookConfig {
                url: "http://127.0.0.1:9/".into(),
                secret: "s".into(),
                events: Vec::new(),
                apps: Vec::new(),
            }],
            "na",
            DeliveryPolicy {
                timeout: Duration::from_secs(5),
                backoff: vec![Duration::from_secs(60)],
            },
        );
        let total = QUEUE_CAP + MAX_IN_FLIGHT + 100;
        for _ in 0..total {
            w.submit(&event(EventKind::Connected));
        }
        let [queued, _, _, _, dropped] = w.counters().snapshot();
        assert_eq!(queued + dropped, total as u64);
        assert!(dropped >= 1, "dropped {dropped}");
    }
}
