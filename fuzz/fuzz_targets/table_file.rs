//! A table file corrupted by another process (or a stray writer). Input: patches
//! `[offset u16 LE][len u8][bytes]` applied to a small, populated table file, which is then
//! opened and read. Invariants: no panic; open refuses or yields a table whose readers
//! terminate; the event cursor only moves forward and never past the head; a config write
//! that succeeds is read back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_table::{
    AppRecord, Capacities, Event, EventCursor, EventKind, KeyRecord, RevocationRecord, Table,
};

fn caps() -> Capacities {
    Capacities {
        apps: 2,
        keys: 4,
        revocations: 2,
        templates: 2,
        forwarders: 2,
        commands: 2,
        stats: 2,
        events: 4,
    }
}

fn key(k: &str) -> KeyRecord {
    KeyRecord {
        key: k.into(),
        app_id: "a".into(),
        channel: "c".into(),
        uid: "1".into(),
        ..Default::default()
    }
}

fn event(n: u64) -> Event {
    Event {
        kind: EventKind::Aborted,
        at_ms: n,
        sid: "s".into(),
        app_id: "a".into(),
        channel: "c".into(),
        uid: "u".into(),
        stream_key: "k".into(),
        domain: "d".into(),
        protocol: "rtmp".into(),
        begin_at_ms: 0,
        error_code: 1,
        reason: "r".into(),
        stats: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("sluice-fuzz-table-{}.table", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // Building the base file does not depend on the input.
    let Ok(t) = Table::create_or_open(&path, &caps()) else {
        return;
    };
    let _ = t.put_app(&AppRecord { id: "a".into(), ..Default::default() });
    let _ = t.put_key(&key("k0"));
    let _ = t.put_key(&key("k1"));
    let _ = t.put_revocation(&RevocationRecord { app_id: "a".into(), key: "x".into(), until: 1 });
    for n in 0..3 {
        let _ = t.push_event(&event(n));
    }
    if let Some(s) = t.claim_stats_slot() {
        let _ = t.write_stats(s, &Default::default());
    }
    drop(t);

    let Ok(mut file) = std::fs::read(&path) else {
        return;
    };
    // Forget the writer pids (header bytes 280..296, this very process): a slot the input
    // leaves locked then costs readers 100 ms, not the 2 s they grant a live writer.
    if let Some(pids) = file.get_mut(280..296) {
        pids.fill(0);
    }
    let mut rest = data;
    while let [lo, hi, len, tail @ ..] = rest {
        let off = usize::from(u16::from_le_bytes([*lo, *hi]));
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        if let Some(dst) = file.get_mut(off..off + n) {
            dst.copy_from_slice(bytes);
        }
        rest = next;
    }
    if std::fs::write(&path, &file).is_err() {
        return;
    }

    let Ok(t) = Table::open(&path) else {
        return;
    };
    let _ = t.apps();
    let _ = t.key("k0");
    let _ = t.key("absent");
    let _ = t.is_revoked("a", "x");
    let _ = t.template("a", "t");
    let _ = t.forwarders();
    let _ = t.commands();
    let _ = t.snapshot_config();
    let _ = t.all_stats();
    let head = t.event_cursor_at_head().next;
    let mut cur = EventCursor::default();
    let b = t.read_events(&mut cur);
    assert!(cur.next <= head, "cursor past head");
    assert!(b.events.len() as u64 <= cur.next, "more events than sequence numbers");

    // Writes on a damaged table either fail cleanly or are read back exactly.
    let fresh = key("k-new");
    if t.put_key(&fresh).is_ok() {
        assert_eq!(t.key("k-new"), Some(fresh));
        // (Not asserting absence afterwards: a corrupted file may hold a duplicate.)
        assert!(t.remove_key("k-new").unwrap_or(false));
    }
    let app = AppRecord { id: "b".into(), max_streams: 3, ..Default::default() };
    if t.put_app(&app).is_ok() {
        assert_eq!(t.app("b"), Some(app));
    }
    t.reset_stats();
    let _ = t.read_events(&mut cur);
    drop(t);
    let _ = std::fs::remove_file(&path);
});
