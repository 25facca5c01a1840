//! Just enough STUN (RFC 8489, formerly RFC 5389) to steer a datagram to its WebRTC session
//! before any session has seen it: recognise a STUN message (§5, §6) and read the ICE username
//! (§14.3) of a Binding request, whose first half is the receiving agent's ufrag
//! (RFC 8445 §7.2.2).
//!
//! The full STUN handling (integrity, fingerprint, responses) stays in the WebRTC stack; this
//! module only reads, borrows from its input and never allocates, so a flood of garbage costs
//! one bounded scan per datagram.

use thiserror::Error;

/// Length of the fixed STUN header (§5).
pub const HEADER_LEN: usize = 20;
/// The magic cookie every RFC 5389+ message carries at offset 4 (§5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Message type of a Binding request (§5, §18.2).
pub const BINDING_REQUEST: u16 = 0x0001;
/// Attribute type of USERNAME (§14.3).
pub const ATTR_USERNAME: u16 = 0x0006;
/// Largest USERNAME value accepted (§14.3 caps it at 513 bytes).
pub const MAX_USERNAME: usize = 513;
/// Attributes scanned before giving up: guards the per-datagram cost of a hostile message
/// made of many tiny attributes (a real Binding request carries fewer than ten).
pub const MAX_ATTRIBUTES: usize = 32;

/// Why a datagram is not a usable STUN Binding request. All variants are the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StunError {
    /// Shorter than the header or than the length the header announces.
    #[error("truncated STUN message")]
    Truncated,
    /// The first two bits are not zero or the magic cookie is missing: not STUN.
    #[error("not a STUN message")]
    NotStun,
    /// The message length is not a multiple of four, or an attribute overruns it.
    #[error("malformed STUN attribute layout")]
    Malformed,
    /// More attributes than [`MAX_ATTRIBUTES`] before USERNAME.
    #[error("too many STUN attributes")]
    TooManyAttributes,
}

/// A borrowed view of a STUN message's header and USERNAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunView<'a> {
    /// Message type (method and class, §5).
    pub msg_type: u16,
    /// Transaction id (§5).
    pub transaction: &'a [u8],
    /// USERNAME attribute value, if present.
    pub username: Option<&'a [u8]>,
}

impl<'a> StunView<'a> {
    /// Whether the message is a Binding request.
    pub fn is_binding_request(&self) -> bool {
        self.msg_type == BINDING_REQUEST
    }

    /// The receiving agent's ufrag: the USERNAME part before the colon (RFC 8445 §7.2.2).
    pub fn local_ufrag(&self) -> Option<&'a [u8]> {
        let u = self.username?;
        let end = u.iter().position(|&b| b == b':')?;
        u.get(..end)
    }
}

/// Whether a datagram looks like STUN by its first byte (RFC 7983 §7: 0..=3).
pub fn is_stun_first_byte(first: u8) -> bool {
    first < 4
}

/// Parses the header and finds USERNAME. Trailing bytes after the announced length are an
/// error (`Malformed`), as a STUN message must fill its datagram.
pub fn parse(buf: &[u8]) -> Result<StunView<'_>, StunError> {
    let header = buf.get(..HEADER_LEN).ok_or(StunError::Truncated)?;
    let msg_type = u16::from_be_bytes([header[0], header[1]]);
    if msg_type & 0xC000 != 0 {
        return Err(StunError::NotStun);
    }
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if cookie != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if len % 4 != 0 {
        return Err(StunError::Malformed);
    }
    let body_end = HEADER_LEN + len;
    let body = buf.get(HEADER_LEN..body_end).ok_or(StunError::Truncated)?;
    if buf.len() != body_end {
        return Err(StunError::Malformed);
    }
    let transaction = &header[8..HEADER_LEN];
    let mut rest = body;
    let mut username = None;
    let mut seen = 0usize;
    while !rest.is_empty() {
        seen += 1;
        if seen > MAX_ATTRIBUTES {
            return Err(StunError::TooManyAttributes);
        }
        let head = rest.get(..4).ok_or(StunError::Malformed)?;
        let attr_type = u16::from_be_bytes([head[0], head[1]]);
        let attr_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        // Values are padded to a multiple of four (§14).
        let padded = attr_len.div_ceil(4) * 4;
        let value = rest.get(4..4 + attr_len).ok_or(StunError::Malformed)?;
        rest = rest.get(4 + padded..).ok_or(StunError::Malformed)?;
        if attr_type == ATTR_USERNAME {
            if attr_len > MAX_USERNAME {
                return Err(StunError::Malformed);
            }
            username = Some(value);
            break;
        }
    }
    Ok(StunView {
        msg_type,
        transaction,
        username,
    })
}

/// Builds a Binding request with a USERNAME and nothing else (no integrity): for tests and
/// fuzz seeds, and the inverse of [`parse`] for round-trip checks.
pub fn emit_binding_request(transaction: &[u8; 12], username: &[u8], out: &mut Vec<u8>) {
    let padded = username.len().div_ceil(4) * 4;
    let len = 4 + padded;
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(transaction);
    out.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
    out.extend_from_slice(&(username.len() as u16).to_be_bytes());
    out.extend_from_slice(username);
    out.resize(out.len() + (padded - username.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1 sample request (IPv4 test vector): USERNAME "evtj:h6vY", with SOFTWARE
    /// before it, PRIORITY, ICE-CONTROLLED, MESSAGE-INTEGRITY and FINGERPRINT.
    const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae\
        802200105354554e207465737420636c69656e74\
        002400046e0001ff80290008932ff9b151263b36\
        000600096576746a3a68367659202020\
        000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2\
        80280004e57a3bcf";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_rfc5769_request() {
        let b = hex(RFC5769_REQUEST);
        let v = parse(&b).unwrap();
        assert!(v.is_binding_request());
        assert_eq!(v.username, Some(&b"evtj:h6vY"[..]));
        assert_eq!(v.local_ufrag(), Some(&b"evtj"[..]));
        assert_eq!(v.transaction, &b[8..20]);
    }

    #[test]
    fn rejects_truncated_every_length() {
        let b = hex(RFC5769_REQUEST);
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "accepted {n} bytes");
        }
    }

    #[test]
    fn rejects_non_stun() {
        let mut b = hex(RFC5769_REQUEST);
        b[4] ^= 1;
        assert_eq!(parse(&b), Err(StunError::NotStun));
        let mut b = hex(RFC5769_REQUEST);
        b[0] = 0x80;
        assert_eq!(parse(&b), Err(StunError::NotStun));
        // Trailing garbage after the announced length.
        let mut b = hex(RFC5769_REQUEST);
        b.push(0);
        assert_eq!(parse(&b), Err(StunError::Malformed));
    }

    #[test]
    fn emit_round_trip() {
        for name in [&b"a:b"[..], b"abcd:efgh", b"", b"ufrag1234:x"] {
            let mut out = Vec::new();
            emit_binding_request(&[7; 12], name, &mut out);
            let v = parse(&out).unwrap();
            assert_eq!(v.username, Some(name));
            assert_eq!(v.transaction, &[7; 12]);
        }
    }

    #[test]
    fn caps_attribute_count() {
        let mut out = Vec::new();
        out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        let n = MAX_ATTRIBUTES + 1;
        out.extend_from_slice(&((n * 4) as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&[0; 12]);
        for _ in 0..n {
            out.extend_from_slice(&[0x80, 0x22, 0, 0]);
        }
        assert_eq!(parse(&out), Err(StunError::TooManyAttributes));
    }
}
