//! Fuzz the MPEG-TS demuxer with arbitrary bytes. Invariants: the same bytes pushed whole, in
//! pseudo-random pieces and in whole-packet pieces give the same events; no PES exceeds the cap; the demuxer never
//! hands out more payload bytes than it was given, nor counts more bytes than it saw.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::ts::pes::MAX_PES_SIZE;
use sluice_proto::ts::{DemuxEvent, Demuxer};

fn run(chunks: impl IntoIterator<Item = Bytes>) -> (Vec<DemuxEvent>, Demuxer) {
    let mut d = Demuxer::new();
    let mut ev = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(e) = d.poll() {
            ev.push(e);
        }
    }
    d.flush();
    while let Some(e) = d.poll() {
        ev.push(e);
    }
    (ev, d)
}

fuzz_target!(|data: &[u8]| {
    let all = Bytes::copy_from_slice(data);
    let (whole, d) = run([all.clone()]);

    // Piece sizes from a xorshift seeded by the input length: 1..=1500 bytes.
    let mut state = (data.len() as u32).wrapping_mul(2_654_435_761) | 1;
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < all.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let end = (at + 1 + (state % 1500) as usize).min(all.len());
        pieces.push(all.slice(at..end));
        at = end;
    }
    let (split, _) = run(pieces);
    assert_eq!(whole, split, "output depends on the split");

    // Pieces of whole packets (188 x 1..=8 bytes, as SRT and UDP deliver them) take the
    // demuxer's direct path while sync holds; they must give the same events too.
    let mut packets = Vec::new();
    let mut at = 0;
    while at < all.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let end = (at + 188 * (1 + (state % 8) as usize)).min(all.len());
        packets.push(all.slice(at..end));
        at = end;
    }
    let (by_packets, _) = run(packets);
    assert_eq!(whole, by_packets, "output differs for whole-packet pushes");

    let mut out_bytes = 0usize;
    for e in &whole {
        match e {
            DemuxEvent::Pes(f) => {
                assert!(f.data.len() <= MAX_PES_SIZE);
                out_bytes += f.data.len();
            }
            DemuxEvent::OpusPackets { packets, .. } => {
                out_bytes += packets.iter().map(|p| p.len()).sum::<usize>();
            }
            DemuxEvent::ProgramChanged { .. } => {}
        }
    }
    assert!(out_bytes <= data.len());
    let s = d.stats();
    assert!(s.packets as usize * 188 + s.skipped_bytes as usize <= data.len());
});
