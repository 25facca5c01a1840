//! Several publishers at once on a two-core dataplane: every stream ends up on the core that
//! owns its channel+uid (whichever core the kernel handed the connection to), and media keeps
//! flowing after a connection moved between cores.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn streams_run_on_their_owner_core() {
    require_tool("ffmpeg");
    let gw = Gateway::start();
    let uids: Vec<String> = (1..=6).map(|i| format!("{}", 2000 + i)).collect();
    let mut publishers = Vec::new();
    for uid in &uids {
        let key = gw.create_key("shardchan", uid);
        publishers.push(ffmpeg_publish_rtmp_small(&gw.rtmp_url(&key), 25));
    }

    let table = sluice_table::Table::open(&gw.table_path).expect("open table");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let stats = table.all_stats();
        let running: Vec<_> = stats
            .iter()
            .filter(|s| {
                s.channel == "shardchan" && s.video.as_ref().is_some_and(|v| v.width == 160)
            })
            .collect();
        if running.len() == uids.len() {
            for s in &running {
                let owner = sluice_table::owner_core(&s.app_id, &s.channel, &s.uid, 2);
                assert_eq!(
                    s.core as usize, owner,
                    "stream {} on core {} but owned by {owner}",
                    s.uid, s.core
                );
                assert!(s.bytes_in_video > 0);
            }
            // Both cores own some of these streams, so at least one connection had to move
            // unless the kernel happened to place every one on its owner.
            let cores: std::collections::HashSet<u32> = running.iter().map(|s| s.core).collect();
            assert_eq!(
                cores.len(),
                2,
                "all six streams hashed to one core: {cores:?}"
            );
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "only {} of {} streams running: {stats:#?}",
                running.len(),
                uids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Media keeps arriving on every stream after the move.
    let before: Vec<u64> = uids.iter().map(|u| bytes_in(&table, u)).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (u, b) in uids.iter().zip(before) {
        assert!(bytes_in(&table, u) > b, "stream {u} stopped receiving");
    }
    for p in publishers {
        finish(p);
    }
}

fn bytes_in(table: &sluice_table::Table, uid: &str) -> u64 {
    table
        .all_stats()
        .iter()
        .find(|s| s.channel == "shardchan" && s.uid == uid)
        .map(|s| s.bytes_in_video)
        .unwrap_or(0)
}
