//! The RTP fixed header (RFC 3550 §5.1): a zero-copy reader of whole packets and a writer of
//! the 12-byte header the packetizers use (no CSRC list, no extension, no padding).

use bytes::Bytes;

use super::{RtpTimestamp, SeqNo, Ssrc};

/// The only RTP version (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;

/// The fields of an RTP fixed header that a sender sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit (end of a video access unit; an AAC packet holding a complete AU).
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: SeqNo,
    /// Media timestamp in the payload's clock.
    pub timestamp: RtpTimestamp,
    /// Synchronisation source.
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// Bytes of the fixed header without CSRCs.
    pub const LEN: usize = 12;

    /// Serialises the header: version 2, no padding, no extension, no CSRC.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = RTP_VERSION << 6;
        b[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        b[2..4].copy_from_slice(&self.sequence.0.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.0.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        b
    }
}

/// Why bytes are not a valid RTP packet. All are the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header plus its CSRC list and extension.
    #[error("RTP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    /// The padding count is zero or larger than the payload.
    #[error("RTP padding length invalid")]
    BadPadding,
}

/// A parsed RTP packet; the extension and payload are slices of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacketView {
    /// The fixed header fields.
    pub header: RtpHeader,
    /// Number of CSRC identifiers (skipped).
    pub csrc_count: u8,
    /// The header extension: profile-defined id and data.
    pub extension: Option<(u16, Bytes)>,
    /// The payload, padding removed.
    pub payload: Bytes,
}

impl RtpPacketView {
    /// Parses a whole RTP packet.
    pub fn parse(buf: &Bytes) -> Result<Self, RtpError> {
        let fixed = buf
            .first_chunk::<{ RtpHeader::LEN }>()
            .ok_or(RtpError::Truncated)?;
        let version = fixed[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = fixed[0] & 0x0f;
        let header = RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: SeqNo(u16::from_be_bytes([fixed[2], fixed[3]])),
            timestamp: RtpTimestamp(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]])),
            ssrc: Ssrc(u32::from_be_bytes([
                fixed[8], fixed[9], fixed[10], fixed[11],
            ])),
        };
        let mut pos = RtpHeader::LEN + 4 * usize::from(csrc_count);
        let mut extension = None;
        if has_extension {
            let ext = buf.get(pos..pos + 4).ok_or(RtpError::Truncated)?;
            let id = u16::from_be_bytes([ext[0], ext[1]]);
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            let start = pos + 4;
            let end = start + 4 * words;
            if end > buf.len() {
                return Err(RtpError::Truncated);
            }
            extension = Some((id, buf.slice(start..end)));
            pos = end;
        }
        if pos > buf.len() {
            return Err(RtpError::Truncated);
        }
        let mut end = buf.len();
        if padding {
            let pad = usize::from(*buf.last().ok_or(RtpError::Truncated)?);
            if pad == 0 || pad > end - pos {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(Self {
            header,
            csrc_count,
            extension,
            payload: buf.slice(pos..end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 96,
            sequence: SeqNo(0xfffe),
            timestamp: RtpTimestamp(0xdead_beef),
            ssrc: Ssrc(0x1234_5678),
        };
        let b = h.to_bytes();
        assert_eq!(
            b,
            [
                0x80, 0xe0, 0xff, 0xfe, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78
            ]
        );
        let mut pkt = b.to_vec();
        pkt.extend_from_slice(&[1, 2, 3]);
        let v = RtpPacketView::parse(&Bytes::from(pkt)).unwrap();
        assert_eq!(v.header, h);
        assert_eq!(&v.payload[..], &[1, 2, 3]);
        assert_eq!(v.extension, None);
    }

    #[test]
    fn parses_csrc_extension_padding() {
        let mut pkt = vec![0xb1, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        pkt.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one-word extension
        pkt.extend_from_slice(&[7, 7, 0, 0, 3]); // payload + 3 bytes of padding
        let v = RtpPacketView::parse(&Bytes::from(pkt)).unwrap();
        assert_eq!(v.csrc_count, 1);
        assert_eq!(v.extension.as_ref().map(|e| e.0), Some(0xbede));
        assert_eq!(&v.payload[..], &[7, 7]);
        assert_eq!(v.header.sequence, SeqNo(1));
    }

    #[test]
    fn rejects_bad_packets() {
        let ok = [0x80, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        for n in 0..ok.len() {
            assert_eq!(
                RtpPacketView::parse(&Bytes::copy_from_slice(&ok[..n])),
                Err(RtpError::Truncated)
            );
        }
        let mut v1 = ok;
        v1[0] = 0x40;
        assert_eq!(
            RtpPacketView::parse(&Bytes::copy_from_slice(&v1)),
            Err(RtpError::BadVersion(1))
        );
        let mut csrc = ok;
        csrc[0] = 0x81;
        assert_eq!(
            RtpPacketView::parse(&Bytes::copy_from_slice(&csrc)),
            Err(RtpError::Truncated)
        );
        let mut pad = ok.to_vec();
        pad[0] = 0xa0;
        pad.push(5);
        assert_eq!(
            RtpPacketView::parse(&Bytes::from(pad)),
            Err(RtpError::BadPadding)
        );
    }
}
