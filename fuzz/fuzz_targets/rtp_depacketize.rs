//! RTP parsing and H.264 / H.265 depacketizing of hostile packets: no panic, payloads are
//! slices of the packet, NAL units are non-empty and bounded by the reassembly cap.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::rtp::{H264Depacketizer, H265Depacketizer, MAX_REASSEMBLED_NAL, RtpPacketView};

fuzz_target!(|data: &[u8]| {
    let mut h264 = H264Depacketizer::new();
    let mut h265 = H265Depacketizer::new();
    let mut out = Vec::new();
    let mut fed = 0usize;
    // Packets separated by one length byte each, so fragments can span packets.
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let pkt = Bytes::copy_from_slice(&tail[..len]);
        rest = &tail[len..];
        if let Ok(v) = RtpPacketView::parse(&pkt) {
            let r = pkt.as_ptr_range();
            assert!(r.start <= v.payload.as_ptr() && v.payload.as_ptr_range().end <= r.end);
            assert!(v.payload.len() + 12 <= pkt.len());
        }
        fed += pkt.len();
        let _ = h264.push(&pkt, &mut out);
        let _ = h265.push(&pkt, &mut out);
    }
    for n in &out {
        assert!(!n.is_empty() && n.len() <= MAX_REASSEMBLED_NAL);
    }
    // Each input byte appears in at most one NAL per depacketizer (plus rebuilt headers).
    assert!(out.iter().map(Bytes::len).sum::<usize>() <= 2 * fed + 2 * out.len());
});
