//! Opus over RTP (RFC 7587 §4): one Opus packet per RTP packet, 48 kHz clock whatever the
//! coded bandwidth, marker bit clear.

use super::{PacketizeError, PacketizerConfig, RtpClock, RtpPacket, Sequencer};
use crate::codec::opus::OPUS_CLOCK_HZ;
use crate::media::AudioFrame;

/// Packetizes Opus packets.
#[derive(Debug, Clone)]
pub struct OpusPacketizer {
    seq: Sequencer,
    clock: RtpClock,
}

impl OpusPacketizer {
    /// A packetizer on the 48 kHz Opus RTP clock.
    pub fn new(config: PacketizerConfig) -> Result<Self, PacketizeError> {
        Ok(Self {
            seq: Sequencer::new(config)?,
            clock: RtpClock {
                rate: OPUS_CLOCK_HZ,
                offset: config.initial_timestamp,
            },
        })
    }

    /// Appends the packet of one Opus packet to `out`. Opus packets cannot be fragmented, so
    /// one over the payload size is refused.
    pub fn packetize(
        &mut self,
        frame: &AudioFrame,
        out: &mut Vec<RtpPacket>,
    ) -> Result<(), PacketizeError> {
        if frame.data.len() > self.seq.config.max_payload {
            return Err(PacketizeError::PacketTooLarge(frame.data.len()));
        }
        let ts = self.clock.timestamp(frame.pts);
        self.seq.push(out, ts, &[], frame.data.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpTimestamp, SeqNo, Ssrc};
    use bytes::Bytes;

    #[test]
    fn one_packet_per_opus_packet_at_48k() {
        let cfg = PacketizerConfig::new(Ssrc(9), 111, SeqNo(u16::MAX), RtpTimestamp(u32::MAX - 10));
        let mut p = OpusPacketizer::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..3 {
            let f = AudioFrame {
                pts: i * 1800, // 20 ms
                data: Bytes::from_static(&[0xfc, 1, 2]),
            };
            p.packetize(&f, &mut out).unwrap();
        }
        let ts: Vec<u32> = out.iter().map(|p| p.header.timestamp.0).collect();
        assert_eq!(ts, [u32::MAX - 10, 949, 1909]);
        let seq: Vec<u16> = out.iter().map(|p| p.header.sequence.0).collect();
        assert_eq!(seq, [u16::MAX, 0, 1]);
        assert!(
            out.iter()
                .all(|p| !p.header.marker && p.prefix().is_empty())
        );
        let big = AudioFrame {
            pts: 0,
            data: Bytes::from(vec![0; 1201]),
        };
        assert_eq!(
            p.packetize(&big, &mut out),
            Err(PacketizeError::PacketTooLarge(1201))
        );
    }
}
