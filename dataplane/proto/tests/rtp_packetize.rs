//! Property tests of the RTP packetizers: every packet fits the payload size, depacketizing
//! gives back the NAL units, and sequence numbers and timestamps stay continuous across their
//! wrap-arounds over long virtual runs.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_proto::media::{AudioFrame, VideoFrame};
use sluice_proto::rtp::{
    AacPacketizer, H264Depacketizer, H264Packetizer, H265Depacketizer, H265Packetizer,
    OpusPacketizer, PacketizerConfig, RtpPacket, RtpPacketView, RtpTimestamp, SeqNo, Ssrc,
};

fn config(seq: u16, ts: u32, max: usize) -> PacketizerConfig {
    PacketizerConfig {
        max_payload: max,
        ..PacketizerConfig::new(Ssrc(0xabc), 96, SeqNo(seq), RtpTimestamp(ts))
    }
}

/// H.264 NAL units with a valid header byte: non-IDR/IDR slices and SEI (not SPS/PPS/AUD, which
/// the packetizer moves or drops by design).
fn h264_nal() -> impl Strategy<Value = Bytes> {
    (
        prop::sample::select(vec![0x41u8, 0x65, 0x06, 0x01, 0x25]),
        prop::collection::vec(any::<u8>(), 0..4000),
    )
        .prop_map(|(h, body)| std::iter::once(h).chain(body).collect())
}

fn h265_nal() -> impl Strategy<Value = Bytes> {
    (
        prop::sample::select(vec![0x02u8, 0x26, 0x28, 0x4e, 0x00]),
        prop::collection::vec(any::<u8>(), 0..4000),
    )
        .prop_map(|(h, body)| [h, 0x01].into_iter().chain(body).collect())
}

fn check_wire(pkts: &[RtpPacket], max: usize) {
    for p in pkts {
        assert!(
            p.payload_len() <= max,
            "payload {} > {max}",
            p.payload_len()
        );
        let wire = Bytes::from(p.to_vec());
        let view = RtpPacketView::parse(&wire).unwrap();
        assert_eq!(view.header, p.header);
        assert_eq!(view.payload, p.payload_bytes());
    }
    for w in pkts.windows(2) {
        assert_eq!(w[1].header.sequence, w[0].header.sequence.next());
    }
}

proptest! {
    #[test]
    fn h264_round_trip_and_mtu(
        nalus in prop::collection::vec(h264_nal(), 1..6),
        max in 16usize..1500,
        seq: u16,
        ts: u32,
    ) {
        let mut p = H264Packetizer::new(config(seq, ts, max), None).unwrap();
        let frame = VideoFrame { pts: 0, dts: 0, keyframe: false, nalus: nalus.clone() };
        let mut out = Vec::new();
        p.packetize(&frame, &mut out);
        check_wire(&out, max);
        prop_assert!(out.last().unwrap().header.marker);
        prop_assert_eq!(out.iter().filter(|p| p.header.marker).count(), 1);
        let mut d = H264Depacketizer::new();
        let mut got = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut got).unwrap();
        }
        prop_assert_eq!(got, nalus);
    }

    #[test]
    fn h265_round_trip_and_mtu(
        nalus in prop::collection::vec(h265_nal(), 1..6),
        max in 16usize..1500,
        seq: u16,
    ) {
        let mut p = H265Packetizer::new(config(seq, 0, max), None).unwrap();
        let frame = VideoFrame { pts: 0, dts: 0, keyframe: false, nalus: nalus.clone() };
        let mut out = Vec::new();
        p.packetize(&frame, &mut out);
        check_wire(&out, max);
        let mut d = H265Depacketizer::new();
        let mut got = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut got).unwrap();
        }
        prop_assert_eq!(got, nalus);
    }

    #[test]
    fn aac_fragments_fit_and_rejoin(len in 0usize..8192, max in 16usize..1500) {
        let mut p = AacPacketizer::new(config(1, 2, max), 48_000).unwrap();
        let data: Bytes = (0..len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        p.packetize(&AudioFrame { pts: 0, data: data.clone() }, &mut out).unwrap();
        check_wire(&out, max);
        let mut joined = Vec::new();
        for pkt in &out {
            let (size, frag) = sluice_proto::rtp::aac::parse_aac_hbr(&pkt.payload_bytes()).unwrap();
            prop_assert_eq!(size, len);
            joined.extend_from_slice(&frag);
        }
        prop_assert_eq!(&joined[..], &data[..]);
        prop_assert!(out.last().unwrap().header.marker);
    }
}

proptest! {
    // Each case is a long run; a few random starts are enough.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// 30000/1001 fps video from a random start: timestamps advance by exactly the frame
    /// duration modulo 2^32 and sequence numbers by one modulo 2^16, through both wraps.
    #[test]
    fn video_wraps_stay_continuous(seq: u16, ts: u32, start in 0i64..(1 << 40)) {
        let mut p = H264Packetizer::new(config(seq, ts, 1200), None).unwrap();
        let mut out = Vec::new();
        let mut prev: Option<RtpPacket> = None;
        // 70_000 frames: more than one sequence wrap.
        for i in 0..70_000i64 {
            // 3003.0 ticks per frame exactly (90000 * 1001 / 30000).
            let pts = start + i * 3003;
            out.clear();
            p.packetize(&VideoFrame { pts, dts: pts, keyframe: false, nalus: vec![Bytes::from_static(&[0x41, 1])] }, &mut out);
            let pkt = out.pop().unwrap();
            if let Some(prev) = prev {
                prop_assert_eq!(pkt.header.sequence, prev.header.sequence.next());
                prop_assert_eq!(pkt.header.timestamp.0.wrapping_sub(prev.header.timestamp.0), 3003);
            }
            prev = Some(pkt);
        }
    }
}

/// A day of 20 ms Opus packets in virtual time (4.32 M packets): the 48 kHz timestamp wraps
/// about twice a day for a random start; every step is exactly 960 and the sequence steps by 1.
#[test]
fn opus_day_long_run() {
    let mut p = OpusPacketizer::new(config(65_000, 4_000_000_000, 1200)).unwrap();
    let data = Bytes::from_static(&[0xfc, 0xff, 0xfe]);
    let mut out = Vec::with_capacity(1);
    let mut last: Option<(SeqNo, RtpTimestamp)> = None;
    let mut wraps = 0;
    for i in 0..(24 * 3600 * 50i64) {
        out.clear();
        p.packetize(
            &AudioFrame {
                pts: i * 1800,
                data: data.clone(),
            },
            &mut out,
        )
        .unwrap();
        let h = out[0].header;
        if let Some((s, t)) = last {
            assert_eq!(h.sequence, s.next());
            assert_eq!(h.timestamp.0.wrapping_sub(t.0), 960);
            if h.timestamp.0 < t.0 {
                wraps += 1;
            }
        }
        last = Some((h.sequence, h.timestamp));
    }
    // 24 h * 48 kHz = 4.1472e9 samples < 2^32, but the start at 4e9 forces one wrap.
    assert_eq!(wraps, 1);
}
