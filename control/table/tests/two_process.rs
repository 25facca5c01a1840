//! Two processes on one table: a child process (this test binary re-executed with
//! `SLUICE_TABLE_CHILD` set) writes under load while the parent reads, checking that every
//! record it reads is internally consistent (all fields encode the same counter), that keys
//! being updated never disappear, and that events arrive in order.

use sluice_table::{
    AppRecord, Capacities, Event, EventCursor, EventKind, KeyRecord, StreamStats, Table,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SLUICE_TABLE_CHILD";
const ROLE_ENV: &str = "SLUICE_TABLE_ROLE";
const WRITE_FOR: Duration = Duration::from_millis(1500);
const KEYS: u64 = 8;
const APPS: u64 = 4;

fn caps() -> Capacities {
    Capacities {
        apps: 8,
        keys: 64,
        revocations: 8,
        templates: 4,
        forwarders: 4,
        commands: 4,
        stats: 8,
        events: 64,
    }
}

fn app(i: u64, n: u64) -> AppRecord {
    AppRecord {
        id: format!("app{i}"),
        certificate_hex: format!("{n:032x}"),
        // Varying length, so the payload and its length word change together.
        domains: vec![format!("{n}.example.com"); (n % 40) as usize + 1],
        default_template: Some(n.to_string()),
        max_streams: n as u32,
        max_bitrate_kbps: n as u32,
        ..Default::default()
    }
}

fn check_app(a: &AppRecord) -> u64 {
    let n = a.max_streams as u64;
    assert_eq!(a, &app(a.id[3..].parse().unwrap(), n), "torn app record");
    n
}

fn key(i: u64, n: u64) -> KeyRecord {
    KeyRecord {
        key: format!("key{i}"),
        app_id: "app0".into(),
        channel: n.to_string().repeat((n % 20) as usize + 1),
        uid: n.to_string(),
        expires_at: n,
        created_at: n,
        template_id: (n & 1 == 0).then(|| n.to_string()),
    }
}

fn check_key(k: &KeyRecord) -> u64 {
    let n = k.expires_at;
    assert_eq!(k, &key(k.key[3..].parse().unwrap(), n), "torn key record");
    n
}

fn stats(core: u32, n: u64) -> StreamStats {
    StreamStats {
        sid: format!("sid{core}"),
        core,
        bytes_in_video: n,
        bytes_in_audio: n,
        updated_ms: n,
        video_params: vec![vec![(n % 251) as u8; (n % 700) as usize]],
        ..Default::default()
    }
}

fn event(core: u32, n: u64) -> Event {
    Event {
        kind: EventKind::ProfileUpdated,
        at_ms: n,
        sid: format!("sid{core}"),
        app_id: "app0".into(),
        channel: n.to_string(),
        uid: String::new(),
        stream_key: String::new(),
        domain: String::new(),
        protocol: "srt".into(),
        begin_at_ms: n,
        error_code: core,
        reason: "x".repeat((n % 300) as usize),
        stats: None,
    }
}

/// The child side. Does nothing when run as a normal test.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let role = std::env::var(ROLE_ENV).unwrap();
    let start = Instant::now();
    match role.as_str() {
        "control" => {
            let t = Table::create_or_open(Path::new(&path), &caps()).unwrap();
            let mut n = 1;
            while start.elapsed() < WRITE_FOR {
                for i in 0..APPS {
                    t.put_app(&app(i, n)).unwrap();
                }
                for i in 0..KEYS {
                    t.put_key(&key(i, n)).unwrap();
                }
                // A key that comes and goes, to exercise tombstones under readers.
                if n & 1 == 0 {
                    t.put_key(&key(100, n)).unwrap();
                } else {
                    t.remove_key("key100").unwrap();
                }
                n += 1;
            }
        }
        "dataplane" => {
            let t = Table::open(Path::new(&path)).unwrap();
            t.reset_stats();
            let slots: Vec<_> = (0..4).map(|_| t.claim_stats_slot().unwrap()).collect();
            std::thread::scope(|s| {
                for (core, slot) in slots.into_iter().enumerate() {
                    let t = &t;
                    s.spawn(move || {
                        let mut n = 1;
                        while start.elapsed() < WRITE_FOR {
                            t.write_stats(slot, &stats(core as u32, n)).unwrap();
                            t.push_event(&event(core as u32, n)).unwrap();
                            t.dataplane_heartbeat(n);
                            n += 1;
                        }
                        t.release_stats_slot(slot);
                    });
                }
            });
        }
        other => panic!("unknown role {other}"),
    }
}

struct TempPath(PathBuf);
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spawn(path: &Path, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(ROLE_ENV, role)
        .spawn()
        .unwrap()
}

fn wait_ok(mut c: Child) {
    assert!(c.wait().unwrap().success(), "child failed");
}

#[test]
fn config_written_by_another_process_is_never_torn() {
    let p =
        TempPath(std::env::temp_dir().join(format!("sluice-2p-cfg-{}.table", std::process::id())));
    // Create first so the reader can open before the writer's first write.
    let reader = Table::create_or_open(&p.0, &caps()).unwrap();
    let mut child = spawn(&p.0, "control");
    let (mut reads, mut distinct, mut last) = (0u64, 0u64, 0u64);
    let mut all_keys_seen = false;
    loop {
        let done = child.try_wait().unwrap().is_some();
        for a in reader.apps() {
            check_app(&a);
        }
        let mut present = 0;
        for i in 0..KEYS {
            if let Some(k) = reader.key(&format!("key{i}")) {
                let n = check_key(&k);
                if n != last {
                    distinct += 1;
                    last = n;
                }
                present += 1;
            }
            reads += 1;
        }
        if let Some(k) = reader.key("key100") {
            check_key(&k);
        }
        // Once all keys exist they are only ever updated in place: never missing again.
        if all_keys_seen {
            assert_eq!(present, KEYS, "a key disappeared while being updated");
        }
        all_keys_seen |= present == KEYS;
        if done {
            break;
        }
    }
    wait_ok(child);
    assert!(all_keys_seen);
    eprintln!("{distinct} distinct values in {reads} key reads");
    assert!(
        distinct >= 3,
        "reads overlapped few writes ({distinct} values in {reads} reads)"
    );
    assert!(reader.generation() > 100);
}

#[test]
fn stats_and_events_written_by_another_process() {
    let p =
        TempPath(std::env::temp_dir().join(format!("sluice-2p-dp-{}.table", std::process::id())));
    let control = Table::create_or_open(&p.0, &caps()).unwrap();
    let mut child = spawn(&p.0, "dataplane");
    let mut cursor = EventCursor::default();
    let mut last = [0u64; 4];
    let (mut events, mut lost, mut stats_reads) = (0u64, 0u64, 0u64);
    loop {
        let done = child.try_wait().unwrap().is_some();
        for s in control.all_stats() {
            let n = s.updated_ms;
            assert_eq!(s, stats(s.core, n), "torn stats record");
            stats_reads += 1;
        }
        let b = control.read_events(&mut cursor);
        lost += b.lost;
        for e in b.events {
            let core = e.error_code as usize;
            assert_eq!(e, event(e.error_code, e.at_ms), "torn event");
            assert!(e.at_ms > last[core], "events of one core out of order");
            last[core] = e.at_ms;
            events += 1;
        }
        if done {
            break;
        }
    }
    wait_ok(child);
    let b = control.read_events(&mut cursor);
    events += b.events.len() as u64;
    lost += b.lost;
    assert_eq!(
        events + lost,
        cursor.next,
        "every event read or counted lost"
    );
    assert!(
        events > 100 && stats_reads > 100,
        "{events} events, {stats_reads} stats reads"
    );
    assert!(control.all_stats().is_empty(), "slots released");
    assert!(control.last_dataplane_heartbeat() > 0);
}
