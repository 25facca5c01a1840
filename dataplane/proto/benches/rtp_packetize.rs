//! H.264 RTP packetization throughput (1 MiB of access units into 1200-byte payload
//! descriptors), beside a memcpy of the same bytes and beside packetizing plus writing every
//! packet contiguously (what a plain-RTP sender without scatter/gather would do).

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_main};
use sluice_proto::media::VideoFrame;
use sluice_proto::rtp::{H264Packetizer, PacketizerConfig, RtpTimestamp, SeqNo, Ssrc};

fn frames(total: usize) -> Vec<VideoFrame> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::new();
    let mut used = 0;
    let mut i = 0i64;
    while used < total {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 500 + (state % 60_000) as usize;
        let mut nal = vec![(state >> 8) as u8; len];
        nal[0] = if i % 30 == 0 { 0x65 } else { 0x41 };
        used += len;
        out.push(VideoFrame {
            pts: i * 3000,
            dts: i * 3000,
            keyframe: i % 30 == 0,
            nalus: vec![Bytes::from(nal)],
        });
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let frames = frames(1 << 20);
    let bytes: usize = frames.iter().map(VideoFrame::len).sum();
    let flat: Vec<u8> = frames.iter().flat_map(|f| f.nalus[0].to_vec()).collect();
    let cfg = PacketizerConfig::new(Ssrc(1), 96, SeqNo(0), RtpTimestamp(0));
    let mut g = c.benchmark_group("h264_packetize_1MiB");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; flat.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&flat));
            black_box(&dst);
        })
    });
    g.bench_function("descriptors", |b| {
        let mut p = H264Packetizer::new(cfg, None).unwrap();
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            out.clear();
            for f in &frames {
                p.packetize(black_box(f), &mut out);
            }
            out.len()
        })
    });
    g.bench_function("descriptors_plus_contiguous_write", |b| {
        let mut p = H264Packetizer::new(cfg, None).unwrap();
        let mut out = Vec::with_capacity(2048);
        let mut buf = [0u8; 1500];
        b.iter(|| {
            out.clear();
            let mut n = 0;
            for f in &frames {
                p.packetize(black_box(f), &mut out);
            }
            for pkt in &out {
                n += pkt.write_to(&mut buf).unwrap_or(0);
            }
            black_box(n)
        })
    });
    g.finish();
}

mod group {
    // criterion_group! defines an undocumented public function.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
