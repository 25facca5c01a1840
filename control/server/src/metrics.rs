//! `/metrics`: the Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//!
//! Hand-written rather than through a metrics crate: every series is either a snapshot read
//! at scrape time (streams, dataplane counters, table generation, heartbeat) or one of a few
//! counters kept here, so a registry would add a dependency without removing code. The
//! format's only subtleties are label-value escaping ([`escape`]) and one `# TYPE` line per
//! family, both handled by [`Exposition`].

use crate::table::{StatsSource, StreamStatus};
use crate::webhook::WebhookCounters;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Distinct (method, route, status) series kept for REST requests. Routes are templates,
/// not raw paths, so the set is small; the cap guards against a bug that would label by raw
/// path.
pub const MAX_REST_SERIES: usize = 1024;

/// REST request counters by (method, route template, status).
#[derive(Debug, Default)]
pub struct RestCounters {
    by_key: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl RestCounters {
    /// Counts one answered request.
    pub fn record(&self, method: &str, route: &str, status: u16) {
        let Ok(mut m) = self.by_key.lock() else {
            return;
        };
        let key = (method.to_string(), route.to_string(), status);
        if let Some(v) = m.get_mut(&key) {
            *v = v.wrapping_add(1);
        } else if m.len() < MAX_REST_SERIES {
            m.insert(key, 1);
        }
    }

    /// A copy of every series.
    pub fn snapshot(&self) -> Vec<((String, String, u16), u64)> {
        self.by_key
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// Escapes a label value: backslash, double quote and newline (exposition format rules).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Builds an exposition: families with HELP/TYPE once, then samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Everything `/metrics` reports, rendered at scrape time.
pub fn render(
    stats: &dyn StatsSource,
    rest: &RestCounters,
    hooks: &WebhookCounters,
    now_ms: u64,
) -> String {
    let mut x = Exposition::default();
    let streams = stats.streams();

    // Per stream. Labels: app, sid, channel, uid, protocol (sids are per push, so series
    // churn with reconnects; the per-app families below are the ones to alert on).
    type Get = fn(&crate::table::StreamInfo) -> Option<u64>;
    let per_stream: [(&str, &str, &str, Get); 9] = [
        (
            "sluice_stream_video_bitrate_kbps",
            "gauge",
            "Measured video ingest bitrate.",
            |s| s.video.as_ref().map(|v| u64::from(v.bitrate_kbps)),
        ),
        (
            "sluice_stream_audio_bitrate_kbps",
            "gauge",
            "Measured audio ingest bitrate.",
            |s| s.audio.as_ref().map(|a| u64::from(a.bitrate_kbps)),
        ),
        (
            "sluice_stream_video_fps",
            "gauge",
            "Ingest video frames per second.",
            |s| s.video.as_ref().map(|v| u64::from(v.fps)),
        ),
        (
            "sluice_stream_bframes",
            "gauge",
            "1 when the ingest video carries B-frames (web viewers may stutter).",
            |s| s.video.as_ref().map(|v| u64::from(v.bframes)),
        ),
        (
            "sluice_stream_viewers",
            "gauge",
            "Active WebRTC viewers.",
            |s| Some(u64::from(s.viewers)),
        ),
        (
            "sluice_stream_forwarders",
            "gauge",
            "Active RTP forwarders.",
            |s| Some(u64::from(s.forwarders)),
        ),
        (
            "sluice_stream_running",
            "gauge",
            "1 once media flows, 0 while only connected.",
            |s| Some(u64::from(s.status == StreamStatus::Running)),
        ),
        (
            "sluice_stream_ingest_bytes_total",
            "counter",
            "Bytes received (audio + video).",
            |s| Some(s.bytes_in_video.wrapping_add(s.bytes_in_audio)),
        ),
        (
            "sluice_stream_egress_bytes_total",
            "counter",
            "Bytes sent to all egress (audio + video).",
            |s| Some(s.bytes_out_video.wrapping_add(s.bytes_out_audio)),
        ),
    ];
    for (name, kind, help, get) in per_stream {
        x.family(name, kind, help);
        for s in &streams {
            if let Some(v) = get(s) {
                x.sample(
                    name,
                    &[
                        ("app", &s.app_id),
                        ("sid", &s.sid),
                        ("channel", &s.channel),
                        ("uid", &s.uid),
                        ("protocol", &s.protocol),
                    ],
                    v,
                );
            }
        }
    }

    // Per app.
    let mut apps: BTreeMap<&str, [u64; 5]> = BTreeMap::new();
    for s in &streams {
        let a = apps.entry(s.app_id.as_str()).or_default();
        a[0] = a[0].saturating_add(1);
        let kbps = s.video.as_ref().map_or(0, |v| v.bitrate_kbps)
            + s.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
        a[1] = a[1].saturating_add(u64::from(kbps));
        a[2] = a[2].saturating_add(u64::from(s.viewers));
        a[3] = a[3].saturating_add(u64::from(s.forwarders));
        a[4] = a[4].saturating_add(u64::from(s.video.as_ref().is_some_and(|v| v.bframes)));
    }
    let per_app = [
        ("sluice_app_streams", "Live streams."),
        (
            "sluice_app_ingest_bitrate_kbps",
            "Sum of live streams' ingest bitrates.",
        ),
        ("sluice_app_viewers", "WebRTC viewers of the app's streams."),
        (
            "sluice_app_forwarders",
            "RTP forwarders of the app's streams.",
        ),
        (
            "sluice_app_bframe_streams",
            "Live streams carrying B-frames.",
        ),
    ];
    for (i, (name, help)) in per_app.iter().enumerate() {
        x.family(name, "gauge", help);
        for (app, v) in &apps {
            x.sample(name, &[("app", app)], v.get(i).copied().unwrap_or(0));
        }
    }

    x.family(
        "sluice_dataplane_events_total",
        "counter",
        "Dataplane-wide counters from the table (refusals by reason, protocol errors, handshake timeouts, egress drops, per-IP refusals, connections).",
    );
    for (c, v) in stats.counters() {
        x.sample("sluice_dataplane_events_total", &[("counter", &c)], v);
    }

    let hb = stats.dataplane_heartbeat_ms();
    x.single(
        "sluice_dataplane_up",
        "gauge",
        "1 when the dataplane heartbeat is younger than 5 s.",
        u64::from(hb != 0 && now_ms.saturating_sub(hb) <= crate::table_shm::DATAPLANE_STALE_MS),
    );
    x.family(
        "sluice_dataplane_heartbeat_age_seconds",
        "gauge",
        "Age of the dataplane's last heartbeat in the table (absent before the first one).",
    );
    if hb != 0 {
        let age = now_ms.saturating_sub(hb);
        x.sample(
            "sluice_dataplane_heartbeat_age_seconds",
            &[],
            format_args!("{}.{:03}", age / 1000, age % 1000),
        );
    }
    x.single(
        "sluice_table_generation",
        "gauge",
        "Config generation of the shared-memory table (bumped by every config write).",
        stats.table_generation(),
    );

    x.family(
        "sluice_rest_requests_total",
        "counter",
        "REST requests by method, route template and status.",
    );
    for ((m, r, st), v) in rest.snapshot() {
        x.sample(
            "sluice_rest_requests_total",
            &[("method", &m), ("route", &r), ("status", &st.to_string())],
            v,
        );
    }

    let [queued, delivered, attempts_failed, failed, dropped] = hooks.snapshot();
    x.single(
        "sluice_webhook_notices_queued_total",
        "counter",
        "Webhook notices queued for a receiver.",
        queued,
    );
    x.single(
        "sluice_webhook_deliveries_total",
        "counter",
        "Webhook notices a receiver accepted with HTTP 200.",
        delivered,
    );
    x.single(
        "sluice_webhook_attempt_failures_total",
        "counter",
        "Webhook attempts that failed (non-200, timeout, connection error).",
        attempts_failed,
    );
    x.single(
        "sluice_webhook_failures_total",
        "counter",
        "Webhook notices given up after the last retry.",
        failed,
    );
    x.single(
        "sluice_webhook_dropped_total",
        "counter",
        "Webhook notices dropped because the delivery queue was full.",
        dropped,
    );
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{MemoryTable, StreamInfo, VideoInfo};

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn renders_streams_rest_and_webhooks() {
        let t = MemoryTable::new();
        t.set_streams(vec![StreamInfo {
            sid: "S1".into(),
            app_id: "app".into(),
            channel: "c\"h".into(),
            uid: "7".into(),
            protocol: "rtmp".into(),
            video: Some(VideoInfo {
                bitrate_kbps: 2500,
                fps: 30,
                bframes: true,
                ..VideoInfo::default()
            }),
            viewers: 3,
            bytes_in_video: 10,
            bytes_in_audio: 5,
            ..StreamInfo::default()
        }]);
        let rest = RestCounters::default();
        rest.record("GET", "/healthz", 200);
        rest.record("GET", "/healthz", 200);
        let hooks = WebhookCounters::default();
        hooks
            .delivered
            .fetch_add(4, std::sync::atomic::Ordering::Relaxed);
        let text = render(&t, &rest, &hooks, 1000);
        assert!(text.contains(
            "sluice_stream_video_bitrate_kbps{app=\"app\",sid=\"S1\",channel=\"c\\\"h\",uid=\"7\",protocol=\"rtmp\"} 2500\n"
        ), "{text}");
        assert!(text.contains("sluice_stream_ingest_bytes_total{app=\"app\""));
        assert!(text.contains(" 15\n"));
        assert!(text.contains("sluice_app_streams{app=\"app\"} 1\n"));
        assert!(text.contains("sluice_app_bframe_streams{app=\"app\"} 1\n"));
        assert!(text.contains(
            "sluice_rest_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
        ));
        assert!(text.contains("sluice_webhook_deliveries_total 4\n"));
        assert!(text.contains("sluice_dataplane_up 0\n"));
        // Every family is declared once and every sample line belongs to a declared family.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_string()), "{name} twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "undeclared {name}");
            }
        }
    }

    #[test]
    fn rest_series_are_capped() {
        let rest = RestCounters::default();
        for i in 0..(MAX_REST_SERIES + 10) {
            rest.record("GET", &format!("/r{i}"), 200);
        }
        assert_eq!(rest.snapshot().len(), MAX_REST_SERIES);
    }
}
