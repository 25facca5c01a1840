//! The server wired to the real shared-memory table (`sluice_table::Table`): configuration
//! written through the API is readable by a second mapping (as the dataplane would), stats and
//! events written there come back through the API, and a restart rebuilds the table.

mod common;

use common::*;
use serde_json::json;
use sluice_table as t;

fn start(dir: tempfile::TempDir) -> (Srv, std::path::PathBuf) {
    let cfg = test_config(dir.path());
    let path = cfg.table.path.clone();
    (Srv::start_real(dir, cfg), path)
}

#[test]
fn api_writes_reach_the_table_and_stats_come_back() {
    let (s, path) = start(tempfile::tempdir().unwrap());
    let r = s.call(
        "POST",
        "/streamkeys",
        Some(json!({"settings": {"channel": "ch", "uid": "7", "expiresAfter": 60}})),
    );
    assert_eq!(r.status, 200);
    let key = r.json()["data"]["streamKey"].as_str().unwrap().to_string();
    s.call(
        "PUT",
        "/stream-templates/t1",
        Some(json!({"settings": {"transcoding": {}}})),
    );
    s.call(
        "PUT",
        "/appconfig",
        Some(json!({"settings": {"defaultStreamTemplate": "t1"}})),
    );

    // A second mapping, as the dataplane has.
    let dp = t::Table::open(&path).unwrap();
    let k = dp.key(&key).expect("key in the table");
    assert_eq!(
        (k.app_id.as_str(), k.channel.as_str(), k.uid.as_str()),
        (APP, "ch", "7")
    );
    assert_eq!(k.expires_at, k.created_at + 60);
    assert!(dp.template(APP, "t1").is_some());
    let app = dp.app(APP).unwrap();
    assert_eq!(app.default_template.as_deref(), Some("t1"));
    assert_eq!(app.certificate_hex, CERT);

    // Stats and events published by the "dataplane".
    let slot = dp.claim_stats_slot().unwrap();
    let stats = t::StreamStats {
        sid: "sid-9".into(),
        app_id: APP.into(),
        channel: "ch".into(),
        uid: "7".into(),
        url: "h/live/k".into(),
        protocol: "rtmp".into(),
        status: t::StreamStatus::Running,
        begin_at_ms: 1_704_070_861_001,
        video: Some(t::VideoStats {
            codec: "H.264".into(),
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 800,
            ..Default::default()
        }),
        ..Default::default()
    };
    dp.dataplane_heartbeat(sluice::time::now_ms());
    dp.write_stats(slot, &stats).unwrap();
    let l = s.call("GET", "/online-streams", None).json();
    assert_eq!(l["data"][0]["sid"], "sid-9");
    assert_eq!(l["data"][0]["video"]["width"], 640);
    dp.push_event(&t::Event {
        kind: t::EventKind::Aborted,
        at_ms: 5,
        sid: "sid-9".into(),
        app_id: APP.into(),
        channel: "ch".into(),
        uid: "7".into(),
        stream_key: key.clone(),
        domain: String::new(),
        protocol: "rtmp".into(),
        begin_at_ms: 0,
        error_code: 5,
        reason: "conflict".into(),
        stats: None,
    })
    .unwrap();
    let e = s.call("GET", "/events", None).json();
    assert_eq!(e["data"][0]["errorCode"], 5);

    // Kick and mute reach the command region.
    assert_eq!(s.call("DELETE", "/online-streams/sid-9", None).status, 200);
    let cmd = dp
        .commands()
        .into_iter()
        .find(|c| c.sid == "sid-9")
        .unwrap();
    assert_eq!(cmd.kick_seq, 1);

    // Delete reaches the table.
    assert_eq!(
        s.call("DELETE", &format!("/streamkeys/{key}"), None).status,
        200
    );
    assert!(dp.key(&key).is_none());
}

#[test]
fn restart_rebuilds_the_table_from_the_store() {
    let (s, path) = start(tempfile::tempdir().unwrap());
    let r = s.call(
        "POST",
        "/streamkeys",
        Some(json!({"settings": {"channel": "ch", "uid": "7", "expiresAfter": 0}})),
    );
    let key = r.json()["data"]["streamKey"].as_str().unwrap().to_string();
    let dir = s.stop();
    // The table file is lost (e.g. /dev/shm cleared by a reboot).
    std::fs::remove_file(&path).unwrap();
    let (s2, path2) = start(dir);
    let dp = t::Table::open(&path2).unwrap();
    assert!(dp.key(&key).is_some(), "rebuilt from the store");
    assert!(dp.app(APP).is_some());
    drop(s2);
}

fn event(sid: &str) -> t::Event {
    t::Event {
        kind: t::EventKind::Connected,
        at_ms: 5,
        sid: sid.into(),
        app_id: APP.into(),
        channel: "ch".into(),
        uid: "7".into(),
        stream_key: "k".into(),
        domain: String::new(),
        protocol: "rtmp".into(),
        begin_at_ms: 1,
        error_code: 0,
        reason: String::new(),
        stats: None,
    }
}

#[test]
fn event_cursor_survives_a_control_restart() {
    use sluice::table::StatsSource;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.table");
    let cursor = dir.path().join("event-cursor");
    let open =
        || sluice::table_shm::ShmTable::open_with_cursor(&table, Some(cursor.clone())).unwrap();
    let control = open();
    let dp = t::Table::open(&table).unwrap();
    dp.push_event(&event("a")).unwrap();
    dp.push_event(&event("b")).unwrap();
    let (got, lost) = control.poll_events();
    assert_eq!((got.len(), lost), (2, 0));
    assert_eq!(std::fs::read_to_string(&cursor).unwrap(), "2");
    drop(control);

    // While control is down the dataplane publishes one more; a restarted control sees only
    // that one (no duplicate webhooks for a and b).
    dp.push_event(&event("c")).unwrap();
    let control = open();
    let (got, _) = control.poll_events();
    let sids: Vec<&str> = got.iter().map(|e| e.sid.as_str()).collect();
    assert_eq!(sids, ["c"]);
}

#[test]
fn dataplane_counters_and_generation_reach_metrics() {
    let (s, path) = start(tempfile::tempdir().unwrap());
    let dp = t::Table::open(&path).unwrap();
    dp.add_counter(t::Counter::RefusedIllegalKey, 3);
    dp.add_counter(t::Counter::EgressDrops, 7);
    dp.dataplane_heartbeat(sluice::time::now_ms());
    let r = raw(s.addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("sluice_dataplane_events_total{counter=\"refused_illegal_key\"} 3\n"),
        "{text}"
    );
    assert!(text.contains("sluice_dataplane_events_total{counter=\"egress_drops\"} 7\n"));
    assert!(text.contains("sluice_dataplane_up 1\n"));
    let generation = dp.generation();
    assert!(text.contains(&format!("sluice_table_generation {generation}\n")));
}
