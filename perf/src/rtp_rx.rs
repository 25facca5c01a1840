//! Counting side of an RTP forwarder receiver: packets, frames, loss, gaps and latency.
//!
//! Spec: RFC 3550 5.1 (fixed header, CSRC list, header extension), A.1 (sequence number
//! extension and loss accounting); RFC 6184 for the H.264 payload (see [`crate::sei`]).
//!
//! Sans-IO: [`RtpCounter::handle`] takes one datagram and the receive time; the socket loop
//! lives in [`crate::load`].

use crate::sei;

/// Why a datagram was not counted as RTP (the sender's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the header it announces.
    #[error("truncated RTP packet")]
    Truncated,
    /// Version field is not 2.
    #[error("RTP version {0}")]
    Version(u8),
}

/// The parts of an RTP packet the counter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    /// Marker bit: last packet of a video frame.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload (padding removed).
    pub payload: &'a [u8],
}

/// Parses an RTP packet (RFC 3550 5.1), skipping CSRCs, the extension and padding.
pub fn parse(d: &[u8]) -> Result<RtpHeader<'_>, RtpError> {
    let h = d.get(..12).ok_or(RtpError::Truncated)?;
    let version = h[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let mut off = 12 + usize::from(h[0] & 0x0F) * 4;
    if h[0] & 0x10 != 0 {
        let ext = d.get(off..off + 4).ok_or(RtpError::Truncated)?;
        off += 4 + usize::from(u16::from_be_bytes([ext[2], ext[3]])) * 4;
    }
    let mut end = d.len();
    if h[0] & 0x20 != 0 {
        let pad = usize::from(*d.last().ok_or(RtpError::Truncated)?);
        end = end.checked_sub(pad).ok_or(RtpError::Truncated)?;
    }
    let payload = d.get(off..end).ok_or(RtpError::Truncated)?;
    Ok(RtpHeader {
        marker: h[1] & 0x80 != 0,
        payload_type: h[1] & 0x7F,
        seq: u16::from_be_bytes([h[2], h[3]]),
        timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        payload,
    })
}

/// Counters of one RTP stream (one receiver port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpCounter {
    /// Datagrams that parsed as RTP.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Packets with the marker bit (video frames).
    pub frames: u64,
    /// Packets missing by sequence number (RFC 3550 A.3: expected minus received, never
    /// negative per gap).
    pub lost: u64,
    /// Times the sequence jumped forward (each loss burst counts once).
    pub gaps: u64,
    /// Datagrams that were not RTP.
    pub malformed: u64,
    /// Packets that arrived late (sequence behind the highest seen).
    pub reordered: u64,
    highest: Option<u16>,
    /// Send time of the frame being received: (RTP timestamp, marker send time, ns).
    pending: Option<(u32, u64)>,
}

impl RtpCounter {
    /// Counts one datagram received at `now_ns` (same clock as the markers). Returns the
    /// latency in ns when this packet completes a frame that carried a marker.
    pub fn handle(&mut self, d: &[u8], now_ns: u64) -> Option<u64> {
        let Ok(p) = parse(d) else {
            self.malformed += 1;
            return None;
        };
        self.packets += 1;
        self.bytes += p.payload.len() as u64;
        match self.highest {
            None => self.highest = Some(p.seq),
            Some(h) => {
                let delta = p.seq.wrapping_sub(h);
                if delta == 0 || delta >= 0x8000 {
                    self.reordered += 1;
                } else {
                    if delta > 1 {
                        self.lost += u64::from(delta - 1);
                        self.gaps += 1;
                    }
                    self.highest = Some(p.seq);
                }
            }
        }
        if let Some(t) = sei::find_in_rtp_payload(p.payload) {
            self.pending = Some((p.timestamp, t));
        }
        if p.marker {
            self.frames += 1;
            if let Some((ts, sent)) = self.pending
                && ts == p.timestamp
            {
                self.pending = None;
                return Some(now_ns.saturating_sub(sent));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&0x1234u32.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_extension_csrc_and_padding() {
        let mut v = vec![0xB1, 0x60, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1];
        v.extend_from_slice(&[0xAA; 4]); // one CSRC
        v.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension of one word
        v.extend_from_slice(&[0x65, 0x11, 0, 2]); // payload + 2 padding bytes
        let p = parse(&v).unwrap();
        assert_eq!(p.payload, &[0x65, 0x11]);
        assert_eq!((p.seq, p.timestamp, p.payload_type), (1, 9, 96));
        assert_eq!(parse(&v[..14]), Err(RtpError::Truncated));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version(1)));
    }

    #[test]
    fn loss_gaps_reorder_and_latency() {
        let mut c = RtpCounter::default();
        let marker = sei::marker_nal(1_000);
        assert_eq!(c.handle(&pkt(65534, 90, false, &marker), 1_500), None);
        assert_eq!(
            c.handle(&pkt(65535, 90, true, &[0x65, 1]), 3_000),
            Some(2_000)
        );
        // Wrap, then a gap of two.
        c.handle(&pkt(0, 180, true, &[0x41, 1]), 4_000);
        c.handle(&pkt(3, 270, true, &[0x41, 1]), 5_000);
        c.handle(&pkt(2, 270, false, &[0x41, 1]), 5_000);
        assert_eq!(
            (c.packets, c.frames, c.lost, c.gaps, c.reordered),
            (5, 3, 2, 1, 1)
        );
        c.handle(&[1, 2, 3], 0);
        assert_eq!(c.malformed, 1);
    }

    #[test]
    fn marker_for_another_frame_is_not_matched() {
        let mut c = RtpCounter::default();
        c.handle(&pkt(1, 90, false, &sei::marker_nal(10)), 20);
        assert_eq!(c.handle(&pkt(2, 180, true, &[0x65]), 30), None);
    }

    proptest! {
        #[test]
        fn in_order_stream_never_counts_loss(start: u16, n in 1usize..300) {
            let mut c = RtpCounter::default();
            for i in 0..n {
                c.handle(&pkt(start.wrapping_add(i as u16), 0, true, &[0x41]), 0);
            }
            prop_assert_eq!(c.lost, 0);
            prop_assert_eq!(c.packets, n as u64);
        }

        #[test]
        fn arbitrary_datagrams_are_counted_once(d: Vec<u8>) {
            let mut c = RtpCounter::default();
            c.handle(&d, 0);
            prop_assert_eq!(c.packets + c.malformed, 1);
        }
    }
}
