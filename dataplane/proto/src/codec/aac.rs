//! AAC framing: ADTS headers (ISO/IEC 14496-3 §1.A.2.2, Table 1.A.5–1.A.7; ISO/IEC 13818-7
//! §6.2) and the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
//!
//! TS ingest carries AAC as ADTS frames; FLV, RTP (RFC 3640) and SDP carry raw access units
//! plus an AudioSpecificConfig. [`split_adts`] turns the first into the second without copying
//! the audio: the raw frame is a slice of the input.

use bytes::Bytes;

use super::bits::{BitError, BitReader};

/// Sampling frequencies by `sampling_frequency_index` (ISO/IEC 14496-3 Table 1.18); index 15
/// means an explicit 24-bit rate follows, 13 and 14 are reserved.
pub const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// The sample rate of a `sampling_frequency_index`, if the index names one.
pub fn sample_rate_of_index(index: u8) -> Option<u32> {
    SAMPLE_RATES.get(usize::from(index)).copied()
}

/// The `sampling_frequency_index` of a sample rate, if it is one of the table's.
pub fn index_of_sample_rate(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .map(|i| i as u8)
}

/// Why ADTS or AudioSpecificConfig bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    /// The 12-bit ADTS syncword `0xFFF` is missing: the stream is not ADTS or lost sync.
    #[error("ADTS syncword missing")]
    NoSync,
    /// The ADTS layer field is not 0.
    #[error("ADTS layer {0} is not 0")]
    BadLayer(u8),
    /// `frame_length` is smaller than the header it includes.
    #[error("ADTS frame length {0} shorter than its header")]
    BadFrameLength(u16),
    /// A sampling frequency index of 13 or 14 (reserved), or 15 where ADTS forbids it.
    #[error("reserved sampling frequency index {0}")]
    ReservedFrequency(u8),
    /// An AudioSpecificConfig that ends early.
    #[error("AudioSpecificConfig truncated")]
    Truncated,
    /// Valid AAC that ADTS cannot express (object type above 4, explicit rate, channel
    /// configuration above 7) or a raw frame too long for the 13-bit length.
    #[error("not expressible in ADTS: {0}")]
    NotAdtsCompatible(&'static str),
}

impl From<BitError> for AacError {
    fn from(_: BitError) -> Self {
        AacError::Truncated
    }
}

/// Bytes of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// Bytes of an ADTS header with its 16-bit CRC.
pub const ADTS_HEADER_CRC_LEN: usize = 9;
/// Largest ADTS frame (the `frame_length` field is 13 bits).
pub const ADTS_MAX_FRAME_LEN: usize = 8191;

/// A parsed ADTS fixed + variable header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `ID`: true for MPEG-2 AAC, false for MPEG-4.
    pub mpeg2: bool,
    /// True when a 16-bit CRC follows the header (`protection_absent == 0`).
    pub has_crc: bool,
    /// Audio object type (`profile_ObjectType + 1`: 1 Main, 2 LC, 3 SSR, 4 LTP).
    pub object_type: u8,
    /// `sampling_frequency_index` (0..=12).
    pub sampling_frequency_index: u8,
    /// `channel_configuration` (0 means a program config element in the payload).
    pub channel_configuration: u8,
    /// `aac_frame_length`: the whole frame including this header.
    pub frame_length: u16,
    /// `adts_buffer_fullness` (0x7FF for VBR).
    pub buffer_fullness: u16,
    /// Raw data blocks in the frame (`number_of_raw_data_blocks_in_frame + 1`, 1..=4). With more
    /// than one, the payload holds several AAC frames (and, with CRC, a block position table).
    pub raw_data_blocks: u8,
}

impl AdtsHeader {
    /// Parses the header at the start of `buf`. `Ok(None)` means more bytes are needed (fewer
    /// than 7, or 9 with CRC).
    pub fn parse(buf: &[u8]) -> Result<Option<Self>, AacError> {
        let Some(h) = buf.first_chunk::<ADTS_HEADER_LEN>() else {
            if buf.first() != Some(&0xff) && !buf.is_empty() {
                return Err(AacError::NoSync);
            }
            return Ok(None);
        };
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(AacError::NoSync);
        }
        let layer = (h[1] >> 1) & 3;
        if layer != 0 {
            return Err(AacError::BadLayer(layer));
        }
        let sampling_frequency_index = (h[2] >> 2) & 0x0f;
        if sampling_frequency_index > 12 {
            return Err(AacError::ReservedFrequency(sampling_frequency_index));
        }
        let header = AdtsHeader {
            mpeg2: h[1] & 0x08 != 0,
            has_crc: h[1] & 1 == 0,
            object_type: (h[2] >> 6) + 1,
            sampling_frequency_index,
            channel_configuration: ((h[2] & 1) << 2) | (h[3] >> 6),
            frame_length: (u16::from(h[3] & 3) << 11)
                | (u16::from(h[4]) << 3)
                | u16::from(h[5] >> 5),
            buffer_fullness: (u16::from(h[5] & 0x1f) << 6) | u16::from(h[6] >> 2),
            raw_data_blocks: (h[6] & 3) + 1,
        };
        if usize::from(header.frame_length) < header.header_len() {
            return Err(AacError::BadFrameLength(header.frame_length));
        }
        if buf.len() < header.header_len() {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// Header bytes, including the CRC when present.
    pub fn header_len(&self) -> usize {
        if self.has_crc {
            ADTS_HEADER_CRC_LEN
        } else {
            ADTS_HEADER_LEN
        }
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        // parse() rejected indices above 12.
        sample_rate_of_index(self.sampling_frequency_index).unwrap_or(0)
    }

    /// The equivalent AudioSpecificConfig.
    pub fn audio_specific_config(&self) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type: self.object_type,
            sampling_frequency_index: self.sampling_frequency_index,
            sample_rate: self.sample_rate(),
            channel_configuration: self.channel_configuration,
        }
    }
}

/// One ADTS frame split into header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsFrame {
    /// The parsed header.
    pub header: AdtsHeader,
    /// The payload after the header (and CRC): one raw AAC frame when
    /// `header.raw_data_blocks == 1`. A slice of the input.
    pub payload: Bytes,
}

/// Splits the ADTS frame at the start of `buf`. Returns the frame and the bytes it used, or
/// `Ok(None)` when `buf` holds only part of it.
pub fn split_adts(buf: &Bytes) -> Result<Option<(AdtsFrame, usize)>, AacError> {
    let Some(header) = AdtsHeader::parse(buf)? else {
        return Ok(None);
    };
    let len = usize::from(header.frame_length);
    if buf.len() < len {
        return Ok(None);
    }
    let payload = buf.slice(header.header_len()..len);
    Ok(Some((AdtsFrame { header, payload }, len)))
}

/// Iterator over consecutive ADTS frames in a buffer (e.g. one PES payload). Stops at the first
/// incomplete frame; [`AdtsFrames::remaining`] tells how many bytes were left over.
#[derive(Debug, Clone)]
pub struct AdtsFrames {
    buf: Bytes,
    pos: usize,
    failed: bool,
}

/// Iterates the ADTS frames of `buf`.
pub fn adts_frames(buf: &Bytes) -> AdtsFrames {
    AdtsFrames {
        buf: buf.clone(),
        pos: 0,
        failed: false,
    }
}

impl AdtsFrames {
    /// Bytes after the last complete frame yielded so far.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

impl Iterator for AdtsFrames {
    type Item = Result<AdtsFrame, AacError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = self.buf.slice(self.pos..);
        match split_adts(&rest) {
            Ok(Some((frame, used))) => {
                self.pos += used;
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// An MPEG-4 AudioSpecificConfig, the fields Sluice needs (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// `audioObjectType` (2 = AAC LC), including escaped values 32..=95.
    pub object_type: u8,
    /// `samplingFrequencyIndex`; 15 when the rate is explicit.
    pub sampling_frequency_index: u8,
    /// The sample rate in Hz (from the table or the explicit 24-bit field).
    pub sample_rate: u32,
    /// `channelConfiguration` (0..=15; 0 means a program config element follows).
    pub channel_configuration: u8,
}

impl AudioSpecificConfig {
    /// Parses the leading fields of an AudioSpecificConfig; the trailing codec-specific bits
    /// (GASpecificConfig, SBR/PS signalling) are ignored.
    pub fn parse(buf: &[u8]) -> Result<Self, AacError> {
        let mut r = BitReader::new(buf);
        let mut object_type = r.u8(5)?;
        if object_type == 31 {
            object_type = 32 + r.u8(6)?;
        }
        let sampling_frequency_index = r.u8(4)?;
        let sample_rate = match sampling_frequency_index {
            15 => r.bits(24)?,
            i => sample_rate_of_index(i).ok_or(AacError::ReservedFrequency(i))?,
        };
        let channel_configuration = r.u8(4)?;
        Ok(Self {
            object_type,
            sampling_frequency_index,
            sample_rate,
            channel_configuration,
        })
    }

    /// Builds a config for a table sample rate (explicit-rate otherwise).
    pub fn new(object_type: u8, sample_rate: u32, channel_configuration: u8) -> Self {
        Self {
            object_type,
            sampling_frequency_index: index_of_sample_rate(sample_rate).unwrap_or(15),
            sample_rate,
            channel_configuration,
        }
    }

    /// Serializes the config with an all-zero GASpecificConfig (1024-sample frames, no core
    /// coder, no extension): 2 bytes for AAC LC at a table rate, up to 6 otherwise.
    pub fn to_bytes(&self) -> Bytes {
        let mut w = BitWriter::default();
        if self.object_type >= 31 {
            w.put(31, 5);
            w.put(u32::from(self.object_type.saturating_sub(32)) & 0x3f, 6);
        } else {
            w.put(u32::from(self.object_type), 5);
        }
        if self.sampling_frequency_index == 15 {
            w.put(15, 4);
            w.put(self.sample_rate & 0xff_ffff, 24);
        } else {
            w.put(u32::from(self.sampling_frequency_index & 0x0f), 4);
        }
        w.put(u32::from(self.channel_configuration & 0x0f), 4);
        w.put(0, 3);
        w.finish()
    }

    /// Builds the 7-byte ADTS header (no CRC) for a raw frame of `raw_len` bytes.
    pub fn adts_header(&self, raw_len: usize) -> Result<[u8; ADTS_HEADER_LEN], AacError> {
        if !(1..=4).contains(&self.object_type) {
            return Err(AacError::NotAdtsCompatible("object type"));
        }
        if self.sampling_frequency_index > 12 {
            return Err(AacError::NotAdtsCompatible("sample rate"));
        }
        if self.channel_configuration > 7 {
            return Err(AacError::NotAdtsCompatible("channel configuration"));
        }
        let len = raw_len
            .checked_add(ADTS_HEADER_LEN)
            .filter(|&l| l <= ADTS_MAX_FRAME_LEN)
            .ok_or(AacError::NotAdtsCompatible("frame length"))?;
        let fullness = 0x7ffu16;
        let ch = self.channel_configuration;
        Ok([
            0xff,
            0xf1, // MPEG-4, layer 0, no CRC
            ((self.object_type - 1) << 6) | (self.sampling_frequency_index << 2) | (ch >> 2),
            ((ch & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | (fullness >> 6) as u8,
            ((fullness & 0x3f) as u8) << 2,
        ])
    }
}

/// A tiny MSB-first bit writer for config records.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, v: u32, bits: u32) {
        self.acc = (self.acc << bits) | u64::from(v);
        self.n += bits;
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
    }

    fn finish(mut self) -> Bytes {
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ADTS header as ffmpeg writes it: AAC LC, 44.1 kHz, stereo, 371 bytes, VBR.
    const HDR: [u8; 7] = [0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc];

    #[test]
    fn parses_header_and_asc() {
        let h = AdtsHeader::parse(&HDR).unwrap().unwrap();
        assert_eq!(h.object_type, 2);
        assert_eq!(h.sample_rate(), 44_100);
        assert_eq!(h.channel_configuration, 2);
        assert_eq!(h.frame_length, 371);
        assert_eq!(h.buffer_fullness, 0x7ff);
        assert!(!h.has_crc && !h.mpeg2);
        assert_eq!(h.raw_data_blocks, 1);
        let asc = h.audio_specific_config();
        assert_eq!(&asc.to_bytes()[..], &[0x12, 0x10]);
        assert_eq!(asc.adts_header(371 - 7).unwrap(), HDR);
    }

    #[test]
    fn splits_frames_with_and_without_crc() {
        let asc = AudioSpecificConfig::new(2, 48_000, 1);
        let mut buf = Vec::new();
        buf.extend_from_slice(&asc.adts_header(3).unwrap());
        buf.extend_from_slice(&[1, 2, 3]);
        let mut crc = asc.adts_header(2 + 2).unwrap();
        crc[1] &= !1; // protection_absent = 0: a CRC follows
        buf.extend_from_slice(&crc);
        buf.extend_from_slice(&[0xaa, 0xbb, 9, 8]);
        buf.extend_from_slice(&[0xff, 0xf1]);
        let buf = Bytes::from(buf);
        let mut it = adts_frames(&buf);
        let a = it.next().unwrap().unwrap();
        assert_eq!(&a.payload[..], &[1, 2, 3]);
        let b = it.next().unwrap().unwrap();
        assert!(b.header.has_crc);
        assert_eq!(&b.payload[..], &[9, 8]);
        assert!(it.next().is_none());
        assert_eq!(it.remaining(), 2);
    }

    #[test]
    fn rejects_bad_and_truncated() {
        assert_eq!(AdtsHeader::parse(&HDR[..3]), Ok(None));
        assert_eq!(AdtsHeader::parse(&[]), Ok(None));
        assert_eq!(AdtsHeader::parse(&[0x12, 0x10]), Err(AacError::NoSync));
        let mut bad = HDR;
        bad[2] = 0x50 | (13 << 2);
        assert_eq!(
            AdtsHeader::parse(&bad),
            Err(AacError::ReservedFrequency(13))
        );
        let mut short = HDR;
        short[3] &= !3;
        short[4] = 0;
        short[5] &= 0x1f;
        assert_eq!(AdtsHeader::parse(&short), Err(AacError::BadFrameLength(0)));
        let mut crc = HDR;
        crc[1] = 0xf0;
        assert_eq!(AdtsHeader::parse(&crc[..]), Ok(None));
        let full = Bytes::copy_from_slice(&HDR);
        assert_eq!(split_adts(&full), Ok(None));
    }

    #[test]
    fn asc_escape_and_explicit_rate() {
        let asc = AudioSpecificConfig {
            object_type: 42,
            sampling_frequency_index: 15,
            sample_rate: 12_345,
            channel_configuration: 6,
        };
        let bytes = asc.to_bytes();
        assert_eq!(AudioSpecificConfig::parse(&bytes), Ok(asc));
        assert!(asc.adts_header(10).is_err());
        assert_eq!(
            AudioSpecificConfig::parse(&[0x12]),
            Err(AacError::Truncated)
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(AacError::ReservedFrequency(13))
        );
    }

    #[test]
    fn adts_header_round_trips() {
        for (ot, rate, ch, len) in [(1u8, 96_000u32, 1u8, 0usize), (4, 7_350, 7, 8184)] {
            let asc = AudioSpecificConfig::new(ot, rate, ch);
            let h = asc.adts_header(len).unwrap();
            let p = AdtsHeader::parse(&h).unwrap().unwrap();
            assert_eq!(p.audio_specific_config(), asc);
            assert_eq!(usize::from(p.frame_length), len + 7);
        }
        assert!(
            AudioSpecificConfig::new(2, 48_000, 2)
                .adts_header(8185)
                .is_err()
        );
    }
}
