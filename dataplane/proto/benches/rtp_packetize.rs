//! H.264 RTP packetization throughput (1 MiB of access units into 1200-byte payload
//! descriptors), beside a memcpy of the same bytes and beside packetizing plus writing every
//! packet contiguously (what a plain-RTP sender without scatter/gather would do).

use criterion::{Criterion, Throughput, black_box, criterion_main};
use sluice_proto::media::VideoFrame;

mod workloads;

fn bench(c: &mut Criterion) {
    let frames = workloads::h264_frames(1 << 20);
    let bytes: usize = frames.iter().map(VideoFrame::len).sum();
    let flat: Vec<u8> = frames.iter().flat_map(|f| f.nalus[0].to_vec()).collect();
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
        let mut p = workloads::h264_packetizer();
        let mut out = Vec::with_capacity(2048);
        b.iter(|| workloads::h264_packetize(&mut p, &frames, &mut out))
    });
    g.bench_function("descriptors_plus_contiguous_write", |b| {
        let mut p = workloads::h264_packetizer();
        let mut out = Vec::with_capacity(2048);
        let mut buf = [0u8; 1500];
        b.iter(|| {
            workloads::h264_packetize(&mut p, &frames, &mut out);
            let mut n = 0;
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
