//! PES packets, ISO/IEC 13818-1 §2.4.3.6 (syntax) and §2.4.3.7 (semantics): the header with
//! its 33-bit PTS/DTS, reassembly of a PES from TS packet payloads, and the Opus control
//! header that frames Opus access units inside a PES (ETSI TS 102 366 style mapping used by
//! the "Opus in MPEG-2 TS" specification, control_header()).

use bytes::{Buf, Bytes};
use thiserror::Error;

/// Largest PES the assembler keeps, header included. Video PES are unbounded
/// (PES_packet_length 0) and grow until the next payload unit start, so a peer that never
/// sends one could make us buffer without limit; 8 MiB holds any sane coded picture.
pub const MAX_PES_SIZE: usize = 8 * 1024 * 1024;

/// Most the assembler reserves up front for an unbounded PES, from the size of the previous
/// one on the PID. The frozen buffer keeps its capacity while the frame is held downstream,
/// so without this cap a peer could send one huge PES and make every following small one
/// pin that much memory; beyond it the buffer grows by doubling.
pub const MAX_PES_PREALLOC: usize = 256 * 1024;

/// Mask of a 33-bit timestamp.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// Why a PES (or its Opus framing) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PesError {
    /// The payload does not start with `packet_start_code_prefix` 0x000001 (peer's fault).
    #[error("PES does not start with 00 00 01")]
    BadStartCode,
    /// The optional header does not start with the `10` marker (MPEG-1 system PES are not
    /// supported).
    #[error("PES optional header marker bits are not 10")]
    BadMarker,
    /// The header data length is too short for the flagged fields, or overruns the PES.
    #[error("PES header length inconsistent with its flags")]
    HeaderOverrun,
    /// The PES grew past [`MAX_PES_SIZE`] and was discarded.
    #[error("PES exceeds the size cap")]
    Overflow,
    /// The next payload unit started (or the stream ended) before a bounded PES was complete.
    #[error("PES truncated before its announced length")]
    Truncated,
    /// An Opus access unit lacks the control header prefix or overruns the payload.
    #[error("malformed Opus control header")]
    BadOpusHeader,
}

/// Reads a 5-byte PTS or DTS field (§2.4.3.7). Marker bits are not checked: muxers in the
/// wild get them wrong and they carry no information.
pub fn read_timestamp(b: [u8; 5]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// Writes a 5-byte PTS or DTS field with the 4-bit `prefix` (`0010` PTS only, `0011` PTS of
/// a PTS+DTS pair, `0001` DTS) and the marker bits set.
pub fn write_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        ((ts >> 14) as u8 & 0xfe) | 1,
        (ts >> 7) as u8,
        ((ts << 1) as u8) | 1,
    ]
}

/// Stream ids whose PES have no optional header (§2.4.3.7, Table 2-22 and the `stream_id`
/// conditions of Table 2-21).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    )
}

/// The fields of a PES header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// `stream_id` (0xE0.. video, 0xC0.. audio, 0xBD private stream 1, ...).
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after this field, 0 for an unbounded video PES.
    pub packet_length: u16,
    /// `PES_scrambling_control`.
    pub scrambling: u8,
    /// `data_alignment_indicator`.
    pub data_alignment: bool,
    /// Presentation time stamp, 33 bits at 90 kHz.
    pub pts: Option<u64>,
    /// Decoding time stamp, 33 bits at 90 kHz.
    pub dts: Option<u64>,
    /// Offset of the first payload byte from the start of the PES.
    pub header_len: usize,
}

impl PesHeader {
    /// Parses the header at the start of `b`. `Ok(None)` means `b` ends inside the header.
    pub fn parse(b: &[u8]) -> Result<Option<PesHeader>, PesError> {
        let Some(&[p0, p1, p2, stream_id, l0, l1]) =
            b.get(..6).and_then(|h| <&[u8; 6]>::try_from(h).ok())
        else {
            return if b.iter().zip([0u8, 0, 1]).all(|(a, e)| *a == e) {
                Ok(None)
            } else {
                Err(PesError::BadStartCode)
            };
        };
        if [p0, p1, p2] != [0, 0, 1] {
            return Err(PesError::BadStartCode);
        }
        let packet_length = u16::from_be_bytes([l0, l1]);
        let mut h = PesHeader {
            stream_id,
            packet_length,
            scrambling: 0,
            data_alignment: false,
            pts: None,
            dts: None,
            header_len: 6,
        };
        if !has_optional_header(stream_id) {
            return Ok(Some(h));
        }
        let Some(&[f0, f1, hdl]) = b.get(6..9).and_then(|h| <&[u8; 3]>::try_from(h).ok()) else {
            return Ok(None);
        };
        if f0 & 0xc0 != 0x80 {
            return Err(PesError::BadMarker);
        }
        h.scrambling = (f0 >> 4) & 0b11;
        h.data_alignment = f0 & 0x04 != 0;
        h.header_len = 9 + usize::from(hdl);
        if packet_length != 0 && h.header_len > 6 + usize::from(packet_length) {
            return Err(PesError::HeaderOverrun);
        }
        let ts_bytes = match f1 >> 6 {
            0b10 => 5,
            0b11 => 10,
            _ => 0, // 01 is forbidden; treat as no timestamps rather than drop the payload.
        };
        if usize::from(hdl) < ts_bytes {
            return Err(PesError::HeaderOverrun);
        }
        if b.len() < h.header_len {
            return Ok(None);
        }
        let ts_at = |at: usize| {
            b.get(at..at + 5)
                .and_then(|s| <[u8; 5]>::try_from(s).ok())
                .map(read_timestamp)
        };
        if ts_bytes >= 5 {
            h.pts = ts_at(9);
        }
        if ts_bytes == 10 {
            h.dts = ts_at(14);
        }
        Ok(Some(h))
    }
}

/// A complete PES: header fields and the payload (a slice, zero-copy when the PES fit one TS
/// packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    /// The parsed header.
    pub header: PesHeader,
    /// `random_access_indicator` of the packet that started this PES.
    pub random_access: bool,
    /// The PES payload (elementary stream bytes).
    pub payload: Bytes,
}

/// Reassembles PES packets of one PID from TS packet payloads.
///
/// A PES found in one packet is handed out as a slice of it, without a copy. One spanning
/// packets is copied, payload by payload, into one contiguous buffer: the copy the 4-byte TS
/// headers every 188 bytes force. The buffer is sized up front (exactly for a bounded PES,
/// from the previous PES on this PID for an unbounded one) so it rarely grows.
#[derive(Debug, Default)]
pub struct PesAssembler {
    /// The first payload while it is the only one (the zero-copy case).
    first: Option<Bytes>,
    /// The PES so far once it spans packets. A `Vec` rather than a `BytesMut`: its append
    /// is the cheaper of the two, and handing it to [`Bytes`] at the end costs the same one
    /// allocation as splitting a `BytesMut` does.
    buf: Vec<u8>,
    len: usize,
    /// Total PES size (6 + PES_packet_length) once known and non-zero.
    bounded: Option<usize>,
    length_known: bool,
    random_access: bool,
    active: bool,
    /// Size of the last PES completed on this PID (used up to [`MAX_PES_PREALLOC`]), kept
    /// apart for PES that start at a random access point (index 1) and the others (index 0):
    /// keyframes are several times larger than the frames between them, and one hint for
    /// both would make every keyframe buffer grow by doubling (and recopy) from the size of
    /// an inter frame.
    size_hint: [usize; 2],
}

impl PesAssembler {
    /// An assembler with no PES in progress.
    pub fn new() -> PesAssembler {
        PesAssembler::default()
    }

    /// True while a PES is being collected.
    pub fn in_progress(&self) -> bool {
        self.active
    }

    /// Drops the PES in progress (after a continuity error). Returns whether one was dropped.
    pub fn discard(&mut self) -> bool {
        let was = self.active;
        self.first = None;
        self.buf.clear();
        self.len = 0;
        self.bounded = None;
        self.length_known = false;
        self.active = false;
        was
    }

    /// Feeds one TS packet payload given as a buffer; see [`PesAssembler::push`].
    pub fn push_bytes(
        &mut self,
        pusi: bool,
        random_access: bool,
        payload: Bytes,
        out: &mut Vec<Result<Pes, PesError>>,
    ) {
        let len = payload.len();
        self.push(pusi, random_access, &payload, 0..len, out);
    }

    fn size_hint_for(&self, random_access: bool) -> usize {
        self.size_hint
            .get(usize::from(random_access))
            .copied()
            .unwrap_or(0)
    }

    /// The per-packet fast path: appends `bytes`, the payload of a packet without
    /// `payload_unit_start_indicator`, when that is all [`PesAssembler::push`] would do (a PES
    /// already spanning packets, its length field read, neither the size cap nor its announced
    /// end reached). Returns false, having changed nothing, in every other case: the caller
    /// then goes through [`PesAssembler::push`].
    #[inline]
    pub fn append_continuation(&mut self, bytes: &[u8]) -> bool {
        let len = self.len + bytes.len();
        let simple = self.active
            && self.first.is_none()
            && self.length_known
            && len <= MAX_PES_SIZE
            && self.bounded.is_none_or(|b| len < b);
        if simple {
            // Copy forced by the format: the PES continues in another TS packet.
            self.buf.extend_from_slice(bytes);
            self.len = len;
        }
        simple
    }

    /// How many bytes, in total over successive calls, [`PesAssembler::append_continuation`]
    /// would accept now: 0 unless a PES spans packets with its length field read; otherwise
    /// up to the size cap and, for a bounded PES, short of its last byte (the byte that
    /// completes it goes through [`PesAssembler::push`]).
    #[inline]
    pub fn continuation_room(&self) -> usize {
        if !(self.active && self.first.is_none() && self.length_known) {
            return 0;
        }
        let cap = MAX_PES_SIZE.saturating_sub(self.len);
        match self.bounded {
            Some(b) => cap.min(b.saturating_sub(self.len + 1)),
            None => cap,
        }
    }

    /// Appends continuation payloads totalling at most [`PesAssembler::continuation_room`]
    /// (the caller's batch loop counts them against it), reserving `hint` bytes first so a
    /// run of packets grows the buffer at most once. Same effect as one
    /// [`PesAssembler::append_continuation`] per payload.
    #[inline]
    pub(crate) fn append_within_room<'a>(
        &mut self,
        payloads: impl Iterator<Item = &'a [u8]>,
        hint: usize,
    ) {
        self.buf.reserve(hint);
        for bytes in payloads {
            // Copy forced by the format: the PES continues in another TS packet.
            self.buf.extend_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    /// Feeds one TS packet payload, `src[payload]` (an out-of-range `payload` is ignored).
    /// Finished PES (and errors) are appended to `out`: with `pusi` the previous PES
    /// completes (unbounded) or is reported truncated (bounded), and a bounded PES completes
    /// as soon as its last byte arrives.
    pub fn push(
        &mut self,
        pusi: bool,
        random_access: bool,
        src: &Bytes,
        payload: std::ops::Range<usize>,
        out: &mut Vec<Result<Pes, PesError>>,
    ) {
        if pusi {
            if let Some(r) = self.finish() {
                out.push(r);
            }
            self.active = true;
            self.random_access = random_access;
        } else if !self.active {
            return;
        }
        let Some(bytes) = src.get(payload.clone()) else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        if self.len + bytes.len() > MAX_PES_SIZE {
            self.discard();
            out.push(Err(PesError::Overflow));
            return;
        }
        if self.len == 0 {
            self.first = Some(src.slice(payload));
        } else {
            if let Some(first) = self.first.take() {
                // Copy forced by the format: the PES continues in another TS packet.
                let want = self
                    .bounded
                    .unwrap_or(self.size_hint_for(self.random_access).min(MAX_PES_PREALLOC))
                    .max(first.len() + bytes.len());
                self.buf.reserve(want);
                self.buf.extend_from_slice(&first);
            }
            self.buf.extend_from_slice(bytes);
        }
        self.len += bytes.len();
        if !self.length_known && self.len >= 6 {
            self.length_known = true;
            let head = match &self.first {
                Some(f) => f.first_chunk::<6>().copied(),
                None => self.buf.first_chunk::<6>().copied(),
            };
            let Some([0, 0, 1, _, l0, l1]) = head else {
                self.discard();
                out.push(Err(PesError::BadStartCode));
                return;
            };
            let pl = usize::from(u16::from_be_bytes([l0, l1]));
            if pl != 0 {
                self.bounded = Some(6 + pl);
            }
        }
        if self.bounded.is_some_and(|b| self.len >= b)
            && let Some(r) = self.finish()
        {
            out.push(r);
        }
    }

    /// Completes the PES in progress at the end of the stream (an unbounded PES has no other
    /// way to end).
    pub fn flush(&mut self) -> Option<Result<Pes, PesError>> {
        self.finish()
    }

    fn finish(&mut self) -> Option<Result<Pes, PesError>> {
        if !self.active {
            return None;
        }
        let total = self.bounded.unwrap_or(self.len);
        let random_access = self.random_access;
        if self.len < total || self.len < 6 {
            self.discard();
            return Some(Err(PesError::Truncated));
        }
        let mut whole = match self.first.take() {
            Some(f) => f,
            None => Bytes::from(std::mem::take(&mut self.buf)),
        };
        if let Some(h) = self.size_hint.get_mut(usize::from(random_access)) {
            *h = whole.len();
        }
        self.discard();
        // Trim and advance in place rather than slicing: no reference count traffic.
        whole.truncate(total);
        Some(match PesHeader::parse(&whole) {
            Ok(Some(header)) if header.header_len <= whole.len() => {
                whole.advance(header.header_len);
                Ok(Pes {
                    header,
                    random_access,
                    payload: whole,
                })
            }
            Ok(_) => Err(PesError::HeaderOverrun),
            Err(e) => Err(e),
        })
    }
}

/// One Opus access unit's control header (Opus in MPEG-TS, `opus_control_header()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusControlHeader {
    /// Size of the Opus packet that follows the header.
    pub au_size: usize,
    /// Samples (48 kHz) to drop from the start of the decoded packet.
    pub start_trim: Option<u16>,
    /// Samples (48 kHz) to drop from the end of the decoded packet.
    pub end_trim: Option<u16>,
    /// Bytes taken by the header itself.
    pub header_len: usize,
}

impl OpusControlHeader {
    /// Parses a control header at the start of `b`: 11-bit prefix 0x3ff, trim and extension
    /// flags, `au_size` as a run of 0xff bytes plus a final byte, the optional trims and
    /// the skipped control extension.
    pub fn parse(b: &[u8]) -> Result<OpusControlHeader, PesError> {
        let [h0, h1] = *b
            .get(..2)
            .and_then(|h| <&[u8; 2]>::try_from(h).ok())
            .ok_or(PesError::BadOpusHeader)?;
        if (u16::from_be_bytes([h0, h1]) & 0xffe0) != 0x7fe0 {
            return Err(PesError::BadOpusHeader);
        }
        let mut at = 2;
        let mut au_size = 0usize;
        loop {
            let &v = b.get(at).ok_or(PesError::BadOpusHeader)?;
            at += 1;
            au_size += usize::from(v);
            if v != 0xff {
                break;
            }
        }
        let mut trim = |flag: u8| -> Result<Option<u16>, PesError> {
            if h1 & flag == 0 {
                return Ok(None);
            }
            let t = b.get(at..at + 2).ok_or(PesError::BadOpusHeader)?;
            at += 2;
            Ok(Some(u16::from_be_bytes([t[0], t[1]]) & 0x1fff))
        };
        let start_trim = trim(0x10)?;
        let end_trim = trim(0x08)?;
        if h1 & 0x04 != 0 {
            let &ext_len = b.get(at).ok_or(PesError::BadOpusHeader)?;
            at += 1 + usize::from(ext_len);
        }
        if at > b.len() {
            return Err(PesError::BadOpusHeader);
        }
        Ok(OpusControlHeader {
            au_size,
            start_trim,
            end_trim,
            header_len: at,
        })
    }
}

/// Splits the payload of an Opus PES into Opus packets (slices of `payload`). The packet
/// count is bounded by `payload.len() / 3`, as every header takes at least 3 bytes.
pub fn split_opus_packets(payload: &Bytes) -> Result<Vec<Bytes>, PesError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let rest = payload.get(at..).unwrap_or_default();
        let h = OpusControlHeader::parse(rest)?;
        let start = at + h.header_len;
        let end = start + h.au_size;
        if end > payload.len() {
            return Err(PesError::BadOpusHeader);
        }
        out.push(payload.slice(start..end));
        at = end;
    }
    Ok(out)
}

/// Half the 33-bit timestamp range: steps smaller than this (either way) are taken as the
/// short way round the wrap.
const HALF_RANGE: i64 = 1 << 32;
const FULL_RANGE: i64 = 1 << 33;

/// Maps wrapping 33-bit 90 kHz timestamps to a monotonic-ish `i64` timeline.
///
/// Each value is placed at the point nearest the previous one (within ±2^32 ticks, about 13
/// hours), so forward progress across the 2^33 wrap (every 26.5 hours) continues upward and
/// the small backward steps of B-frame reordering stay backward steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct PtsUnwrapper {
    last: Option<i64>,
}

impl PtsUnwrapper {
    /// An unwrapper whose first value maps to itself.
    pub fn new() -> PtsUnwrapper {
        PtsUnwrapper::default()
    }

    /// Unwraps one 33-bit value (higher bits are ignored).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = (raw & TIMESTAMP_MASK) as i64;
        let out = match self.last {
            None => raw,
            Some(last) => {
                let delta = (raw - last.rem_euclid(FULL_RANGE)).rem_euclid(FULL_RANGE);
                let delta = if delta >= HALF_RANGE {
                    delta - FULL_RANGE
                } else {
                    delta
                };
                last.wrapping_add(delta)
            }
        };
        self.last = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pes(
        stream_id: u8,
        bounded: bool,
        pts: Option<u64>,
        dts: Option<u64>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut opt = vec![];
        let flags = match (pts, dts) {
            (Some(p), Some(d)) => {
                opt.extend(write_timestamp(3, p));
                opt.extend(write_timestamp(1, d));
                0xc0
            }
            (Some(p), None) => {
                opt.extend(write_timestamp(2, p));
                0x80
            }
            _ => 0,
        };
        let len = 3 + opt.len() + data.len();
        let mut v = vec![0, 0, 1, stream_id];
        v.extend_from_slice(&(if bounded { len as u16 } else { 0 }).to_be_bytes());
        v.extend_from_slice(&[0x84, flags, opt.len() as u8]);
        v.extend(opt);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn timestamp_round_trip() {
        for ts in [0, 1, 90_000, TIMESTAMP_MASK, 0x1_5555_5555, 0xaaaa_aaaa] {
            assert_eq!(read_timestamp(write_timestamp(2, ts)), ts);
        }
        // A PTS from ffmpeg output: 0x21 0x00 0x07 0xd8 0x61 is 126000 (1.4 s).
        assert_eq!(read_timestamp([0x21, 0x00, 0x07, 0xd8, 0x61]), 126_000);
    }

    #[test]
    fn parses_header() {
        let raw = pes(0xe0, false, Some(133_200), Some(126_000), &[0, 0, 0, 1, 9]);
        let h = PesHeader::parse(&raw).unwrap().unwrap();
        assert_eq!(h.stream_id, 0xe0);
        assert_eq!(h.packet_length, 0);
        assert!(h.data_alignment);
        assert_eq!(h.pts, Some(133_200));
        assert_eq!(h.dts, Some(126_000));
        assert_eq!(h.header_len, 19);
        for n in 0..19 {
            assert_eq!(PesHeader::parse(&raw[..n]), Ok(None), "prefix {n}");
        }
        assert_eq!(PesHeader::parse(&[0, 1, 1]), Err(PesError::BadStartCode));
        let mut bad = raw.clone();
        bad[6] = 0x40;
        assert_eq!(PesHeader::parse(&bad), Err(PesError::BadMarker));
        let mut bad = raw;
        bad[8] = 4; // too short for PTS + DTS
        assert_eq!(PesHeader::parse(&bad), Err(PesError::HeaderOverrun));
    }

    #[test]
    fn single_packet_pes_is_zero_copy() {
        let raw = Bytes::from(pes(0xc0, true, Some(90_000), None, &[1, 2, 3, 4]));
        let mut a = PesAssembler::new();
        let mut out = vec![];
        a.push_bytes(true, true, raw.clone(), &mut out);
        assert_eq!(out.len(), 1);
        let p = out.pop().unwrap().unwrap();
        assert_eq!(p.payload.as_ref(), &[1, 2, 3, 4]);
        assert_eq!(p.payload.as_ptr(), raw[14..].as_ptr());
        assert!(p.random_access);
        assert_eq!(p.header.pts, Some(90_000));
        assert!(!a.in_progress());
    }

    #[test]
    fn unbounded_pes_spans_packets_and_ends_at_next_start() {
        let data: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        let raw = pes(0xe0, false, Some(1), None, &data);
        let mut a = PesAssembler::new();
        let mut out = vec![];
        for (i, c) in raw.chunks(184).enumerate() {
            a.push_bytes(i == 0, false, Bytes::copy_from_slice(c), &mut out);
        }
        assert!(out.is_empty());
        a.push_bytes(
            true,
            false,
            Bytes::from(pes(0xe0, false, Some(2), None, &[7])),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap().payload.as_ref(), &data[..]);
        let last = a.flush().unwrap().unwrap();
        assert_eq!(last.header.pts, Some(2));
        assert_eq!(last.payload.as_ref(), &[7]);
    }

    #[test]
    fn bounded_pes_truncated_and_overflow() {
        let raw = pes(0xc0, true, Some(1), None, &[5; 300]);
        let mut a = PesAssembler::new();
        let mut out = vec![];
        a.push_bytes(true, false, Bytes::copy_from_slice(&raw[..184]), &mut out);
        a.push_bytes(true, false, Bytes::copy_from_slice(&raw[..184]), &mut out);
        assert_eq!(out, vec![Err(PesError::Truncated)]);
        out.clear();
        a.discard();
        let big = Bytes::from(vec![0u8; 184]);
        a.push_bytes(
            true,
            false,
            Bytes::from(pes(0xe0, false, None, None, &[0; 100])),
            &mut out,
        );
        for _ in 0..=(MAX_PES_SIZE / 184) {
            a.push_bytes(false, false, big.clone(), &mut out);
        }
        assert_eq!(out, vec![Err(PesError::Overflow)]);
        assert!(!a.in_progress());
    }

    /// Feeds `chunks` (the first with PUSI) the way the demuxer does: the fast path first,
    /// `push` when it declines.
    fn feed_fast(a: &mut PesAssembler, chunks: &[&[u8]], out: &mut Vec<Result<Pes, PesError>>) {
        for (i, c) in chunks.iter().enumerate() {
            if i == 0 || !a.append_continuation(c) {
                a.push_bytes(i == 0, false, Bytes::copy_from_slice(c), out);
            }
        }
    }

    #[test]
    fn continuation_fast_path_matches_push() {
        let bounded = pes(0xc0, true, Some(90_000), None, &[5; 1000]);
        let unbounded = pes(0xe0, false, Some(1), Some(0), &[6; 2000]);
        for (data, cut) in [
            (&bounded, 184),
            (&unbounded, 184),
            (&bounded, 3),
            (&unbounded, 5),
        ] {
            let chunks: Vec<&[u8]> = data.chunks(cut).collect();
            let (mut slow, mut fast) = (vec![], vec![]);
            let mut a = PesAssembler::new();
            for (i, c) in chunks.iter().enumerate() {
                a.push_bytes(i == 0, false, Bytes::copy_from_slice(c), &mut slow);
            }
            slow.extend(a.flush());
            let mut b = PesAssembler::new();
            feed_fast(&mut b, &chunks, &mut fast);
            fast.extend(b.flush());
            assert_eq!(fast, slow);
            assert_eq!(fast.len(), 1);
            assert!(fast[0].is_ok());
        }
    }

    #[test]
    fn continuation_fast_path_declines_what_push_must_decide() {
        let mut a = PesAssembler::new();
        // Nothing in progress.
        assert!(!a.append_continuation(&[1; 10]));
        let mut out = vec![];
        let bounded = pes(0xc0, true, None, None, &[5; 400]);
        a.push_bytes(
            true,
            false,
            Bytes::copy_from_slice(&bounded[..184]),
            &mut out,
        );
        // The first payload is still the zero-copy slice: push must start the copy.
        assert!(!a.append_continuation(&bounded[184..368]));
        a.push_bytes(
            false,
            false,
            Bytes::copy_from_slice(&bounded[184..368]),
            &mut out,
        );
        // The bytes that complete a bounded PES must go through push, which emits it.
        assert!(!a.append_continuation(&bounded[368..]));
        assert!(out.is_empty());
        a.push_bytes(
            false,
            false,
            Bytes::copy_from_slice(&bounded[368..]),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap().payload.len(), 400);
        // The size cap is push's to enforce.
        let mut big = PesAssembler::new();
        let head = pes(0xe0, false, None, None, &[1; 400]);
        big.push_bytes(true, false, Bytes::copy_from_slice(&head[..184]), &mut out);
        big.push_bytes(false, false, Bytes::copy_from_slice(&head[184..]), &mut out);
        let huge = vec![0u8; MAX_PES_SIZE];
        assert!(!big.append_continuation(&huge));
        assert!(big.in_progress());
    }

    #[test]
    fn small_pes_after_a_large_one_does_not_pin_its_size() {
        let mut a = PesAssembler::new();
        let mut out = vec![];
        let big = pes(0xe0, false, None, None, &vec![1; 1_000_000]);
        for (i, c) in big.chunks(184).enumerate() {
            a.push_bytes(i == 0, false, Bytes::copy_from_slice(c), &mut out);
        }
        let small = pes(0xe0, false, None, None, &[2; 300]);
        for (i, c) in small.chunks(184).enumerate() {
            a.push_bytes(i == 0, false, Bytes::copy_from_slice(c), &mut out);
        }
        a.flush();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap().payload.len(), 1_000_000);
        // The 1 MB PES grew by doubling from the capped reservation; the next one reserves
        // at most the cap (checked through the assembler's buffer capacity).
        let mut a2 = PesAssembler::new();
        a2.size_hint = [1_000_000; 2];
        for (i, c) in small.chunks(184).enumerate() {
            a2.push_bytes(i == 0, false, Bytes::copy_from_slice(c), &mut out);
        }
        assert!(a2.buf.capacity() <= MAX_PES_PREALLOC);
        assert!(a2.buf.capacity() >= small.len());
    }

    #[test]
    fn opus_control_headers() {
        // Two packets: 300 bytes (0xff, 45) with start trim, then 2 bytes with an extension.
        let mut p = vec![0x7f, 0xf0, 0xff, 45, 0x00, 0x10];
        p.extend(std::iter::repeat_n(0xaa, 300));
        p.extend_from_slice(&[0x7f, 0xe4, 2, 1, 0xee, 0xbb, 0xcc]);
        let payload = Bytes::from(p);
        let packets = split_opus_packets(&payload).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len(), 300);
        assert_eq!(packets[1].as_ref(), &[0xbb, 0xcc]);
        let h = OpusControlHeader::parse(&payload).unwrap();
        assert_eq!(h.start_trim, Some(16));
        assert_eq!(h.end_trim, None);
        assert_eq!(h.header_len, 6);
        for n in 0..payload.len() {
            if n != 306 {
                assert!(
                    split_opus_packets(&payload.slice(..n)).is_err() || n == 0,
                    "{n}"
                );
            }
        }
        assert_eq!(
            split_opus_packets(&Bytes::from_static(&[0x7e, 0xe0, 0])),
            Err(PesError::BadOpusHeader)
        );
    }

    #[test]
    fn unwrapper_crosses_wrap() {
        let mut u = PtsUnwrapper::new();
        assert_eq!(u.unwrap(TIMESTAMP_MASK - 10), (TIMESTAMP_MASK - 10) as i64);
        assert_eq!(u.unwrap(5), TIMESTAMP_MASK as i64 + 6);
        assert_eq!(u.unwrap(TIMESTAMP_MASK - 2), (TIMESTAMP_MASK - 2) as i64);
        let mut u = PtsUnwrapper::new();
        assert_eq!(u.unwrap(100), 100);
        assert_eq!(u.unwrap(TIMESTAMP_MASK), -1);
    }
}
