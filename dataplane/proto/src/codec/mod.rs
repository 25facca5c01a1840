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

pub mod aac;
pub mod annexb;
mod bits;

pub use bits::BitError;
