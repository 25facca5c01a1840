//! H.265 over RTP, RFC 7798 without DONL (`sprop-max-don-diff` 0): single NAL unit packets
//! (§4.4.1), aggregation packets for VPS/SPS/PPS (§4.4.2, type 48) and fragmentation units
//! (§4.4.3, type 49). The marker bit closes each access unit (§4.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    DepacketizeError, MAX_REASSEMBLED_NAL, PacketizeError, PacketizerConfig, ParameterSets,
    RtpClock, RtpPacket, RtpTimestamp, Sequencer, even_chunks,
};
use crate::codec::h265::{NAL_AP, NAL_AUD, NAL_FU, NAL_PPS, NAL_SPS, NAL_VPS, NalHeader};
use crate::media::{MEDIA_CLOCK_HZ, VideoConfig, VideoFrame};

/// Parameter-set kind of a NAL unit: 0 VPS, 1 SPS, 2 PPS.
fn kind(nal: &Bytes) -> Option<usize> {
    match NalHeader::parse(nal)?.nal_type {
        NAL_VPS => Some(0),
        NAL_SPS => Some(1),
        NAL_PPS => Some(2),
        _ => None,
    }
}

/// Packetizes H.265 access units.
#[derive(Debug, Clone)]
pub struct H265Packetizer {
    seq: Sequencer,
    clock: RtpClock,
    params: ParameterSets,
}

impl H265Packetizer {
    /// A packetizer with the given numbering; `config`'s parameter sets (if any) are sent
    /// before every IRAP picture.
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
            p.params
                .update(v.vps.iter().chain(&v.sps).chain(&v.pps), kind);
        }
        Ok(p)
    }

    /// Appends the packets of one access unit to `out`. Access unit delimiters and unspecified
    /// NAL types (48..=63) are dropped; before an IRAP picture the VPSs, SPSs and PPSs go
    /// first, in one AP when they fit.
    pub fn packetize(&mut self, frame: &VideoFrame, out: &mut Vec<RtpPacket>) {
        let ts = self.clock.timestamp(frame.pts);
        let first = out.len();
        let keyframe =
            frame.keyframe || crate::codec::h265::is_keyframe(frame.nalus.iter().map(|n| &n[..]));
        self.params.update(&frame.nalus, kind);
        if keyframe {
            let sets = self.params.to_vec();
            self.aggregate(&sets, ts, out);
        }
        for nal in &frame.nalus {
            let Some(h) = NalHeader::parse(nal) else {
                continue;
            };
            match h.nal_type {
                NAL_AUD => continue,
                // Unspecified types 48..=63 would read as AP/FU/PACI at the receiver.
                t if t >= NAL_AP => continue,
                NAL_VPS | NAL_SPS | NAL_PPS if keyframe => continue,
                _ => self.single_or_fragments(nal, h, ts, out),
            }
        }
        if let Some(last) = out.get_mut(first..).and_then(|s| s.last_mut()) {
            last.header.marker = true;
        }
    }

    fn aggregate(&mut self, nalus: &[Bytes], ts: RtpTimestamp, out: &mut Vec<RtpPacket>) {
        let size = 2 + nalus.iter().map(|n| 2 + n.len()).sum::<usize>();
        let headers: Vec<NalHeader> = nalus.iter().filter_map(|n| NalHeader::parse(n)).collect();
        if nalus.len() < 2 || headers.len() != nalus.len() || size > self.seq.config.max_payload {
            for (n, h) in nalus.iter().zip(headers) {
                self.single_or_fragments(n, h, ts, out);
            }
            return;
        }
        // §4.4.2: F is the OR, LayerId and TID the lowest of the aggregated units.
        let ap = NalHeader {
            forbidden_zero_bit: headers.iter().any(|h| h.forbidden_zero_bit),
            nal_type: NAL_AP,
            layer_id: headers.iter().map(|h| h.layer_id).min().unwrap_or(0),
            temporal_id_plus1: headers
                .iter()
                .map(|h| h.temporal_id_plus1)
                .min()
                .unwrap_or(1),
        };
        // The one copy here: the parameter sets, once per keyframe.
        let mut buf = BytesMut::with_capacity(size);
        buf.put_slice(&ap.to_bytes());
        for n in nalus {
            // size <= max_payload <= 65000.
            buf.put_u16(n.len() as u16);
            buf.put_slice(n);
        }
        self.seq.push(out, ts, &[], buf.freeze());
    }

    fn single_or_fragments(
        &mut self,
        nal: &Bytes,
        h: NalHeader,
        ts: RtpTimestamp,
        out: &mut Vec<RtpPacket>,
    ) {
        let max = self.seq.config.max_payload;
        if nal.len() <= max {
            self.seq.push(out, ts, &[], nal.clone());
            return;
        }
        let [p0, p1] = NalHeader {
            nal_type: NAL_FU,
            ..h
        }
        .to_bytes();
        let body = nal.slice(2..);
        let chunks: Vec<(usize, usize)> = even_chunks(body.len(), max - 3).collect();
        let last = chunks.len() - 1;
        for (i, (s, e)) in chunks.into_iter().enumerate() {
            let fu = (u8::from(i == 0) << 7) | (u8::from(i == last) << 6) | h.nal_type;
            self.seq.push(out, ts, &[p0, p1, fu], body.slice(s..e));
        }
    }
}

/// Turns RFC 7798 payloads (single NAL, AP, FU; no DONL) back into NAL units.
#[derive(Debug, Default)]
pub struct H265Depacketizer {
    fu: Option<BytesMut>,
}

impl H265Depacketizer {
    /// A depacketizer with no fragment in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes one RTP payload, appending completed NAL units to `out` (slices of `payload`,
    /// except reassembled FUs, which are a forced copy).
    pub fn push(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), DepacketizeError> {
        let h = NalHeader::parse(payload).ok_or(DepacketizeError::Truncated)?;
        match h.nal_type {
            0..=47 => {
                self.fu = None;
                out.push(payload.clone());
            }
            NAL_AP => {
                self.fu = None;
                let mut pos = 2;
                while pos < payload.len() {
                    let len = payload
                        .get(pos..pos + 2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                        .ok_or(DepacketizeError::Truncated)?;
                    let start = pos + 2;
                    let end = start + len;
                    if len < 2 || end > payload.len() {
                        return Err(DepacketizeError::Truncated);
                    }
                    out.push(payload.slice(start..end));
                    pos = end;
                }
            }
            NAL_FU => {
                let &fu = payload.get(2).ok_or(DepacketizeError::Truncated)?;
                let body = payload.get(3..).unwrap_or_default();
                if fu & 0x80 != 0 {
                    let mut buf =
                        BytesMut::with_capacity(body.len().saturating_mul(8).min(1 << 16));
                    buf.put_slice(
                        &NalHeader {
                            nal_type: fu & 0x3f,
                            ..h
                        }
                        .to_bytes(),
                    );
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
    use crate::rtp::{SeqNo, Ssrc};

    #[test]
    fn irap_gets_ap_then_fragments_and_round_trips() {
        let vps = Bytes::from_static(&[0x40, 0x01, 0x0c]);
        let sps = Bytes::from_static(&[0x42, 0x01, 0x01]);
        let pps = Bytes::from_static(&[0x44, 0x01, 0xc1]);
        let idr: Bytes = [0x26u8, 0x01]
            .into_iter()
            .chain((0..60).map(|i| i as u8))
            .collect();
        let cfg = PacketizerConfig {
            max_payload: 32,
            ..PacketizerConfig::new(Ssrc(1), 97, SeqNo(10), RtpTimestamp(0))
        };
        let mut p = H265Packetizer::new(cfg, None).unwrap();
        let mut out = Vec::new();
        let frame = VideoFrame {
            pts: 0,
            dts: 0,
            keyframe: true,
            nalus: vec![
                Bytes::from_static(&[0x46, 0x01, 0x10]),
                vps.clone(),
                sps.clone(),
                pps.clone(),
                idr.clone(),
            ],
        };
        p.packetize(&frame, &mut out);
        // AP, then 60 body bytes in ceil(60 / 29) = 3 fragments.
        assert_eq!(out.len(), 4);
        assert_eq!(&out[0].payload[..4], &[0x60, 0x01, 0, 3]);
        assert_eq!(out[1].prefix(), &[0x62, 0x01, 0x80 | 19]);
        assert_eq!(out[3].prefix(), &[0x62, 0x01, 0x40 | 19]);
        assert!(out.iter().all(|p| p.payload_len() <= 32));
        assert_eq!(
            out.iter().map(|p| p.header.marker).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        let mut d = H265Depacketizer::new();
        let mut nalus = Vec::new();
        for pkt in &out {
            d.push(&pkt.payload_bytes(), &mut nalus).unwrap();
        }
        assert_eq!(nalus, [vps, sps, pps, idr]);
    }

    #[test]
    fn depacketizer_rejects_bad_payloads() {
        let mut d = H265Depacketizer::new();
        let mut out = Vec::new();
        assert_eq!(
            d.push(&Bytes::from_static(&[0x26]), &mut out),
            Err(DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x62, 0x01, 0x13, 1]), &mut out),
            Err(DepacketizeError::FragmentWithoutStart)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x60, 0x01, 0, 9, 1]), &mut out),
            Err(DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(&Bytes::from_static(&[0x64, 0x01]), &mut out),
            Err(DepacketizeError::Unsupported(50))
        );
    }
}
