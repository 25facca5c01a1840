//! AAC over RTP, RFC 3640 mode AAC-hbr (§3.3.6): one access unit per packet, preceded by a
//! 16-bit AU-headers-length and one 16-bit AU header (13-bit AU-size, 3-bit AU-Index 0).
//! An AU larger than the payload is fragmented (§3.2.3): every fragment repeats the AU header
//! with the size of the whole AU, and only the last sets the marker bit.

use bytes::Bytes;

use super::{PacketizeError, PacketizerConfig, RtpClock, RtpPacket, Sequencer, even_chunks};
use crate::media::AudioFrame;

/// Largest AU the 13-bit AU-size field can describe.
pub const MAX_AU_SIZE: usize = 8191;

/// Bytes before the AU data: AU-headers-length (16 bits) and one AU header (16 bits).
const AU_SECTION: usize = 4;

/// Packetizes AAC access units (raw frames, no ADTS header).
#[derive(Debug, Clone)]
pub struct AacPacketizer {
    seq: Sequencer,
    clock: RtpClock,
}

impl AacPacketizer {
    /// A packetizer whose RTP clock is the AAC sample rate (`MPEG4-GENERIC/<rate>`).
    pub fn new(config: PacketizerConfig, sample_rate: u32) -> Result<Self, PacketizeError> {
        if sample_rate == 0 {
            return Err(PacketizeError::BadClockRate(sample_rate));
        }
        Ok(Self {
            seq: Sequencer::new(config)?,
            clock: RtpClock {
                rate: sample_rate,
                offset: config.initial_timestamp,
            },
        })
    }

    /// Appends the packet(s) of one access unit to `out`.
    pub fn packetize(
        &mut self,
        frame: &AudioFrame,
        out: &mut Vec<RtpPacket>,
    ) -> Result<(), PacketizeError> {
        let au = &frame.data;
        if au.len() > MAX_AU_SIZE {
            return Err(PacketizeError::AuTooLarge(au.len()));
        }
        let ts = self.clock.timestamp(frame.pts);
        let size = au.len() as u16;
        let section = [0x00, 0x10, (size >> 5) as u8, ((size & 0x1f) << 3) as u8];
        let first = out.len();
        for (s, e) in even_chunks(au.len(), self.seq.config.max_payload - AU_SECTION) {
            self.seq.push(out, ts, &section, au.slice(s..e));
        }
        if let Some(last) = out.get_mut(first..).and_then(|s| s.last_mut()) {
            last.header.marker = true;
        }
        Ok(())
    }
}

/// Reads the AU-headers section of an AAC-hbr payload with one AU header: returns the AU size
/// it announces and the AU data (or fragment) that follows, a slice of `payload`.
pub fn parse_aac_hbr(payload: &Bytes) -> Option<(usize, Bytes)> {
    let [l0, l1, a0, a1] = *payload.first_chunk::<AU_SECTION>()?;
    if u16::from_be_bytes([l0, l1]) != 16 {
        return None;
    }
    let size = usize::from(u16::from_be_bytes([a0, a1]) >> 3);
    Some((size, payload.slice(AU_SECTION..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpTimestamp, SeqNo, Ssrc};

    #[test]
    fn small_au_one_packet() {
        let cfg = PacketizerConfig::new(Ssrc(3), 97, SeqNo(0), RtpTimestamp(5));
        let mut p = AacPacketizer::new(cfg, 44_100).unwrap();
        let mut out = Vec::new();
        let data = Bytes::from(vec![0x21u8; 371]);
        p.packetize(
            &AudioFrame {
                pts: 2 * 90_000,
                data: data.clone(),
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].prefix(), &[0x00, 0x10, 0x0b, 0x98]);
        assert!(out[0].header.marker);
        assert_eq!(out[0].header.timestamp, RtpTimestamp(88_205));
        assert_eq!(parse_aac_hbr(&out[0].payload_bytes()), Some((371, data)));
    }

    #[test]
    fn large_au_fragments() {
        let cfg = PacketizerConfig {
            max_payload: 100,
            ..PacketizerConfig::new(Ssrc(3), 97, SeqNo(0), RtpTimestamp(0))
        };
        let mut p = AacPacketizer::new(cfg, 48_000).unwrap();
        let mut out = Vec::new();
        let data: Bytes = (0..250).map(|i| i as u8).collect();
        p.packetize(
            &AudioFrame {
                pts: 0,
                data: data.clone(),
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        let mut joined = Vec::new();
        for (i, pkt) in out.iter().enumerate() {
            assert!(pkt.payload_len() <= 100);
            assert_eq!(pkt.header.marker, i == 2);
            let (size, frag) = parse_aac_hbr(&pkt.payload_bytes()).unwrap();
            assert_eq!(size, 250);
            joined.extend_from_slice(&frag);
        }
        assert_eq!(joined, data);
        let big = AudioFrame {
            pts: 0,
            data: Bytes::from(vec![0; 8192]),
        };
        assert_eq!(
            p.packetize(&big, &mut out),
            Err(PacketizeError::AuTooLarge(8192))
        );
        assert_eq!(
            AacPacketizer::new(cfg, 0).err(),
            Some(PacketizeError::BadClockRate(0))
        );
    }
}
