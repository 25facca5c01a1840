//! SRT packet header, data packets and control packets.
//!
//! Spec: draft-sharabayko-srt-01, section 3 ("Packet Structure"): 3.1 data packets,
//! 3.2 control packets (3.2.1 handshake, 3.2.2 key material is in [`super::crypto`],
//! 3.2.3 keep-alive, 3.2.4 ACK, 3.2.5 NAK, 3.2.7 shutdown, 3.2.8 ACKACK, 3.2.9 drop request).
//!
//! Parsing is zero-copy: [`Packet::parse`] takes the UDP datagram as [`Bytes`] and hands out
//! `Bytes::slice`s of it for payloads, handshake CIFs and NAK loss lists. Emitting writes into
//! a buffer the caller owns and returns the number of bytes written.

use bytes::Bytes;
use std::cmp::Ordering;

/// Size of the common SRT packet header (four 32-bit words).
pub const HEADER_LEN: usize = 16;

/// Errors from packet parsing and emitting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The peer sent a datagram shorter than its header or its fixed body.
    #[error("peer sent a truncated SRT packet ({len} bytes, need {need})")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// The peer sent a control packet whose body violates its format.
    #[error("peer sent a malformed SRT {what}")]
    Malformed {
        /// Which control packet or field.
        what: &'static str,
    },
    /// The caller's output buffer is too small (internal fault, not the peer's).
    #[error("output buffer too small ({have} bytes, need {need})")]
    BufferTooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes required.
        need: usize,
    },
}

/// A 31-bit SRT packet sequence number; arithmetic and ordering wrap at 2^31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(u32);

impl SeqNo {
    /// Largest value plus one: sequence numbers live in `0..MODULUS`.
    pub const MODULUS: u32 = 1 << 31;
    const MASK: u32 = Self::MODULUS - 1;

    /// Wraps `v` into the 31-bit space (the high bit is dropped).
    pub const fn new(v: u32) -> Self {
        Self(v & Self::MASK)
    }

    /// The raw 31-bit value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `self + n`, wrapping at 2^31.
    pub const fn add(self, n: u32) -> Self {
        Self::new(self.0.wrapping_add(n))
    }

    /// `self - n`, wrapping at 2^31.
    pub const fn sub(self, n: u32) -> Self {
        Self::new(self.0.wrapping_sub(n))
    }

    /// The next sequence number.
    pub const fn next(self) -> Self {
        self.add(1)
    }

    /// Signed distance `self - other` on the circle: positive when `self` is later, within
    /// `-2^30..2^30`.
    pub const fn distance(self, other: Self) -> i32 {
        // Sign-extend the 31-bit difference.
        ((self.0.wrapping_sub(other.0) << 1) as i32) >> 1
    }
}

impl PartialOrd for SeqNo {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Wrap-aware order: `a < b` when `b` is less than half the circle ahead of `a`. This is not a
/// total order over the whole space (it is not transitive across more than half the circle),
/// which is fine for the windows SRT compares (far smaller than 2^30).
impl Ord for SeqNo {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance(*other).cmp(&0)
    }
}

/// A 32-bit SRT packet timestamp in microseconds since the sender's socket start; wraps every
/// 2^32 µs (about 71.6 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp(pub u32);

impl Timestamp {
    /// Signed distance `self - other` in µs, wrap-aware (within ±2^31 µs).
    pub const fn distance(self, other: Self) -> i64 {
        self.0.wrapping_sub(other.0) as i32 as i64
    }

    /// `self + us`, wrapping at 2^32.
    pub const fn add_micros(self, us: u32) -> Self {
        Self(self.0.wrapping_add(us))
    }

    /// Timestamp of `micros` since the socket start (truncated to 32 bits, as on the wire).
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros as u32)
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Wrap-aware order (see [`Timestamp::distance`]).
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance(*other).cmp(&0)
    }
}

/// An SRT socket id (the "Destination Socket ID" of the header, the "SRT Socket ID" of the
/// handshake). Zero addresses a listener during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// A 26-bit message number of a data packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MsgNo(u32);

impl MsgNo {
    /// Message numbers live in `0..MODULUS`.
    pub const MODULUS: u32 = 1 << 26;

    /// Wraps `v` into 26 bits.
    pub const fn new(v: u32) -> Self {
        Self(v & (Self::MODULUS - 1))
    }

    /// The raw 26-bit value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// The PP field of a data packet: where the packet sits in its message (spec 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketPosition {
    /// `0b10`: first packet of a multi-packet message.
    First,
    /// `0b00`: a middle packet.
    Middle,
    /// `0b01`: last packet of a multi-packet message.
    Last,
    /// `0b11`: the whole message in one packet (always the case in live mode).
    Only,
}

impl PacketPosition {
    fn from_bits(b: u32) -> Self {
        match b & 3 {
            0b10 => Self::First,
            0b00 => Self::Middle,
            0b01 => Self::Last,
            _ => Self::Only,
        }
    }

    fn bits(self) -> u32 {
        match self {
            Self::First => 0b10,
            Self::Middle => 0b00,
            Self::Last => 0b01,
            Self::Only => 0b11,
        }
    }
}

/// The KK field: which key encrypted a data packet (or which keys a KM message carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFlags {
    /// `0b00`: not encrypted.
    None,
    /// `0b01`: the even key.
    Even,
    /// `0b10`: the odd key.
    Odd,
    /// `0b11`: both keys (only meaningful in KM messages).
    Both,
}

impl KeyFlags {
    /// Decodes the two low bits.
    pub fn from_bits(b: u32) -> Self {
        match b & 3 {
            0 => Self::None,
            1 => Self::Even,
            2 => Self::Odd,
            _ => Self::Both,
        }
    }

    /// The two-bit wire value.
    pub fn bits(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Even => 1,
            Self::Odd => 2,
            Self::Both => 3,
        }
    }
}

/// A data packet (spec 3.1). `payload` is a slice of the received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPacket {
    /// Packet sequence number.
    pub seq: SeqNo,
    /// Position of the packet in its message.
    pub position: PacketPosition,
    /// O: the message must be delivered in order.
    pub in_order: bool,
    /// KK: encryption key selector.
    pub key: KeyFlags,
    /// R: the packet is a retransmission.
    pub retransmitted: bool,
    /// Message number.
    pub msg: MsgNo,
    /// Sender timestamp.
    pub timestamp: Timestamp,
    /// Destination socket id.
    pub dest: SocketId,
    /// The payload bytes (ciphertext when `key` is not [`KeyFlags::None`]).
    pub payload: Bytes,
}

impl DataPacket {
    /// Bytes [`DataPacket::emit`] writes.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Writes header and payload into `buf`; returns bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PacketError> {
        let need = self.len();
        let out = out_buf(buf, need)?;
        let w1 = (self.position.bits() << 30)
            | (u32::from(self.in_order) << 29)
            | (self.key.bits() << 27)
            | (u32::from(self.retransmitted) << 26)
            | self.msg.get();
        put_header(out, self.seq.get(), w1, self.timestamp, self.dest);
        out[HEADER_LEN..].copy_from_slice(&self.payload);
        Ok(need)
    }
}

/// Control packet types (spec 3.2, table 1).
pub mod control_type {
    /// HANDSHAKE.
    pub const HANDSHAKE: u16 = 0x0000;
    /// KEEPALIVE.
    pub const KEEPALIVE: u16 = 0x0001;
    /// ACK.
    pub const ACK: u16 = 0x0002;
    /// NAK (loss report).
    pub const NAK: u16 = 0x0003;
    /// Congestion warning (unused by SRT senders).
    pub const CONGESTION: u16 = 0x0004;
    /// SHUTDOWN.
    pub const SHUTDOWN: u16 = 0x0005;
    /// ACKACK.
    pub const ACKACK: u16 = 0x0006;
    /// DROPREQ (message drop request).
    pub const DROPREQ: u16 = 0x0007;
    /// PEERERROR.
    pub const PEERERROR: u16 = 0x0008;
    /// User-defined (HSv4 SRT extensions travel here).
    pub const USER: u16 = 0x7FFF;
}

/// The fields of an ACK CIF (spec 3.2.4). Light ACKs carry only `last_ack`; small ACKs stop
/// after `buffer_available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Acknowledgement number (type-specific field); 0 for light ACKs.
    pub ack_number: u32,
    /// First sequence number not yet received in order (everything before is acknowledged).
    pub last_ack: SeqNo,
    /// The optional fields, absent in a light ACK.
    pub info: Option<AckInfo>,
}

/// RTT and rate fields of a full or small ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    /// Smoothed round-trip time, µs.
    pub rtt: u32,
    /// Round-trip time variance, µs.
    pub rtt_var: u32,
    /// Free receive buffer, packets.
    pub buffer_available: u32,
    /// Rate fields, absent in a small ACK.
    pub rates: Option<AckRates>,
}

/// Rate fields of a full ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRates {
    /// Packets received per second.
    pub packets_per_sec: u32,
    /// Estimated link capacity, packets per second.
    pub link_capacity: u32,
    /// Bytes received per second.
    pub bytes_per_sec: u32,
}

/// One entry of a NAK loss list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossEntry {
    /// One lost packet.
    Single(SeqNo),
    /// An inclusive range of lost packets.
    Range(SeqNo, SeqNo),
}

/// A NAK loss list: a zero-copy view over the CIF words (spec 3.2.5, appendix A). A word with
/// its high bit set starts a range whose end is the next word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossList(Bytes);

impl LossList {
    /// The raw CIF bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Iterates the entries; a malformed tail (range start without end) ends iteration with
    /// an error item.
    pub fn iter(&self) -> impl Iterator<Item = Result<LossEntry, PacketError>> + '_ {
        let mut words = self.0.chunks_exact(4).map(be32);
        std::iter::from_fn(move || {
            let w = words.next()?;
            if w & 0x8000_0000 == 0 {
                return Some(Ok(LossEntry::Single(SeqNo::new(w))));
            }
            match words.next() {
                Some(end) if end & 0x8000_0000 == 0 => {
                    Some(Ok(LossEntry::Range(SeqNo::new(w), SeqNo::new(end))))
                }
                _ => Some(Err(PacketError::Malformed {
                    what: "NAK loss range",
                })),
            }
        })
    }

    /// An owned loss list holding `entries` (for building NAKs to send).
    pub fn from_entries(entries: &[LossEntry]) -> LossList {
        let mut v = vec![0u8; entries.len() * 8];
        let n = Self::emit(entries, &mut v).unwrap_or(0);
        v.truncate(n);
        LossList(Bytes::from(v))
    }

    /// Encodes `entries` into `buf`; returns bytes written.
    pub fn emit(entries: &[LossEntry], buf: &mut [u8]) -> Result<usize, PacketError> {
        let need = entries
            .iter()
            .map(|e| match e {
                LossEntry::Single(_) => 4,
                LossEntry::Range(..) => 8,
            })
            .sum();
        let out = out_buf(buf, need)?;
        let mut at = 0;
        for e in entries {
            match *e {
                LossEntry::Single(s) => {
                    put32(out, at, s.get());
                    at += 4;
                }
                LossEntry::Range(a, b) => {
                    put32(out, at, a.get() | 0x8000_0000);
                    put32(out, at + 4, b.get());
                    at += 8;
                }
            }
        }
        Ok(need)
    }
}

/// The body of a control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// HANDSHAKE; the CIF is parsed by [`super::handshake::Handshake::parse`].
    Handshake(Bytes),
    /// KEEPALIVE.
    KeepAlive,
    /// ACK (full, small or light).
    Ack(Ack),
    /// NAK with its loss list.
    Nak(LossList),
    /// SHUTDOWN.
    Shutdown,
    /// ACKACK for the ACK with this number.
    AckAck {
        /// The acknowledgement number being acknowledged.
        ack_number: u32,
    },
    /// DROPREQ: the sender gave up on a message.
    DropReq {
        /// Message number to drop.
        msg: u32,
        /// First sequence number of the message.
        first: SeqNo,
        /// Last sequence number of the message.
        last: SeqNo,
    },
    /// Any other control type, kept verbatim.
    Unknown {
        /// 15-bit control type.
        control_type: u16,
        /// Subtype field.
        subtype: u16,
        /// Type-specific information word.
        type_info: u32,
        /// The CIF.
        cif: Bytes,
    },
}

/// A control packet (spec 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    /// Sender timestamp.
    pub timestamp: Timestamp,
    /// Destination socket id.
    pub dest: SocketId,
    /// Type and body.
    pub control: Control,
}

const ACK_LIGHT_LEN: usize = 4;
const ACK_SMALL_LEN: usize = 16;
const ACK_FULL_LEN: usize = 28;

impl ControlPacket {
    /// Bytes [`ControlPacket::emit`] writes.
    pub fn len(&self) -> usize {
        HEADER_LEN
            + match &self.control {
                Control::Handshake(c) => c.len(),
                Control::KeepAlive | Control::Shutdown => 4,
                Control::Ack(a) => match a.info {
                    None => ACK_LIGHT_LEN,
                    Some(AckInfo { rates: None, .. }) => ACK_SMALL_LEN,
                    Some(_) => ACK_FULL_LEN,
                },
                Control::Nak(l) => l.0.len(),
                Control::AckAck { .. } => 4,
                Control::DropReq { .. } => 8,
                Control::Unknown { cif, .. } => cif.len(),
            }
    }

    /// Always false: a control packet has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the packet into `buf`; returns bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PacketError> {
        let need = self.len();
        let out = out_buf(buf, need)?;
        let (ty, sub, info) = match &self.control {
            Control::Handshake(_) => (control_type::HANDSHAKE, 0, 0),
            Control::KeepAlive => (control_type::KEEPALIVE, 0, 0),
            Control::Ack(a) => (control_type::ACK, 0, a.ack_number),
            Control::Nak(_) => (control_type::NAK, 0, 0),
            Control::Shutdown => (control_type::SHUTDOWN, 0, 0),
            Control::AckAck { ack_number } => (control_type::ACKACK, 0, *ack_number),
            Control::DropReq { msg, .. } => (control_type::DROPREQ, 0, *msg),
            Control::Unknown {
                control_type,
                subtype,
                type_info,
                ..
            } => (*control_type & 0x7FFF, *subtype, *type_info),
        };
        let w0 = 0x8000_0000 | (u32::from(ty) << 16) | u32::from(sub);
        put_header(out, w0, info, self.timestamp, self.dest);
        let body = &mut out[HEADER_LEN..];
        match &self.control {
            Control::Handshake(c) | Control::Unknown { cif: c, .. } => body.copy_from_slice(c),
            Control::Nak(l) => body.copy_from_slice(&l.0),
            Control::KeepAlive | Control::Shutdown | Control::AckAck { .. } => put32(body, 0, 0),
            Control::DropReq { first, last, .. } => {
                put32(body, 0, first.get());
                put32(body, 4, last.get());
            }
            Control::Ack(a) => {
                put32(body, 0, a.last_ack.get());
                if let Some(i) = a.info {
                    put32(body, 4, i.rtt);
                    put32(body, 8, i.rtt_var);
                    put32(body, 12, i.buffer_available);
                    if let Some(r) = i.rates {
                        put32(body, 16, r.packets_per_sec);
                        put32(body, 20, r.link_capacity);
                        put32(body, 24, r.bytes_per_sec);
                    }
                }
            }
        }
        Ok(need)
    }
}

/// A parsed SRT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A data packet.
    Data(DataPacket),
    /// A control packet.
    Control(ControlPacket),
}

impl Packet {
    /// Parses one UDP datagram. Payloads and CIFs are slices of `datagram`.
    pub fn parse(datagram: Bytes) -> Result<Packet, PacketError> {
        let len = datagram.len();
        let Some(h) = datagram.get(..HEADER_LEN) else {
            return Err(PacketError::Truncated {
                len,
                need: HEADER_LEN,
            });
        };
        let w0 = be32(&h[0..4]);
        let w1 = be32(&h[4..8]);
        let timestamp = Timestamp(be32(&h[8..12]));
        let dest = SocketId(be32(&h[12..16]));
        let body = datagram.slice(HEADER_LEN..);
        if w0 & 0x8000_0000 == 0 {
            return Ok(Packet::Data(DataPacket {
                seq: SeqNo::new(w0),
                position: PacketPosition::from_bits(w1 >> 30),
                in_order: w1 & (1 << 29) != 0,
                key: KeyFlags::from_bits(w1 >> 27),
                retransmitted: w1 & (1 << 26) != 0,
                msg: MsgNo::new(w1),
                timestamp,
                dest,
                payload: body,
            }));
        }
        let ty = ((w0 >> 16) & 0x7FFF) as u16;
        let subtype = (w0 & 0xFFFF) as u16;
        let truncated = |need: usize| PacketError::Truncated {
            len,
            need: HEADER_LEN + need,
        };
        let control = match ty {
            control_type::HANDSHAKE => Control::Handshake(body),
            control_type::KEEPALIVE => Control::KeepAlive,
            control_type::SHUTDOWN => Control::Shutdown,
            control_type::ACKACK => Control::AckAck { ack_number: w1 },
            control_type::ACK => {
                let word = |i: usize| body.get(i * 4..i * 4 + 4).map(be32);
                let last_ack = SeqNo::new(word(0).ok_or_else(|| truncated(ACK_LIGHT_LEN))?);
                let info = match (word(1), word(2), word(3)) {
                    (Some(rtt), Some(rtt_var), Some(buffer_available)) => Some(AckInfo {
                        rtt,
                        rtt_var,
                        buffer_available,
                        rates: match (word(4), word(5), word(6)) {
                            (Some(p), Some(c), Some(b)) => Some(AckRates {
                                packets_per_sec: p,
                                link_capacity: c,
                                bytes_per_sec: b,
                            }),
                            _ => None,
                        },
                    }),
                    _ => None,
                };
                Control::Ack(Ack {
                    ack_number: w1,
                    last_ack,
                    info,
                })
            }
            control_type::NAK => {
                if !body.len().is_multiple_of(4) {
                    return Err(PacketError::Malformed { what: "NAK length" });
                }
                let list = LossList(body);
                if list.iter().any(|e| e.is_err()) {
                    return Err(PacketError::Malformed {
                        what: "NAK loss range",
                    });
                }
                Control::Nak(list)
            }
            control_type::DROPREQ => {
                let (Some(a), Some(b)) = (body.get(0..4), body.get(4..8)) else {
                    return Err(truncated(8));
                };
                Control::DropReq {
                    msg: w1,
                    first: SeqNo::new(be32(a)),
                    last: SeqNo::new(be32(b)),
                }
            }
            _ => Control::Unknown {
                control_type: ty,
                subtype,
                type_info: w1,
                cif: body,
            },
        };
        Ok(Packet::Control(ControlPacket {
            timestamp,
            dest,
            control,
        }))
    }

    /// Bytes [`Packet::emit`] writes.
    pub fn len(&self) -> usize {
        match self {
            Packet::Data(d) => d.len(),
            Packet::Control(c) => c.len(),
        }
    }

    /// Always false (a packet has at least its header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the packet into `buf`; returns bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PacketError> {
        match self {
            Packet::Data(d) => d.emit(buf),
            Packet::Control(c) => c.emit(buf),
        }
    }

    /// The destination socket id, which the engine uses to route a datagram to a connection
    /// (0 means "the listener").
    pub fn dest(&self) -> SocketId {
        match self {
            Packet::Data(d) => d.dest,
            Packet::Control(c) => c.dest,
        }
    }
}

/// Peeks the destination socket id without parsing the packet.
pub fn peek_dest(datagram: &[u8]) -> Option<SocketId> {
    datagram.get(12..16).map(|b| SocketId(be32(b)))
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_be_bytes(w)
}

/// Writes `v` big-endian at `at`; callers size `out` beforehand, so a short buffer only drops
/// bytes (never panics).
pub(crate) fn put32(out: &mut [u8], at: usize, v: u32) {
    if let Some(d) = out.get_mut(at..at.saturating_add(4)) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

fn put_header(out: &mut [u8], w0: u32, w1: u32, ts: Timestamp, dest: SocketId) {
    put32(out, 0, w0);
    put32(out, 4, w1);
    put32(out, 8, ts.0);
    put32(out, 12, dest.0);
}

pub(crate) fn out_buf(buf: &mut [u8], need: usize) -> Result<&mut [u8], PacketError> {
    let have = buf.len();
    buf.get_mut(..need)
        .ok_or(PacketError::BufferTooSmall { have, need })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(p: &Packet) -> Packet {
        let mut buf = vec![0u8; p.len()];
        let n = p.emit(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        Packet::parse(Bytes::from(buf)).unwrap()
    }

    #[test]
    fn data_packet_vector() {
        // seq 0x12345678 (31 bits), PP=11 O=0 KK=01 R=1 msg=5, ts=1000, dest=0xdeadbeef.
        let raw = [
            0x12, 0x34, 0x56, 0x78, 0xCC, 0x00, 0x00, 0x05, 0x00, 0x00, 0x03, 0xE8, 0xDE, 0xAD,
            0xBE, 0xEF, 0x47, 0x40,
        ];
        let Packet::Data(d) = Packet::parse(Bytes::copy_from_slice(&raw)).unwrap() else {
            panic!("not data");
        };
        assert_eq!(d.seq, SeqNo::new(0x1234_5678));
        assert_eq!(d.position, PacketPosition::Only);
        assert!(!d.in_order);
        assert_eq!(d.key, KeyFlags::Even);
        assert!(d.retransmitted);
        assert_eq!(d.msg.get(), 5);
        assert_eq!(d.timestamp, Timestamp(1000));
        assert_eq!(d.dest, SocketId(0xDEAD_BEEF));
        assert_eq!(&d.payload[..], &[0x47, 0x40]);
        let mut out = [0u8; 18];
        assert_eq!(d.emit(&mut out).unwrap(), 18);
        assert_eq!(out, raw);
    }

    #[test]
    fn ack_variants_roundtrip() {
        for info in [
            None,
            Some(AckInfo {
                rtt: 1,
                rtt_var: 2,
                buffer_available: 3,
                rates: None,
            }),
            Some(AckInfo {
                rtt: 1,
                rtt_var: 2,
                buffer_available: 3,
                rates: Some(AckRates {
                    packets_per_sec: 4,
                    link_capacity: 5,
                    bytes_per_sec: 6,
                }),
            }),
        ] {
            let p = Packet::Control(ControlPacket {
                timestamp: Timestamp(7),
                dest: SocketId(9),
                control: Control::Ack(Ack {
                    ack_number: 3,
                    last_ack: SeqNo::new(100),
                    info,
                }),
            });
            assert_eq!(roundtrip(&p), p);
        }
    }

    #[test]
    fn nak_vector_ranges() {
        // Loss list: single 5, range 10..=12 (high bit on the start).
        let mut raw = vec![0x80, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        raw.extend_from_slice(&[0, 0, 0, 5, 0x80, 0, 0, 10, 0, 0, 0, 12]);
        let Packet::Control(ControlPacket {
            control: Control::Nak(l),
            ..
        }) = Packet::parse(Bytes::from(raw.clone())).unwrap()
        else {
            panic!("not NAK");
        };
        let v: Vec<_> = l.iter().map(Result::unwrap).collect();
        assert_eq!(
            v,
            vec![
                LossEntry::Single(SeqNo::new(5)),
                LossEntry::Range(SeqNo::new(10), SeqNo::new(12))
            ]
        );
        let mut cif = [0u8; 12];
        assert_eq!(LossList::emit(&v, &mut cif).unwrap(), 12);
        assert_eq!(&cif[..], &raw[16..]);
    }

    #[test]
    fn rejects_truncated_and_malformed() {
        assert!(matches!(
            Packet::parse(Bytes::from_static(&[0; 15])),
            Err(PacketError::Truncated { .. })
        ));
        // ACK with no CIF.
        let mut ack = [0u8; 16];
        ack[0] = 0x80;
        ack[1] = 0x02;
        assert!(Packet::parse(Bytes::copy_from_slice(&ack)).is_err());
        // NAK whose range start has no end.
        let mut nak = vec![0x80, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        nak.extend_from_slice(&[0x80, 0, 0, 1]);
        assert!(Packet::parse(Bytes::from(nak)).is_err());
        // DROPREQ with a 4-byte CIF.
        let mut drop = vec![0x80, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        drop.extend_from_slice(&[0, 0, 0, 1]);
        assert!(Packet::parse(Bytes::from(drop)).is_err());
        let mut small = [0u8; 4];
        let p = Packet::Control(ControlPacket {
            timestamp: Timestamp(0),
            dest: SocketId(0),
            control: Control::Shutdown,
        });
        assert!(matches!(
            p.emit(&mut small),
            Err(PacketError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn control_roundtrips() {
        for control in [
            Control::KeepAlive,
            Control::Shutdown,
            Control::AckAck { ack_number: 77 },
            Control::DropReq {
                msg: 4,
                first: SeqNo::new(1),
                last: SeqNo::new(3),
            },
            Control::Handshake(Bytes::from_static(&[1, 2, 3, 4])),
            Control::Unknown {
                control_type: 0x7FFF,
                subtype: 3,
                type_info: 9,
                cif: Bytes::from_static(&[5, 6]),
            },
        ] {
            let p = Packet::Control(ControlPacket {
                timestamp: Timestamp(u32::MAX),
                dest: SocketId(1),
                control,
            });
            assert_eq!(roundtrip(&p), p);
        }
    }

    #[test]
    fn seq_wraps() {
        let max = SeqNo::new(SeqNo::MODULUS - 1);
        assert_eq!(max.next(), SeqNo::new(0));
        assert!(max < SeqNo::new(0));
        assert_eq!(SeqNo::new(2).distance(max), 3);
        assert_eq!(Timestamp(5).distance(Timestamp(u32::MAX)), 6);
        assert!(Timestamp(u32::MAX) < Timestamp(5));
    }

    proptest! {
        #[test]
        fn seq_distance_inverts_add(a in 0u32..SeqNo::MODULUS, n in 0u32..(1 << 30)) {
            let s = SeqNo::new(a);
            let t = s.add(n);
            prop_assert_eq!(t.distance(s), n as i32);
            prop_assert_eq!(s.distance(t), -(n as i32));
            prop_assert_eq!(t.sub(n), s);
            if n > 0 { prop_assert!(s < t); }
        }

        #[test]
        fn timestamp_distance_inverts_add(a in any::<u32>(), n in 0u32..(1 << 31)) {
            let s = Timestamp(a);
            let t = s.add_micros(n);
            prop_assert_eq!(t.distance(s), i64::from(n));
            if n > 0 { prop_assert!(s < t); }
        }

        #[test]
        fn loss_list_roundtrip(raw in proptest::collection::vec((0u32..SeqNo::MODULUS, 0u32..100, any::<bool>()), 0..40)) {
            let entries: Vec<LossEntry> = raw
                .iter()
                .map(|&(a, n, single)| {
                    let a = SeqNo::new(a);
                    if single { LossEntry::Single(a) } else { LossEntry::Range(a, a.add(n)) }
                })
                .collect();
            let list = LossList::from_entries(&entries);
            let back: Vec<LossEntry> = list.iter().map(Result::unwrap).collect();
            prop_assert_eq!(back, entries);
        }

        #[test]
        fn data_roundtrip(seq in any::<u32>(), w1 in any::<u32>(), ts in any::<u32>(),
                          dest in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut raw = Vec::new();
            raw.extend_from_slice(&(seq & 0x7FFF_FFFF).to_be_bytes());
            raw.extend_from_slice(&w1.to_be_bytes());
            raw.extend_from_slice(&ts.to_be_bytes());
            raw.extend_from_slice(&dest.to_be_bytes());
            raw.extend_from_slice(&payload);
            let p = Packet::parse(Bytes::from(raw.clone())).unwrap();
            let mut out = vec![0u8; p.len()];
            p.emit(&mut out).unwrap();
            prop_assert_eq!(out, raw);
        }
    }
}
