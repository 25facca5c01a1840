//! sluice-perf's RTMP client fed arbitrary server bytes after a valid S0/S1/S2: never panics,
//! fails for good once it reports an error, and its output and event queue stay proportional
//! to its input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_perf::rtmp_client::{ClientConfig, MAX_QUEUED_EVENTS, Role, RtmpClient, State};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let role = if sel & 1 == 0 { Role::Publish } else { Role::Play };
    let (cfg, _) = ClientConfig::from_url("rtmp://127.0.0.1/live/k", role).unwrap();
    let mut c = RtmpClient::new(cfg, 0, &[9; 1528]);
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[1u8; 3072]);
    c.handle_input(Bytes::from(hs)).unwrap();
    c.take_output();
    // Feed in pieces of 1..=64 bytes, sizes chosen by the selector byte.
    let step = usize::from(sel >> 2) + 1;
    let mut failed = false;
    for piece in rest.chunks(step) {
        let r = c.handle_input(Bytes::copy_from_slice(piece));
        if failed {
            assert!(r.is_ok(), "a failed client ignores input");
            assert_eq!(c.pending_output(), 0);
        }
        if r.is_err() {
            assert_eq!(c.state(), State::Failed);
            failed = true;
            c.take_output();
        }
        let out = c.take_output().len();
        // Each reply (ack, pong, next command) is under 256 bytes and needs a message in.
        assert!(out <= 256 * (piece.len() + 1), "output {out} for {} bytes in", piece.len());
        let mut events = 0;
        while c.poll_event().is_some() {
            events += 1;
        }
        assert!(events <= MAX_QUEUED_EVENTS + piece.len());
    }
});
