//! SRT handshake, listener side (caller-listener mode).
//!
//! Spec: draft-sharabayko-srt-01 section 3.2.1 (handshake CIF, extensions: 3.2.1.1 HSREQ /
//! HSRSP, 3.2.1.2 KMREQ / KMRSP, 3.2.1.3 stream id), section 4.3 (caller-listener handshake:
//! induction then conclusion) and 4.3.1.1 / table 7 (rejection reasons, sent as
//! `1000 + reason` in the handshake type field). libsrt's `docs/features/handshake.md` is the
//! reference where the draft is terse.
//!
//! Sans-IO: the listener never reads a clock or a socket. The engine passes the peer address
//! bytes and the current minute for the SYN cookie (see [`syn_cookie`]), and sends the bytes
//! written into its buffer. A valid conclusion becomes a [`ConclusionRequest`]: the engine
//! checks the stream id, then calls [`Listener::accept`] or [`Listener::reject`].
//!
//! Only HSv5 conclusions are accepted; an HSv4 caller (libsrt < 1.3) gets its induction
//! answered but its conclusion rejected with [`RejectReason::VERSION`], because HSv4 carries
//! its SRT options in separate control packets after the handshake.

use super::crypto::{CryptoError, KeyMaterial, SessionKeys};
use super::packet::{
    Control, ControlPacket, HEADER_LEN, Packet, PacketError, SeqNo, SocketId, Timestamp, be32,
    out_buf, put32,
};
use super::streamid::{MAX_STREAM_ID_LEN, StreamId, StreamIdError};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use std::time::Duration;

/// Length of the fixed handshake CIF (before extensions).
pub const HANDSHAKE_CIF_LEN: usize = 48;
/// The SRT magic a listener puts in the extension field of its induction reply.
pub const SRT_MAGIC: u16 = 0x4A17;
/// The SRT version this listener announces in HSRSP (1.5.0).
pub const SRT_VERSION: u32 = 0x0001_0500;
/// Most extension blocks read from one handshake; guards the work a hostile handshake can
/// cause (a real conclusion carries at most five).
pub const MAX_EXTENSIONS: usize = 16;

/// Extension field flags of a conclusion request (spec 3.2.1, table 4).
pub mod ext_flags {
    /// HSREQ present.
    pub const HSREQ: u16 = 0x1;
    /// KMREQ present.
    pub const KMREQ: u16 = 0x2;
    /// Configuration extensions (SID, congestion, filter, group) present.
    pub const CONFIG: u16 = 0x4;
}

/// Extension block types (spec 3.2.1, table 5).
pub mod ext_type {
    /// Handshake request.
    pub const HSREQ: u16 = 1;
    /// Handshake response.
    pub const HSRSP: u16 = 2;
    /// Key material request.
    pub const KMREQ: u16 = 3;
    /// Key material response.
    pub const KMRSP: u16 = 4;
    /// Stream id.
    pub const SID: u16 = 5;
    /// Congestion controller name.
    pub const CONGESTION: u16 = 6;
    /// Packet filter configuration.
    pub const FILTER: u16 = 7;
    /// Socket group.
    pub const GROUP: u16 = 8;
}

/// SRT flags of HSREQ / HSRSP (spec 3.2.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SrtFlags(pub u32);

impl SrtFlags {
    /// The sender uses TSBPD (timestamps drive delivery).
    pub const TSBPDSND: u32 = 0x01;
    /// The receiver uses TSBPD.
    pub const TSBPDRCV: u32 = 0x02;
    /// Encryption capable (HaiCrypt).
    pub const CRYPT: u32 = 0x04;
    /// Too-late packet drop.
    pub const TLPKTDROP: u32 = 0x08;
    /// Periodic NAK reports.
    pub const PERIODICNAK: u32 = 0x10;
    /// The R flag of data packets is meaningful.
    pub const REXMITFLG: u32 = 0x20;
    /// Stream (buffer) API instead of message API.
    pub const STREAM: u32 = 0x40;
    /// A packet filter is configured.
    pub const PACKET_FILTER: u32 = 0x80;

    /// True when every bit of `f` is set.
    pub fn has(self, f: u32) -> bool {
        self.0 & f == f
    }
}

/// The body of HSREQ / HSRSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtHandshake {
    /// SRT library version, `0x00MMmmpp`.
    pub version: u32,
    /// Capability flags.
    pub flags: SrtFlags,
    /// Latency the sender of this block wants as a receiver, ms.
    pub recv_latency_ms: u16,
    /// Latency the sender of this block proposes as a sender, ms.
    pub send_latency_ms: u16,
}

impl SrtHandshake {
    const LEN: usize = 12;

    fn parse(b: &[u8]) -> Result<Self, HandshakeError> {
        if b.len() < Self::LEN {
            return Err(HandshakeError::Malformed("HSREQ/HSRSP length"));
        }
        let lat = be32(&b[8..12]);
        Ok(Self {
            version: be32(&b[0..4]),
            flags: SrtFlags(be32(&b[4..8])),
            recv_latency_ms: (lat >> 16) as u16,
            send_latency_ms: lat as u16,
        })
    }

    fn write(&self, out: &mut [u8]) {
        put32(out, 0, self.version);
        put32(out, 4, self.flags.0);
        put32(
            out,
            8,
            (u32::from(self.recv_latency_ms) << 16) | u32::from(self.send_latency_ms),
        );
    }
}

/// A handshake rejection reason (`SRT_REJ_*` below 1000, `SRT_REJX_*` from 1000, user codes
/// from 2000). On the wire it travels as `1000 + code` in the handshake type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u32);

impl RejectReason {
    /// Unknown reason.
    pub const UNKNOWN: Self = Self(0);
    /// System error on the rejecting side.
    pub const SYSTEM: Self = Self(1);
    /// The peer rejected (generic).
    pub const PEER: Self = Self(2);
    /// Resource allocation failed.
    pub const RESOURCE: Self = Self(3);
    /// Malformed or inconsistent handshake data.
    pub const ROGUE: Self = Self(4);
    /// Listener backlog full.
    pub const BACKLOG: Self = Self(5);
    /// Internal program error.
    pub const IPE: Self = Self(6);
    /// Socket closing.
    pub const CLOSE: Self = Self(7);
    /// Peer version too old.
    pub const VERSION: Self = Self(8);
    /// Rendezvous cookie collision.
    pub const RDVCOOKIE: Self = Self(9);
    /// Wrong passphrase.
    pub const BADSECRET: Self = Self(10);
    /// One side requires encryption, the other has none.
    pub const UNSECURE: Self = Self(11);
    /// Message API versus stream API mismatch.
    pub const MESSAGEAPI: Self = Self(12);
    /// Congestion controller mismatch.
    pub const CONGESTION: Self = Self(13);
    /// Packet filter mismatch.
    pub const FILTER: Self = Self(14);
    /// Group settings mismatch.
    pub const GROUP: Self = Self(15);
    /// Connection timed out.
    pub const TIMEOUT: Self = Self(16);
    /// Predefined application codes start here (`1000 + HTTP status`).
    pub const PREDEFINED: u32 = 1000;
    /// `SRT_REJX_BAD_REQUEST` (1400): malformed stream id.
    pub const BAD_REQUEST: Self = Self(1400);
    /// `SRT_REJX_UNAUTHORIZED` (1401): authentication required.
    pub const UNAUTHORIZED: Self = Self(1401);
    /// `SRT_REJX_OVERLOAD` (1402): server overloaded.
    pub const OVERLOAD: Self = Self(1402);
    /// `SRT_REJX_FORBIDDEN` (1403): access denied (bad or revoked stream key).
    pub const FORBIDDEN: Self = Self(1403);
    /// `SRT_REJX_NOTFOUND` (1404): resource not found.
    pub const NOTFOUND: Self = Self(1404);
    /// `SRT_REJX_BAD_MODE` (1405): mode not supported (e.g. `m=request` on an ingest).
    pub const BAD_MODE: Self = Self(1405);
    /// `SRT_REJX_CONFLICT` (1409): the stream is already being published.
    pub const CONFLICT: Self = Self(1409);
    /// `SRT_REJX_ISE` (1500): internal server error.
    pub const ISE: Self = Self(1500);
    /// User-defined codes start here.
    pub const USER_DEFINED: u32 = 2000;

    /// The handshake type field value carrying this reason.
    pub fn wire(self) -> u32 {
        self.0.saturating_add(1000)
    }
}

/// The handshake type field (spec 3.2.1, table 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeType {
    /// 0: rendezvous wave-a-hand.
    WaveAHand,
    /// 1: first caller-listener phase.
    Induction,
    /// `0xFFFFFFFF`: second phase.
    Conclusion,
    /// `0xFFFFFFFE`: rendezvous agreement.
    Agreement,
    /// `0xFFFFFFFD`: done.
    Done,
    /// Above 1000: a rejection carrying `value - 1000`.
    Rejection(RejectReason),
    /// Anything else, kept.
    Unknown(u32),
}

impl HandshakeType {
    /// Decodes the wire value. libsrt treats only values strictly above 1000 as rejections.
    pub fn from_wire(v: u32) -> Self {
        match v {
            0 => Self::WaveAHand,
            1 => Self::Induction,
            0xFFFF_FFFF => Self::Conclusion,
            0xFFFF_FFFE => Self::Agreement,
            0xFFFF_FFFD => Self::Done,
            v if v > 1000 && v < 0xFFFF_FFFD => Self::Rejection(RejectReason(v - 1000)),
            v => Self::Unknown(v),
        }
    }

    /// The wire value.
    pub fn wire(self) -> u32 {
        match self {
            Self::WaveAHand => 0,
            Self::Induction => 1,
            Self::Conclusion => 0xFFFF_FFFF,
            Self::Agreement => 0xFFFF_FFFE,
            Self::Done => 0xFFFF_FFFD,
            Self::Rejection(r) => r.wire(),
            Self::Unknown(v) => v,
        }
    }
}

/// Handshake errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer sent a malformed handshake (peer fault).
    #[error("peer sent a malformed handshake: {0}")]
    Malformed(&'static str),
    /// The peer's SYN cookie does not match (stale, spoofed or replayed); dropped silently,
    /// since answering a spoofed source would make the listener a reflector.
    #[error("peer sent a wrong SYN cookie")]
    BadCookie,
    /// The peer's handshake version or phase is not one a listener accepts (incompatible).
    #[error("unsupported handshake: {0}")]
    Unsupported(&'static str),
    /// Not a handshake packet (internal: the engine routed it here).
    #[error("not a handshake packet")]
    NotHandshake,
    /// Packet framing error.
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// Errors of [`Listener::accept`]; each maps to the rejection the engine then sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// Encryption on one side only (reject with [`RejectReason::UNSECURE`]).
    #[error("encryption configured on one side only")]
    Unsecure,
    /// Key material problem; [`CryptoError::BadSecret`] means a wrong passphrase (reject with
    /// [`RejectReason::BADSECRET`]).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The output buffer is too small (internal).
    #[error(transparent)]
    Packet(#[from] PacketError),
}

impl AcceptError {
    /// The rejection reason to send for this error.
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            Self::Unsecure => RejectReason::UNSECURE,
            Self::Crypto(CryptoError::BadSecret) => RejectReason::BADSECRET,
            Self::Crypto(CryptoError::KeyLengthMismatch { .. }) => RejectReason::BADSECRET,
            Self::Crypto(_) => RejectReason::ROGUE,
            Self::Packet(_) => RejectReason::IPE,
        }
    }
}

/// A handshake CIF (spec 3.2.1). Extensions stay raw; iterate them with
/// [`Handshake::extensions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Handshake version (4 or 5).
    pub version: u32,
    /// Encryption field: advertised key length / 8 (0: none, 2, 3, 4).
    pub encryption: u16,
    /// Extension field: [`SRT_MAGIC`] in an induction reply, [`ext_flags`] in a conclusion.
    pub extension: u16,
    /// Initial packet sequence number.
    pub isn: SeqNo,
    /// Maximum transmission unit, bytes.
    pub mtu: u32,
    /// Maximum flow window, packets.
    pub flow_window: u32,
    /// Phase or rejection.
    pub hs_type: HandshakeType,
    /// The sender's socket id.
    pub socket_id: SocketId,
    /// SYN cookie.
    pub cookie: u32,
    /// The peer's IP address as the sender sees it (libsrt's per-word little-endian layout,
    /// see [`peer_ip_bytes`]).
    pub peer_ip: [u8; 16],
    /// Extension blocks after the fixed part, a slice of the packet.
    pub extensions: Bytes,
}

/// One handshake extension block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// HSREQ.
    HsReq(SrtHandshake),
    /// HSRSP.
    HsRsp(SrtHandshake),
    /// KMREQ (a KM message, see [`KeyMaterial::parse`]).
    KmReq(Bytes),
    /// KMRSP (a KM message, or a single state word on failure).
    KmRsp(Bytes),
    /// Stream id, still in wire order (see [`decode_stream_id`]).
    Sid(Bytes),
    /// Congestion controller name, wire order.
    Congestion(Bytes),
    /// Packet filter configuration, wire order.
    Filter(Bytes),
    /// Anything else (including GROUP), kept.
    Unknown {
        /// Block type.
        ty: u16,
        /// Block content.
        body: Bytes,
    },
}

impl Handshake {
    /// Parses a handshake CIF.
    pub fn parse(cif: Bytes) -> Result<Handshake, HandshakeError> {
        let Some(f) = cif.get(..HANDSHAKE_CIF_LEN) else {
            return Err(HandshakeError::Malformed("short CIF"));
        };
        let w = |i: usize| be32(&f[i * 4..i * 4 + 4]);
        let mut peer_ip = [0u8; 16];
        peer_ip.copy_from_slice(&f[32..48]);
        Ok(Handshake {
            version: w(0),
            encryption: (w(1) >> 16) as u16,
            extension: w(1) as u16,
            isn: SeqNo::new(w(2)),
            mtu: w(3),
            flow_window: w(4),
            hs_type: HandshakeType::from_wire(w(5)),
            socket_id: SocketId(w(6)),
            cookie: w(7),
            peer_ip,
            extensions: cif.slice(HANDSHAKE_CIF_LEN..),
        })
    }

    /// Iterates the extension blocks (at most [`MAX_EXTENSIONS`]; more is an error item).
    pub fn extensions(&self) -> impl Iterator<Item = Result<Extension, HandshakeError>> + '_ {
        let mut at = 0usize;
        let mut count = 0usize;
        let b = &self.extensions;
        std::iter::from_fn(move || {
            if at >= b.len() {
                return None;
            }
            count += 1;
            if count > MAX_EXTENSIONS {
                at = b.len();
                return Some(Err(HandshakeError::Malformed("too many extensions")));
            }
            let Some(h) = b.get(at..at + 4) else {
                at = b.len();
                return Some(Err(HandshakeError::Malformed("extension header")));
            };
            let ty = u16::from_be_bytes([h[0], h[1]]);
            let len = usize::from(u16::from_be_bytes([h[2], h[3]])) * 4;
            let start = at + 4;
            let end = start + len;
            if end > b.len() {
                at = b.len();
                return Some(Err(HandshakeError::Malformed("extension length")));
            }
            at = end;
            let body = b.slice(start..end);
            Some(match ty {
                ext_type::HSREQ => SrtHandshake::parse(&body).map(Extension::HsReq),
                ext_type::HSRSP => SrtHandshake::parse(&body).map(Extension::HsRsp),
                ext_type::KMREQ => Ok(Extension::KmReq(body)),
                ext_type::KMRSP => Ok(Extension::KmRsp(body)),
                ext_type::SID => Ok(Extension::Sid(body)),
                ext_type::CONGESTION => Ok(Extension::Congestion(body)),
                ext_type::FILTER => Ok(Extension::Filter(body)),
                ty => Ok(Extension::Unknown { ty, body }),
            })
        })
    }

    /// Bytes [`Handshake::emit`] writes (CIF only).
    pub fn len(&self) -> usize {
        HANDSHAKE_CIF_LEN + self.extensions.len()
    }

    /// Always false: the fixed part is 48 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the CIF (fixed part and raw extensions) into `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PacketError> {
        let need = self.len();
        let out = out_buf(buf, need)?;
        self.write_fixed(out);
        out[HANDSHAKE_CIF_LEN..].copy_from_slice(&self.extensions);
        Ok(need)
    }

    fn write_fixed(&self, out: &mut [u8]) {
        put32(out, 0, self.version);
        put32(
            out,
            4,
            (u32::from(self.encryption) << 16) | u32::from(self.extension),
        );
        put32(out, 8, self.isn.get());
        put32(out, 12, self.mtu);
        put32(out, 16, self.flow_window);
        put32(out, 20, self.hs_type.wire());
        put32(out, 24, self.socket_id.0);
        put32(out, 28, self.cookie);
        if let Some(d) = out.get_mut(32..48) {
            d.copy_from_slice(&self.peer_ip);
        }
    }

    /// Writes a whole HANDSHAKE control packet (header, fixed CIF, then `exts` already
    /// encoded) into `buf`.
    fn emit_packet(
        &self,
        dest: SocketId,
        exts: &[(u16, &[u8])],
        buf: &mut [u8],
    ) -> Result<usize, PacketError> {
        let ext_len: usize = exts.iter().map(|(_, b)| 4 + b.len().div_ceil(4) * 4).sum();
        let need = HEADER_LEN + HANDSHAKE_CIF_LEN + ext_len;
        let out = out_buf(buf, need)?;
        out.fill(0);
        let header = ControlPacket {
            timestamp: Timestamp(0),
            dest,
            control: Control::Handshake(Bytes::new()),
        };
        header.emit(&mut out[..HEADER_LEN])?;
        let cif = &mut out[HEADER_LEN..];
        self.write_fixed(cif);
        let mut at = HANDSHAKE_CIF_LEN;
        for (ty, body) in exts {
            let words = body.len().div_ceil(4);
            put32(cif, at, (u32::from(*ty) << 16) | (words as u32 & 0xFFFF));
            if let Some(d) = cif.get_mut(at + 4..at + 4 + body.len()) {
                d.copy_from_slice(body);
            }
            at += 4 + words * 4;
        }
        Ok(need)
    }
}

/// Decodes a SID extension: each 32-bit word holds four stream-id bytes in reversed
/// (little-endian) order, and the last word is zero-padded. Copy: the reversal needs fresh
/// bytes (at most [`MAX_STREAM_ID_LEN`]).
pub fn decode_stream_id(wire: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    if wire.len() > MAX_STREAM_ID_LEN || !wire.len().is_multiple_of(4) {
        return Err(HandshakeError::Malformed("stream id length"));
    }
    let mut out: Vec<u8> = wire
        .chunks_exact(4)
        .flat_map(|w| [w[3], w[2], w[1], w[0]])
        .collect();
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Encodes a stream id for the SID extension (the inverse of [`decode_stream_id`]).
pub fn encode_stream_id(id: &[u8]) -> Vec<u8> {
    id.chunks(4)
        .flat_map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            [w[3], w[2], w[1], w[0]]
        })
        .collect()
}

/// The 16-byte peer-address field for `ip`, laid out as libsrt does on the wire: IPv4 in the
/// first 32-bit word, every word with its bytes reversed.
pub fn peer_ip_bytes(ip: std::net::IpAddr) -> [u8; 16] {
    let mut raw = [0u8; 16];
    match ip {
        std::net::IpAddr::V4(v4) => raw[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => raw.copy_from_slice(&v6.octets()),
    }
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(raw.chunks_exact(4)) {
        o.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    out
}

/// The SYN cookie for a peer: HMAC-SHA1 keyed by the listener's secret over the peer's
/// address bytes (IP and port, as the engine encodes them) and a time bucket (the minute
/// count the engine derives from its clock), truncated to 32 bits. Sans-IO: the engine
/// supplies secret, address and minute.
pub fn syn_cookie(secret: &[u8], peer_addr: &[u8], minute: u32) -> u32 {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        // HMAC accepts keys of any length; this branch is unreachable in practice.
        return 0;
    };
    mac.update(peer_addr);
    mac.update(&minute.to_be_bytes());
    let tag = mac.finalize().into_bytes();
    be32(tag.get(..4).unwrap_or(&[0; 4]))
}

/// Listener settings. `Debug` leaves the cookie secret out.
#[derive(Clone)]
pub struct ListenerConfig {
    /// Secret keying the SYN cookie; random per process.
    pub cookie_secret: Vec<u8>,
    /// The socket id the listener announces in induction replies.
    pub listener_socket: SocketId,
    /// Receiver latency (`SRTO_RCVLATENCY`); the negotiated value is at least this.
    pub latency: Duration,
    /// Latency proposed for the peer's receiver (`SRTO_PEERLATENCY`).
    pub peer_latency: Duration,
    /// Largest MTU accepted (the negotiated MTU is the smaller of both sides').
    pub mtu: u32,
    /// Flow window, packets (the negotiated one is the smaller of both sides').
    pub flow_window: u32,
    /// Key length advertised in the induction reply (0: none, 16, 24 or 32).
    pub advertised_key_len: u8,
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("listener_socket", &self.listener_socket)
            .field("latency", &self.latency)
            .field("peer_latency", &self.peer_latency)
            .field("mtu", &self.mtu)
            .field("flow_window", &self.flow_window)
            .field("advertised_key_len", &self.advertised_key_len)
            .finish_non_exhaustive()
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            cookie_secret: Vec::new(),
            listener_socket: SocketId(0),
            latency: Duration::from_millis(120),
            peer_latency: Duration::from_millis(120),
            mtu: 1500,
            flow_window: 8192,
            advertised_key_len: 0,
        }
    }
}

/// What [`Listener::handle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerEvent {
    /// An induction reply of this many bytes was written; send it to the peer.
    InductionReply(usize),
    /// A valid HSv5 conclusion; decide with [`Listener::accept`] or [`Listener::reject`].
    Conclusion(Box<ConclusionRequest>),
    /// The conclusion broke the protocol; a rejection of `len` bytes was written.
    Rejected {
        /// Why (peer fault or incompatibility).
        error: HandshakeError,
        /// The reason sent.
        reason: RejectReason,
        /// Bytes written.
        len: usize,
    },
}

/// A validated conclusion waiting for the engine's access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConclusionRequest {
    /// The caller's handshake.
    pub handshake: Handshake,
    /// The caller's HSREQ.
    pub hsreq: SrtHandshake,
    /// The caller's KMREQ, if it encrypts.
    pub kmreq: Option<Bytes>,
    /// The decoded stream id bytes (empty when absent).
    pub stream_id: Vec<u8>,
    /// The header timestamp of the conclusion packet (the caller's clock).
    pub timestamp: Timestamp,
}

impl ConclusionRequest {
    /// Parses the stream id grammar.
    pub fn stream_id(&self) -> Result<StreamId, StreamIdError> {
        StreamId::parse(&self.stream_id)
    }
}

/// Parameters of an accepted connection, for the engine and [`super::receiver::Receiver`].
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Bytes of the conclusion response written.
    pub len: usize,
    /// The caller's socket id (destination of everything sent to it).
    pub peer_socket: SocketId,
    /// The first sequence number the caller will send.
    pub peer_isn: SeqNo,
    /// Negotiated latency of the caller-to-listener direction (the receiver's TSBPD delay).
    pub latency: Duration,
    /// Negotiated latency of the listener-to-caller direction.
    pub peer_latency: Duration,
    /// Negotiated MTU.
    pub mtu: u32,
    /// Negotiated flow window.
    pub flow_window: u32,
    /// The caller's flags.
    pub peer_flags: SrtFlags,
    /// Session keys when the stream is encrypted.
    pub keys: Option<SessionKeys>,
}

/// The stateless listener: answers inductions and validates conclusions.
#[derive(Debug, Clone)]
pub struct Listener {
    config: ListenerConfig,
}

fn ms(d: Duration) -> u16 {
    u16::try_from(d.as_millis()).unwrap_or(u16::MAX)
}

impl Listener {
    /// A listener with `config`.
    pub fn new(config: ListenerConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// Handles a handshake packet addressed to the listener (destination socket 0).
    /// `peer_addr` are the bytes identifying the peer for the cookie (IP and port),
    /// `peer_ip` its address for the reply's peer-address field, `minute` the engine's
    /// current minute count. Replies and rejections are written into `buf`.
    pub fn handle(
        &self,
        packet: &ControlPacket,
        peer_addr: &[u8],
        peer_ip: [u8; 16],
        minute: u32,
        buf: &mut [u8],
    ) -> Result<ListenerEvent, HandshakeError> {
        let Control::Handshake(cif) = &packet.control else {
            return Err(HandshakeError::NotHandshake);
        };
        let hs = Handshake::parse(cif.clone())?;
        match hs.hs_type {
            HandshakeType::Induction => {
                if hs.version < 4 {
                    return Err(HandshakeError::Unsupported("handshake version below 4"));
                }
                let reply = Handshake {
                    version: 5,
                    encryption: u16::from(self.config.advertised_key_len / 8),
                    extension: SRT_MAGIC,
                    cookie: syn_cookie(&self.config.cookie_secret, peer_addr, minute),
                    socket_id: self.config.listener_socket,
                    peer_ip,
                    extensions: Bytes::new(),
                    ..hs
                };
                Ok(ListenerEvent::InductionReply(reply.emit_packet(
                    hs.socket_id,
                    &[],
                    buf,
                )?))
            }
            HandshakeType::Conclusion => {
                let secret = &self.config.cookie_secret;
                if hs.cookie != syn_cookie(secret, peer_addr, minute)
                    && hs.cookie != syn_cookie(secret, peer_addr, minute.wrapping_sub(1))
                {
                    return Err(HandshakeError::BadCookie);
                }
                match self.validate(&hs, packet.timestamp) {
                    Ok(req) => Ok(ListenerEvent::Conclusion(Box::new(req))),
                    Err((error, reason)) => {
                        let len = emit_rejection(&hs, self.config.listener_socket, reason, buf)?;
                        Ok(ListenerEvent::Rejected { error, reason, len })
                    }
                }
            }
            _ => Err(HandshakeError::Unsupported("handshake phase")),
        }
    }

    fn validate(
        &self,
        hs: &Handshake,
        timestamp: Timestamp,
    ) -> Result<ConclusionRequest, (HandshakeError, RejectReason)> {
        if hs.version != 5 {
            return Err((
                HandshakeError::Unsupported("HSv4 conclusion"),
                RejectReason::VERSION,
            ));
        }
        let rogue = |e| (e, RejectReason::ROGUE);
        let mut hsreq = None;
        let mut kmreq = None;
        let mut stream_id = Vec::new();
        for ext in hs.extensions() {
            match ext.map_err(rogue)? {
                Extension::HsReq(h) => hsreq = Some(h),
                Extension::KmReq(k) => kmreq = Some(k),
                Extension::Sid(s) => stream_id = decode_stream_id(&s).map_err(rogue)?,
                Extension::Congestion(c) if decode_stream_id(&c).map_err(rogue)? != b"live" => {
                    return Err((
                        HandshakeError::Unsupported("congestion controller"),
                        RejectReason::CONGESTION,
                    ));
                }
                Extension::Filter(_) => {
                    return Err((
                        HandshakeError::Unsupported("packet filter"),
                        RejectReason::FILTER,
                    ));
                }
                _ => {}
            }
        }
        let hsreq = hsreq.ok_or_else(|| rogue(HandshakeError::Malformed("no HSREQ")))?;
        if hsreq.flags.has(SrtFlags::STREAM) {
            return Err((
                HandshakeError::Unsupported("stream API"),
                RejectReason::MESSAGEAPI,
            ));
        }
        if !hsreq.flags.has(SrtFlags::TSBPDSND) {
            return Err((
                HandshakeError::Unsupported("sender without TSBPD"),
                RejectReason::PEER,
            ));
        }
        if hs.mtu < 76 {
            return Err(rogue(HandshakeError::Malformed("MTU")));
        }
        Ok(ConclusionRequest {
            handshake: hs.clone(),
            hsreq,
            kmreq,
            stream_id,
            timestamp,
        })
    }

    /// Accepts a conclusion: negotiates latency (each direction takes the larger of the two
    /// sides' proposals), unwraps the keys when `passphrase` is set (`pbkeylen` 0 takes the
    /// peer's key length), and writes the conclusion response (HSRSP, plus KMRSP echoing the
    /// caller's key material) into `buf`. On error the engine sends
    /// [`Listener::reject`] with [`AcceptError::reject_reason`].
    ///
    /// The listener keeps no state, so the engine does two things for it: it keeps the
    /// response bytes and resends them when the same caller (address and socket id)
    /// repeats its conclusion (the first response may have been lost), instead of opening a
    /// second connection; and it picks `local_socket` unique among its connections.
    pub fn accept(
        &self,
        req: &ConclusionRequest,
        local_socket: SocketId,
        passphrase: Option<&[u8]>,
        pbkeylen: usize,
        buf: &mut [u8],
    ) -> Result<Accepted, AcceptError> {
        let keys = match (passphrase, &req.kmreq) {
            (None, None) => None,
            (Some(p), Some(km)) => Some(KeyMaterial::parse(km.clone())?.unwrap_keys(p, pbkeylen)?),
            _ => return Err(AcceptError::Unsecure),
        };
        let latency = ms(self.config.latency).max(req.hsreq.send_latency_ms);
        let peer_latency = ms(self.config.peer_latency).max(req.hsreq.recv_latency_ms);
        let hs = &req.handshake;
        let mtu = hs.mtu.min(self.config.mtu);
        let flow_window = hs.flow_window.min(self.config.flow_window);
        let mut flags = SrtFlags::TSBPDSND
            | SrtFlags::TSBPDRCV
            | SrtFlags::TLPKTDROP
            | SrtFlags::PERIODICNAK
            | SrtFlags::REXMITFLG;
        if keys.is_some() {
            flags |= SrtFlags::CRYPT;
        }
        let hsrsp = SrtHandshake {
            version: SRT_VERSION,
            flags: SrtFlags(flags),
            recv_latency_ms: latency,
            send_latency_ms: peer_latency,
        };
        let mut hsrsp_bytes = [0u8; SrtHandshake::LEN];
        hsrsp.write(&mut hsrsp_bytes);
        let mut exts: Vec<(u16, &[u8])> = vec![(ext_type::HSRSP, &hsrsp_bytes)];
        let mut ext_field = ext_flags::HSREQ;
        if let Some(km) = &req.kmreq {
            exts.push((ext_type::KMRSP, km));
            ext_field |= ext_flags::KMREQ;
        }
        let reply = Handshake {
            version: 5,
            encryption: 0,
            extension: ext_field,
            mtu,
            flow_window,
            socket_id: local_socket,
            extensions: Bytes::new(),
            ..hs.clone()
        };
        let len = reply.emit_packet(hs.socket_id, &exts, buf)?;
        Ok(Accepted {
            len,
            peer_socket: hs.socket_id,
            peer_isn: hs.isn,
            latency: Duration::from_millis(latency.into()),
            peer_latency: Duration::from_millis(peer_latency.into()),
            mtu,
            flow_window,
            peer_flags: req.hsreq.flags,
            keys,
        })
    }

    /// Writes a rejection of `req` with `reason` into `buf`.
    pub fn reject(
        &self,
        req: &ConclusionRequest,
        reason: RejectReason,
        buf: &mut [u8],
    ) -> Result<usize, PacketError> {
        emit_rejection(&req.handshake, self.config.listener_socket, reason, buf)
    }
}

/// Writes a rejection answering `hs`: its fields echoed, no extensions, the reason in the
/// handshake type field, addressed to the caller's socket.
pub fn emit_rejection(
    hs: &Handshake,
    local_socket: SocketId,
    reason: RejectReason,
    buf: &mut [u8],
) -> Result<usize, PacketError> {
    let reply = Handshake {
        hs_type: HandshakeType::Rejection(reason),
        socket_id: local_socket,
        extension: 0,
        extensions: Bytes::new(),
        ..hs.clone()
    };
    reply.emit_packet(hs.socket_id, &[], buf)
}

/// Parses a datagram expected to be a handshake (e.g. a reply, in tests or in a caller).
pub fn parse_handshake_packet(
    datagram: Bytes,
) -> Result<(ControlPacket, Handshake), HandshakeError> {
    match Packet::parse(datagram)? {
        Packet::Control(c) => match &c.control {
            Control::Handshake(cif) => {
                let hs = Handshake::parse(cif.clone())?;
                Ok((c, hs))
            }
            _ => Err(HandshakeError::NotHandshake),
        },
        Packet::Data(_) => Err(HandshakeError::NotHandshake),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_words_are_byte_reversed() {
        // "abcdef": words "abcd" -> "dcba", "ef" -> "\0\0fe".
        let wire = encode_stream_id(b"abcdef");
        assert_eq!(wire, b"dcba\0\0fe");
        assert_eq!(decode_stream_id(&wire).unwrap(), b"abcdef");
        assert_eq!(decode_stream_id(b"dcba").unwrap(), b"abcd");
        assert!(decode_stream_id(b"abc").is_err());
        assert!(decode_stream_id(&[b'a'; MAX_STREAM_ID_LEN + 4]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn stream_id_roundtrip(id in proptest::collection::vec(1u8..=255, 0..MAX_STREAM_ID_LEN)) {
            let wire = encode_stream_id(&id);
            proptest::prop_assert_eq!(wire.len(), id.len().div_ceil(4) * 4);
            proptest::prop_assert_eq!(decode_stream_id(&wire).unwrap(), id);
        }
    }

    #[test]
    fn handshake_type_codes() {
        assert_eq!(HandshakeType::from_wire(1), HandshakeType::Induction);
        assert_eq!(
            HandshakeType::from_wire(u32::MAX),
            HandshakeType::Conclusion
        );
        assert_eq!(
            HandshakeType::from_wire(1010),
            HandshakeType::Rejection(RejectReason::BADSECRET)
        );
        assert_eq!(
            HandshakeType::from_wire(2403),
            HandshakeType::Rejection(RejectReason::FORBIDDEN)
        );
        assert_eq!(RejectReason::FORBIDDEN.wire(), 2403);
        assert_eq!(RejectReason::PEER.wire(), 1002);
        assert_eq!(HandshakeType::from_wire(1000), HandshakeType::Unknown(1000));
        for v in [
            0,
            1,
            5,
            1000,
            1001,
            2403,
            0xFFFF_FFFD,
            0xFFFF_FFFE,
            u32::MAX,
        ] {
            assert_eq!(HandshakeType::from_wire(v).wire(), v);
        }
    }

    #[test]
    fn cookie_depends_on_all_inputs() {
        let c = syn_cookie(b"secret", b"1.2.3.4:5", 7);
        assert_eq!(c, syn_cookie(b"secret", b"1.2.3.4:5", 7));
        assert_ne!(c, syn_cookie(b"secret", b"1.2.3.4:6", 7));
        assert_ne!(c, syn_cookie(b"secret", b"1.2.3.4:5", 8));
        assert_ne!(c, syn_cookie(b"secreT", b"1.2.3.4:5", 7));
    }

    #[test]
    fn peer_ip_layout() {
        let b = peer_ip_bytes("1.2.3.4".parse().unwrap());
        assert_eq!(&b[..4], &[4, 3, 2, 1]);
        assert_eq!(&b[4..], &[0; 12]);
    }
}
