//! The parser workloads and their fixed, generated inputs, shared by the criterion benches
//! (`benches/*.rs`, wall time) and `examples/parse_bench.rs` (callgrind instruction counts),
//! so both figures in `docs/performance.md` measure the same bytes with the same code.
//!
//! Every generator is deterministic (fixed xorshift seeds), so instruction counts repeat
//! exactly from run to run.

// Each bench uses only its own workloads from this shared module.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use sluice_proto::codec::annexb;
use sluice_proto::media::VideoFrame;
use sluice_proto::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkStreamId, MessageStreamId};
use sluice_proto::rtp::{H264Packetizer, PacketizerConfig, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use sluice_proto::streamkey::{self, Certificate, KeyClaims};
use sluice_proto::ts::testmux::{MuxPes, MuxStream, TestMuxer};
use sluice_proto::ts::{DemuxEvent, Demuxer, Pid};
use std::hint::black_box;

/// xorshift64: a fixed pseudo-random sequence, so inputs are identical on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The video PID of the generated transport stream.
pub const TS_VIDEO: Pid = Pid::new(0x100);
/// The audio PID of the generated transport stream.
pub const TS_AUDIO: Pid = Pid::new(0x101);

/// Ten seconds of a synthetic 25 fps, ~4 Mbit/s H.264-like stream with 48 kHz AAC-like audio
/// (about 5.6 MB), written by the crate's test muxer: PSI every ten frames, a keyframe every
/// two seconds, unbounded video PES and bounded audio PES.
pub fn ts_stream() -> Vec<u8> {
    let mut mux = TestMuxer::new(
        Pid::new(0x1000),
        vec![
            MuxStream {
                pid: TS_VIDEO,
                stream_type: 0x1b,
                descriptors: vec![],
            },
            MuxStream {
                pid: TS_AUDIO,
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
                pid: TS_VIDEO,
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
                    pid: TS_AUDIO,
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

/// `all` cut into consecutive slices of `size` bytes (the last may be shorter), as a socket
/// would deliver them.
pub fn pieces(all: &Bytes, size: usize) -> Vec<Bytes> {
    (0..all.len())
        .step_by(size)
        .map(|i| all.slice(i..(i + size).min(all.len())))
        .collect()
}

/// Demuxes `chunks` with Sluice's demuxer to PES frames; returns the PES count (the last,
/// unbounded one stays open).
pub fn ts_demux(chunks: &[Bytes]) -> u64 {
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

/// Ten seconds of a realistic publish (30 fps H.264 at about 4 Mbit/s with a keyframe each
/// second, plus 44.1 kHz AAC), as RTMP chunks of `chunk_size` bytes, preceded by the Set
/// Chunk Size message that announces it.
pub fn rtmp_stream(chunk_size: u32) -> Bytes {
    let mut enc = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    let set = chunk_size.to_be_bytes();
    enc.encode(
        ChunkStreamId::CONTROL,
        0,
        1,
        MessageStreamId(0),
        &set,
        &mut wire,
    );
    enc.set_chunk_size(chunk_size);
    let video = ChunkStreamId::new(6).expect("valid id");
    let audio = ChunkStreamId::new(4).expect("valid id");
    let mut audio_ms = 0u32;
    for frame in 0..300u32 {
        let ts = frame * 1000 / 30;
        let len = if frame % 30 == 0 {
            120_000
        } else {
            14_000 + (frame as usize * 131) % 4000
        };
        enc.encode(
            video,
            ts,
            9,
            MessageStreamId(1),
            &vec![frame as u8; len],
            &mut wire,
        );
        while audio_ms <= ts {
            enc.encode(
                audio,
                audio_ms,
                8,
                MessageStreamId(1),
                &[0xAF; 372],
                &mut wire,
            );
            audio_ms += 23;
        }
    }
    wire.freeze()
}

/// Decodes `input` to messages, fed in 64 KiB reads as a socket would deliver it; returns the
/// payload bytes decoded.
pub fn rtmp_decode(input: &Bytes) -> usize {
    let mut dec = ChunkDecoder::default();
    let mut n = 0;
    for start in (0..input.len()).step_by(64 * 1024) {
        dec.push(input.slice(start..(start + 64 * 1024).min(input.len())));
        while let Some(m) = dec.poll_message().expect("valid stream") {
            n += m.payload.len();
        }
    }
    n
}

/// A byte stream shaped like H.264 encoder output: parameter sets, then slices of 2..64 KiB
/// of entropy-coded (random) bytes with emulation prevention applied, as a real encoder
/// emits, cut to `size` bytes.
pub fn annexb_stream(size: usize) -> Vec<u8> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(size + 70_000);
    out.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50]);
    out.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
    while out.len() < size {
        out.extend_from_slice(&[0, 0, 1, 0x41]);
        let len = 2048 + (rng.next() % (62 * 1024)) as usize;
        let mut zeros = 0;
        for _ in 0..len {
            let b = rng.next() as u8;
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        if out.last() == Some(&0) {
            out.push(0x80);
        }
    }
    out.truncate(size);
    out
}

/// Splits `buf` into NAL units; returns their count.
pub fn annexb_split(buf: &Bytes) -> usize {
    annexb::split(buf).count()
}

/// H.264 access units totalling at least `total` bytes: one NAL of 500..60 500 bytes each,
/// an IDR every 30 frames, 30 fps.
pub fn h264_frames(total: usize) -> Vec<VideoFrame> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let mut used = 0;
    let mut i = 0i64;
    while used < total {
        let r = rng.next();
        let len = 500 + (r % 60_000) as usize;
        let mut nal = vec![(r >> 8) as u8; len];
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

/// A packetizer for [`h264_packetize`]: 1200-byte payloads (the default).
pub fn h264_packetizer() -> H264Packetizer {
    let cfg = PacketizerConfig::new(Ssrc(1), 96, SeqNo(0), RtpTimestamp(0));
    H264Packetizer::new(cfg, None).expect("valid config")
}

/// Packetizes every frame into RTP packet descriptors (header bytes plus payload slices);
/// returns the packet count.
pub fn h264_packetize(
    p: &mut H264Packetizer,
    frames: &[VideoFrame],
    out: &mut Vec<RtpPacket>,
) -> usize {
    out.clear();
    for f in frames {
        p.packetize(black_box(f), out);
    }
    out.len()
}

/// A certificate and a typical stream key signed with it (17-character channel, 7-digit
/// uid, an expiry and a template id).
pub fn streamkey_fixture() -> (Certificate, KeyClaims, String) {
    let cert = Certificate::from_hex("0123456789abcdef0123456789abcdef").expect("valid hex");
    let claims = KeyClaims {
        channel: "sports-channel-42".into(),
        uid: "1234567".into(),
        expires_at: 1_700_086_400,
        template_id: Some("hd-transcode".into()),
    };
    let key = streamkey::encode(&cert, &claims, [7; 16]);
    (cert, claims, key)
}

/// Copies `chunks` one by one into `dst` (at least as long as the largest chunk): the floor
/// any receive path pays once per byte.
pub fn memcpy_chunks(chunks: &[Bytes], dst: &mut [u8]) -> u8 {
    let mut x = 0;
    for c in chunks {
        if let Some(d) = dst.get_mut(..c.len()) {
            d.copy_from_slice(c);
            x ^= black_box(&*d).first().copied().unwrap_or(0);
        }
    }
    x
}

/// The peer: mpeg2ts-reader's filter-based demultiplexer, reading PTS/DTS from each PES header.
pub mod peer {
    use mpeg2ts_reader::{demultiplex, packet_filter_switch, pes, psi};

    packet_filter_switch! {
        PeerFilter<PeerCtx> {
            Pat: demultiplex::PatPacketFilter<PeerCtx>,
            Pmt: demultiplex::PmtPacketFilter<PeerCtx>,
            Null: demultiplex::NullPacketFilter<PeerCtx>,
            Pes: pes::PesPacketFilter<PeerCtx, TimestampReader>,
        }
    }
    /// The demux context: the filter changes and a count of PES seen.
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

    /// Reads PTS/DTS from each PES header and the length of each payload piece.
    pub struct TimestampReader;

    impl pes::ElementaryStreamConsumer<PeerCtx> for TimestampReader {
        fn start_stream(&mut self, _ctx: &mut PeerCtx) {}
        fn begin_packet(&mut self, ctx: &mut PeerCtx, header: pes::PesHeader<'_>) {
            ctx.pes += 1;
            if let pes::PesContents::Parsed(Some(c)) = header.contents() {
                match c.pts_dts() {
                    Ok(pes::PtsDts::PtsOnly(Ok(t))) => {
                        std::hint::black_box(t);
                    }
                    Ok(pes::PtsDts::Both {
                        pts: Ok(p),
                        dts: Ok(d),
                    }) => {
                        std::hint::black_box((p, d));
                    }
                    _ => {}
                }
            }
        }
        fn continue_packet(&mut self, _ctx: &mut PeerCtx, data: &[u8]) {
            std::hint::black_box(data.len());
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
