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
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_main};
use sluice_proto::ts::testmux::{MuxPes, MuxStream, TestMuxer};
use sluice_proto::ts::{DemuxEvent, Demuxer, Pid};

const VIDEO: Pid = Pid::new(0x100);
const AUDIO: Pid = Pid::new(0x101);

fn build_stream() -> Vec<u8> {
    let mut mux = TestMuxer::new(
        Pid::new(0x1000),
        vec![
            MuxStream {
                pid: VIDEO,
                stream_type: 0x1b,
                descriptors: vec![],
            },
            MuxStream {
                pid: AUDIO,
                stream_type: 0x0f,
                descriptors: vec![],
            },
        ],
    );
    let mut out = Vec::with_capacity(6 << 20);
    let keyframe = vec![0x65u8; 80_000];
    let inter = vec![0x41u8; 18_000];
    let aac = vec![0x21u8; 380];
    let mut audio_pts = 0u64;
    for f in 0..250u64 {
        if f % 10 == 0 {
            mux.write_psi(&mut out);
        }
        let pts = 126_000 + f * 3600;
        let data = if f % 50 == 0 { &keyframe } else { &inter };
        mux.write_pes(
            &MuxPes {
                pid: VIDEO,
                stream_id: 0xe0,
                pts: Some(pts + 7200),
                dts: Some(pts),
                random_access: f % 50 == 0,
                bounded: false,
                data,
            },
            &mut out,
        );
        // 1024-sample AAC frames at 48 kHz are 1920 ticks: about two per video frame.
        while audio_pts < (f + 1) * 3600 {
            mux.write_pes(
                &MuxPes {
                    pid: AUDIO,
                    stream_id: 0xc0,
                    pts: Some(126_000 + audio_pts),
                    dts: None,
                    random_access: false,
                    bounded: true,
                    data: &aac,
                },
                &mut out,
            );
            audio_pts += 1920;
        }
    }
    out
}

fn pieces(all: &Bytes, size: usize) -> Vec<Bytes> {
    (0..all.len())
        .step_by(size)
        .map(|i| all.slice(i..(i + size).min(all.len())))
        .collect()
}

/// Demuxes `chunks`; returns the PES count (the last, unbounded one stays open).
fn sluice(chunks: &[Bytes]) -> u64 {
    let mut d = Demuxer::new();
    let mut n = 0u64;
    for c in chunks {
        d.push(c.clone());
        while let Some(e) = d.poll() {
            if let DemuxEvent::Pes(f) = e {
                black_box((f.pts, f.dts, f.data.len()));
                n += 1;
            }
        }
    }
    n
}

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

fn memcpy(chunks: &[Bytes], dst: &mut [u8]) -> u8 {
    let mut x = 0;
    for c in chunks {
        let d = &mut dst[..c.len()];
        d.copy_from_slice(c);
        x ^= black_box(&*d)[0];
    }
    x
}

/// The peer: mpeg2ts-reader's filter-based demultiplexer, reading PTS/DTS from each PES header.
mod peer {
    use mpeg2ts_reader::{demultiplex, packet_filter_switch, pes, psi};

    packet_filter_switch! {
        PeerFilter<PeerCtx> {
            Pat: demultiplex::PatPacketFilter<PeerCtx>,
            Pmt: demultiplex::PmtPacketFilter<PeerCtx>,
            Null: demultiplex::NullPacketFilter<PeerCtx>,
            Pes: pes::PesPacketFilter<PeerCtx, TimestampReader>,
        }
    }
    pub struct PeerCtx {
        changeset: demultiplex::FilterChangeset<PeerFilter>,
        /// PES headers seen, to check the peer really demuxed the stream.
        pes: u64,
    }

    impl demultiplex::DemuxContext for PeerCtx {
        type F = PeerFilter;

        fn filter_changeset(&mut self) -> &mut demultiplex::FilterChangeset<PeerFilter> {
            &mut self.changeset
        }

        fn construct(&mut self, req: demultiplex::FilterRequest<'_, '_>) -> PeerFilter {
            match req {
                demultiplex::FilterRequest::ByPid(psi::pat::PAT_PID) => {
                    PeerFilter::Pat(demultiplex::PatPacketFilter::default())
                }
                demultiplex::FilterRequest::ByPid(_) | demultiplex::FilterRequest::Nit { .. } => {
                    PeerFilter::Null(demultiplex::NullPacketFilter::default())
                }
                demultiplex::FilterRequest::ByStream { .. } => {
                    PeerFilter::Pes(pes::PesPacketFilter::new(TimestampReader))
                }
                demultiplex::FilterRequest::Pmt {
                    pid,
                    program_number,
                } => PeerFilter::Pmt(demultiplex::PmtPacketFilter::new(pid, program_number)),
            }
        }
    }

    pub struct TimestampReader;

    impl pes::ElementaryStreamConsumer<PeerCtx> for TimestampReader {
        fn start_stream(&mut self, _ctx: &mut PeerCtx) {}
        fn begin_packet(&mut self, ctx: &mut PeerCtx, header: pes::PesHeader<'_>) {
            ctx.pes += 1;
            if let pes::PesContents::Parsed(Some(c)) = header.contents() {
                match c.pts_dts() {
                    Ok(pes::PtsDts::PtsOnly(Ok(t))) => {
                        criterion::black_box(t);
                    }
                    Ok(pes::PtsDts::Both {
                        pts: Ok(p),
                        dts: Ok(d),
                    }) => {
                        criterion::black_box((p, d));
                    }
                    _ => {}
                }
            }
        }
        fn continue_packet(&mut self, _ctx: &mut PeerCtx, data: &[u8]) {
            criterion::black_box(data.len());
        }
        fn end_packet(&mut self, _ctx: &mut PeerCtx) {}
        fn continuity_error(&mut self, _ctx: &mut PeerCtx) {}
    }

    /// Demuxes `chunks`, which must be whole packets: unlike Sluice, the peer does no framing.
    /// Returns the PES count.
    pub fn run(chunks: &[bytes::Bytes]) -> u64 {
        let mut ctx = PeerCtx {
            changeset: demultiplex::FilterChangeset::default(),
            pes: 0,
        };
        let mut demux = demultiplex::Demultiplex::new(&mut ctx);
        for c in chunks {
            demux.push(&mut ctx, c);
        }
        ctx.pes
    }
}

fn bench(c: &mut Criterion) {
    let all = Bytes::from(build_stream());
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
