use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize};

/// A unique table path under the temp dir, removed on drop.
pub(crate) struct TempPath(pub PathBuf);

impl TempPath {
    pub(crate) fn new(tag: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!(
            "sluice-table-test-{}-{tag}-{n}.table",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn small() -> Capacities {
    Capacities {
        apps: 4,
        keys: 16,
        revocations: 8,
        templates: 4,
        forwarders: 4,
        commands: 4,
        stats: 4,
        events: 8,
    }
}

fn app(id: &str, n: u32) -> AppRecord {
    AppRecord {
        id: id.into(),
        certificate_hex: "0123456789abcdef0123456789abcdef".into(),
        domains: vec![format!("d{n}.example.com")],
        max_streams: n,
        ..Default::default()
    }
}

fn key(k: &str) -> KeyRecord {
    KeyRecord {
        key: k.into(),
        app_id: "app".into(),
        channel: format!("ch-{k}"),
        uid: "42".into(),
        expires_at: 0,
        created_at: 1,
        template_id: None,
    }
}

fn event(n: u64) -> Event {
    Event {
        kind: EventKind::Connected,
        at_ms: n,
        sid: format!("sid{n}"),
        app_id: "app".into(),
        channel: "c".into(),
        uid: "1".into(),
        stream_key: "k".into(),
        domain: "d".into(),
        protocol: "rtmp".into(),
        begin_at_ms: n,
        error_code: 0,
        reason: String::new(),
        stats: None,
    }
}

#[test]
fn table_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Table>();
}

#[test]
fn create_sets_mode_0600_and_dataplane_opens_it() {
    let p = TempPath::new("mode");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    assert!(t.was_created());
    assert!(!Table::create_or_open(&p.0, &small()).unwrap().was_created());
    let mode = std::fs::metadata(&p.0).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let d = Table::open(&p.0).unwrap();
    assert_eq!(d.capacities(), t.capacities());
    assert_eq!(d.capacities().keys, 16);
    assert!(!d.is_replaced());
    assert_eq!(d.generation(), 0);
}

#[test]
fn abi_mismatch_and_garbage_are_refused() {
    let p = TempPath::new("abi");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    t.header(layout::word::ABI).store(
        7 | (u64::from(layout::HEADER_BYTES) << 32),
        Ordering::Release,
    );
    match Table::open(&p.0) {
        Err(
            e @ TableError::AbiMismatch {
                found: 7,
                expected: layout::ABI_VERSION,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(
                msg.contains("ABI version 7") && msg.contains("version 1"),
                "{msg}"
            );
        }
        other => panic!("expected ABI mismatch, got {other:?}"),
    }
    std::fs::write(&p.0, vec![0u8; 8192]).unwrap();
    assert!(matches!(
        Table::open(&p.0),
        Err(TableError::NotATable { .. })
    ));
    std::fs::write(&p.0, b"short").unwrap();
    assert!(matches!(
        Table::open(&p.0),
        Err(TableError::NotATable { .. })
    ));
    let missing = TempPath::new("missing");
    assert!(matches!(
        Table::open(&missing.0),
        Err(TableError::Io { .. })
    ));
}

#[test]
fn corrupt_layout_is_refused() {
    let p = TempPath::new("corrupt");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    // Region 7 (events) claims a capacity far past the end of the file.
    t.header(layout::word::REGIONS + 15).store(
        u64::from(layout::EVENT_SLOT_BYTES) | (1 << 60),
        Ordering::Release,
    );
    assert!(matches!(
        Table::open(&p.0),
        Err(TableError::CorruptLayout { .. })
    ));
}

#[test]
fn control_replaces_a_mismatched_file_and_old_mappers_notice() {
    let p = TempPath::new("replace");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    t.put_app(&app("a", 1)).unwrap();
    // Same capacities: the existing file is reused, content kept.
    let again = Table::create_or_open(&p.0, &small()).unwrap();
    assert!(!t.is_replaced());
    assert_eq!(again.app("a"), Some(app("a", 1)));
    // Different capacities: a fresh file replaces it.
    let bigger = Capacities { apps: 8, ..small() };
    let fresh = Table::create_or_open(&p.0, &bigger).unwrap();
    assert!(t.is_replaced());
    assert_eq!(fresh.capacities().apps, 8);
    assert_eq!(fresh.app("a"), None);
    // Old ABI: replaced too (control owns the file).
    fresh.header(layout::word::ABI).store(
        99 | (u64::from(layout::HEADER_BYTES) << 32),
        Ordering::Release,
    );
    let fixed = Table::create_or_open(&p.0, &bigger).unwrap();
    assert!(Table::open(&p.0).is_ok());
    assert_eq!(fixed.generation(), 0);
    assert!(matches!(
        Table::create_or_open(&p.0, &Capacities { apps: 0, ..small() }),
        Err(TableError::InvalidCapacities(_))
    ));
}

#[test]
fn apps_put_update_remove() {
    let p = TempPath::new("apps");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let d = Table::open(&p.0).unwrap();
    t.put_app(&app("a", 1)).unwrap();
    t.put_app(&app("b", 2)).unwrap();
    assert_eq!(d.app("a"), Some(app("a", 1)));
    assert_eq!(d.generation(), 2);
    t.put_app(&app("a", 3)).unwrap();
    assert_eq!(d.app("a"), Some(app("a", 3)));
    assert_eq!(d.apps().len(), 2);
    assert_eq!(
        d.app_by_domain("D3.Example.com").map(|a| a.id),
        Some("a".into())
    );
    assert_eq!(
        d.app_by_domain("d2.example.com").map(|a| a.id),
        Some("b".into())
    );
    assert_eq!(d.app_by_domain("d1.example.com"), None);
    assert!(t.remove_app("a").unwrap());
    assert!(!t.remove_app("a").unwrap());
    assert_eq!(d.app("a"), None);
    assert_eq!(d.generation(), 4);
    for i in 0..3 {
        t.put_app(&app(&format!("x{i}"), i)).unwrap();
    }
    assert!(matches!(
        t.put_app(&app("overflow", 0)),
        Err(TableError::RegionFull {
            region: "apps",
            capacity: 4
        })
    ));
    // Updating an existing one still works when full.
    t.put_app(&app("b", 9)).unwrap();
    assert_eq!(d.app("b").unwrap().max_streams, 9);
}

#[test]
fn oversized_record_is_an_error_not_a_truncation() {
    let p = TempPath::new("big");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let mut a = app("big", 1);
    a.domains = vec!["x".repeat(layout::APP_SLOT_BYTES as usize)];
    assert!(matches!(
        t.put_app(&a),
        Err(TableError::RecordTooLarge { region: "apps", .. })
    ));
    assert_eq!(t.app("big"), None);
    assert_eq!(t.generation(), 0);
}

#[test]
fn keys_probe_tombstone_and_reuse() {
    let p = TempPath::new("keys");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let d = Table::open(&p.0).unwrap();
    let max = max_live(16) as usize;
    let names: Vec<String> = (0..max).map(|i| format!("key-{i}")).collect();
    for k in &names {
        t.put_key(&key(k)).unwrap();
    }
    assert!(matches!(
        t.put_key(&key("one-too-many")),
        Err(TableError::RegionFull { region: "keys", .. })
    ));
    for k in &names {
        assert_eq!(d.key(k), Some(key(k)), "{k}");
    }
    assert_eq!(d.key("absent"), None);
    // Remove every other key: the rest stay reachable across the tombstones.
    for k in names.iter().step_by(2) {
        assert!(t.remove_key(k).unwrap());
    }
    for (i, k) in names.iter().enumerate() {
        assert_eq!(d.key(k).is_some(), i % 2 == 1, "{k}");
    }
    // Freed capacity is usable again, and updates happen in place.
    t.put_key(&key("new")).unwrap();
    let mut changed = key("key-1");
    changed.channel = "moved".into();
    t.put_key(&changed).unwrap();
    assert_eq!(d.key("key-1").unwrap().channel, "moved");
    assert_eq!(d.snapshot_config().keys.len(), max / 2 + 1);
    // Remove everything: all slots end up empty or tombstoned, lookups terminate.
    for k in names.iter().chain(std::iter::once(&"new".to_string())) {
        let _ = t.remove_key(k).unwrap();
    }
    assert_eq!(d.key("key-1"), None);
    assert!(d.snapshot_config().keys.is_empty());
    let empties = (0..16)
        .filter(|&i| t.slot(RegionId::Keys, i).read(None, 0).unwrap().state == State::Empty)
        .count();
    assert!(empties > 0, "tombstones before an empty slot are reclaimed");
}

#[test]
fn revocations_by_app_and_key() {
    let p = TempPath::new("revo");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let r = RevocationRecord {
        app_id: "a".into(),
        key: "k".into(),
        until: 5,
    };
    t.put_revocation(&r).unwrap();
    assert!(t.is_revoked("a", "k"));
    assert!(!t.is_revoked("b", "k"));
    assert!(!t.is_revoked("a", "kk"));
    assert!(t.remove_revocation("a", "k").unwrap());
    assert!(!t.is_revoked("a", "k"));
}

#[test]
fn templates_forwarders_commands() {
    let p = TempPath::new("misc");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let tpl = TemplateRecord {
        app_id: "a".into(),
        id: "t".into(),
        settings_json: "{}".into(),
    };
    t.put_template(&tpl).unwrap();
    assert_eq!(t.template("a", "t"), Some(tpl));
    assert_eq!(t.template("b", "t"), None);
    assert!(t.remove_template("a", "t").unwrap());
    assert_eq!(t.template("a", "t"), None);

    let f = ForwarderRecord {
        id: "f".into(),
        app_id: "a".into(),
        sid: "s".into(),
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        video_port: 5004,
        audio_port: 0,
    };
    t.put_forwarder(&f).unwrap();
    assert_eq!(t.forwarders(), vec![f]);
    assert!(t.remove_forwarder("a", "f").unwrap());
    assert!(t.forwarders().is_empty());

    let c = StreamCommand {
        app_id: "a".into(),
        sid: "s".into(),
        kick_seq: 1,
        ..Default::default()
    };
    t.put_command(&c).unwrap();
    let c2 = StreamCommand {
        audio_muted: true,
        ..c.clone()
    };
    t.put_command(&c2).unwrap();
    assert_eq!(t.commands(), vec![c2]);
    assert!(t.remove_command("a", "s").unwrap());
    assert!(!t.remove_command("a", "s").unwrap());
}

#[test]
fn sync_config_converges() {
    let p = TempPath::new("sync");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    t.put_app(&app("keep", 1)).unwrap();
    t.put_app(&app("change", 1)).unwrap();
    t.put_app(&app("drop", 1)).unwrap();
    t.put_key(&key("k-keep")).unwrap();
    t.put_key(&key("k-drop")).unwrap();
    let desired = ConfigSnapshot {
        apps: vec![app("keep", 1), app("change", 2), app("new", 1)],
        keys: vec![key("k-keep"), key("k-new")],
        revocations: vec![RevocationRecord {
            app_id: "a".into(),
            key: "r".into(),
            until: 1,
        }],
        ..Default::default()
    };
    let rep = t.sync_config(&desired).unwrap();
    assert_eq!(
        rep,
        SyncReport {
            upserted: 4,
            removed: 2,
            unchanged: 2
        }
    );
    let mut snap = t.snapshot_config();
    snap.apps.sort_by(|a, b| a.id.cmp(&b.id));
    snap.keys.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want = desired.clone();
    want.apps.sort_by(|a, b| a.id.cmp(&b.id));
    want.keys.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(snap, want);
    // A second sync is a no-op.
    let g = t.generation();
    let rep = t.sync_config(&desired).unwrap();
    assert_eq!(
        rep,
        SyncReport {
            upserted: 0,
            removed: 0,
            unchanged: 6
        }
    );
    assert_eq!(t.generation(), g);
}

#[test]
fn sync_config_turns_over_a_full_region() {
    let p = TempPath::new("turnover");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let old: Vec<_> = (0..4).map(|i| app(&format!("old{i}"), i)).collect();
    let new: Vec<_> = (0..4).map(|i| app(&format!("new{i}"), i)).collect();
    t.sync_config(&ConfigSnapshot {
        apps: old,
        ..Default::default()
    })
    .unwrap();
    let rep = t
        .sync_config(&ConfigSnapshot {
            apps: new.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        rep,
        SyncReport {
            upserted: 4,
            removed: 4,
            unchanged: 0
        }
    );
    let mut got = t.apps();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, new);
}

#[test]
fn sync_config_never_hides_shared_entries() {
    let p = TempPath::new("synchide");
    let caps = Capacities {
        keys: 256,
        apps: 16,
        ..small()
    };
    let t = Table::create_or_open(&p.0, &caps).unwrap();
    // Old: shared-0..40 plus old-0..40; desired: shared (some changed) plus new-0..40.
    for i in 0..40 {
        t.put_key(&key(&format!("shared-{i}"))).unwrap();
        t.put_key(&key(&format!("old-{i}"))).unwrap();
    }
    let mut desired = ConfigSnapshot::default();
    for i in 0..40 {
        let mut k = key(&format!("shared-{i}"));
        if i % 3 == 0 {
            k.channel = "changed".into();
        }
        desired.keys.push(k);
        desired.keys.push(key(&format!("new-{i}")));
    }
    let stop = AtomicBool::new(false);
    let reader = Table::open(&p.0).unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Acquire) || rounds == 0 {
                for i in 0..40 {
                    assert!(
                        reader.key(&format!("shared-{i}")).is_some(),
                        "shared-{i} hidden"
                    );
                }
                rounds += 1;
            }
            rounds
        });
        for _ in 0..20 {
            t.sync_config(&desired).unwrap();
            let mut back = desired.clone();
            back.keys.retain(|k| k.key.starts_with("shared"));
            for i in 0..40 {
                back.keys.push(key(&format!("old-{i}")));
            }
            t.sync_config(&back).unwrap();
        }
        stop.store(true, Ordering::Release);
        assert!(h.join().unwrap() > 0);
    });
}

#[test]
fn stats_claim_write_release_reset() {
    let p = TempPath::new("stats");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let d = Table::open(&p.0).unwrap();
    let slots: Vec<_> = (0..4).map(|_| d.claim_stats_slot().unwrap()).collect();
    assert_eq!(d.claim_stats_slot(), None);
    let mut s = StreamStats {
        sid: "s0".into(),
        video_params: vec![vec![0x67; 600], vec![0x68; 8]],
        ..Default::default()
    };
    d.write_stats(slots[0], &s).unwrap();
    assert_eq!(t.all_stats(), vec![s.clone()]);
    s.status = StreamStatus::Running;
    d.write_stats(slots[0], &s).unwrap();
    assert_eq!(t.all_stats()[0].status, StreamStatus::Running);
    s.video_params = vec![vec![0; layout::STATS_SLOT_BYTES as usize]];
    assert!(matches!(
        d.write_stats(slots[0], &s),
        Err(TableError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        d.write_stats(StatsSlot(99), &s),
        Err(TableError::NoSuchSlot(99))
    ));
    d.release_stats_slot(slots[0]);
    assert!(t.all_stats().is_empty());
    assert_eq!(d.claim_stats_slot(), Some(slots[0]));
    d.write_stats(slots[1], &StreamStats::default()).unwrap();
    d.reset_stats();
    assert!(t.all_stats().is_empty());
    assert_eq!((0..4).filter_map(|_| d.claim_stats_slot()).count(), 4);
}

#[test]
fn events_in_order_with_loss_on_lap() {
    let p = TempPath::new("events");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let d = Table::open(&p.0).unwrap();
    let mut cur = EventCursor::default();
    assert_eq!(t.read_events(&mut cur), EventBatch::default());
    for n in 0..5 {
        d.push_event(&event(n)).unwrap();
    }
    let b = t.read_events(&mut cur);
    assert_eq!(
        b.events.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!((b.lost, cur.next), (0, 5));
    // Lap the reader: 8 slots, 13 more events -> 5 lost, the newest 8 delivered.
    for n in 5..18 {
        d.push_event(&event(n)).unwrap();
    }
    let b = t.read_events(&mut cur);
    assert_eq!(b.lost, 5);
    assert_eq!(
        b.events.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        (10..18).collect::<Vec<_>>()
    );
    assert_eq!(t.event_cursor_at_head().next, 18);
    // A cursor from the future (other table) restarts at the head.
    let mut future = EventCursor { next: 1000 };
    assert!(t.read_events(&mut future).events.is_empty());
    assert_eq!(future.next, 18);
}

#[test]
fn abandoned_event_slot_waits_then_is_skipped_and_repaired() {
    let p = TempPath::new("abandon");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    // A producer claims event 0 and dies before publishing.
    t.header(layout::word::EVENT_HEAD)
        .fetch_add(1, Ordering::AcqRel);
    t.push_event(&event(1)).unwrap();
    let mut cur = EventCursor::default();
    let b = t.read_events(&mut cur);
    assert!(b.events.is_empty(), "ordering: event 1 waits for event 0");
    assert_eq!(cur.next, 0);
    // Dataplane restart repairs it: counted as lost, then event 1 flows.
    t.reset_stats();
    let b = t.read_events(&mut cur);
    assert_eq!((b.lost, b.events.len(), cur.next), (1, 1, 2));
    // Without a restart, a stuck event is skipped once half the ring is past it.
    t.header(layout::word::EVENT_HEAD)
        .fetch_add(1, Ordering::AcqRel);
    for n in 0..5 {
        t.push_event(&event(n)).unwrap();
    }
    let b = t.read_events(&mut cur);
    assert_eq!((b.lost, b.events.len()), (1, 5));
}

#[test]
fn events_from_many_producers() {
    let p = TempPath::new("mpsc");
    let caps = Capacities {
        events: 64,
        ..small()
    };
    let t = Table::create_or_open(&p.0, &caps).unwrap();
    let per = 2000u64;
    let mut seen = [0u32; 4];
    let mut cur = EventCursor::default();
    let mut lost = 0;
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let t = &t;
            let done = &done;
            s.spawn(move || {
                for i in 0..per {
                    t.push_event(&event(th * 1_000_000 + i)).unwrap();
                }
                done.fetch_add(1, Ordering::Release);
            });
        }
        let mut last = [None::<u64>; 4];
        loop {
            let finished = done.load(Ordering::Acquire) == 4;
            let b = t.read_events(&mut cur);
            lost += b.lost;
            for e in b.events {
                let th = (e.at_ms / 1_000_000) as usize;
                let i = e.at_ms % 1_000_000;
                // Per producer, events arrive in the order they were pushed.
                assert!(last[th].is_none_or(|l| i > l), "reordered");
                last[th] = Some(i);
                seen[th] += 1;
            }
            if finished && cur.next == t.event_cursor_at_head().next {
                break;
            }
        }
    });
    let got: u64 = seen.iter().map(|&n| u64::from(n)).sum();
    assert_eq!(got + lost, 4 * per, "every event delivered or counted lost");
}

#[test]
fn heartbeat_round_trips() {
    let p = TempPath::new("hb");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    let d = Table::open(&p.0).unwrap();
    assert_eq!(t.last_dataplane_heartbeat(), 0);
    d.dataplane_heartbeat(1_700_000_000_123);
    assert_eq!(t.last_dataplane_heartbeat(), 1_700_000_000_123);
}

#[test]
fn control_restart_clears_half_written_config_slots() {
    let p = TempPath::new("recover");
    let t = Table::create_or_open(&p.0, &small()).unwrap();
    t.put_app(&app("a", 1)).unwrap();
    t.put_key(&key("k")).unwrap();
    // Simulate a control process that died inside a write of app "a".
    let i = (0..4)
        .find(|&i| t.slot(RegionId::Apps, i).read(None, 0).unwrap().state == State::Occupied)
        .unwrap();
    t.slot(RegionId::Apps, i)
        .seq()
        .fetch_add(1, Ordering::AcqRel);
    // The recorded writer (this process) is alive: readers wait the long patience.
    let started = std::time::Instant::now();
    assert_eq!(
        t.app("a"),
        None,
        "a locked slot reads as absent, never as garbage"
    );
    assert!(started.elapsed() >= slot::LIVE_WRITER_PATIENCE);
    // A writer pid that cannot exist: readers give up after the short patience.
    t.header(layout::word::CONTROL_PID)
        .store(u64::from(u32::MAX), Ordering::Release);
    let started = std::time::Instant::now();
    assert_eq!(t.app("a"), None);
    let waited = started.elapsed();
    assert!(
        waited >= slot::READ_PATIENCE && waited < slot::LIVE_WRITER_PATIENCE,
        "{waited:?}"
    );
    let t2 = Table::create_or_open(&p.0, &small()).unwrap();
    assert_eq!(t2.app("a"), None);
    assert_eq!(t2.key("k"), Some(key("k")));
    t2.sync_config(&ConfigSnapshot {
        apps: vec![app("a", 1)],
        keys: vec![key("k")],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t2.app("a"), Some(app("a", 1)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The keys region behaves like a map under any sequence of puts and removes, with few
    /// slots so that collisions, tombstones and their reclamation all happen.
    #[test]
    fn keys_region_matches_a_map(ops in proptest::collection::vec((0u8..24, proptest::bool::ANY, 0u64..4), 1..200)) {
        let p = TempPath::new("model");
        let t = Table::create_or_open(&p.0, &Capacities { keys: 16, ..small() }).unwrap();
        let mut model: HashMap<String, KeyRecord> = HashMap::new();
        for (k, put, v) in ops {
            let name = format!("k{k}");
            if put {
                let mut r = key(&name);
                r.expires_at = v;
                match t.put_key(&r) {
                    Ok(()) => { model.insert(name, r); }
                    Err(TableError::RegionFull { .. }) => {
                        proptest::prop_assert!(!model.contains_key(&name));
                        proptest::prop_assert_eq!(model.len(), max_live(16) as usize);
                    }
                    Err(e) => proptest::prop_assert!(false, "{e}"),
                }
            } else {
                proptest::prop_assert_eq!(t.remove_key(&name).unwrap(), model.remove(&name).is_some());
            }
            for i in 0..24u8 {
                let n = format!("k{i}");
                proptest::prop_assert_eq!(t.key(&n), model.get(&n).cloned());
            }
        }
        proptest::prop_assert_eq!(t.snapshot_config().keys.len(), model.len());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Ring arithmetic holds wherever the sequence numbers start (slot = n % capacity, seq =
    /// 2n + 2), for any number of pushes between reads: every event is delivered in order or
    /// counted lost, and only what the ring cannot hold is lost.
    #[test]
    fn event_ring_from_any_start(start in 0u64..(1 << 62), bursts in proptest::collection::vec(0u64..20, 1..10)) {
        let p = TempPath::new("ring");
        let t = Table::create_or_open(&p.0, &small()).unwrap();
        t.header(layout::word::EVENT_HEAD).store(start, Ordering::Release);
        let mut cur = EventCursor { next: start };
        let mut n = 0u64;
        for burst in bursts {
            for _ in 0..burst {
                t.push_event(&event(n)).unwrap();
                n += 1;
            }
            let first = n - burst;
            let b = t.read_events(&mut cur);
            let kept = burst.min(8);
            proptest::prop_assert_eq!(b.lost, burst - kept);
            let got: Vec<u64> = b.events.iter().map(|e| e.at_ms).collect();
            let want: Vec<u64> = (first + burst - kept..first + burst).collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(cur.next, start + n);
        }
    }
}
