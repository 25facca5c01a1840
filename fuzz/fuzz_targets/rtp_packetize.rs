//! H.264 / H.265 packetization: every packet fits the payload size, parses back as RTP, and
//! depacketizing yields exactly the NAL units the packetizer promises to send (all parameter
//! sets of the access unit first on keyframes; delimiters, filler and unspecified types
//! dropped).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::codec::{h264, h265};
use sluice_proto::media::VideoFrame;
use sluice_proto::rtp::{
    H264Depacketizer, H264Packetizer, H265Depacketizer, H265Packetizer, PacketizerConfig,
    RtpPacket, RtpPacketView, RtpTimestamp, SeqNo, Ssrc,
};

/// Input layout: [max_payload hi, lo, flags, then NAL units each prefixed by a 2-byte length].
fn nalus(data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [a, b, tail @ ..] = rest {
        let len = (usize::from(*a) << 8 | usize::from(*b)).min(tail.len());
        out.push(Bytes::copy_from_slice(&tail[..len]));
        rest = &tail[len..];
    }
    out
}

fn check(out: &[RtpPacket], max: usize) {
    for p in out {
        assert!(p.payload_len() <= max);
        let wire = Bytes::from(p.to_vec());
        let v = RtpPacketView::parse(&wire).unwrap();
        assert_eq!(v.header, p.header);
    }
    if let Some(last) = out.last() {
        assert!(last.header.marker);
    }
    assert!(out.iter().rev().skip(1).all(|p| !p.header.marker));
}

fuzz_target!(|data: &[u8]| {
    let [hi, lo, flags, rest @ ..] = data else {
        return;
    };
    let max = (usize::from(*hi) << 8 | usize::from(*lo)).clamp(16, 4000);
    let keyframe = flags & 1 == 1;
    let input = nalus(rest);
    let frame = VideoFrame {
        pts: i64::from(*lo) * 3000,
        dts: 0,
        keyframe,
        nalus: input.clone(),
    };
    let cfg = PacketizerConfig {
        max_payload: max,
        ..PacketizerConfig::new(Ssrc(1), 96, SeqNo(u16::from(*hi) << 8), RtpTimestamp(7))
    };
    let mut out = Vec::new();
    if flags & 2 == 0 {
        let mut p = H264Packetizer::new(cfg, None).unwrap();
        p.packetize(&frame, &mut out);
        check(&out, max);
        let key = keyframe || h264::is_keyframe(input.iter().map(|n| &n[..]));
        let ty = |n: &Bytes| h264::nal_type(n).map(|t| t.as_u8());
        let all = |t: u8| input.iter().filter(move |n| ty(n) == Some(t)).cloned();
        let mut want: Vec<Bytes> = Vec::new();
        if key {
            want.extend(all(7));
            want.extend(all(8));
        }
        want.extend(
            input
                .iter()
                .filter(|n| match ty(n) {
                    None | Some(0) | Some(9) | Some(12) | Some(24..) => false,
                    Some(7 | 8) => !key,
                    Some(_) => true,
                })
                .cloned(),
        );
        let mut d = H264Depacketizer::new();
        let mut got = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut got).unwrap();
        }
        assert_eq!(got, want);
    } else {
        let mut p = H265Packetizer::new(cfg, None).unwrap();
        p.packetize(&frame, &mut out);
        check(&out, max);
        let key = keyframe || h265::is_keyframe(input.iter().map(|n| &n[..]));
        let ty = |n: &Bytes| h265::nal_type(n);
        let all = |t: u8| input.iter().filter(move |n| ty(n) == Some(t)).cloned();
        let mut want: Vec<Bytes> = Vec::new();
        if key {
            want.extend(all(32));
            want.extend(all(33));
            want.extend(all(34));
        }
        want.extend(
            input
                .iter()
                .filter(|n| match ty(n) {
                    None | Some(35) | Some(48..) => false,
                    Some(32..=34) => !key,
                    Some(_) => true,
                })
                .cloned(),
        );
        let mut d = H265Depacketizer::new();
        let mut got = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut got).unwrap();
        }
        assert_eq!(got, want);
    }
});
