//! Codec-neutral media units shared by every ingest and egress path.
//!
//! Ingest parsers ([`crate::flv`], [`crate::ts`]) turn container bytes into [`MediaEvent`]s;
//! packetizers ([`crate::rtp`]) turn them into RTP. Payloads are [`Bytes`]: slices of the
//! buffer the bytes arrived in, so a NAL unit travels from the socket to the packetizer
//! without being copied.

use bytes::Bytes;

/// Timestamps everywhere in the media layer are in this clock rate (90 kHz, the MPEG and
/// RTP video clock). RTMP's millisecond timestamps convert exactly (`ms * 90`).
pub const MEDIA_CLOCK_HZ: u32 = 90_000;

/// Video codecs Sluice understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
    /// AV1 (recognised in Enhanced RTMP; not packetized yet).
    Av1,
}

/// Audio codecs Sluice understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// MPEG-4 AAC (raw access units, no ADTS header).
    Aac,
    /// Opus packets.
    Opus,
}

/// Decoder configuration of a video track, as announced by the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// The codec.
    pub codec: VideoCodec,
    /// H.265 video parameter sets (empty for H.264), without start codes.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets, without start codes.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, without start codes.
    pub pps: Vec<Bytes>,
    /// Coded width in pixels (0 when unknown).
    pub width: u32,
    /// Coded height in pixels (0 when unknown).
    pub height: u32,
    /// Profile indication (`profile_idc` / `general_profile_idc`).
    pub profile: u8,
    /// Constraint flags byte (H.264 `constraint_set` flags; 0 for H.265).
    pub constraints: u8,
    /// Level indication (`level_idc` / `general_level_idc`).
    pub level: u8,
    /// Frame rate from the VUI timing info, if present, as a fraction `(numerator, denominator)`
    /// frames per second.
    pub frame_rate: Option<(u32, u32)>,
}

/// Decoder configuration of an audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The codec.
    pub codec: AudioCodec,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u8,
    /// AAC AudioSpecificConfig bytes (empty for Opus).
    pub specific_config: Bytes,
}

/// One video access unit (a coded picture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Presentation time in [`MEDIA_CLOCK_HZ`] ticks.
    pub pts: i64,
    /// Decode time in [`MEDIA_CLOCK_HZ`] ticks (differs from `pts` when B-frames reorder).
    pub dts: i64,
    /// True for an IDR / IRAP picture a decoder can start from.
    pub keyframe: bool,
    /// The NAL units of the picture, without start codes or length prefixes. Each is a slice
    /// of the receive buffer it arrived in.
    pub nalus: Vec<Bytes>,
}

impl VideoFrame {
    /// Total payload bytes of all NAL units.
    pub fn len(&self) -> usize {
        self.nalus.iter().map(Bytes::len).sum()
    }

    /// True when the frame carries no NAL unit bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One audio access unit (an AAC raw frame or an Opus packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Presentation time in [`MEDIA_CLOCK_HZ`] ticks.
    pub pts: i64,
    /// The raw frame, a slice of the receive buffer.
    pub data: Bytes,
}

/// What an ingest demuxer hands to the rest of the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The video track's decoder configuration (new or changed).
    VideoConfig(VideoConfig),
    /// The audio track's decoder configuration (new or changed).
    AudioConfig(AudioConfig),
    /// A coded picture.
    Video(VideoFrame),
    /// A coded audio frame.
    Audio(AudioFrame),
}
