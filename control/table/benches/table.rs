//! Hot-path costs of the table: the dataplane's lookups at connect time and its stats/event
//! writes, on a keys region filled to about half of the default 65536 slots.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use sluice_table::{AppRecord, Capacities, Event, EventKind, KeyRecord, StreamStats, Table};

fn bench(c: &mut Criterion) {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("sluice-bench-{}.table", std::process::id()));
    let t = Table::create_or_open(&path, &Capacities::default()).unwrap();
    for i in 0..32_000 {
        t.put_key(&KeyRecord {
            key: format!("rest-key-{i:08}-abcdefghijklmnop"),
            app_id: "demoapp".into(),
            channel: format!("channel-{i}"),
            uid: i.to_string(),
            expires_at: 0,
            created_at: 1_700_000_000,
            template_id: None,
        })
        .unwrap();
    }
    for i in 0..32 {
        t.put_app(&AppRecord {
            id: format!("app{i}"),
            certificate_hex: "0123456789abcdef0123456789abcdef".into(),
            domains: vec![format!("ingest{i}.example.com")],
            ..Default::default()
        })
        .unwrap();
    }
    c.bench_function("table/key_hit", |b| {
        b.iter(|| t.key(black_box("rest-key-00012345-abcdefghijklmnop")))
    });
    c.bench_function("table/key_miss", |b| {
        b.iter(|| t.key(black_box("no-such-key-abcdefghijklmnop")))
    });
    c.bench_function("table/app_last_of_32", |b| {
        b.iter(|| t.app(black_box("app31")))
    });
    c.bench_function("table/is_revoked_miss", |b| {
        b.iter(|| t.is_revoked(black_box("app1"), black_box("local-key")))
    });
    let slot = t.claim_stats_slot().unwrap();
    let stats = StreamStats {
        sid: "sid".into(),
        app_id: "demoapp".into(),
        channel: "channel".into(),
        video_params: vec![vec![0x67; 30], vec![0x68; 6]],
        ..Default::default()
    };
    c.bench_function("table/write_stats", |b| {
        b.iter(|| t.write_stats(slot, black_box(&stats)))
    });
    let event = Event {
        kind: EventKind::Connected,
        at_ms: 1,
        sid: "sid".into(),
        app_id: "demoapp".into(),
        channel: "channel".into(),
        uid: "1".into(),
        stream_key: "key".into(),
        domain: "ingest.example.com".into(),
        protocol: "rtmp".into(),
        begin_at_ms: 1,
        error_code: 0,
        reason: String::new(),
        stats: None,
    };
    c.bench_function("table/push_event", |b| {
        b.iter(|| t.push_event(black_box(&event)))
    });
    drop(t);
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
