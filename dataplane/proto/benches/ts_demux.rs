//! MPEG-TS demux throughput: Sluice's `ts::Demuxer` against `memcpy` of the same buffers (the
//! floor any receive path pays once) and the `mpeg2ts-reader` crate doing the same job
//! (PAT/PMT, PES reassembly boundaries, PTS/DTS extraction) on the same bytes.
//!
//! The input is ten seconds of a synthetic 25 fps, ~4 Mbit/s H.264-like stream with 48 kHz
//! AAC-like audio, written by the crate's test muxer, pushed in 1316-byte pieces (seven
//! packets, an SRT/UDP payload) and in 64 KiB pieces (a file or TCP read). mpeg2ts-reader
//! needs whole packets in each push, so it gets 65 424-byte pieces in the second case; it
//! also hands PES bytes out packet by packet where Sluice reassembles each PES into one
//! buffer, so the comparison is of the whole job, not the same algorithm.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use workloads::{memcpy_chunks as memcpy, peer, pieces, ts_demux as sluice};

mod workloads;

/// Framing and header parsing only: the part of the demuxer every packet pays.
fn framing(chunks: &[Bytes]) -> u64 {
    let mut f = sluice_proto::ts::packet::Framer::new();
    let mut n = 0u64;
    for c in chunks {
        f.push(c.clone());
        while let Some(run) = f.next_run() {
            for p in run.chunks_exact(188) {
                if let Ok(h) = sluice_proto::ts::packet::PacketHeader::parse(p) {
                    n += u64::from(h.cc);
                }
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let all = Bytes::from(workloads::ts_stream());
    let mut g = c.benchmark_group("ts_demux");
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.throughput(Throughput::Bytes(all.len() as u64));
    for size in [1316usize, 65_536] {
        let chunks = pieces(&all, size);
        // The peer needs whole packets per push: give it the largest multiple of 188.
        let peer_chunks = pieces(&all, size - size % 188);
        let ours = sluice(&chunks);
        let theirs = peer::run(&peer_chunks);
        assert_eq!(
            ours + 1,
            theirs,
            "the demuxers disagree: {ours} vs {theirs}"
        );
        let mut dst = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("memcpy", size), &chunks, |b, ch| {
            b.iter(|| memcpy(ch, &mut dst))
        });
        g.bench_with_input(
            BenchmarkId::new("sluice-framing", size),
            &chunks,
            |b, ch| b.iter(|| framing(ch)),
        );
        g.bench_with_input(BenchmarkId::new("sluice", size), &chunks, |b, ch| {
            b.iter(|| sluice(ch))
        });
        g.bench_with_input(
            BenchmarkId::new("mpeg2ts-reader", size),
            &peer_chunks,
            |b, ch| b.iter(|| peer::run(ch)),
        );
    }
    g.finish();
}

/// Private so the generated `pub fn` needs no docs.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
