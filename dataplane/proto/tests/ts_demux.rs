//! Scenario tests for the MPEG-TS demuxer on streams written by the test muxer: split
//! invariance, resync, continuity errors, PSI changes and damage, truncation.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_proto::ts::packet::PACKET_SIZE;
use sluice_proto::ts::pes::{MAX_PES_SIZE, TIMESTAMP_MASK};
use sluice_proto::ts::testmux::{MuxPes, MuxStream, TestMuxer, opus_descriptors, opus_pes_payload};
use sluice_proto::ts::{DemuxEvent, Demuxer, EsCodec, Pid, PtsUnwrapper, StreamType};

const VIDEO: Pid = Pid::new(0x100);
const AUDIO: Pid = Pid::new(0x101);
const OPUS: Pid = Pid::new(0x102);

fn streams() -> Vec<MuxStream> {
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
        MuxStream {
            pid: OPUS,
            stream_type: 0x06,
            descriptors: opus_descriptors(2),
        },
    ]
}

/// Deterministic filler so payload corruption would show.
fn data(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed * 7)) as u8)
        .collect()
}

/// A stream of `frames` video frames (unbounded PES, sizes from 100 B to 20 kB, keyframe every
/// 10), AAC (bounded) and Opus (two packets per PES), PSI every 10 frames. Returns the bytes
/// and the number of PES written per PID.
fn build(frames: u32) -> (Vec<u8>, [usize; 3]) {
    let mut mux = TestMuxer::new(Pid::new(0x1000), streams());
    let mut out = Vec::new();
    for f in 0..frames {
        if f.is_multiple_of(10) {
            mux.write_psi(&mut out);
        }
        let pts = u64::from(f) * 3600 + 7200;
        let v = data(f, 100 + (f as usize * 997) % 20_000);
        mux.write_pes(
            &MuxPes {
                pid: VIDEO,
                stream_id: 0xe0,
                pts: Some(pts),
                dts: Some(pts - 3600),
                random_access: f.is_multiple_of(10),
                bounded: false,
                data: &v,
            },
            &mut out,
        );
        let a = data(f + 1000, 200 + f as usize % 300);
        mux.write_pes(
            &MuxPes {
                pid: AUDIO,
                stream_id: 0xc0,
                pts: Some(pts),
                dts: None,
                random_access: false,
                bounded: true,
                data: &a,
            },
            &mut out,
        );
        let p1 = data(f + 2000, 80);
        let p2 = data(f + 3000, 300);
        let o = opus_pes_payload(&[&p1, &p2]);
        mux.write_pes(
            &MuxPes {
                pid: OPUS,
                stream_id: 0xbd,
                pts: Some(pts),
                dts: None,
                random_access: false,
                bounded: true,
                data: &o,
            },
            &mut out,
        );
    }
    (out, [frames as usize; 3])
}

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

fn split(all: &Bytes, size: usize) -> Vec<Bytes> {
    (0..all.len())
        .step_by(size)
        .map(|i| all.slice(i..(i + size).min(all.len())))
        .collect()
}

fn count(ev: &[DemuxEvent], pid: Pid) -> usize {
    ev.iter()
        .filter(|e| match e {
            DemuxEvent::Pes(f) => f.pid == pid,
            DemuxEvent::OpusPackets { pid: p, .. } => *p == pid,
            DemuxEvent::ProgramChanged { .. } => false,
        })
        .count()
}

#[test]
fn demuxes_every_stream_with_timestamps() {
    let (raw, [nv, na, no]) = build(30);
    let (ev, d) = run([Bytes::from(raw)]);
    let DemuxEvent::ProgramChanged { streams } = &ev[0] else {
        panic!("first event {:?}", ev[0])
    };
    assert_eq!(streams.len(), 3);
    assert_eq!(streams[0].codec, EsCodec::H264);
    assert_eq!(streams[1].stream_type, StreamType::AdtsAac);
    assert_eq!(
        streams[2].codec,
        EsCodec::Opus {
            channel_config: Some(2)
        }
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, DemuxEvent::ProgramChanged { .. }))
            .count(),
        1
    );
    assert_eq!(
        (count(&ev, VIDEO), count(&ev, AUDIO), count(&ev, OPUS)),
        (nv, na, no)
    );
    let mut f = 0u32;
    for e in &ev {
        match e {
            DemuxEvent::Pes(p) if p.pid == VIDEO => {
                let pts = u64::from(f) * 3600 + 7200;
                assert_eq!(p.pts, Some(pts));
                assert_eq!(p.dts, Some(pts - 3600));
                assert_eq!(p.random_access, f.is_multiple_of(10));
                assert_eq!(
                    p.data.as_ref(),
                    &data(f, 100 + (f as usize * 997) % 20_000)[..]
                );
                f += 1;
            }
            DemuxEvent::OpusPackets { packets, pts, .. } => {
                assert_eq!(packets.len(), 2);
                assert_eq!(packets[0].len(), 80);
                assert_eq!(packets[1].len(), 300);
                assert!(pts.is_some());
            }
            _ => {}
        }
    }
    let s = d.stats();
    assert_eq!(
        s.cc_errors + s.pes_errors + s.crc_errors + s.psi_errors + s.sync_losses,
        0
    );
    assert_eq!(s.pes_frames, 90);
}

#[test]
fn output_is_independent_of_the_split() {
    let (raw, _) = build(12);
    let all = Bytes::from(raw);
    let (reference, _) = run([all.clone()]);
    for size in [1, 7, 187, 188, 189, 1316, 65_536] {
        let (ev, d) = run(split(&all, size));
        assert_eq!(ev, reference, "split {size}");
        assert_eq!(d.stats().pes_frames, 36);
    }
}

#[test]
fn single_packet_pes_is_a_slice_of_the_input() {
    let mut mux = TestMuxer::new(Pid::new(0x1000), streams());
    let mut out = Vec::new();
    mux.write_psi(&mut out);
    mux.write_pes(
        &MuxPes {
            pid: AUDIO,
            stream_id: 0xc0,
            pts: Some(1),
            dts: None,
            random_access: false,
            bounded: true,
            data: &[9; 50],
        },
        &mut out,
    );
    let small = Bytes::from(out);
    let (ev, _) = run([small.clone()]);
    let DemuxEvent::Pes(p) = &ev[1] else { panic!() };
    let r = small.as_ptr() as usize..small.as_ptr() as usize + small.len();
    assert!(
        r.contains(&(p.data.as_ptr() as usize)),
        "payload was copied"
    );
    assert_eq!(p.data.as_ref(), &[9; 50]);
}

#[test]
fn resyncs_after_garbage_and_counts_the_loss() {
    let (raw, _) = build(20);
    let cut = PACKET_SIZE * 200;
    let mut damaged = raw[..cut].to_vec();
    damaged.extend_from_slice(&[0x00, 0x47, 0x12, 0x47, 0x99, 0x01, 0x02]);
    damaged.extend_from_slice(&raw[cut..]);
    let (ev, d) = run([Bytes::from(damaged)]);
    let (clean, _) = run([Bytes::from(raw)]);
    let s = d.stats();
    assert_eq!(s.sync_losses, 1);
    assert_eq!(s.skipped_bytes, 7);
    // Garbage between packets loses no packet: the output is the same.
    assert_eq!(ev, clean);
}

#[test]
fn lost_packet_counts_a_cc_error_and_drops_one_pes() {
    let (raw, _) = build(20);
    // Find a video packet without PUSI in the middle and drop it.
    let victim = (100..raw.len() / PACKET_SIZE)
        .find(|&i| {
            let p = &raw[i * PACKET_SIZE..];
            p[1] & 0x40 == 0 && u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO.value()
        })
        .unwrap();
    let mut damaged = raw[..victim * PACKET_SIZE].to_vec();
    damaged.extend_from_slice(&raw[(victim + 1) * PACKET_SIZE..]);
    let (ev, d) = run([Bytes::from(damaged)]);
    assert_eq!(d.stats().cc_errors, 1);
    assert_eq!(d.pid_cc_errors(VIDEO), 1);
    assert_eq!(d.pid_cc_errors(AUDIO), 0);
    assert_eq!(d.stats().pes_discarded, 1);
    assert_eq!(count(&ev, VIDEO), 19);
    assert_eq!(count(&ev, AUDIO), 20);
}

#[test]
fn duplicate_packet_is_dropped_once_allowed() {
    let (raw, _) = build(5);
    let i = 10;
    let mut dup = raw[..(i + 1) * PACKET_SIZE].to_vec();
    dup.extend_from_slice(&raw[i * PACKET_SIZE..]);
    let (ev, d) = run([Bytes::from(dup)]);
    let (clean, _) = run([Bytes::from(raw.clone())]);
    assert_eq!(ev, clean);
    assert_eq!(d.stats().duplicates, 1);
    assert_eq!(d.stats().cc_errors, 0);
    // A third copy is a continuity error.
    let mut trip = raw[..(i + 1) * PACKET_SIZE].to_vec();
    trip.extend_from_slice(&raw[i * PACKET_SIZE..(i + 1) * PACKET_SIZE]);
    trip.extend_from_slice(&raw[i * PACKET_SIZE..]);
    let (_, d) = run([Bytes::from(trip)]);
    assert_eq!(d.stats().cc_errors, 1);
}

#[test]
fn pmt_version_change_announces_the_new_program() {
    let mut mux = TestMuxer::new(Pid::new(0x1000), streams());
    let mut out = Vec::new();
    mux.write_psi(&mut out);
    mux.write_psi(&mut out); // repeated, same version: no event
    mux.set_streams(vec![MuxStream {
        pid: Pid::new(0x200),
        stream_type: 0x24,
        descriptors: vec![],
    }]);
    mux.write_psi(&mut out);
    mux.write_pes(
        &MuxPes {
            pid: Pid::new(0x200),
            stream_id: 0xe0,
            pts: Some(5),
            dts: None,
            random_access: true,
            bounded: false,
            data: &[0, 0, 0, 1, 0x40],
        },
        &mut out,
    );
    mux.write_pes(
        &MuxPes {
            pid: VIDEO,
            stream_id: 0xe0,
            pts: Some(5),
            dts: None,
            random_access: true,
            bounded: false,
            data: &[1],
        },
        &mut out,
    );
    let (ev, _) = run([Bytes::from(out)]);
    assert_eq!(ev.len(), 3, "{ev:?}");
    let DemuxEvent::ProgramChanged { streams } = &ev[1] else {
        panic!()
    };
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].codec, EsCodec::H265);
    let DemuxEvent::Pes(p) = &ev[2] else { panic!() };
    assert_eq!(p.pid, Pid::new(0x200));
    assert!(p.random_access);
}

#[test]
fn bad_crc_is_counted_and_ignored() {
    let mut mux = TestMuxer::new(Pid::new(0x1000), streams());
    let mut pat = mux.pat_section();
    pat[9] ^= 0xff;
    let mut out = Vec::new();
    mux.write_section(Pid::PAT, &pat, &mut out);
    // Three packets at least: the framer confirms sync over SYNC_CONFIRM_PACKETS packets.
    mux.write_section(Pid::PAT, &pat, &mut out);
    mux.write_pes(
        &MuxPes {
            pid: VIDEO,
            stream_id: 0xe0,
            pts: Some(5),
            dts: None,
            random_access: true,
            bounded: true,
            data: &[1],
        },
        &mut out,
    );
    let (ev, d) = run([Bytes::from(out)]);
    assert!(ev.is_empty());
    assert_eq!(d.stats().crc_errors, 2);
}

#[test]
fn oversized_pes_is_discarded_and_counted() {
    let mut mux = TestMuxer::new(Pid::new(0x1000), streams());
    let mut out = Vec::new();
    mux.write_psi(&mut out);
    let big = vec![0u8; MAX_PES_SIZE + 1000];
    mux.write_pes(
        &MuxPes {
            pid: VIDEO,
            stream_id: 0xe0,
            pts: Some(5),
            dts: None,
            random_access: true,
            bounded: false,
            data: &big,
        },
        &mut out,
    );
    mux.write_pes(
        &MuxPes {
            pid: VIDEO,
            stream_id: 0xe0,
            pts: Some(9),
            dts: None,
            random_access: false,
            bounded: false,
            data: &[1, 2],
        },
        &mut out,
    );
    let (ev, d) = run(split(&Bytes::from(out), 65_536));
    assert_eq!(d.stats().pes_overflows, 1);
    assert_eq!(count(&ev, VIDEO), 1);
    assert!(
        ev.iter()
            .all(|e| !matches!(e, DemuxEvent::Pes(p) if p.data.len() > MAX_PES_SIZE))
    );
}

#[test]
fn truncated_input_yields_a_prefix_of_the_events() {
    let (raw, _) = build(4);
    let (full, _) = run([Bytes::from(raw.clone())]);
    for cut in (0..raw.len()).step_by(97) {
        let mut d = Demuxer::new();
        d.push(Bytes::copy_from_slice(&raw[..cut]));
        let mut ev = vec![];
        while let Some(e) = d.poll() {
            ev.push(e);
        }
        // Without flush, only PES known complete are out, and they match the full run.
        assert!(ev.len() <= full.len());
        assert_eq!(ev[..], full[..ev.len()], "cut at {cut}");
    }
}

#[test]
fn unwrapper_round_trip_on_a_wrapping_run() {
    let mut u = PtsUnwrapper::new();
    let start = TIMESTAMP_MASK - 90_000;
    for i in 0..100_000u64 {
        let t = start + i * 3003;
        assert_eq!(u.unwrap(t & TIMESTAMP_MASK), t as i64);
    }
}

proptest! {
    /// Virtual runs of ~80 hours of 29.97 fps video with B-frame reordering (PTS up to 3
    /// frames behind or ahead of decode order) cross the 2^33 wrap three times; the
    /// unwrapped values equal the true timeline.
    #[test]
    fn unwrapper_follows_long_runs(start in 0u64..(1 << 33), reorder in prop::collection::vec(-3i64..=3, 64), step in 1500u64..4000) {
        let frames = 3 * (1u64 << 33) / step + 10;
        let mut u = PtsUnwrapper::new();
        let base = start as i64 + 3 * step as i64;
        let mut first = None;
        // Sample the run sparsely to keep the test fast while still seeing every wrap.
        let stride = 97;
        let mut i = 0;
        while i < frames {
            let jitter = reorder[(i % 64) as usize] * step as i64;
            let truth = base + (i * step) as i64 + jitter;
            let got = u.unwrap(truth as u64 & TIMESTAMP_MASK);
            let first = *first.get_or_insert(truth - got);
            prop_assert_eq!(got + first, truth);
            i += if i % 1000 < 10 { 1 } else { stride };
        }
    }

    /// The demuxer gives the same events for any split of the same bytes.
    #[test]
    fn any_split_same_events(cuts in prop::collection::vec(0usize..40_000, 0..20)) {
        let (raw, _) = build(6);
        let all = Bytes::from(raw);
        let (reference, _) = run([all.clone()]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % all.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = vec![];
        let mut prev = 0;
        for c in cuts.into_iter().chain([all.len()]) {
            chunks.push(all.slice(prev..c));
            prev = c;
        }
        let (ev, _) = run(chunks);
        prop_assert_eq!(ev, reference);
    }
}

/// Index of the first video packet without PUSI after packet `from`.
fn video_continuation(raw: &[u8], from: usize) -> usize {
    (from..raw.len() / PACKET_SIZE)
        .find(|&i| {
            let p = &raw[i * PACKET_SIZE..];
            p[1] & 0x40 == 0 && u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO.value()
        })
        .unwrap()
}

#[test]
fn transport_error_and_scrambled_packets_are_dropped_and_counted() {
    let (raw, _) = build(10);
    let mut damaged = raw.clone();
    let i = video_continuation(&raw, 50);
    damaged[i * PACKET_SIZE + 1] |= 0x80; // transport_error_indicator
    let (ev, d) = run([Bytes::from(damaged)]);
    let s = d.stats();
    assert_eq!(s.transport_errors, 1);
    // The lost packet breaks the counter sequence, which drops the damaged PES.
    assert_eq!((s.cc_errors, s.pes_discarded), (1, 1));
    assert_eq!(count(&ev, VIDEO), 9);

    let mut scrambled = raw.clone();
    let j = video_continuation(&raw, 80);
    scrambled[j * PACKET_SIZE + 3] |= 0x80;
    let (_, d) = run([Bytes::from(scrambled)]);
    assert_eq!(d.stats().scrambled_packets, 1);
}

#[test]
fn adaptation_only_packets_keep_the_counter() {
    let (raw, _) = build(6);
    let (clean, _) = run([Bytes::from(raw.clone())]);
    // Insert a PCR-only packet (adaptation field, no payload) after a video packet: it
    // repeats that packet's counter, as §2.4.3.3 requires.
    let i = video_continuation(&raw, 20);
    let cc = raw[i * PACKET_SIZE + 3] & 0x0f;
    let mut pcr = vec![
        0x47,
        (VIDEO.value() >> 8) as u8,
        VIDEO.value() as u8,
        0x20 | cc,
        183,
        0x10,
    ];
    pcr.extend_from_slice(&[0, 0, 0x10, 0, 0x7e, 0]);
    pcr.resize(PACKET_SIZE, 0xff);
    let mut with_pcr = raw[..(i + 1) * PACKET_SIZE].to_vec();
    with_pcr.extend_from_slice(&pcr);
    with_pcr.extend_from_slice(&raw[(i + 1) * PACKET_SIZE..]);
    let (ev, d) = run([Bytes::from(with_pcr)]);
    assert_eq!(ev, clean);
    assert_eq!(d.stats().cc_errors, 0);
}

#[test]
fn pat_moving_the_pmt_is_followed() {
    let mut out = Vec::new();
    let mut a = TestMuxer::new(Pid::new(0x1000), streams());
    a.write_psi(&mut out);
    let v = MuxPes {
        pid: VIDEO,
        stream_id: 0xe0,
        pts: Some(1),
        dts: None,
        random_access: true,
        bounded: true,
        data: &[1, 2, 3],
    };
    a.write_pes(&v, &mut out);
    // A new PAT version pointing at PMT PID 0x1100 that lists only an H.265 stream.
    let mut b = TestMuxer::new(
        Pid::new(0x1100),
        vec![MuxStream {
            pid: Pid::new(0x300),
            stream_type: 0x24,
            descriptors: vec![],
        }],
    );
    let body = [0x00, 0x01, 0xf1, 0x00];
    let pat = sluice_proto::ts::psi::build_section(0, 1, 1, &body);
    a.write_section(Pid::PAT, &pat, &mut out); // continues the PAT counter
    let pmt = b.pmt_section();
    b.write_section(Pid::new(0x1100), &pmt, &mut out);
    b.write_pes(
        &MuxPes {
            pid: Pid::new(0x300),
            ..v
        },
        &mut out,
    );
    b.write_pes(
        &MuxPes {
            pid: Pid::new(0x300),
            ..v
        },
        &mut out,
    );
    let (ev, d) = run([Bytes::from(out)]);
    let programs: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::ProgramChanged { streams } => Some(streams.len()),
            _ => None,
        })
        .collect();
    assert_eq!(programs, vec![3, 1]);
    assert_eq!(count(&ev, VIDEO), 1);
    assert_eq!(count(&ev, Pid::new(0x300)), 2);
    assert_eq!(d.stats().cc_errors, 0, "{:?}", d.stats());
}

proptest! {
    /// Dropping any set of video packets counts one continuity error per gap, except gaps of
    /// a multiple of 16 packets (the 4-bit counter wraps undetectably) and gaps at the very
    /// start or end of the PID's packets, which leave no later packet to notice them.
    #[test]
    fn cc_errors_count_the_gaps(drops in prop::collection::btree_set(0usize..400, 0..40)) {
        let (raw, _) = build(8);
        let packets: Vec<&[u8]> = raw.chunks(PACKET_SIZE).collect();
        let is_video = |p: &[u8]| u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO.value();
        let video_total = packets.iter().filter(|p| is_video(p)).count();
        let drops: std::collections::BTreeSet<usize> =
            drops.into_iter().filter(|&d| d < video_total).collect();
        let mut kept = Vec::new();
        let mut v = 0;
        for p in &packets {
            if is_video(p) {
                let dropped = drops.contains(&v);
                v += 1;
                if dropped {
                    continue;
                }
            }
            kept.extend_from_slice(p);
        }
        let mut expected = 0;
        let mut gap = 0;
        for i in 0..video_total {
            if drops.contains(&i) {
                gap += 1;
                continue;
            }
            if gap > 0 && gap < i && gap % 16 != 0 {
                expected += 1;
            }
            gap = 0;
        }
        let (_, d) = run([Bytes::from(kept)]);
        prop_assert_eq!(d.pid_cc_errors(VIDEO), expected as u64);
        prop_assert_eq!(d.pid_cc_errors(AUDIO), 0);
    }
}

#[test]
fn losing_fifteen_packets_is_not_mistaken_for_a_duplicate() {
    let (raw, _) = build(12);
    let packets: Vec<&[u8]> = raw.chunks(PACKET_SIZE).collect();
    let is_video = |p: &[u8]| u16::from_be_bytes([p[1] & 0x1f, p[2]]) == VIDEO.value();
    let mut kept = Vec::new();
    let mut v = 0;
    for p in &packets {
        if is_video(p) {
            v += 1;
            if (100..115).contains(&v) {
                continue;
            }
        }
        kept.extend_from_slice(p);
    }
    let (_, d) = run([Bytes::from(kept)]);
    assert_eq!(d.stats().duplicates, 0);
    assert_eq!(d.pid_cc_errors(VIDEO), 1);
}
