//! RTP packetizers (H.264 RFC 6184, H.265 RFC 7798, AAC RFC 3640, Opus RFC 7587) and SDP
//! generation for egress.
//!
//! # Output shape: packet descriptors, not packet buffers
//!
//! A packetizer turns one [`VideoFrame`] or [`AudioFrame`] into [`RtpPacket`]s appended to a
//! caller-owned
//! `Vec` (reused across frames, so steady state allocates nothing). Each descriptor is the
//! 12-byte header, a payload prefix of at most 4 bytes held inline (FU indicator and header,
//! the AAC AU-header section) and one [`Bytes`] slice of the NAL unit or audio frame. NAL bodies
//! are therefore never copied here:
//!
//! - plain RTP forwarding can send `[header, prefix, payload]` as three iovecs (`sendmsg`,
//!   or UDP GSO over many packets), so the bytes go from the ingest socket buffer to the egress
//!   socket with no copy in between;
//! - SRTP has to write new bytes anyway (encryption is a forced copy); per viewer it encrypts
//!   straight from the three parts into its own output buffer, one pass, with no intermediate
//!   plaintext packet. The descriptors are shared by every viewer of a stream; only SSRC,
//!   sequence and keys differ, and those live in the header the SRTP stage rewrites.
//!
//! The one copy made here is the aggregation packet (STAP-A / AP) of the parameter sets, a few
//! dozen bytes per keyframe.
//!
//! # Time and numbering
//!
//! Sans-IO: the caller supplies SSRC, initial sequence number and initial timestamp (random,
//! RFC 3550 §5.1), and frames carry their own 90 kHz timestamps. Sequence numbers wrap at 2^16,
//! timestamps at 2^32; [`RtpClock`] converts the 90 kHz media clock to each payload's clock.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use sluice_proto::media::VideoFrame;
//! use sluice_proto::rtp::{H264Packetizer, PacketizerConfig, RtpTimestamp, SeqNo, Ssrc};
//!
//! let config = PacketizerConfig::new(Ssrc(0x1234), 96, SeqNo(7), RtpTimestamp(1_000));
//! let mut packetizer = H264Packetizer::new(config, None).unwrap();
//! let frame = VideoFrame {
//!     pts: 3_000,
//!     dts: 3_000,
//!     keyframe: false,
//!     nalus: vec![Bytes::from(vec![0x41; 3_000])],
//! };
//! let mut packets = Vec::new();
//! packetizer.packetize(&frame, &mut packets);
//! assert_eq!(packets.len(), 3); // FU-A fragments of at most 1200 bytes
//! assert!(packets[2].header.marker);
//! let mut wire = [0u8; 1500];
//! let len = packets[0].write_to(&mut wire).unwrap();
//! assert_eq!(len, packets[0].len());
//! ```

pub mod aac;
pub mod h264;
pub mod h265;
pub mod opus;
pub mod packet;
pub mod sdp;

pub use aac::AacPacketizer;
pub use h264::{H264Depacketizer, H264Packetizer};
pub use h265::{H265Depacketizer, H265Packetizer};
pub use opus::OpusPacketizer;
pub use packet::{RtpHeader, RtpPacketView};

use bytes::Bytes;

use crate::media::{
    AudioCodec, AudioConfig, AudioFrame, MEDIA_CLOCK_HZ, VideoCodec, VideoConfig, VideoFrame,
};

/// RTP synchronisation source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// RTP sequence number; arithmetic wraps at 2^16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// The number after this one, wrapping.
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

/// RTP timestamp in the payload's clock; arithmetic wraps at 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RtpTimestamp(pub u32);

/// Default largest RTP payload: leaves room for SRTP, IP and UDP headers and TURN framing
/// inside a 1280..1500-byte path MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// Smallest accepted payload size: a fragment must carry at least one byte after the largest
/// prefix (H.265 FU, 3 bytes; AAC AU headers, 4 bytes).
pub const MIN_MAX_PAYLOAD: usize = 16;

/// Largest accepted payload size (a UDP datagram's payload less the RTP header).
pub const MAX_MAX_PAYLOAD: usize = 65_000;

/// What every packetizer needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketizerConfig {
    /// Synchronisation source.
    pub ssrc: Ssrc,
    /// RTP payload type (96..=127 for the dynamic types these codecs use).
    pub payload_type: u8,
    /// Sequence number of the first packet.
    pub initial_sequence: SeqNo,
    /// RTP timestamp that media time 0 maps to.
    pub initial_timestamp: RtpTimestamp,
    /// Largest RTP payload (after the 12-byte header), [`DEFAULT_MAX_PAYLOAD`] by default.
    pub max_payload: usize,
}

impl PacketizerConfig {
    /// A config with the default payload size.
    pub fn new(
        ssrc: Ssrc,
        payload_type: u8,
        initial_sequence: SeqNo,
        initial_timestamp: RtpTimestamp,
    ) -> Self {
        Self {
            ssrc,
            payload_type,
            initial_sequence,
            initial_timestamp,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }

    fn validate(&self) -> Result<(), PacketizeError> {
        if !(MIN_MAX_PAYLOAD..=MAX_MAX_PAYLOAD).contains(&self.max_payload) {
            return Err(PacketizeError::BadMaxPayload(self.max_payload));
        }
        if self.payload_type > 127 {
            return Err(PacketizeError::BadPayloadType(self.payload_type));
        }
        Ok(())
    }
}

/// Why a frame could not be packetized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The configured payload size is outside [`MIN_MAX_PAYLOAD`]..=[`MAX_MAX_PAYLOAD`]
    /// (a caller bug).
    #[error("max payload {0} out of range")]
    BadMaxPayload(usize),
    /// Payload type above 127 (a caller bug).
    #[error("payload type {0} out of range")]
    BadPayloadType(u8),
    /// The codec has no packetizer yet.
    #[error("no RTP packetizer for {0}")]
    UnsupportedCodec(&'static str),
    /// A zero clock rate (a caller bug: the audio config has no sample rate).
    #[error("clock rate {0} out of range")]
    BadClockRate(u32),
    /// An AAC access unit longer than the 13-bit AU-size field: the publisher's frame cannot be
    /// carried in AAC-hbr.
    #[error("AAC access unit of {0} bytes exceeds 8191")]
    AuTooLarge(usize),
    /// An Opus packet larger than the payload size (RFC 7587 has no fragmentation).
    #[error("Opus packet of {0} bytes exceeds the payload size")]
    PacketTooLarge(usize),
}

/// Largest NAL unit a depacketizer reassembles from fragments (FU-A, H.265 FU); guards the reassembly
/// buffer against a sender that never sets the end bit.
pub const MAX_REASSEMBLED_NAL: usize = 4 << 20;

/// Why an RTP payload could not be depacketized. All are the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DepacketizeError {
    /// An empty payload or one too short for its header.
    #[error("payload truncated")]
    Truncated,
    /// A payload type this depacketizer does not handle (interleaved modes, PACI, ...).
    #[error("unsupported NAL/payload type {0}")]
    Unsupported(u8),
    /// A fragment arrived without a start fragment before it (loss or a broken sender).
    #[error("fragment without start")]
    FragmentWithoutStart,
    /// A reassembled NAL unit would exceed [`MAX_REASSEMBLED_NAL`].
    #[error("reassembled NAL unit too large")]
    TooLarge,
}

/// Converts the 90 kHz media clock to a payload clock, offset by the initial timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpClock {
    /// The payload clock rate in Hz.
    pub rate: u32,
    /// The RTP timestamp of media time 0.
    pub offset: RtpTimestamp,
}

impl RtpClock {
    /// The RTP timestamp of a media time in [`MEDIA_CLOCK_HZ`] ticks (rounded down), wrapping.
    pub fn timestamp(&self, pts: i64) -> RtpTimestamp {
        let scaled =
            (i128::from(pts) * i128::from(self.rate)).div_euclid(i128::from(MEDIA_CLOCK_HZ));
        // Truncating to u32 is the modulo-2^32 wrap RTP timestamps use.
        RtpTimestamp(self.offset.0.wrapping_add(scaled as u32))
    }
}

/// One RTP packet to send: header, a small inline prefix and a zero-copy payload slice.
/// The wire packet is `header.to_bytes() ++ prefix() ++ payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The RTP header.
    pub header: RtpHeader,
    prefix: [u8; 4],
    prefix_len: u8,
    /// The payload after the prefix: a slice of the frame's data.
    pub payload: Bytes,
}

impl RtpPacket {
    fn new(header: RtpHeader, prefix: &[u8], payload: Bytes) -> Self {
        let mut p = [0u8; 4];
        let n = prefix.len().min(4);
        p[..n].copy_from_slice(&prefix[..n]);
        Self {
            header,
            prefix: p,
            prefix_len: n as u8,
            payload,
        }
    }

    /// The payload prefix (FU indicator/header, AU-header section), possibly empty.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// RTP payload bytes: prefix plus payload.
    pub fn payload_len(&self) -> usize {
        usize::from(self.prefix_len) + self.payload.len()
    }

    /// Bytes of the whole packet on the wire.
    pub fn len(&self) -> usize {
        RtpHeader::LEN + self.payload_len()
    }

    /// Never true: a packet always has its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the packet into `out`, returning its length, or `None` if `out` is too small.
    /// This is the one copy of the payload, for callers that need a contiguous packet.
    pub fn write_to(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let dst = out.get_mut(..len)?;
        let (h, rest) = dst.split_at_mut(RtpHeader::LEN);
        h.copy_from_slice(&self.header.to_bytes());
        let (p, body) = rest.split_at_mut(usize::from(self.prefix_len));
        p.copy_from_slice(self.prefix());
        body.copy_from_slice(&self.payload);
        Some(len)
    }

    /// The packet as one contiguous buffer (a copy; see [`RtpPacket::write_to`]).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len()];
        self.write_to(&mut v);
        v
    }

    /// The RTP payload as one buffer (prefix ++ payload), for depacketizer tests and tools.
    pub fn payload_bytes(&self) -> Bytes {
        if self.prefix_len == 0 {
            return self.payload.clone();
        }
        let mut v = Vec::with_capacity(self.payload_len());
        v.extend_from_slice(self.prefix());
        v.extend_from_slice(&self.payload);
        v.into()
    }
}

/// A video packetizer for whichever codec a track carries.
#[derive(Debug, Clone)]
pub enum VideoPacketizer {
    /// RFC 6184.
    H264(H264Packetizer),
    /// RFC 7798.
    H265(H265Packetizer),
}

impl VideoPacketizer {
    /// A packetizer for `video.codec`, primed with its parameter sets.
    pub fn new(config: PacketizerConfig, video: &VideoConfig) -> Result<Self, PacketizeError> {
        match video.codec {
            VideoCodec::H264 => Ok(Self::H264(H264Packetizer::new(config, Some(video))?)),
            VideoCodec::H265 => Ok(Self::H265(H265Packetizer::new(config, Some(video))?)),
            VideoCodec::Av1 => Err(PacketizeError::UnsupportedCodec("AV1")),
        }
    }

    /// Appends the packets of one access unit to `out`.
    pub fn packetize(&mut self, frame: &VideoFrame, out: &mut Vec<RtpPacket>) {
        match self {
            Self::H264(p) => p.packetize(frame, out),
            Self::H265(p) => p.packetize(frame, out),
        }
    }
}

/// An audio packetizer for whichever codec a track carries.
#[derive(Debug, Clone)]
pub enum AudioPacketizer {
    /// RFC 3640 AAC-hbr.
    Aac(AacPacketizer),
    /// RFC 7587.
    Opus(OpusPacketizer),
}

impl AudioPacketizer {
    /// A packetizer for `audio.codec` on its RTP clock.
    pub fn new(config: PacketizerConfig, audio: &AudioConfig) -> Result<Self, PacketizeError> {
        match audio.codec {
            AudioCodec::Aac => Ok(Self::Aac(AacPacketizer::new(config, audio.sample_rate)?)),
            AudioCodec::Opus => Ok(Self::Opus(OpusPacketizer::new(config)?)),
        }
    }

    /// Appends the packet(s) of one audio frame to `out`.
    pub fn packetize(
        &mut self,
        frame: &AudioFrame,
        out: &mut Vec<RtpPacket>,
    ) -> Result<(), PacketizeError> {
        match self {
            Self::Aac(p) => p.packetize(frame, out),
            Self::Opus(p) => p.packetize(frame, out),
        }
    }
}

/// The parameter sets a video packetizer repeats before every keyframe. Per kind (VPS, SPS,
/// PPS), the units of that kind in the latest access unit that carried any replace the previous
/// ones, so several parameter-set ids survive and a changed SPS reaches the viewers.
#[derive(Debug, Clone, Default)]
struct ParameterSets {
    kinds: [Vec<Bytes>; 3],
}

impl ParameterSets {
    /// Adopts the in-band parameter sets of an access unit; `kind` maps a NAL unit to 0..3.
    fn update<'a>(
        &mut self,
        nalus: impl IntoIterator<Item = &'a Bytes>,
        kind: impl Fn(&Bytes) -> Option<usize>,
    ) {
        let mut seen = [false; 3];
        for nal in nalus {
            let Some(k) = kind(nal) else { continue };
            let (Some(list), Some(seen)) = (self.kinds.get_mut(k), seen.get_mut(k)) else {
                continue;
            };
            if !*seen {
                list.clear();
                *seen = true;
            }
            list.push(nal.clone());
        }
    }

    /// All sets in kind order (VPS, SPS, PPS), cloned (reference counts only).
    fn to_vec(&self) -> Vec<Bytes> {
        self.kinds.iter().flatten().cloned().collect()
    }
}

/// Sequence numbering and header stamping shared by the packetizers.
#[derive(Debug, Clone)]
struct Sequencer {
    config: PacketizerConfig,
    next: SeqNo,
}

impl Sequencer {
    fn new(config: PacketizerConfig) -> Result<Self, PacketizeError> {
        config.validate()?;
        Ok(Self {
            next: config.initial_sequence,
            config,
        })
    }

    fn header(&mut self, timestamp: RtpTimestamp, marker: bool) -> RtpHeader {
        let sequence = self.next;
        self.next = sequence.next();
        RtpHeader {
            marker,
            payload_type: self.config.payload_type,
            sequence,
            timestamp,
            ssrc: self.config.ssrc,
        }
    }

    fn push(&mut self, out: &mut Vec<RtpPacket>, ts: RtpTimestamp, prefix: &[u8], payload: Bytes) {
        let header = self.header(ts, false);
        out.push(RtpPacket::new(header, prefix, payload));
    }
}

/// Splits `len` bytes into the fewest chunks of at most `max`, as even as possible (so the last
/// fragment is not a runt), yielding `(start, end)` ranges.
fn even_chunks(len: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let max = max.max(1);
    let n = len.div_ceil(max).max(1);
    let base = len / n;
    let extra = len % n;
    (0..n).scan(0usize, move |pos, i| {
        let size = base + usize::from(i < extra);
        let start = *pos;
        *pos += size;
        Some((start, start + size))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clock_conversion() {
        let c = RtpClock {
            rate: 48_000,
            offset: RtpTimestamp(u32::MAX),
        };
        assert_eq!(c.timestamp(0), RtpTimestamp(u32::MAX));
        assert_eq!(c.timestamp(90_000), RtpTimestamp(47_999));
        assert_eq!(c.timestamp(-90_000), RtpTimestamp(u32::MAX - 48_000));
        let v = RtpClock {
            rate: 90_000,
            offset: RtpTimestamp(0),
        };
        assert_eq!(v.timestamp(1 << 32), RtpTimestamp(0));
    }

    #[test]
    fn codec_dispatch() {
        let cfg = PacketizerConfig::new(Ssrc(1), 96, SeqNo(0), RtpTimestamp(0));
        let mut video = VideoConfig {
            codec: VideoCodec::H265,
            vps: vec![],
            sps: vec![],
            pps: vec![],
            width: 0,
            height: 0,
            profile: 0,
            constraints: 0,
            level: 0,
            frame_rate: None,
        };
        assert!(matches!(
            VideoPacketizer::new(cfg, &video),
            Ok(VideoPacketizer::H265(_))
        ));
        video.codec = VideoCodec::Av1;
        assert_eq!(
            VideoPacketizer::new(cfg, &video).err(),
            Some(PacketizeError::UnsupportedCodec("AV1"))
        );
        let opus = AudioConfig {
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            channels: 2,
            specific_config: Bytes::new(),
        };
        let mut p = AudioPacketizer::new(cfg, &opus).unwrap();
        let mut out = Vec::new();
        let frame = AudioFrame {
            pts: 90_000,
            data: Bytes::from_static(&[0xfc]),
        };
        p.packetize(&frame, &mut out).unwrap();
        assert_eq!(out[0].header.timestamp, RtpTimestamp(48_000));
        let bad = PacketizerConfig {
            max_payload: 8,
            ..cfg
        };
        assert_eq!(
            AudioPacketizer::new(bad, &opus).err(),
            Some(PacketizeError::BadMaxPayload(8))
        );
    }

    #[test]
    fn chunks_are_even_and_cover() {
        let c: Vec<_> = even_chunks(2401, 1200).collect();
        assert_eq!(c, [(0, 801), (801, 1601), (1601, 2401)]);
        assert_eq!(even_chunks(0, 10).collect::<Vec<_>>(), [(0, 0)]);
    }

    proptest! {
        #[test]
        fn clock_deltas_survive_wrap(offset: u32, start in -(1i64 << 40)..(1i64 << 40), step in 1i64..100_000, rate in prop::sample::select(vec![8_000u32, 44_100, 48_000, 90_000])) {
            let c = RtpClock { rate, offset: RtpTimestamp(offset) };
            let a = c.timestamp(start);
            let b = c.timestamp(start + step);
            let exact = (i128::from(start + step) * i128::from(rate)).div_euclid(90_000)
                - (i128::from(start) * i128::from(rate)).div_euclid(90_000);
            prop_assert_eq!(i128::from(b.0.wrapping_sub(a.0)), exact);
        }

        #[test]
        fn chunks_bounded(len in 0usize..100_000, max in 1usize..5_000) {
            let mut end = 0;
            for (s, e) in even_chunks(len, max) {
                prop_assert_eq!(s, end);
                prop_assert!(e - s <= max);
                end = e;
            }
            prop_assert_eq!(end, len);
        }
    }
}
