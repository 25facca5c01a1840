//! Transport stream packets, ISO/IEC 13818-1 §2.4.3.2 (header) and §2.4.3.4 (adaptation field).
//!
//! [`Packet::parse`] validates a 188-byte packet once (sync byte, adaptation field length and
//! flag bounds) and then hands out the parsed fields and a zero-copy payload slice.
//! [`Framer`] cuts an arbitrarily split byte stream into packets, finding and confirming sync
//! (§2.4.3.2 leaves sync acquisition to the receiver; we require [`SYNC_CONFIRM_PACKETS`]
//! sync bytes at 188-byte spacing). [`CcTracker`] implements the continuity counter rules of
//! §2.4.3.3.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Size of one transport stream packet in bytes.
pub const PACKET_SIZE: usize = 188;

/// The value of the first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;

/// How many consecutive sync bytes at [`PACKET_SIZE`] spacing the [`Framer`] requires before
/// it trusts an offset, after start-up or after losing sync. One match is a 1-in-256 chance
/// in random payload; three make a false lock unlikely while costing only 376 bytes of delay.
pub const SYNC_CONFIRM_PACKETS: usize = 3;

/// A packet identifier (13 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u16);

impl Pid {
    /// The Program Association Table PID (§2.4.4.3).
    pub const PAT: Pid = Pid(0);
    /// The null packet PID (stuffing).
    pub const NULL: Pid = Pid(0x1fff);
    /// Largest valid PID value.
    pub const MAX: u16 = 0x1fff;

    /// Builds a PID from the low 13 bits of `value` (higher bits are dropped).
    pub const fn new(value: u16) -> Pid {
        Pid(value & Pid::MAX)
    }

    /// The numeric value.
    pub const fn value(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// Why a packet was rejected. Every variant is the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// The buffer is not exactly [`PACKET_SIZE`] bytes.
    #[error("transport packet is {0} bytes, expected 188")]
    BadLength(usize),
    /// The first byte is not [`SYNC_BYTE`].
    #[error("transport packet does not start with the sync byte")]
    NoSync,
    /// `adaptation_field_control` is the reserved value `00`.
    #[error("reserved adaptation_field_control value")]
    ReservedAdaptationControl,
    /// The adaptation field length does not fit the packet (§2.4.3.5: 183 when there is no
    /// payload, at most 182 otherwise).
    #[error("adaptation field length {0} out of bounds")]
    AdaptationFieldLength(u8),
    /// The adaptation field flags announce more fields than its length holds.
    #[error("adaptation field flags overrun its length")]
    AdaptationFieldOverrun,
}

/// `transport_scrambling_control` (§2.4.3.2, Table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrambling {
    /// `00`: not scrambled.
    None,
    /// `01`: reserved by the spec.
    Reserved,
    /// `10`: scrambled with the even key.
    EvenKey,
    /// `11`: scrambled with the odd key.
    OddKey,
}

/// A program clock reference: 33-bit base at 90 kHz plus 9-bit extension at 27 MHz (§2.4.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcr {
    /// `program_clock_reference_base`, 33 bits, 90 kHz.
    pub base: u64,
    /// `program_clock_reference_extension`, 9 bits, 0..300.
    pub extension: u16,
}

impl Pcr {
    /// The PCR in 27 MHz ticks (`base * 300 + extension`, eq. 2-1).
    pub fn to_27mhz(self) -> u64 {
        self.base * 300 + u64::from(self.extension)
    }

    fn parse(b: [u8; 6]) -> Pcr {
        let base = (u64::from(b[0]) << 25)
            | (u64::from(b[1]) << 17)
            | (u64::from(b[2]) << 9)
            | (u64::from(b[3]) << 1)
            | (u64::from(b[4]) >> 7);
        let extension = (u16::from(b[4] & 1) << 8) | u16::from(b[5]);
        Pcr { base, extension }
    }
}

/// The fields of an adaptation field (§2.4.3.4) the demuxer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdaptationField {
    /// `discontinuity_indicator`: the continuity counter and/or time base restart here.
    pub discontinuity: bool,
    /// `random_access_indicator`: the next PES on this PID starts at a random access point.
    pub random_access: bool,
    /// `elementary_stream_priority_indicator`.
    pub es_priority: bool,
    /// The PCR, when `PCR_flag` is set.
    pub pcr: Option<Pcr>,
}

impl AdaptationField {
    /// Parses the adaptation field body (after the length byte).
    #[inline]
    fn parse(body: &[u8]) -> Result<AdaptationField, PacketError> {
        let Some((&flags, rest)) = body.split_first() else {
            return Ok(AdaptationField::default());
        };
        let pcr = if flags & 0x10 != 0 {
            let b: [u8; 6] = rest
                .get(..6)
                .and_then(|s| s.try_into().ok())
                .ok_or(PacketError::AdaptationFieldOverrun)?;
            Some(Pcr::parse(b))
        } else {
            None
        };
        Ok(AdaptationField {
            discontinuity: flags & 0x80 != 0,
            random_access: flags & 0x40 != 0,
            es_priority: flags & 0x20 != 0,
            pcr,
        })
    }
}

/// The header fields of a validated packet, parsed from a borrowed buffer. The demuxer's hot
/// path uses this directly so that it touches no reference count per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// `transport_error_indicator`.
    pub tei: bool,
    /// `payload_unit_start_indicator`.
    pub pusi: bool,
    /// `transport_priority`.
    pub priority: bool,
    /// The packet identifier.
    pub pid: Pid,
    /// `transport_scrambling_control`.
    pub scrambling: Scrambling,
    /// `continuity_counter`, 4 bits.
    pub cc: u8,
    /// The adaptation field, when `adaptation_field_control` announces one.
    pub adaptation: Option<AdaptationField>,
    /// Offset of the payload within the packet (at most [`PACKET_SIZE`]), when there is one.
    pub payload_offset: Option<usize>,
}

impl PacketHeader {
    /// Validates one packet: `buf` must be exactly [`PACKET_SIZE`] bytes.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<PacketHeader, PacketError> {
        let Some(&[sync, b1, b2, b3]) = buf.first_chunk::<4>() else {
            return Err(PacketError::BadLength(buf.len()));
        };
        if buf.len() != PACKET_SIZE {
            return Err(PacketError::BadLength(buf.len()));
        }
        if sync != SYNC_BYTE {
            return Err(PacketError::NoSync);
        }
        let (has_af, has_payload) = match (b3 >> 4) & 0b11 {
            0b01 => (false, true),
            0b10 => (true, false),
            0b11 => (true, true),
            _ => return Err(PacketError::ReservedAdaptationControl),
        };
        let mut payload_start = 4;
        let adaptation = if has_af {
            let len = *buf.get(4).ok_or(PacketError::BadLength(buf.len()))?;
            let max = if has_payload { 182 } else { 183 };
            if len > max {
                return Err(PacketError::AdaptationFieldLength(len));
            }
            let body = buf
                .get(5..5 + usize::from(len))
                .ok_or(PacketError::AdaptationFieldLength(len))?;
            payload_start = 5 + usize::from(len);
            Some(AdaptationField::parse(body)?)
        } else {
            None
        };
        Ok(PacketHeader {
            tei: b1 & 0x80 != 0,
            pusi: b1 & 0x40 != 0,
            priority: b1 & 0x20 != 0,
            pid: Pid::new(u16::from_be_bytes([b1, b2])),
            scrambling: match b3 >> 6 {
                0 => Scrambling::None,
                1 => Scrambling::Reserved,
                2 => Scrambling::EvenKey,
                _ => Scrambling::OddKey,
            },
            cc: b3 & 0x0f,
            adaptation,
            payload_offset: has_payload.then_some(payload_start),
        })
    }

    /// True when the adaptation field's discontinuity indicator is set.
    pub fn discontinuity(&self) -> bool {
        self.adaptation.is_some_and(|a| a.discontinuity)
    }

    /// True when the adaptation field's random access indicator is set.
    pub fn random_access(&self) -> bool {
        self.adaptation.is_some_and(|a| a.random_access)
    }
}

/// The header fields the demuxer reads for every packet, validated exactly as
/// [`PacketHeader::parse`] validates (same accept/reject decision, same error), but without
/// decoding the PCR or building the optional adaptation field: the per-packet fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactHeader {
    /// Header bytes 1 and 2 (flags and PID).
    b12: u16,
    /// Header byte 3 (scrambling, adaptation field control, continuity counter).
    b3: u8,
    /// The adaptation field's flags byte; 0 when there is no adaptation field or it is empty.
    af_flags: u8,
    /// Offset of the payload within the packet (at most [`PACKET_SIZE`]).
    payload_offset: u8,
}

impl CompactHeader {
    /// Validates one packet (see [`PacketHeader::parse`] for the rules).
    #[inline]
    pub fn parse(buf: &[u8; PACKET_SIZE]) -> Result<CompactHeader, PacketError> {
        let [sync, b1, b2, b3, af_len, af_flags, ..] = *buf;
        if sync != SYNC_BYTE {
            return Err(PacketError::NoSync);
        }
        let (af_flags, payload_offset) = match (b3 >> 4) & 0b11 {
            0b01 => (0, 4),
            afc @ (0b10 | 0b11) => {
                let max = if afc == 0b11 { 182 } else { 183 };
                if af_len > max {
                    return Err(PacketError::AdaptationFieldLength(af_len));
                }
                let flags = if af_len == 0 { 0 } else { af_flags };
                // A PCR needs the flags byte plus six bytes.
                if flags & 0x10 != 0 && af_len < 7 {
                    return Err(PacketError::AdaptationFieldOverrun);
                }
                (flags, 5 + af_len)
            }
            _ => return Err(PacketError::ReservedAdaptationControl),
        };
        Ok(CompactHeader {
            b12: u16::from_be_bytes([b1, b2]),
            b3,
            af_flags,
            payload_offset,
        })
    }

    /// `transport_error_indicator`.
    #[inline]
    pub fn tei(&self) -> bool {
        self.b12 & 0x8000 != 0
    }

    /// `payload_unit_start_indicator`.
    #[inline]
    pub fn pusi(&self) -> bool {
        self.b12 & 0x4000 != 0
    }

    /// The packet identifier.
    #[inline]
    pub fn pid(&self) -> Pid {
        Pid::new(self.b12)
    }

    /// True when `transport_scrambling_control` is not `00`.
    #[inline]
    pub fn scrambled(&self) -> bool {
        self.b3 & 0xc0 != 0
    }

    /// `continuity_counter`, 4 bits.
    #[inline]
    pub fn cc(&self) -> u8 {
        self.b3 & 0x0f
    }

    /// True when the adaptation field's discontinuity indicator is set.
    #[inline]
    pub fn discontinuity(&self) -> bool {
        self.af_flags & 0x80 != 0
    }

    /// True when the adaptation field's random access indicator is set.
    #[inline]
    pub fn random_access(&self) -> bool {
        self.af_flags & 0x40 != 0
    }

    /// Offset of the payload within the packet, when `adaptation_field_control` announces
    /// one (it may then be [`PACKET_SIZE`], an empty payload).
    #[inline]
    pub fn payload_offset(&self) -> Option<usize> {
        (self.b3 & 0x10 != 0).then_some(usize::from(self.payload_offset))
    }
}

/// The bits of a packet's first four bytes (read big-endian) that [`continuation_header`]
/// fixes: all but `transport_priority`, which the demuxer does not use.
pub const CONTINUATION_MASK: u32 = !0x0020_0000;

/// The first four bytes (big-endian, under [`CONTINUATION_MASK`]) of a packet that only
/// continues a unit on `pid`: sync byte, no transport error, no payload unit start, not
/// scrambled, a payload and no adaptation field, continuity counter `cc`.
///
/// A packet whose masked header equals this is exactly one that [`CompactHeader::parse`]
/// accepts with those fields and a payload at offset 4 (proptest
/// `continuation_header_agrees_with_compact_parse`), so the demuxer's batch loop can check
/// a run of packets of one PID with a single compare each.
#[inline]
pub const fn continuation_header(pid: Pid, cc: u8) -> u32 {
    ((SYNC_BYTE as u32) << 24) | ((pid.value() as u32) << 8) | 0x10 | (cc & 0x0f) as u32
}

/// A validated 188-byte transport packet. Construction checks every length, so no accessor
/// can fail afterwards; the payload is a slice of the buffer the packet was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    header: PacketHeader,
    payload: Option<Bytes>,
}

impl Packet {
    /// Parses one packet. `buf` must be exactly [`PACKET_SIZE`] bytes.
    pub fn parse(buf: Bytes) -> Result<Packet, PacketError> {
        let header = PacketHeader::parse(&buf)?;
        let payload = header.payload_offset.map(|o| buf.slice(o..));
        Ok(Packet { header, payload })
    }

    /// The parsed header fields.
    pub fn header(&self) -> &PacketHeader {
        &self.header
    }

    /// `transport_error_indicator`: a lower layer flagged an uncorrectable error.
    pub fn tei(&self) -> bool {
        self.header.tei
    }

    /// `payload_unit_start_indicator`: a PES or a PSI section starts in this payload.
    pub fn pusi(&self) -> bool {
        self.header.pusi
    }

    /// `transport_priority`.
    pub fn priority(&self) -> bool {
        self.header.priority
    }

    /// The packet identifier.
    pub fn pid(&self) -> Pid {
        self.header.pid
    }

    /// `transport_scrambling_control`.
    pub fn scrambling(&self) -> Scrambling {
        self.header.scrambling
    }

    /// `continuity_counter`, 4 bits.
    pub fn continuity_counter(&self) -> u8 {
        self.header.cc
    }

    /// The adaptation field, if the packet has one.
    pub fn adaptation_field(&self) -> Option<&AdaptationField> {
        self.header.adaptation.as_ref()
    }

    /// The payload (a slice of the packet buffer), if `adaptation_field_control` says there is
    /// one. It may be empty when the adaptation field fills the packet.
    pub fn payload(&self) -> Option<&Bytes> {
        self.payload.as_ref()
    }

    /// Takes the payload out of the packet.
    pub fn into_payload(self) -> Option<Bytes> {
        self.payload
    }

    /// True when the adaptation field's discontinuity indicator is set.
    pub fn discontinuity(&self) -> bool {
        self.header.discontinuity()
    }

    /// True when the adaptation field's random access indicator is set.
    pub fn random_access(&self) -> bool {
        self.header.random_access()
    }
}

/// What [`CcTracker::check`] concluded about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcVerdict {
    /// In sequence (or the first packet seen, or a signalled discontinuity).
    Ok,
    /// A repeat of the previous packet (§2.4.3.3 allows one): drop its payload.
    Duplicate,
    /// Packets were lost or repeated too often: the data in flight on this PID is damaged.
    Discontinuity,
}

/// Bytes at the end of a packet compared to tell a true duplicate from a loss of 15 packets,
/// which gives the same counter. The tail is payload; the PCR, which §2.4.3.3 lets differ in a
/// duplicate, sits at the start of the adaptation field.
pub const FINGERPRINT_LEN: usize = 16;

/// Continuity counter state of one PID (§2.4.3.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct CcTracker {
    last: Option<u8>,
    duplicate_seen: bool,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl CcTracker {
    /// A tracker that has seen no packet.
    pub fn new() -> CcTracker {
        CcTracker::default()
    }

    /// Checks the counter of the next packet on this PID. `has_payload` is from
    /// `adaptation_field_control` (the counter only advances with a payload); `discontinuity`
    /// is the adaptation field's discontinuity indicator, which lets the counter jump.
    #[inline]
    pub fn check(&mut self, cc: u8, has_payload: bool, discontinuity: bool) -> CcVerdict {
        let cc = cc & 0x0f;
        let prev = self.last.replace(cc);
        let Some(prev) = prev else {
            return CcVerdict::Ok;
        };
        if discontinuity {
            self.duplicate_seen = false;
            return CcVerdict::Ok;
        }
        if !has_payload {
            // The counter must not advance on payload-less packets.
            return if cc == prev {
                CcVerdict::Ok
            } else {
                self.duplicate_seen = false;
                CcVerdict::Discontinuity
            };
        }
        if cc == (prev + 1) & 0x0f {
            self.duplicate_seen = false;
            CcVerdict::Ok
        } else if cc == prev && !self.duplicate_seen {
            self.duplicate_seen = true;
            CcVerdict::Duplicate
        } else {
            self.duplicate_seen = false;
            CcVerdict::Discontinuity
        }
    }

    /// The counter of the last packet checked, if any.
    #[inline]
    pub fn last(&self) -> Option<u8> {
        self.last
    }

    /// Records that packets continuing the sequence were accepted without
    /// [`CcTracker::check`]: the last had counter `cc`, a payload, no discontinuity indicator,
    /// and `fingerprint` as its final bytes (the demuxer's batch loop checks a run of them and
    /// records only the last, which is all the next check compares against).
    #[inline]
    pub fn record_in_sequence(&mut self, cc: u8, fingerprint: &[u8; FINGERPRINT_LEN]) {
        self.last = Some(cc & 0x0f);
        self.duplicate_seen = false;
        self.fingerprint = *fingerprint;
    }

    /// [`CcTracker::check_packet`] for a packet validated as a [`CompactHeader`].
    #[inline]
    pub fn check_compact(&mut self, header: &CompactHeader, raw: &[u8; PACKET_SIZE]) -> CcVerdict {
        self.check_with_fingerprint(
            header.cc(),
            header.payload_offset().is_some(),
            header.discontinuity(),
            raw,
        )
    }

    #[inline]
    fn check_with_fingerprint(
        &mut self,
        cc: u8,
        has_payload: bool,
        discontinuity: bool,
        raw: &[u8],
    ) -> CcVerdict {
        let fingerprint = raw
            .last_chunk::<FINGERPRINT_LEN>()
            .copied()
            .unwrap_or_default();
        let previous = std::mem::replace(&mut self.fingerprint, fingerprint);
        let verdict = self.check(cc, has_payload, discontinuity);
        if verdict == CcVerdict::Duplicate && previous != fingerprint {
            self.duplicate_seen = false;
            return CcVerdict::Discontinuity;
        }
        verdict
    }

    /// [`CcTracker::check`] for a whole packet (`raw`, [`PACKET_SIZE`] bytes, already
    /// validated as `header`): a packet repeating the counter counts as a duplicate only if
    /// its tail bytes match the previous packet's, so losing exactly 15 packets is caught.
    #[inline]
    pub fn check_packet(&mut self, header: &PacketHeader, raw: &[u8]) -> CcVerdict {
        self.check_with_fingerprint(
            header.cc,
            header.payload_offset.is_some(),
            header.discontinuity(),
            raw,
        )
    }
}

/// How many whole packets at the start of `buf` begin with the sync byte, up to the first
/// that does not.
#[inline]
fn sync_run_len(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while at + PACKET_SIZE <= buf.len() && buf.get(at) == Some(&SYNC_BYTE) {
        n += 1;
        at += PACKET_SIZE;
    }
    n
}

/// Counters kept by the [`Framer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Packets handed out.
    pub packets: u64,
    /// Times a locked stream lost its sync byte.
    pub sync_losses: u64,
    /// Bytes dropped while searching for sync.
    pub skipped_bytes: u64,
    /// Packets that were copied because they straddled two pushed buffers.
    pub straddled_packets: u64,
}

/// Cuts a byte stream, pushed in arbitrary pieces, into 188-byte packets.
///
/// The output depends only on the bytes, never on how they were split: every decision waits
/// until the bytes it looks at have arrived.
#[derive(Debug, Default)]
pub struct Framer {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    locked: bool,
    stats: FramerStats,
}

impl Framer {
    /// A framer that has not found sync yet.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.buffered += data.len();
            self.chunks.push_back(data);
        }
    }

    /// [`Framer::push`], except that a buffer of whole packets arriving while sync is locked
    /// and nothing is buffered (the common case of a receiver reading whole packets, such
    /// as an SRT payload of seven) is returned at once as a run, without the queue round
    /// trip and without checking each packet's sync byte here.
    ///
    /// The caller checks the sync byte of every packet of such a run (the demuxer's header
    /// checks do) and, at the first packet without it, hands that packet and the rest back
    /// with [`Framer::give_back`]: the framer then loses sync there and searches exactly as
    /// if the buffer had gone through [`Framer::next_run`].
    #[inline]
    pub fn push_or_take(&mut self, data: Bytes) -> Option<Bytes> {
        let whole = self.buffered == 0
            && self.locked
            && !data.is_empty()
            && data.len().is_multiple_of(PACKET_SIZE);
        if whole {
            self.stats.packets += (data.len() / PACKET_SIZE) as u64;
            return Some(data);
        }
        self.push(data);
        None
    }

    /// Takes back the unprocessed end of a run from [`Framer::push_or_take`], starting at
    /// its first packet without the sync byte (see there). Bytes pushed since are kept
    /// behind it.
    pub fn give_back(&mut self, rest: Bytes) {
        if rest.is_empty() {
            return;
        }
        self.stats.packets = self
            .stats
            .packets
            .saturating_sub((rest.len() / PACKET_SIZE) as u64);
        self.buffered += rest.len();
        self.chunks.push_front(rest);
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The counters.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// The next packet-sized buffer starting with a sync byte, or `None` until more bytes
    /// arrive. The returned buffer still has to go through [`Packet::parse`].
    pub fn next_packet(&mut self) -> Option<Bytes> {
        if !self.sync() {
            return None;
        }
        self.stats.packets += 1;
        Some(self.take_packet())
    }

    /// The next run of in-sync packets: a buffer whose length is a multiple of
    /// [`PACKET_SIZE`] and whose every packet starts with the sync byte. A run is a slice of
    /// one pushed buffer (taken whole when it is exactly that, so no reference count is
    /// touched), or a single copied packet that straddled two pushed buffers.
    pub fn next_run(&mut self) -> Option<Bytes> {
        // Locked with a sync byte at the front of the first buffer: what `sync` would
        // conclude, without its search setup (the common case, once per pushed buffer).
        let in_sync = self.locked
            && self
                .chunks
                .front()
                .is_some_and(|f| f.len() >= PACKET_SIZE && f.first() == Some(&SYNC_BYTE));
        if !in_sync && !self.sync() {
            return None;
        }
        let front = self.chunks.front()?;
        let n = sync_run_len(front);
        if n == 0 {
            self.stats.packets += 1;
            return Some(self.take_packet());
        }
        self.stats.packets += n as u64;
        let run_len = n * PACKET_SIZE;
        self.buffered -= run_len;
        if front.len() == run_len {
            return self.chunks.pop_front();
        }
        self.chunks.front_mut().map(|f| f.split_to(run_len))
    }

    /// Finds and keeps sync: true when a packet in sync starts at the front.
    fn sync(&mut self) -> bool {
        loop {
            if self.buffered < PACKET_SIZE {
                return false;
            }
            if self.locked {
                if self.byte_at(0) == Some(SYNC_BYTE) {
                    return true;
                }
                self.locked = false;
                self.stats.sync_losses += 1;
            }
            // Search: the lookahead needs SYNC_CONFIRM_PACKETS - 1 further packets' first byte.
            let needed = (SYNC_CONFIRM_PACKETS - 1) * PACKET_SIZE + 1;
            if self.byte_at(0) == Some(SYNC_BYTE) {
                if self.buffered < needed {
                    return false;
                }
                let confirmed = (1..SYNC_CONFIRM_PACKETS)
                    .all(|i| self.byte_at(i * PACKET_SIZE) == Some(SYNC_BYTE));
                if confirmed {
                    self.locked = true;
                    continue;
                }
            }
            self.skip(1);
            self.stats.skipped_bytes += 1;
        }
    }

    fn byte_at(&self, mut offset: usize) -> Option<u8> {
        for c in &self.chunks {
            if let Some(&b) = c.get(offset) {
                return Some(b);
            }
            offset -= c.len();
        }
        None
    }

    fn skip(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() > n {
                front.advance(n);
                self.buffered -= n;
                return;
            }
            n -= front.len();
            self.buffered -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Removes the first PACKET_SIZE bytes; the caller checked they are buffered.
    fn take_packet(&mut self) -> Bytes {
        self.buffered -= PACKET_SIZE;
        if let Some(front) = self.chunks.front_mut() {
            if front.len() > PACKET_SIZE {
                return front.split_to(PACKET_SIZE);
            }
            if front.len() == PACKET_SIZE {
                return self.chunks.pop_front().unwrap_or_default();
            }
        }
        // Copy forced by the transport: this packet straddles two received buffers.
        self.stats.straddled_packets += 1;
        let mut out = BytesMut::with_capacity(PACKET_SIZE);
        while out.len() < PACKET_SIZE {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let want = PACKET_SIZE - out.len();
            if front.len() > want {
                out.extend_from_slice(front.get(..want).unwrap_or_default());
                front.advance(want);
            } else {
                out.extend_from_slice(front);
                self.chunks.pop_front();
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pid: u16, pusi: bool, cc: u8, af: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![SYNC_BYTE, (pid >> 8) as u8 & 0x1f, pid as u8, cc & 0x0f];
        if pusi {
            v[1] |= 0x40;
        }
        match af {
            Some(af) => {
                v[3] |= if payload.is_empty() { 0x20 } else { 0x30 };
                let stuff = PACKET_SIZE - 5 - af.len() - payload.len();
                v.push((af.len() + stuff) as u8);
                v.extend_from_slice(af);
                v.extend(std::iter::repeat_n(0xff, stuff));
            }
            None => v[3] |= 0x10,
        }
        v.extend_from_slice(payload);
        v.resize(PACKET_SIZE, 0xff);
        v
    }

    #[test]
    fn parses_header_fields() {
        let raw = pkt(0x101, true, 7, None, &[1, 2, 3]);
        let p = Packet::parse(Bytes::from(raw)).unwrap();
        assert_eq!(p.pid(), Pid::new(0x101));
        assert!(p.pusi());
        assert!(!p.tei());
        assert_eq!(p.continuity_counter(), 7);
        assert_eq!(p.scrambling(), Scrambling::None);
        assert!(p.adaptation_field().is_none());
        assert_eq!(p.payload().unwrap().len(), 184);
        assert_eq!(&p.payload().unwrap()[..3], &[1, 2, 3]);
    }

    #[test]
    fn parses_pcr_and_flags() {
        // PCR base 0x1_2345_6789 (33 bits), extension 0x123.
        let base: u64 = 0x1_2345_6789;
        let ext: u16 = 0x123;
        let af = [
            0x50, // random access + PCR flag
            (base >> 25) as u8,
            (base >> 17) as u8,
            (base >> 9) as u8,
            (base >> 1) as u8,
            ((base as u8 & 1) << 7) | 0x7e | (ext >> 8) as u8,
            ext as u8,
        ];
        let p = Packet::parse(Bytes::from(pkt(0x100, false, 0, Some(&af), &[9; 10]))).unwrap();
        let a = p.adaptation_field().unwrap();
        assert!(a.random_access && !a.discontinuity);
        assert_eq!(
            a.pcr,
            Some(Pcr {
                base,
                extension: ext
            })
        );
        assert_eq!(a.pcr.unwrap().to_27mhz(), base * 300 + 0x123);
        assert_eq!(p.payload().unwrap().as_ref(), &[9; 10]);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(
            Packet::parse(Bytes::from(vec![0x47; 187])),
            Err(PacketError::BadLength(187))
        );
        let mut raw = pkt(0x100, false, 0, None, &[]);
        raw[0] = 0x46;
        assert_eq!(Packet::parse(Bytes::from(raw)), Err(PacketError::NoSync));
        let mut raw = pkt(0x100, false, 0, None, &[]);
        raw[3] &= 0xcf;
        assert_eq!(
            Packet::parse(Bytes::from(raw)),
            Err(PacketError::ReservedAdaptationControl)
        );
        // Adaptation field with payload claiming 183 bytes.
        let mut raw = pkt(0x100, false, 0, Some(&[0]), &[1]);
        raw[4] = 183;
        assert_eq!(
            Packet::parse(Bytes::from(raw)),
            Err(PacketError::AdaptationFieldLength(183))
        );
        // PCR flag in a 2-byte adaptation field.
        let mut raw = vec![SYNC_BYTE, 0x01, 0x00, 0x30, 2, 0x10, 0];
        raw.resize(PACKET_SIZE, 0);
        assert_eq!(
            Packet::parse(Bytes::from(raw)),
            Err(PacketError::AdaptationFieldOverrun)
        );
    }

    fn assert_compact_agrees(raw: &[u8; PACKET_SIZE]) {
        let full = PacketHeader::parse(raw);
        let compact = CompactHeader::parse(raw);
        match (full, compact) {
            (Ok(f), Ok(c)) => {
                assert_eq!(f.tei, c.tei());
                assert_eq!(f.pusi, c.pusi());
                assert_eq!(f.pid, c.pid());
                assert_eq!(f.scrambling != Scrambling::None, c.scrambled());
                assert_eq!(f.cc, c.cc());
                assert_eq!(f.discontinuity(), c.discontinuity());
                assert_eq!(f.random_access(), c.random_access());
                assert_eq!(f.payload_offset, c.payload_offset());
            }
            (f, c) => assert_eq!(f.err(), c.err()),
        }
    }

    #[test]
    fn compact_header_agrees_with_full_parse_on_edge_cases() {
        let mut cases = vec![
            pkt(0x101, true, 7, None, &[1, 2, 3]),
            pkt(0x100, false, 3, Some(&[0x50, 1, 2, 3, 4, 5, 6]), &[9; 10]),
            pkt(0x100, false, 3, Some(&[0xc0]), &[]),
        ];
        for afc in 0..4u8 {
            for len in [0u8, 1, 6, 7, 182, 183, 184, 255] {
                for flags in [0x00u8, 0x10, 0x80, 0x40, 0xff] {
                    let mut raw = vec![SYNC_BYTE, 0x41, 0x00, (afc << 4) | 0x45, len, flags];
                    raw.resize(PACKET_SIZE, 0xab);
                    cases.push(raw);
                }
            }
        }
        let mut bad_sync = pkt(0x100, false, 0, None, &[]);
        bad_sync[0] = 0x46;
        cases.push(bad_sync);
        for raw in cases {
            assert_compact_agrees(raw.as_slice().try_into().unwrap());
        }
    }

    proptest::proptest! {
        #[test]
        fn compact_header_agrees_with_full_parse(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 16),
            sync in proptest::prelude::any::<bool>(),
        ) {
            let mut raw = [0x5au8; PACKET_SIZE];
            raw[..16].copy_from_slice(&head);
            if sync {
                raw[0] = SYNC_BYTE;
            }
            assert_compact_agrees(&raw);
        }
    }

    proptest::proptest! {
        /// The batch loop's one-compare header check accepts exactly the packets that
        /// validate as a plain continuation on that PID with that counter.
        #[test]
        fn continuation_header_agrees_with_compact_parse(
            head in proptest::prelude::any::<[u8; 6]>(),
            pid in 0u16..0x2000,
            cc in 0u8..16,
            sync in proptest::prelude::any::<bool>(),
            aim in proptest::prelude::any::<bool>(),
        ) {
            let mut raw = [0x5au8; PACKET_SIZE];
            raw[..6].copy_from_slice(&head);
            if sync {
                raw[0] = SYNC_BYTE;
            }
            if aim {
                // Start from a matching header and keep a few random bits, so both
                // outcomes are well covered.
                let want = continuation_header(Pid::new(pid), cc).to_be_bytes();
                for (r, w) in raw.iter_mut().zip(want) {
                    *r = w ^ (*r & (*r >> 3) & (*r >> 5) & 0x21);
                }
            }
            let fast = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & CONTINUATION_MASK
                == continuation_header(Pid::new(pid), cc);
            let full = CompactHeader::parse(&raw).is_ok_and(|h| {
                !h.tei()
                    && !h.pusi()
                    && !h.scrambled()
                    && h.pid() == Pid::new(pid)
                    && h.cc() == cc
                    && h.payload_offset() == Some(4)
            });
            proptest::prop_assert_eq!(fast, full);
        }
    }

    #[test]
    fn cc_rules() {
        let mut t = CcTracker::new();
        assert_eq!(t.check(14, true, false), CcVerdict::Ok);
        assert_eq!(t.check(15, true, false), CcVerdict::Ok);
        assert_eq!(t.check(0, true, false), CcVerdict::Ok);
        assert_eq!(t.check(0, true, false), CcVerdict::Duplicate);
        assert_eq!(t.check(0, true, false), CcVerdict::Discontinuity);
        assert_eq!(t.check(1, true, false), CcVerdict::Ok);
        assert_eq!(t.check(1, false, false), CcVerdict::Ok);
        assert_eq!(t.check(3, true, false), CcVerdict::Discontinuity);
        assert_eq!(t.check(9, true, true), CcVerdict::Ok);
        assert_eq!(t.check(10, true, false), CcVerdict::Ok);
    }

    #[test]
    fn framer_resyncs_after_garbage() {
        let mut stream = vec![0x47, 1, 2, 3, 0x47]; // garbage with false sync bytes
        for cc in 0..5 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        stream.extend([0x00; 50]); // sync loss
        for cc in 5..9 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        let mut f = Framer::new();
        f.push(Bytes::from(stream));
        let mut ccs = vec![];
        while let Some(p) = f.next_packet() {
            ccs.push(Packet::parse(p).unwrap().continuity_counter());
        }
        assert_eq!(ccs, (0..9).collect::<Vec<u8>>());
        assert_eq!(f.stats().sync_losses, 1);
        assert_eq!(f.stats().skipped_bytes, 5 + 50);
    }

    #[test]
    fn framer_copies_only_straddling_packets() {
        let mut stream = vec![];
        for cc in 0..10 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        let all = Bytes::from(stream);
        let mut f = Framer::new();
        f.push(all.slice(..1000));
        f.push(all.slice(1000..));
        let mut n = 0;
        while let Some(p) = f.next_packet() {
            assert_eq!(p.as_ref(), &all[n * PACKET_SIZE..(n + 1) * PACKET_SIZE]);
            n += 1;
        }
        assert_eq!(n, 10);
        assert_eq!(f.stats().straddled_packets, 1);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn push_or_take_hands_out_what_next_run_would() {
        let mut stream = vec![];
        for cc in 0..10 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        stream.extend([0u8; PACKET_SIZE]); // a packet-sized hole without sync: sync loss
        for cc in 10..40 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        stream.extend([0x47; 100]); // a partial packet at the end stays buffered
        let all = Bytes::from(stream);
        for size in [PACKET_SIZE, 7 * PACKET_SIZE, 1000, 3 * PACKET_SIZE + 1] {
            let (mut queued, mut direct) = (Framer::new(), Framer::new());
            let (mut a, mut b) = (vec![], vec![]);
            let mut taken = 0;
            for at in (0..all.len()).step_by(size) {
                let piece = all.slice(at..(at + size).min(all.len()));
                queued.push(piece.clone());
                a.extend(std::iter::from_fn(|| queued.next_run()));
                if let Some(run) = direct.push_or_take(piece.clone()) {
                    assert_eq!(run.as_ptr(), piece.as_ptr(), "taken whole, not copied");
                    // The caller's part: stop at the first packet without sync, give back.
                    let k = run
                        .chunks(PACKET_SIZE)
                        .position(|p| p[0] != SYNC_BYTE)
                        .map_or(run.len(), |i| i * PACKET_SIZE);
                    if k > 0 {
                        taken += 1;
                        b.push(run.slice(..k));
                    }
                    direct.give_back(run.slice(k..));
                }
                b.extend(std::iter::from_fn(|| direct.next_run()));
            }
            assert_eq!(a.concat(), b.concat(), "piece size {size}");
            assert_eq!(queued.stats(), direct.stats());
            assert_eq!(queued.buffered(), direct.buffered());
            assert_eq!(direct.stats().sync_losses, 1);
            if size == PACKET_SIZE {
                // Of the 42 pieces, all but the three that confirm sync at the start, the
                // hole, the three that confirm it again, and the partial one at the end.
                assert_eq!(taken, 42 - 3 - 1 - 3 - 1);
            } else if size.is_multiple_of(PACKET_SIZE) {
                assert!(taken >= 3, "size {size}: {taken}");
            } else {
                assert!(taken <= 1, "size {size}: {taken}");
            }
        }
    }

    #[test]
    fn framer_runs_are_slices_of_the_pushed_buffers() {
        let mut stream = vec![];
        for cc in 0..20 {
            stream.extend(pkt(0x100, false, cc, None, &[cc]));
        }
        let all = Bytes::from(stream);
        let mut f = Framer::new();
        f.push(all.slice(..1316));
        f.push(all.slice(1316..3000));
        f.push(all.slice(3000..));
        let mut runs = vec![];
        while let Some(r) = f.next_run() {
            assert_eq!(r.len() % PACKET_SIZE, 0);
            runs.push(r);
        }
        let lens: Vec<usize> = runs.iter().map(|r| r.len() / PACKET_SIZE).collect();
        // 7 whole packets, then 8 more in the second buffer, 1 straddling copy, 4 in the last.
        assert_eq!(lens, vec![7, 8, 1, 4]);
        assert_eq!(runs[0].as_ptr(), all.as_ptr());
        assert_eq!(runs.concat(), all.to_vec());
        assert_eq!(f.stats().packets, 20);
        assert_eq!(f.stats().straddled_packets, 1);
    }
}
