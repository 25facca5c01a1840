//! Opus packet framing (RFC 6716 §3.1 TOC byte, §3.2 frame packing): enough to know how many
//! frames a packet holds and how long it plays, without decoding it.

/// Opus always runs its RTP and duration arithmetic at 48 kHz (RFC 7587 §4.1).
pub const OPUS_CLOCK_HZ: u32 = 48_000;

/// Longest legal packet duration: 120 ms (RFC 6716 §3.2.5).
pub const MAX_PACKET_SAMPLES: u32 = 5_760;

/// Why an Opus packet was refused (RFC 6716 §3.4 requirements R1..R7 that apply to the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    /// An empty packet (R1).
    #[error("empty Opus packet")]
    Empty,
    /// A code 3 packet without its frame count byte.
    #[error("Opus packet truncated")]
    Truncated,
    /// A code 3 packet with zero frames or longer than 120 ms (R5).
    #[error("Opus packet with {frames} frames of {frame_samples} samples is out of range")]
    BadFrameCount {
        /// Frames announced.
        frames: u8,
        /// Samples per frame.
        frame_samples: u32,
    },
}

/// Coding mode selected by the TOC configuration (RFC 6716 Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SILK-only (configurations 0..=11).
    Silk,
    /// Hybrid (12..=15).
    Hybrid,
    /// CELT-only (16..=31).
    Celt,
}

/// The parsed TOC byte (RFC 6716 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toc {
    /// `config` (0..=31).
    pub config: u8,
    /// `s`: true for stereo.
    pub stereo: bool,
    /// `c`: the frame count code (0..=3).
    pub code: u8,
}

impl Toc {
    /// Splits a TOC byte.
    pub fn from_byte(b: u8) -> Self {
        Self {
            config: b >> 3,
            stereo: b & 4 != 0,
            code: b & 3,
        }
    }

    /// The coding mode.
    pub fn mode(&self) -> Mode {
        match self.config {
            0..=11 => Mode::Silk,
            12..=15 => Mode::Hybrid,
            _ => Mode::Celt,
        }
    }

    /// Samples per frame at 48 kHz (Table 2: 2.5, 5, 10, 20, 40 or 60 ms).
    pub fn frame_samples(&self) -> u32 {
        match self.mode() {
            Mode::Silk => [480, 960, 1920, 2880][usize::from(self.config & 3)],
            Mode::Hybrid => [480, 960][usize::from(self.config & 1)],
            Mode::Celt => [120, 240, 480, 960][usize::from(self.config & 3)],
        }
    }
}

/// Frames in an Opus packet (RFC 6716 §3.2: codes 0..=2 directly, code 3 from the frame count
/// byte, §3.2.5).
pub fn frame_count(packet: &[u8]) -> Result<u8, OpusError> {
    let toc = Toc::from_byte(*packet.first().ok_or(OpusError::Empty)?);
    let frames = match toc.code {
        0 => 1,
        1 | 2 => 2,
        _ => *packet.get(1).ok_or(OpusError::Truncated)? & 0x3f,
    };
    let total = u32::from(frames) * toc.frame_samples();
    if frames == 0 || total > MAX_PACKET_SAMPLES {
        return Err(OpusError::BadFrameCount {
            frames,
            frame_samples: toc.frame_samples(),
        });
    }
    Ok(frames)
}

/// Duration of an Opus packet in 48 kHz samples.
pub fn packet_samples(packet: &[u8]) -> Result<u32, OpusError> {
    let frames = frame_count(packet)?;
    let toc = Toc::from_byte(packet.first().copied().unwrap_or_default());
    Ok(u32::from(frames) * toc.frame_samples())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_fields_and_durations() {
        // config 31 (CELT FB 20 ms), stereo, code 0: what ffmpeg's libopus emits by default.
        let t = Toc::from_byte(0xfc);
        assert_eq!((t.config, t.stereo, t.code), (31, true, 0));
        assert_eq!(t.mode(), Mode::Celt);
        assert_eq!(packet_samples(&[0xfc, 0xaa]), Ok(960));
        // SILK NB 60 ms, code 1: two frames, 120 ms.
        assert_eq!(packet_samples(&[(3 << 3) | 1]), Ok(5760));
        // Hybrid 10 ms, code 2.
        assert_eq!(packet_samples(&[(12 << 3) | 2]), Ok(960));
        // CELT 2.5 ms, code 3 with 48 frames = 120 ms.
        assert_eq!(frame_count(&[(16 << 3) | 3, 48]), Ok(48));
        assert_eq!(packet_samples(&[(16 << 3) | 3, 0x80 | 48]), Ok(5760));
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(frame_count(&[]), Err(OpusError::Empty));
        assert_eq!(frame_count(&[3]), Err(OpusError::Truncated));
        assert!(frame_count(&[3, 0]).is_err());
        // 3 frames of 60 ms = 180 ms.
        assert!(frame_count(&[(3 << 3) | 3, 3]).is_err());
    }
}
