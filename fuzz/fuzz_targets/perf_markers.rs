//! Latency markers: inserted into an arbitrary AVC body, a marker is always found again with
//! its timestamp; arbitrary RTP payloads and datagrams never over-read and are counted once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_perf::rtp_rx::RtpCounter;
use sluice_perf::sei;

fuzz_target!(|data: &[u8]| {
    let ts = data.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
    let mut body = vec![0x17, 1, 0, 0, 0];
    body.extend_from_slice(data);
    let mut out = BytesMut::new();
    assert!(sei::insert_into_avc_body(&body, 4, ts, &mut out));
    assert_eq!(out.len(), body.len() + 4 + sei::marker_nal(ts).len());
    assert_eq!(sei::find_in_avc_body(&out, 4), Some(ts));
    if let Some(t) = sei::find_in_rtp_payload(data) {
        // Only a well-formed marker yields a timestamp, and it re-encodes to a marker.
        assert_eq!(sei::parse_marker(&sei::marker_nal(t)), Some(t));
    }
    let mut c = RtpCounter::default();
    c.handle(data, 1);
    assert_eq!(c.packets + c.malformed, 1);
});
