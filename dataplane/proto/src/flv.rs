//! FLV tag bodies as carried in RTMP audio (type 8), video (type 9) and data (type 18)
//! messages, legacy and Enhanced RTMP, turned into [`MediaEvent`]s.
//!
//! Specs:
//! - Adobe "Video File Format Specification" version 10.1, annex E.4.2 (AUDIODATA,
//!   AACAUDIODATA), E.4.3 (VIDEODATA, AVCVIDEOPACKET) and E.4.4 (SCRIPTDATA); E.2-E.3 for the
//!   file header and tag header read by [`FileTagReader`].
//! - Veovera "Enhanced RTMP" v1/v2: ExVideoTagHeader (`IsExHeader` bit, FourCC `avc1`, `hvc1`,
//!   `av01`; packet types SequenceStart, CodedFrames, SequenceEnd, CodedFramesX, Metadata) and
//!   ExAudioTagHeader (sound format 9, FourCC `Opus`, `mp4a`).
//! - ISO/IEC 14496-15 section 5.3.3.1 (AVCDecoderConfigurationRecord) and 8.3.3.1
//!   (HEVCDecoderConfigurationRecord); ISO/IEC 14496-3 section 1.6.2.1 (AudioSpecificConfig);
//!   RFC 7845 section 5.1 (Opus ID header); AV1 ISOBMFF binding section 2.3 (av1C).
//! - Legacy HEVC in FLV codec id 12 (the de-facto extension used by Chinese CDNs, SRS and
//!   older OBS forks) with the AVC packet layout.
//!
//! Timestamps: RTMP milliseconds, already extended to 64 bits by the caller, times 90 give
//! [`MEDIA_CLOCK_HZ`](crate::media::MEDIA_CLOCK_HZ) ticks; pts = dts + composition time.
//!
//! Zero copy: NAL units, AAC frames and parameter sets are `Bytes::slice`s of the tag body.
//! `VideoConfig` width, height and frame rate are left unknown (0 / `None`): the codec module's
//! SPS parser fills them.

use bytes::Bytes;
use thiserror::Error;

use crate::amf0::{self, Amf0Error, Amf0Value};
use crate::media::{
    AudioCodec, AudioConfig, AudioFrame, MediaEvent, VideoCodec, VideoConfig, VideoFrame,
};

/// Most NAL units accepted in one video tag. Guards the per-frame `Vec<Bytes>` against a tag
/// made of thousands of tiny NAL units; encoders emit a few dozen at most (slices + SEI).
pub const MAX_NALUS_PER_FRAME: usize = 1024;

/// FLV tag type of audio (also the RTMP message type).
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data.
pub const TAG_SCRIPT: u8 = 18;

/// Why a tag body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    /// The body ended inside a field (peer's fault).
    #[error("FLV {0} truncated")]
    Truncated(&'static str),
    /// A field holds an impossible value (peer's fault).
    #[error("malformed FLV {0}")]
    Malformed(&'static str),
    /// Well-formed, but a codec or feature Sluice does not ingest.
    #[error("unsupported FLV {what} {value:#x}")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
        /// The code found.
        value: u32,
    },
    /// More NAL units than [`MAX_NALUS_PER_FRAME`].
    #[error("more than {MAX_NALUS_PER_FRAME} NAL units in one tag")]
    TooManyNalus,
    /// Script data is not valid AMF0.
    #[error("FLV script data: {0}")]
    Amf0(#[from] Amf0Error),
}

impl FlvError {
    /// True when the sender produced malformed data (as opposed to valid but unsupported).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, FlvError::Unsupported { .. })
    }
}

fn take(
    body: &Bytes,
    range: std::ops::Range<usize>,
    what: &'static str,
) -> Result<Bytes, FlvError> {
    if range.start <= range.end && range.end <= body.len() {
        Ok(body.slice(range))
    } else {
        Err(FlvError::Truncated(what))
    }
}

fn byte(body: &[u8], at: usize, what: &'static str) -> Result<u8, FlvError> {
    body.get(at).copied().ok_or(FlvError::Truncated(what))
}

fn u16_at(body: &[u8], at: usize, what: &'static str) -> Result<u16, FlvError> {
    Ok(u16::from(byte(body, at, what)?) << 8 | u16::from(byte(body, at + 1, what)?))
}

/// Signed 24-bit composition time offset (E.4.3.1: SI24).
fn si24(body: &[u8], at: usize) -> Result<i32, FlvError> {
    let s = body
        .get(at..at + 3)
        .ok_or(FlvError::Truncated("composition time"))?;
    let v = i32::from(s[0]) << 16 | i32::from(s[1]) << 8 | i32::from(s[2]);
    Ok((v << 8) >> 8)
}

/// A parsed AVCDecoderConfigurationRecord or HEVCDecoderConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfigRecord {
    /// The track configuration (width/height/frame rate unknown).
    pub config: VideoConfig,
    /// Bytes of the NAL unit length prefix in coded frames (1, 2 or 4).
    pub nalu_length_size: u8,
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
pub fn parse_avcc(rec: &Bytes) -> Result<DecoderConfigRecord, FlvError> {
    const W: &str = "avcC";
    if byte(rec, 0, W)? != 1 {
        return Err(FlvError::Malformed("avcC version"));
    }
    let profile = byte(rec, 1, W)?;
    let constraints = byte(rec, 2, W)?;
    let level = byte(rec, 3, W)?;
    let nalu_length_size = (byte(rec, 4, W)? & 0x03) + 1;
    let mut pos = 5;
    let sets = |count: usize, pos: &mut usize| -> Result<Vec<Bytes>, FlvError> {
        let mut v = Vec::new();
        for _ in 0..count {
            let len = usize::from(u16_at(rec, *pos, W)?);
            v.push(take(rec, *pos + 2..*pos + 2 + len, W)?);
            *pos += 2 + len;
        }
        Ok(v)
    };
    let num_sps = usize::from(byte(rec, pos, W)? & 0x1F);
    pos += 1;
    let sps = sets(num_sps, &mut pos)?;
    let num_pps = usize::from(byte(rec, pos, W)?);
    pos += 1;
    let pps = sets(num_pps, &mut pos)?;
    Ok(DecoderConfigRecord {
        config: VideoConfig {
            codec: VideoCodec::H264,
            vps: Vec::new(),
            sps,
            pps,
            width: 0,
            height: 0,
            profile,
            constraints,
            level,
            frame_rate: None,
        },
        nalu_length_size,
    })
}

/// Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1). `profile` is
/// `general_profile_idc`, `level` is `general_level_idc`; the NAL arrays of type 32 (VPS),
/// 33 (SPS) and 34 (PPS) are kept, others (SEI) are skipped.
pub fn parse_hvcc(rec: &Bytes) -> Result<DecoderConfigRecord, FlvError> {
    const W: &str = "hvcC";
    if byte(rec, 0, W)? != 1 {
        return Err(FlvError::Malformed("hvcC version"));
    }
    let profile = byte(rec, 1, W)? & 0x1F;
    let level = byte(rec, 12, W)?;
    let nalu_length_size = (byte(rec, 21, W)? & 0x03) + 1;
    let num_arrays = byte(rec, 22, W)?;
    let mut pos = 23;
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..num_arrays {
        let nal_type = byte(rec, pos, W)? & 0x3F;
        let count = u16_at(rec, pos + 1, W)?;
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16_at(rec, pos, W)?);
            let nal = take(rec, pos + 2..pos + 2 + len, W)?;
            pos += 2 + len;
            match nal_type {
                32 => vps.push(nal),
                33 => sps.push(nal),
                34 => pps.push(nal),
                _ => {}
            }
        }
    }
    Ok(DecoderConfigRecord {
        config: VideoConfig {
            codec: VideoCodec::H265,
            vps,
            sps,
            pps,
            width: 0,
            height: 0,
            profile,
            constraints: 0,
            level,
            frame_rate: None,
        },
        nalu_length_size,
    })
}

/// Parses an av1C record (AV1 ISOBMFF binding 2.3): profile and level only; the config OBUs
/// are not kept.
fn parse_av1c(rec: &Bytes) -> Result<VideoConfig, FlvError> {
    let b0 = byte(rec, 0, "av1C")?;
    if b0 != 0x81 {
        return Err(FlvError::Malformed("av1C marker/version"));
    }
    let b1 = byte(rec, 1, "av1C")?;
    Ok(VideoConfig {
        codec: VideoCodec::Av1,
        vps: Vec::new(),
        sps: Vec::new(),
        pps: Vec::new(),
        width: 0,
        height: 0,
        profile: b1 >> 5,
        constraints: 0,
        level: b1 & 0x1F,
        frame_rate: None,
    })
}

/// Fields of an MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS, ...).
    pub object_type: u8,
    /// Sampling frequency in Hz (from the index table or the explicit 24-bit value).
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined in a program config element).
    pub channel_config: u8,
}

/// Sampling frequencies by `samplingFrequencyIndex` (14496-3 table 1.18).
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses the leading fields of an AudioSpecificConfig.
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<AudioSpecificConfig, FlvError> {
    let mut r = BitReader { data: asc, bit: 0 };
    let mut object_type = r.read(5)?;
    if object_type == 31 {
        object_type = 32 + r.read(6)?;
    }
    let index = r.read(4)?;
    let sample_rate = if index == 15 {
        r.read(24)?
    } else {
        *AAC_RATES
            .get(index as usize)
            .ok_or(FlvError::Malformed("AAC sampling frequency index"))?
    };
    let channel_config = r.read(4)? as u8;
    Ok(AudioSpecificConfig {
        object_type: object_type as u8,
        sample_rate,
        channel_config,
    })
}

struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn read(&mut self, n: u32) -> Result<u32, FlvError> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = byte(self.data, self.bit / 8, "AudioSpecificConfig")?;
            v = v << 1 | u32::from((b >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }
}

/// Splits length-prefixed NAL units into slices of `data` (zero copy). Empty NAL units are
/// dropped.
pub fn split_nalus(data: &Bytes, length_size: u8) -> Result<Vec<Bytes>, FlvError> {
    let ls = usize::from(length_size);
    if !(1..=4).contains(&ls) {
        return Err(FlvError::Malformed("NAL unit length size"));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + ls)
            .ok_or(FlvError::Truncated("NAL unit length"))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        pos += ls;
        let end = pos
            .checked_add(len)
            .ok_or(FlvError::Truncated("NAL unit"))?;
        let nal = take(data, pos..end, "NAL unit")?;
        pos = end;
        if !nal.is_empty() {
            if out.len() == MAX_NALUS_PER_FRAME {
                return Err(FlvError::TooManyNalus);
            }
            out.push(nal);
        }
    }
    Ok(out)
}

fn has_irap(codec: VideoCodec, nalus: &[Bytes]) -> bool {
    nalus.iter().any(|n| match (codec, n.first()) {
        (VideoCodec::H264, Some(b)) => b & 0x1F == 5,
        (VideoCodec::H265, Some(b)) => (16..=21).contains(&((b >> 1) & 0x3F)),
        _ => false,
    })
}

/// Per-connection FLV state: the NAL length size announced by the last sequence header and
/// the codecs in use.
#[derive(Debug, Clone)]
pub struct FlvDemuxer {
    nalu_length_size: u8,
    video_codec: Option<VideoCodec>,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

/// Converts extended RTMP milliseconds to media clock ticks.
fn ticks(ms: i64) -> i64 {
    ms.saturating_mul(90)
}

impl FlvDemuxer {
    /// A demuxer expecting 4-byte NAL lengths until a sequence header says otherwise.
    pub fn new() -> Self {
        Self {
            nalu_length_size: 4,
            video_codec: None,
        }
    }

    /// Parses a video tag body received at `timestamp_ms` (RTMP time, extended to 64 bits).
    /// `Ok(None)` for tags that carry no media (end of sequence, metadata, command frames,
    /// empty bodies).
    pub fn video(
        &mut self,
        timestamp_ms: i64,
        body: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let Some(&b0) = body.first() else {
            return Ok(None);
        };
        if b0 & 0x80 != 0 {
            return self.ex_video(timestamp_ms, b0, body);
        }
        let frame_type = b0 >> 4;
        let codec = match b0 & 0x0F {
            7 => VideoCodec::H264,
            12 => VideoCodec::H265,
            other => {
                return Err(FlvError::Unsupported {
                    what: "video codec id",
                    value: other.into(),
                });
            }
        };
        if frame_type == 5 {
            // Video info/command frame: no picture.
            return Ok(None);
        }
        let packet_type = byte(&body, 1, "AVC packet type")?;
        let cts = si24(&body, 2)?;
        let data = take(&body, 5..body.len(), "AVC packet")?;
        match packet_type {
            0 => self.config(codec, &data).map(Some),
            1 => self.frame(codec, timestamp_ms, cts, frame_type == 1, &data),
            2 => Ok(None),
            other => Err(FlvError::Unsupported {
                what: "AVC packet type",
                value: other.into(),
            }),
        }
    }

    fn config(&mut self, codec: VideoCodec, rec: &Bytes) -> Result<MediaEvent, FlvError> {
        let rec = match codec {
            VideoCodec::H264 => parse_avcc(rec)?,
            VideoCodec::H265 => parse_hvcc(rec)?,
            VideoCodec::Av1 => {
                self.video_codec = Some(codec);
                return Ok(MediaEvent::VideoConfig(parse_av1c(rec)?));
            }
        };
        self.nalu_length_size = rec.nalu_length_size;
        self.video_codec = Some(codec);
        Ok(MediaEvent::VideoConfig(rec.config))
    }

    fn frame(
        &mut self,
        codec: VideoCodec,
        timestamp_ms: i64,
        cts_ms: i32,
        flv_key: bool,
        data: &Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let nalus = if codec == VideoCodec::Av1 {
            // AV1 frames are a sequence of OBUs, kept whole.
            if data.is_empty() {
                Vec::new()
            } else {
                vec![data.clone()]
            }
        } else {
            split_nalus(data, self.nalu_length_size)?
        };
        if nalus.is_empty() {
            return Ok(None);
        }
        let dts = ticks(timestamp_ms);
        Ok(Some(MediaEvent::Video(VideoFrame {
            pts: dts.saturating_add(ticks(cts_ms.into())),
            dts,
            keyframe: flv_key || has_irap(codec, &nalus),
            nalus,
        })))
    }

    fn ex_video(
        &mut self,
        timestamp_ms: i64,
        b0: u8,
        body: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let frame_type = (b0 >> 4) & 0x07;
        let packet_type = b0 & 0x0F;
        let fourcc = body.get(1..5).ok_or(FlvError::Truncated("video FourCC"))?;
        let codec = match fourcc {
            b"avc1" => VideoCodec::H264,
            b"hvc1" => VideoCodec::H265,
            b"av01" => VideoCodec::Av1,
            _ => {
                return Err(FlvError::Unsupported {
                    what: "video FourCC",
                    value: u32::from_be_bytes([fourcc[0], fourcc[1], fourcc[2], fourcc[3]]),
                });
            }
        };
        if frame_type == 5 && packet_type != 4 {
            return Ok(None);
        }
        let key = frame_type == 1;
        match packet_type {
            0 => self.config(codec, &body.slice(5..)).map(Some),
            1 if codec != VideoCodec::Av1 => {
                let cts = si24(&body, 5)?;
                self.frame(
                    codec,
                    timestamp_ms,
                    cts,
                    key,
                    &body.slice(8.min(body.len())..),
                )
            }
            1 | 3 => self.frame(codec, timestamp_ms, 0, key, &body.slice(5..)),
            2 | 4 => Ok(None),
            other => Err(FlvError::Unsupported {
                what: "enhanced video packet type",
                value: other.into(),
            }),
        }
    }

    /// Parses an audio tag body received at `timestamp_ms` (RTMP time, extended to 64 bits).
    pub fn audio(
        &mut self,
        timestamp_ms: i64,
        body: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let Some(&b0) = body.first() else {
            return Ok(None);
        };
        match b0 >> 4 {
            10 => {
                let packet_type = byte(&body, 1, "AAC packet type")?;
                self.aac(timestamp_ms, packet_type, body.slice(2..))
            }
            9 => {
                let packet_type = b0 & 0x0F;
                let fourcc = body.get(1..5).ok_or(FlvError::Truncated("audio FourCC"))?;
                let data = body.slice(5..);
                match fourcc {
                    b"mp4a" => self.aac(timestamp_ms, packet_type, data),
                    b"Opus" => match packet_type {
                        0 => parse_opus_head(&data).map(Some),
                        1 if !data.is_empty() => Ok(Some(MediaEvent::Audio(AudioFrame {
                            pts: ticks(timestamp_ms),
                            data,
                        }))),
                        1 | 2 | 4 => Ok(None),
                        other => Err(FlvError::Unsupported {
                            what: "enhanced audio packet type",
                            value: other.into(),
                        }),
                    },
                    _ => Err(FlvError::Unsupported {
                        what: "audio FourCC",
                        value: u32::from_be_bytes([fourcc[0], fourcc[1], fourcc[2], fourcc[3]]),
                    }),
                }
            }
            other => Err(FlvError::Unsupported {
                what: "sound format",
                value: other.into(),
            }),
        }
    }

    fn aac(
        &mut self,
        timestamp_ms: i64,
        packet_type: u8,
        data: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        match packet_type {
            0 => {
                let asc = parse_audio_specific_config(&data)?;
                let channels = match asc.channel_config {
                    7 => 8,
                    c => c,
                };
                Ok(Some(MediaEvent::AudioConfig(AudioConfig {
                    codec: AudioCodec::Aac,
                    sample_rate: asc.sample_rate,
                    channels,
                    specific_config: data,
                })))
            }
            1 if data.is_empty() => Ok(None),
            1 => Ok(Some(MediaEvent::Audio(AudioFrame {
                pts: ticks(timestamp_ms),
                data,
            }))),
            2 | 4 => Ok(None),
            other => Err(FlvError::Unsupported {
                what: "AAC packet type",
                value: other.into(),
            }),
        }
    }
}

/// Parses an Opus ID header (RFC 7845 5.1). Opus always decodes at 48 kHz, which is what the
/// config reports; the header's input rate is informational.
fn parse_opus_head(data: &Bytes) -> Result<MediaEvent, FlvError> {
    if data.get(..8) != Some(b"OpusHead".as_slice()) {
        return Err(FlvError::Malformed("OpusHead magic"));
    }
    let channels = byte(data, 9, "OpusHead")?;
    // The fields after the channel count must be present even though only it is used.
    byte(data, 18, "OpusHead")?;
    Ok(MediaEvent::AudioConfig(AudioConfig {
        codec: AudioCodec::Opus,
        sample_rate: 48_000,
        channels,
        specific_config: Bytes::new(),
    }))
}

/// Parses an RTMP data message / FLV script tag body; returns the metadata object of an
/// `onMetaData` or `@setDataFrame("onMetaData", ...)` call, `None` for other data messages.
pub fn parse_metadata(body: &[u8]) -> Result<Option<Amf0Value>, FlvError> {
    let values = amf0::decode_all(body)?;
    let mut it = values.into_iter();
    let mut name = it.next();
    if name.as_ref().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
        name = it.next();
    }
    if name.as_ref().and_then(Amf0Value::as_str) != Some("onMetaData") {
        return Ok(None);
    }
    Ok(it.next())
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    /// [`TAG_AUDIO`], [`TAG_VIDEO`] or [`TAG_SCRIPT`] (filter and encryption bits masked).
    pub tag_type: u8,
    /// Timestamp in milliseconds (with the extension byte).
    pub timestamp_ms: u32,
    /// The tag body, a slice of the file.
    pub body: Bytes,
}

/// Reads the tags of a complete FLV file held in memory (E.2 header, E.3 tags), or of an RTMP
/// aggregate message ([`FileTagReader::without_header`]).
#[derive(Debug, Clone)]
pub struct FileTagReader {
    data: Bytes,
    pos: usize,
}

impl FileTagReader {
    /// Reads tags from `data` that starts directly with a tag header: the body of an RTMP
    /// aggregate message (RTMP 1.0 section 7.1.6).
    pub fn without_header(data: Bytes) -> Self {
        Self { data, pos: 0 }
    }

    /// Checks the `FLV` signature and positions after the header and PreviousTagSize0.
    pub fn new(data: Bytes) -> Result<Self, FlvError> {
        if data.get(..3) != Some(b"FLV".as_slice()) {
            return Err(FlvError::Malformed("FLV signature"));
        }
        let header_len = data
            .get(5..9)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
            .ok_or(FlvError::Truncated("file header"))?;
        let pos = header_len
            .checked_add(4)
            .ok_or(FlvError::Malformed("header size"))?;
        if pos > data.len() {
            return Err(FlvError::Truncated("file header"));
        }
        Ok(Self { data, pos })
    }
}

impl Iterator for FileTagReader {
    type Item = Result<FileTag, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let h = match self.data.get(self.pos..self.pos + 11) {
            Some(h) => h,
            None => {
                self.pos = self.data.len();
                return Some(Err(FlvError::Truncated("tag header")));
            }
        };
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let tag_type = h[0] & 0x1F;
        let start = self.pos + 11;
        let body = take(&self.data, start..start + size, "tag body");
        // Skip the body and the trailing PreviousTagSize.
        self.pos = start + size + 4;
        if body.is_err() {
            self.pos = self.data.len();
        }
        Some(body.map(|body| FileTag {
            tag_type,
            timestamp_ms: ts,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9];
    const PPS: &[u8] = &[0x68, 0xEB, 0xE3, 0xCB];

    fn avcc() -> Vec<u8> {
        let mut r = vec![1, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0, SPS.len() as u8];
        r.extend_from_slice(SPS);
        r.extend_from_slice(&[1, 0, PPS.len() as u8]);
        r.extend_from_slice(PPS);
        r
    }

    fn hvcc() -> Vec<u8> {
        let mut r = vec![
            1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0,
            0x0F, 3,
        ];
        for (t, nal) in [
            (32u8, &[0x40u8, 0x01, 0xAA][..]),
            (33, &[0x42, 0x01, 0xBB]),
            (34, &[0x44, 0x01, 0xCC]),
        ] {
            r.extend_from_slice(&[0x80 | t, 0, 1, 0, nal.len() as u8]);
            r.extend_from_slice(nal);
        }
        r
    }

    #[test]
    fn avc_sequence_header_and_frames() {
        let mut d = FlvDemuxer::new();
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend_from_slice(&avcc());
        let Some(MediaEvent::VideoConfig(cfg)) = d.video(0, Bytes::from(tag)).unwrap() else {
            panic!("no config");
        };
        assert_eq!(
            (cfg.codec, cfg.profile, cfg.constraints, cfg.level),
            (VideoCodec::H264, 0x64, 0, 0x1F)
        );
        assert_eq!(cfg.sps, vec![Bytes::from_static(SPS)]);
        assert_eq!(cfg.pps, vec![Bytes::from_static(PPS)]);
        assert_eq!((cfg.width, cfg.frame_rate), (0, None));

        // Inter frame with a composition time of -33 ms (SI24) and two NAL units.
        let mut tag = vec![0x27, 1, 0xFF, 0xFF, 0xDF];
        tag.extend_from_slice(&[0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 1, 0x06]);
        let body = Bytes::from(tag);
        let Some(MediaEvent::Video(f)) = d.video(1000, body.clone()).unwrap() else {
            panic!("no frame");
        };
        assert_eq!(f.dts, 90_000);
        assert_eq!(f.pts, 90_000 - 33 * 90);
        assert!(!f.keyframe);
        assert_eq!(f.nalus.len(), 2);
        assert_eq!(f.nalus[0].as_ptr(), body[9..].as_ptr(), "zero copy");

        // An IDR NAL marks a keyframe even if the FLV frame type says otherwise.
        let tag = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        let Some(MediaEvent::Video(f)) = d.video(0, tag).unwrap() else {
            panic!()
        };
        assert!(f.keyframe);

        // End of sequence carries nothing.
        assert_eq!(
            d.video(0, Bytes::from_static(&[0x17, 2, 0, 0, 0])).unwrap(),
            None
        );
    }

    #[test]
    fn legacy_and_enhanced_hevc() {
        let mut d = FlvDemuxer::new();
        let mut legacy = vec![0x1C, 0, 0, 0, 0];
        legacy.extend_from_slice(&hvcc());
        let Some(MediaEvent::VideoConfig(cfg)) = d.video(0, Bytes::from(legacy)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (cfg.codec, cfg.profile, cfg.level),
            (VideoCodec::H265, 1, 93)
        );
        assert_eq!((cfg.vps.len(), cfg.sps.len(), cfg.pps.len()), (1, 1, 1));
        assert_eq!(&cfg.sps[0][..], &[0x42, 0x01, 0xBB]);

        let mut ex = vec![0x90];
        ex.extend_from_slice(b"hvc1");
        ex.extend_from_slice(&hvcc());
        assert!(matches!(
            d.video(0, Bytes::from(ex)).unwrap(),
            Some(MediaEvent::VideoConfig(_))
        ));

        // CodedFrames: composition time 40 ms, IDR_W_RADL (19) NAL.
        let mut f = vec![0x91];
        f.extend_from_slice(b"hvc1");
        f.extend_from_slice(&[0, 0, 40, 0, 0, 0, 2, 19 << 1, 1]);
        let Some(MediaEvent::Video(v)) = d.video(100, Bytes::from(f)).unwrap() else {
            panic!()
        };
        assert_eq!((v.dts, v.pts, v.keyframe), (9000, 9000 + 3600, true));

        // CodedFramesX: no composition time.
        let mut f = vec![0xA3];
        f.extend_from_slice(b"hvc1");
        f.extend_from_slice(&[0, 0, 0, 2, 1 << 1, 1]);
        let Some(MediaEvent::Video(v)) = d.video(100, Bytes::from(f)).unwrap() else {
            panic!()
        };
        assert_eq!((v.pts, v.keyframe, v.nalus.len()), (9000, false, 1));
    }

    #[test]
    fn enhanced_av1() {
        let mut d = FlvDemuxer::new();
        // av1C: marker/version 0x81, seq_profile 0, seq_level_idx_0 8.
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"av01");
        seq.extend_from_slice(&[0x81, 0x08, 0x0C, 0x00]);
        let Some(MediaEvent::VideoConfig(c)) = d.video(0, Bytes::from(seq)).unwrap() else {
            panic!()
        };
        assert_eq!((c.codec, c.profile, c.level), (VideoCodec::Av1, 0, 8));
        // CodedFrames for av01 has no composition time: the OBUs follow the FourCC.
        let mut f = vec![0x91];
        f.extend_from_slice(b"av01");
        f.extend_from_slice(&[0x12, 0x00, 0x32, 0x01, 0xAA]);
        let Some(MediaEvent::Video(v)) = d.video(40, Bytes::from(f)).unwrap() else {
            panic!()
        };
        assert_eq!((v.pts, v.dts, v.keyframe), (3600, 3600, true));
        assert_eq!(&v.nalus[0][..], &[0x12, 0x00, 0x32, 0x01, 0xAA]);
        let mut bad = vec![0x90];
        bad.extend_from_slice(b"vp09");
        assert!(matches!(
            d.video(0, Bytes::from(bad)),
            Err(FlvError::Unsupported {
                what: "video FourCC",
                ..
            })
        ));
    }

    #[test]
    fn aac_config_and_frames() {
        let mut d = FlvDemuxer::new();
        // AAC-LC, 44.1 kHz (index 4), stereo: 0x12 0x10.
        let Some(MediaEvent::AudioConfig(c)) = d
            .audio(0, Bytes::from_static(&[0xAF, 0, 0x12, 0x10]))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (c.codec, c.sample_rate, c.channels),
            (AudioCodec::Aac, 44100, 2)
        );
        assert_eq!(&c.specific_config[..], &[0x12, 0x10]);
        let asc = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(asc.object_type, 2);
        // Explicit frequency (index 15) and escape object type 31.
        let explicit = parse_audio_specific_config(&[0x17, 0x80, 0x5D, 0xC0, 0x08]).unwrap();
        assert_eq!(
            (
                explicit.object_type,
                explicit.sample_rate,
                explicit.channel_config
            ),
            (2, 48000, 1)
        );
        let escaped = parse_audio_specific_config(&[0xF8, 0x08, 0x40]).unwrap();
        assert_eq!((escaped.object_type, escaped.sample_rate), (32, 44100));

        let Some(MediaEvent::Audio(a)) = d
            .audio(23, Bytes::from_static(&[0xAF, 1, 0x21, 0x1B]))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((a.pts, &a.data[..]), (23 * 90, &[0x21, 0x1B][..]));
        assert!(matches!(
            d.audio(0, Bytes::from_static(&[0x2F, 0])),
            Err(FlvError::Unsupported {
                what: "sound format",
                value: 2
            })
        ));
    }

    #[test]
    fn enhanced_opus() {
        let mut d = FlvDemuxer::new();
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"Opus");
        seq.extend_from_slice(b"OpusHead");
        seq.extend_from_slice(&[1, 2, 0x38, 1, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let Some(MediaEvent::AudioConfig(c)) = d.audio(0, Bytes::from(seq)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.codec, c.sample_rate, c.channels),
            (AudioCodec::Opus, 48000, 2)
        );
        let mut pkt = vec![0x91];
        pkt.extend_from_slice(b"Opus");
        pkt.extend_from_slice(&[0xFC, 1, 2]);
        let Some(MediaEvent::Audio(a)) = d.audio(20, Bytes::from(pkt)).unwrap() else {
            panic!()
        };
        assert_eq!((a.pts, a.data.len()), (1800, 3));
    }

    #[test]
    fn rejects_truncated_records() {
        let rec = avcc();
        for cut in 0..rec.len() {
            assert!(
                parse_avcc(&Bytes::copy_from_slice(&rec[..cut])).is_err(),
                "avcC cut {cut}"
            );
        }
        let rec = hvcc();
        for cut in 0..rec.len() {
            assert!(
                parse_hvcc(&Bytes::copy_from_slice(&rec[..cut])).is_err(),
                "hvcC cut {cut}"
            );
        }
        assert_eq!(
            split_nalus(&Bytes::from_static(&[0, 0, 0, 5, 1]), 4),
            Err(FlvError::Truncated("NAL unit"))
        );
        let mut d = FlvDemuxer::new();
        assert!(d.video(0, Bytes::from_static(&[0x27, 1, 0])).is_err());
    }

    #[test]
    fn nalu_cap() {
        let data = Bytes::from([1u8, 0xAA].repeat(MAX_NALUS_PER_FRAME + 1));
        assert_eq!(split_nalus(&data, 1), Err(FlvError::TooManyNalus));
        let data = Bytes::from([1u8, 0xAA].repeat(MAX_NALUS_PER_FRAME));
        assert_eq!(split_nalus(&data, 1).unwrap().len(), MAX_NALUS_PER_FRAME);
    }

    #[test]
    fn metadata_forms() {
        let obj = Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]);
        let mut body = Vec::new();
        amf0::encode_all(
            &[
                Amf0Value::String("@setDataFrame".into()),
                Amf0Value::String("onMetaData".into()),
                obj.clone(),
            ],
            &mut body,
        );
        assert_eq!(parse_metadata(&body).unwrap(), Some(obj.clone()));
        let mut body = Vec::new();
        amf0::encode_all(
            &[Amf0Value::String("onMetaData".into()), obj.clone()],
            &mut body,
        );
        assert_eq!(parse_metadata(&body).unwrap(), Some(obj));
        let mut body = Vec::new();
        amf0::encode_all(&[Amf0Value::String("onCuePoint".into())], &mut body);
        assert_eq!(parse_metadata(&body).unwrap(), None);
    }

    #[test]
    fn file_reader() {
        let mut file = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        // One audio tag of 2 bytes at timestamp 0x01_000010 (extension byte 1).
        file.extend_from_slice(&[8, 0, 0, 2, 0, 0, 0x10, 1, 0, 0, 0, 0xAF, 1, 0, 0, 0, 13]);
        let tags: Vec<_> = FileTagReader::new(Bytes::from(file.clone()))
            .unwrap()
            .collect();
        assert_eq!(tags.len(), 1);
        let t = tags[0].clone().unwrap();
        assert_eq!(
            (t.tag_type, t.timestamp_ms, &t.body[..]),
            (8, 0x0100_0010, &[0xAF, 1][..])
        );
        file.truncate(file.len() - 6);
        let mut r = FileTagReader::new(Bytes::from(file)).unwrap();
        assert!(matches!(r.next(), Some(Err(FlvError::Truncated(_)))));
        assert!(r.next().is_none());
    }
}
