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

/// Copies `b` into an allocation of its own unless it already owns one.
///
/// A configuration is kept for the whole life of a stream; left as a slice of the receive
/// buffer it arrived in, a few dozen bytes of parameter sets would keep that whole buffer
/// (a shared receive chunk, or a reassembled keyframe PES) alive for as long. This is the one
/// copy that the configuration's lifetime forces, once per configuration.
fn detach(b: &mut Bytes) {
    *b = Bytes::copy_from_slice(b);
}

impl VideoConfig {
    /// Detaches the parameter sets from the buffers they were sliced from (see [`detach`]).
    pub fn detach(&mut self) {
        for b in self
            .vps
            .iter_mut()
            .chain(&mut self.sps)
            .chain(&mut self.pps)
        {
            detach(b);
        }
    }
}

impl AudioConfig {
    /// Detaches the codec configuration from the buffer it was sliced from (see [`detach`]).
    pub fn detach(&mut self) {
        detach(&mut self.specific_config);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `part` lies inside `whole`'s bytes.
    fn inside(part: &Bytes, whole: &Bytes) -> bool {
        let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
        p >= w && p + part.len() <= w + whole.len()
    }

    #[test]
    fn detached_configs_keep_their_bytes_but_not_the_receive_buffer() {
        let recv = Bytes::from(vec![7u8; 4096]);
        let mut v = VideoConfig {
            codec: VideoCodec::H265,
            vps: vec![recv.slice(0..10)],
            sps: vec![recv.slice(10..40)],
            pps: vec![recv.slice(40..44)],
            width: 640,
            height: 360,
            profile: 1,
            constraints: 0,
            level: 93,
            frame_rate: None,
        };
        let before = v.clone();
        assert!(inside(&v.sps[0], &recv));
        v.detach();
        assert_eq!(v, before);
        for b in v.vps.iter().chain(&v.sps).chain(&v.pps) {
            assert!(!inside(b, &recv));
        }
        let mut a = AudioConfig {
            codec: AudioCodec::Aac,
            sample_rate: 48_000,
            channels: 2,
            specific_config: recv.slice(100..102),
        };
        let before = a.clone();
        a.detach();
        assert_eq!(a, before);
        assert!(!inside(&a.specific_config, &recv));
    }
}
