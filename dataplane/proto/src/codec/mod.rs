//! Codec bitstream helpers: Annex-B scanning, parameter sets, AAC and Opus headers.
//!
//! - [`annexb`]: start-code scanning and AVCC ↔ Annex-B (ITU-T H.264 Annex B, ISO/IEC 14496-15);
//! - [`h264`]: NAL header, SPS/PPS and slice header fields (ITU-T H.264 §7.3);
//! - [`h265`]: NAL header, SPS/PPS and slice header fields (ITU-T H.265 §7.3);
//! - [`aac`]: ADTS headers and AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1, §1.A.2);
//! - [`opus`]: the TOC byte and packet durations (RFC 6716 §3.1, §3.2).
//!
//! Everything here reads borrowed bytes and hands out [`bytes::Bytes`] slices of its input; the
//! few places that must build new bytes (changing a NAL framing, building a header) say so.
//! [`video_config_from_parameter_sets`] is the entry point the ingest paths use to describe a
//! video track from its parameter sets.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use sluice_proto::codec::{annexb, h264, video_config_from_parameter_sets};
//! use sluice_proto::media::VideoCodec;
//!
//! // SPS and PPS of a 320x240 Constrained Baseline stream, as an encoder writes them.
//! let stream = Bytes::from_static(&[
//!     0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
//!     0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80, //
//!     0, 0, 1, 0x68, 0xcb, 0x83, 0xcb, 0x20,
//! ]);
//! let nalus: Vec<Bytes> = annexb::split(&stream).collect(); // slices of `stream`
//! assert_eq!(h264::nal_type(&nalus[0]), Some(h264::NalType::Sps));
//! let config = video_config_from_parameter_sets(
//!     VideoCodec::H264,
//!     &[],
//!     &nalus[..1],
//!     &nalus[1..],
//! )
//! .unwrap();
//! assert_eq!((config.width, config.height), (320, 240));
//! assert_eq!(config.frame_rate, Some((25, 1)));
//! ```

pub mod aac;
pub mod annexb;
mod bits;
pub mod h264;
pub mod h265;
pub mod opus;

pub use bits::BitError;

use bytes::Bytes;

use crate::media::{VideoCodec, VideoConfig};

/// Why a video track could not be described from its parameter sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoConfigError {
    /// The publisher sent a parameter set that does not parse.
    #[error("malformed {which}: {source}")]
    Malformed {
        /// Which parameter set ("SPS", "PPS", "VPS").
        which: &'static str,
        /// What was wrong with it.
        source: BitError,
    },
    /// A parameter set the codec needs is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The codec is not one Sluice parses parameter sets for.
    #[error("unsupported codec {0:?}")]
    UnsupportedCodec(VideoCodec),
}

/// Describes a video track from its parameter sets (each without start code or length prefix).
///
/// `vps` is only used (and required) for H.265. Width, height, profile, constraints, level and
/// frame rate come from the first SPS; the PPS is checked to parse and refer to an SPS.
pub fn video_config_from_parameter_sets(
    codec: VideoCodec,
    vps: &[Bytes],
    sps: &[Bytes],
    pps: &[Bytes],
) -> Result<VideoConfig, VideoConfigError> {
    let first_sps = sps.first().ok_or(VideoConfigError::Missing("SPS"))?;
    let first_pps = pps.first().ok_or(VideoConfigError::Missing("PPS"))?;
    let malformed = |which| move |source| VideoConfigError::Malformed { which, source };
    let mut config = VideoConfig {
        codec,
        vps: vps.to_vec(),
        sps: sps.to_vec(),
        pps: pps.to_vec(),
        width: 0,
        height: 0,
        profile: 0,
        constraints: 0,
        level: 0,
        frame_rate: None,
    };
    match codec {
        VideoCodec::H264 => {
            let s = h264::Sps::parse(first_sps).map_err(malformed("SPS"))?;
            h264::Pps::parse(first_pps).map_err(malformed("PPS"))?;
            config.width = s.width;
            config.height = s.height;
            config.profile = s.profile_idc;
            config.constraints = s.constraint_flags;
            config.level = s.level_idc;
            config.frame_rate = s.frame_rate();
        }
        VideoCodec::H265 => {
            if vps.is_empty() {
                return Err(VideoConfigError::Missing("VPS"));
            }
            let s = h265::Sps::parse(first_sps).map_err(malformed("SPS"))?;
            h265::Pps::parse(first_pps).map_err(malformed("PPS"))?;
            config.width = s.width;
            config.height = s.height;
            config.profile = s.profile.general_profile_idc;
            config.level = s.profile.general_level_idc;
            config.frame_rate = s.frame_rate();
        }
        VideoCodec::Av1 => return Err(VideoConfigError::UnsupportedCodec(codec)),
    }
    Ok(config)
}

/// Reduces a fraction by its greatest common divisor; `None` when it does not fit `u32` or the
/// denominator is zero.
pub(crate) fn reduce_fraction(num: u64, den: u64) -> Option<(u32, u32)> {
    if num == 0 || den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Some((u32::try_from(num / a).ok()?, u32::try_from(den / a).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_video_config() {
        let sps = Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
        ]);
        let pps = Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]);
        let c = video_config_from_parameter_sets(
            VideoCodec::H264,
            &[],
            std::slice::from_ref(&sps),
            std::slice::from_ref(&pps),
        )
        .unwrap();
        assert_eq!((c.width, c.height, c.frame_rate), (320, 240, Some((25, 1))));
        assert_eq!((c.profile, c.constraints, c.level), (66, 0xc0, 13));
        assert_eq!(c.sps, std::slice::from_ref(&sps));
        assert_eq!(
            video_config_from_parameter_sets(
                VideoCodec::H264,
                &[],
                std::slice::from_ref(&sps),
                &[]
            ),
            Err(VideoConfigError::Missing("PPS"))
        );
        assert!(matches!(
            video_config_from_parameter_sets(
                VideoCodec::H264,
                &[],
                std::slice::from_ref(&pps),
                std::slice::from_ref(&pps)
            ),
            Err(VideoConfigError::Malformed { which: "SPS", .. })
        ));
    }

    #[test]
    fn fractions_reduce() {
        assert_eq!(reduce_fraction(60_000, 2_002), Some((30_000, 1_001)));
        assert_eq!(reduce_fraction(0, 1), None);
        assert_eq!(reduce_fraction(1 << 40, 1), None);
    }
}
