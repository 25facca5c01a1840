//! An MSB-first bit reader with Exp-Golomb codes (H.264 §9.1) that can drop emulation
//! prevention bytes (H.264 §7.4.1, H.265 §7.4.2) as it goes, so parameter sets and slice
//! headers are read in place with no unescaped copy.
/// Why a bitstream field could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitError {
    /// The bitstream ended before the syntax did.
    #[error("bitstream truncated")]
    Truncated,
    /// An Exp-Golomb code longer than 32 bits: no legal syntax element is that large.
    #[error("exp-Golomb code too long")]
    GolombTooLong,
    /// A syntax element is outside the range the spec allows.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// The NAL unit is not the type the parser expects.
    #[error("wrong NAL unit type {0}")]
    WrongNalType(u8),
}

/// Reads bits MSB first from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the next raw byte to load.
    pos: usize,
    /// The byte being consumed and how many of its bits remain.
    cur: u8,
    left: u8,
    /// Consecutive zero bytes just loaded, for emulation prevention.
    zeros: u8,
    /// Whether `00 00 03` loses its `03`.
    unescape: bool,
}

impl<'a> BitReader<'a> {
    /// A reader of plain bytes (no emulation prevention), e.g. an AudioSpecificConfig.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            cur: 0,
            left: 0,
            zeros: 0,
            unescape: false,
        }
    }

    /// A reader of a NAL unit payload (RBSP with emulation prevention bytes in place).
    pub(crate) fn rbsp(data: &'a [u8]) -> Self {
        Self {
            unescape: true,
            ..Self::new(data)
        }
    }

    fn load(&mut self) -> Result<(), BitError> {
        loop {
            let b = *self.data.get(self.pos).ok_or(BitError::Truncated)?;
            self.pos += 1;
            if self.unescape && self.zeros >= 2 && b == 3 {
                self.zeros = 0;
                continue;
            }
            self.zeros = if b == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
            self.cur = b;
            self.left = 8;
            return Ok(());
        }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, BitError> {
        if self.left == 0 {
            self.load()?;
        }
        self.left -= 1;
        Ok((self.cur >> self.left) & 1 == 1)
    }

    /// Reads `n` bits (at most 32).
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, BitError> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // n <= 32, so v fits.
        Ok(v as u32)
    }

    pub(crate) fn u8(&mut self, n: u32) -> Result<u8, BitError> {
        debug_assert!(n <= 8);
        Ok(self.bits(n)? as u8)
    }

    pub(crate) fn skip(&mut self, n: u32) -> Result<(), BitError> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// ue(v), H.264 §9.1.
    pub(crate) fn ue(&mut self) -> Result<u32, BitError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(BitError::GolombTooLong);
            }
        }
        // zeros <= 31: (2^zeros - 1) + rest <= 2^32 - 2.
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// ue(v) that must not exceed `max`.
    pub(crate) fn ue_max(&mut self, max: u32, what: &'static str) -> Result<u32, BitError> {
        let v = self.ue()?;
        if v > max {
            return Err(BitError::OutOfRange(what));
        }
        Ok(v)
    }

    /// se(v), H.264 §9.1.1.
    pub(crate) fn se(&mut self) -> Result<i32, BitError> {
        let k = i64::from(self.ue()?);
        let v = if k & 1 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31.
        i32::try_from(v).map_err(|_| BitError::OutOfRange("se(v)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0,1,2,3,4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| r.ue().unwrap()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let mut r = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| r.se().unwrap()).collect::<Vec<_>>(),
            [0, 1, -1, 2, -2]
        );
    }

    #[test]
    fn emulation_prevention_is_dropped() {
        let data = [0x00, 0x00, 0x03, 0x01, 0xff];
        let mut r = BitReader::rbsp(&data);
        assert_eq!(r.bits(32).unwrap(), 0x0000_01ff);
        assert_eq!(r.bit(), Err(BitError::Truncated));
        let mut plain = BitReader::new(&data);
        assert_eq!(plain.bits(32).unwrap(), 0x0000_0301);
    }

    #[test]
    fn long_golomb_rejected() {
        let data = [0u8; 8];
        assert_eq!(BitReader::new(&data).ue(), Err(BitError::GolombTooLong));
        assert_eq!(BitReader::new(&[0, 0]).ue(), Err(BitError::Truncated));
    }
}
