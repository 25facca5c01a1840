//! H.264 over RTP, RFC 6184 packetization-mode 1 (non-interleaved): single NAL unit packets
//! (§5.6), STAP-A for the parameter sets (§5.7.1) and FU-A for NAL units over the payload
//! size (§5.8). The marker bit closes each access unit (§5.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    DepacketizeError, MAX_REASSEMBLED_NAL, PacketizeError, PacketizerConfig, ParameterSets,
    RtpClock, RtpPacket, Sequencer, even_chunks,
};
use crate::codec::h264::NalType;
use crate::media::{MEDIA_CLOCK_HZ, VideoConfig, VideoFrame};

const STAP_A: u8 = 24;

/// Parameter-set kind of a NAL unit: 1 for an SPS, 2 for a PPS (0 is H.265's VPS).
fn kind(nal: &Bytes) -> Option<usize> {
    match NalType::from_u8(*nal.first()?) {
        NalType::Sps => Some(1),
        NalType::Pps => Some(2),
        _ => None,
    }
}
const FU_A: u8 = 28;

/// Packetizes H.264 access units.
#[derive(Debug, Clone)]
pub struct H264Packetizer {
    seq: Sequencer,
    clock: RtpClock,
    params: ParameterSets,
}

impl H264Packetizer {
    /// A packetizer with the given numbering; `config`'s SPS/PPS (if any) are sent before
    /// every keyframe that does not carry its own.
    pub fn new(
        config: PacketizerConfig,
        video: Option<&VideoConfig>,
    ) -> Result<Self, PacketizeError> {
        let mut p = Self {
            seq: Sequencer::new(config)?,
            clock: RtpClock {
                rate: MEDIA_CLOCK_HZ,
                offset: config.initial_timestamp,
            },
            params: ParameterSets::default(),
        };
        if let Some(v) = video {
            p.set_parameter_sets(&v.sps, &v.pps);
        }
        Ok(p)
    }

    /// Replaces the parameter sets sent before keyframes (each list may hold several ids).
    pub fn set_parameter_sets(&mut self, sps: &[Bytes], pps: &[Bytes]) {
        self.params = ParameterSets::default();
        self.params.update(sps.iter().chain(pps), kind);
    }

    /// Appends the packets of one access unit to `out`. Access unit delimiters, filler data and
    /// unspecified NAL types (0, 24..=31) are dropped; on a keyframe the SPSs and PPSs go
    /// first, in one STAP-A when they fit.
    pub fn packetize(&mut self, frame: &VideoFrame, out: &mut Vec<RtpPacket>) {
        let ts = self.clock.timestamp(frame.pts);
        let first = out.len();
        let keyframe =
            frame.keyframe || crate::codec::h264::is_keyframe(frame.nalus.iter().map(|n| &n[..]));
        self.params.update(&frame.nalus, kind);
        if keyframe {
            let sets = self.params.to_vec();
            self.aggregate(&sets, ts, out);
        }
        for nal in &frame.nalus {
            let Some(&h) = nal.first() else { continue };
            match NalType::from_u8(h) {
                NalType::Aud | NalType::Filler => continue,
                // Unspecified types (0, 24..=31) would read as RTP payload structures
                // (STAP-A, FU-A, ...) at the receiver: never forward them.
                NalType::Other(0) | NalType::StapA | NalType::FuA => continue,
                NalType::Other(t) if t >= 24 => continue,
                NalType::Sps | NalType::Pps if keyframe => continue,
                _ => self.single_or_fragments(nal, ts, out),
            }
        }
        if let Some(last) = out.get_mut(first..).and_then(|s| s.last_mut()) {
            last.header.marker = true;
        }
    }

    fn aggregate(&mut self, nalus: &[Bytes], ts: super::RtpTimestamp, out: &mut Vec<RtpPacket>) {
        let size = 1 + nalus.iter().map(|n| 2 + n.len()).sum::<usize>();
        if nalus.len() < 2 || size > self.seq.config.max_payload {
            for n in nalus {
                self.single_or_fragments(n, ts, out);
            }
            return;
        }
        // The one copy in this packetizer: a few dozen bytes of parameter sets per keyframe.
        let mut buf = BytesMut::with_capacity(size);
        let first_bytes = nalus.iter().map(|n| n.first().copied().unwrap_or(0));
        let f = first_bytes.clone().fold(0, |a, b| a | (b & 0x80));
        let nri = first_bytes.map(|b| b & 0x60).max().unwrap_or(0);
        buf.put_u8(f | nri | STAP_A);
        for n in nalus {
            // size <= max_payload <= 65000, so each length fits 16 bits.
            buf.put_u16(n.len() as u16);
            buf.put_slice(n);
        }
        self.seq.push(out, ts, &[], buf.freeze());
    }

    fn single_or_fragments(
        &mut self,
        nal: &Bytes,
        ts: super::RtpTimestamp,
        out: &mut Vec<RtpPacket>,
    ) {
        let max = self.seq.config.max_payload;
        let Some(&h) = nal.first() else { return };
        if nal.len() <= max {
            self.seq.push(out, ts, &[], nal.clone());
            return;
        }
        let indicator = (h & 0xe0) | FU_A;
        let body = nal.slice(1..);
        let chunks: Vec<(usize, usize)> = even_chunks(body.len(), max - 2).collect();
        let last = chunks.len() - 1;
        for (i, (s, e)) in chunks.into_iter().enumerate() {
            let fu = (u8::from(i == 0) << 7) | (u8::from(i == last) << 6) | (h & 0x1f);
            self.seq.push(out, ts, &[indicator, fu], body.slice(s..e));
        }
    }
}

/// Turns RFC 6184 payloads (single NAL, STAP-A, FU-A) back into NAL units. Used by tests, fuzz
/// targets and, later, RTP ingest.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    fu: Option<BytesMut>,
}

impl H264Depacketizer {
    /// A depacketizer with no fragment in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes one RTP payload, appending completed NAL units to `out` (slices of `payload`,
    /// except reassembled FU-A units, which are a forced copy).
    pub fn push(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), DepacketizeError> {
        let &h = payload.first().ok_or(DepacketizeError::Truncated)?;
        match h & 0x1f {
            1..=23 => {
                self.fu = None;
                out.push(payload.clone());
            }
            STAP_A => {
                self.fu = None;
                let mut pos = 1;
                while pos < payload.len() {
                    let len = payload
                        .get(pos..pos + 2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                        .ok_or(DepacketizeError::Truncated)?;
                    let start = pos + 2;
                    let end = start + len;
                    if len == 0 || end > payload.len() {
                        return Err(DepacketizeError::Truncated);
                    }
                    out.push(payload.slice(start..end));
                    pos = end;
                }
            }
            FU_A => {
                let &fu = payload.get(1).ok_or(DepacketizeError::Truncated)?;
                let body = payload.get(2..).unwrap_or_default();
                if fu & 0x80 != 0 {
                    let mut buf =
                        BytesMut::with_capacity(body.len().saturating_mul(8).min(1 << 16));
                    buf.put_u8((h & 0xe0) | (fu & 0x1f));
                    self.fu = Some(buf);
                }
                let buf = self
                    .fu
                    .as_mut()
                    .ok_or(DepacketizeError::FragmentWithoutStart)?;
                if buf.len() + body.len() > MAX_REASSEMBLED_NAL {
                    self.fu = None;
                    return Err(DepacketizeError::TooLarge);
                }
                buf.put_slice(body);
                if fu & 0x40 != 0 {
                    out.extend(self.fu.take().map(BytesMut::freeze));
                }
            }
            t => return Err(DepacketizeError::Unsupported(t)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpTimestamp, SeqNo, Ssrc};

    fn cfg(max: usize) -> PacketizerConfig {
        PacketizerConfig {
            max_payload: max,
            ..PacketizerConfig::new(Ssrc(7), 96, SeqNo(65_534), RtpTimestamp(1000))
        }
    }

    fn frame(keyframe: bool, nalus: Vec<Bytes>) -> VideoFrame {
        VideoFrame {
            pts: 3000,
            dts: 3000,
            keyframe,
            nalus,
        }
    }

    #[test]
    fn keyframe_gets_stap_a_then_fragments() {
        let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x0d]);
        let pps = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
        let idr: Bytes = std::iter::once(0x65u8)
            .chain((0..100).map(|i| i as u8))
            .collect();
        let mut p = H264Packetizer::new(cfg(40), None).unwrap();
        let mut out = Vec::new();
        let aud = Bytes::from_static(&[0x09, 0xf0]);
        p.packetize(
            &frame(true, vec![aud, sps.clone(), pps.clone(), idr.clone()]),
            &mut out,
        );
        // STAP-A + ceil(100 / 38) = 3 fragments.
        assert_eq!(out.len(), 4);
        assert_eq!(
            &out[0].payload[..],
            &[
                0x78, 0, 4, 0x67, 0x42, 0xc0, 0x0d, 0, 4, 0x68, 0xce, 0x3c, 0x80
            ]
        );
        assert_eq!(out[1].prefix(), &[0x7c, 0x85]);
        assert_eq!(out[3].prefix(), &[0x7c, 0x45]);
        let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence.0).collect();
        assert_eq!(seqs, [65_534, 65_535, 0, 1]);
        assert!(out.iter().all(|p| p.header.timestamp == RtpTimestamp(4000)));
        assert!(out.iter().all(|p| p.payload_len() <= 40));
        let markers: Vec<bool> = out.iter().map(|p| p.header.marker).collect();
        assert_eq!(markers, [false, false, false, true]);
        let mut d = H264Depacketizer::new();
        let mut nalus = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut nalus).unwrap();
        }
        assert_eq!(nalus, [sps, pps, idr]);
    }

    #[test]
    fn stored_parameter_sets_precede_keyframes_only() {
        let v = VideoConfig {
            codec: crate::media::VideoCodec::H264,
            vps: vec![],
            sps: vec![Bytes::from_static(&[0x67, 1])],
            pps: vec![Bytes::from_static(&[0x68, 2])],
            width: 0,
            height: 0,
            profile: 0,
            constraints: 0,
            level: 0,
            frame_rate: None,
        };
        let mut p = H264Packetizer::new(cfg(1200), Some(&v)).unwrap();
        let mut out = Vec::new();
        p.packetize(
            &frame(false, vec![Bytes::from_static(&[0x41, 9])]),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].header.marker);
        p.packetize(&frame(true, vec![Bytes::from_static(&[0x65, 9])]), &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].payload[0] & 0x1f, STAP_A);
        assert!(!out[1].header.marker && out[2].header.marker);
    }

    #[test]
    fn every_parameter_set_id_is_repeated() {
        let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x0d]);
        let pps0 = Bytes::from_static(&[0x68, 0xce]);
        let pps1 = Bytes::from_static(&[0x68, 0x4e]);
        let mut p = H264Packetizer::new(cfg(1200), None).unwrap();
        let mut out = Vec::new();
        let idr = Bytes::from_static(&[0x65, 1]);
        p.packetize(
            &frame(
                true,
                vec![sps.clone(), pps0.clone(), pps1.clone(), idr.clone()],
            ),
            &mut out,
        );
        p.packetize(&frame(true, vec![idr.clone()]), &mut out);
        // A new in-band PPS list replaces the old one; the SPS list stays.
        p.packetize(&frame(true, vec![pps1.clone(), idr.clone()]), &mut out);
        let mut d = H264Depacketizer::new();
        let mut nalus = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut nalus).unwrap();
        }
        let first = [sps.clone(), pps0, pps1.clone(), idr.clone()];
        let last = [sps, pps1, idr];
        assert_eq!(nalus, [&first[..], &first[..], &last[..]].concat());
    }

    #[test]
    fn depacketizer_rejects_bad_payloads() {
        let mut d = H264Depacketizer::new();
        let mut out = Vec::new();
        assert_eq!(
            d.push(&Bytes::new(), &mut out),
            Err(DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x78, 0, 5, 1]), &mut out),
            Err(DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x7c, 0x05, 1]), &mut out),
            Err(DepacketizeError::FragmentWithoutStart)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x79, 0]), &mut out),
            Err(DepacketizeError::Unsupported(25))
        );
        assert!(out.is_empty());
    }
}
