//! RTMP handshake, server side: C0 C1 in, S0 S1 S2 out, C2 in.
//!
//! Spec: RTMP 1.0 section 5.2 describes the plain handshake: C0/S0 carry version 3, C1/S1 are
//! 1536 bytes (time, zero, 1528 random bytes), C2/S2 echo the peer's C1/S1.
//!
//! Flash Player, ffmpeg (librtmp-compatible) and OBS instead send a "digest" C1 (undocumented
//! by Adobe, described by the librtmp and crtmpserver sources): bytes 4..8 carry a non-zero
//! version and a 32-byte HMAC-SHA256 digest sits inside one of two 764-byte blocks. In scheme 0
//! the digest block follows the key block: its offset is `(b[8]+b[9]+b[10]+b[11]) % 728 + 12`;
//! in scheme 1 the digest block comes first: `(b[772]+..+b[775]) % 728 + 776`. The digest is
//! HMAC-SHA256 keyed with the first 30 bytes of the Flash Player key over C1 without the 32
//! digest bytes. A server that sees a valid digest answers with an S1 carrying its own digest
//! (keyed with the first 36 bytes of the Flash Media Server key, same scheme) and an S2 whose
//! last 32 bytes are `HMAC(HMAC(full FMS key, C1 digest), S2[..1504])`. Clients that see a
//! plain S1/S2 after sending a digest C1 accept it too, but ffmpeg checks S2 when S1 has one.
//!
//! Sans-IO: the 1528 random bytes of S1 come from the caller.

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// RTMP version byte of C0/S0 (plain RTMP; 6 and 8 would be RTMPE, not supported).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// Random bytes in S1 after time and version.
pub const RANDOM_SIZE: usize = HANDSHAKE_SIZE - 8;
const DIGEST_SIZE: usize = 32;
/// The version the server writes in S1 bytes 4..8 for the digest scheme (any non-zero value
/// works; this is the one FMS 3.5 used).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// Shared 32-byte tail of the Flash Player and Flash Media Server keys.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const FMS_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// Which digest layout a C1 used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestScheme {
    /// Key block first, digest block second (offset base 12).
    Scheme0,
    /// Digest block first (offset base 776).
    Scheme1,
}

/// Which handshake the client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// The RTMP 1.0 plain handshake (echo).
    Plain,
    /// The Flash Player digest handshake.
    Digest(DigestScheme),
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// C0 asked for a version other than 3 (RTMPE and friends are unsupported).
    #[error("unsupported RTMP version {0} in C0")]
    UnsupportedVersion(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting C0 + C1.
    C0C1,
    /// S0 S1 S2 sent; collecting C2.
    C2,
    /// Finished.
    Done,
}

/// Server-side handshake state machine.
///
/// Feed it with [`ServerHandshake::handle`]; it consumes only the handshake bytes from the
/// input, leaving whatever follows C2 (the first chunks) in place for the chunk decoder.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    /// C0+C1 or C2 collected so far. The copy is forced: the 1537-byte C0+C1 may arrive split
    /// across reads and must be contiguous to compute its digest. Never exceeds 1537 bytes.
    buf: BytesMut,
    s1_random: [u8; RANDOM_SIZE],
    kind: Option<HandshakeKind>,
}

impl ServerHandshake {
    /// A handshake whose S1 carries `s1_random` (the caller's RNG output).
    pub fn new(s1_random: [u8; RANDOM_SIZE]) -> Self {
        Self {
            state: State::C0C1,
            buf: BytesMut::with_capacity(1 + HANDSHAKE_SIZE),
            s1_random,
            kind: None,
        }
    }

    /// True once C2 has been received.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The client's handshake flavour, known once C1 has been received.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Consumes handshake bytes from the front of `input`, appending S0+S1+S2 to `out` as soon
    /// as C1 is complete. Returns `Ok(true)` once C2 has been received; bytes after C2 stay in
    /// `input`.
    pub fn handle(
        &mut self,
        input: &mut Bytes,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        loop {
            match self.state {
                State::C0C1 => {
                    if !self.fill(input, 1 + HANDSHAKE_SIZE) {
                        return Ok(false);
                    }
                    let version = self.buf.first().copied().unwrap_or(0);
                    if version != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion(version));
                    }
                    let c1 = self.buf.split().freeze().slice(1..);
                    self.respond(&c1, out);
                    self.state = State::C2;
                }
                State::C2 => {
                    if !self.fill(input, HANDSHAKE_SIZE) {
                        return Ok(false);
                    }
                    // C2 should echo S1, but ffmpeg and OBS do not all get it right and
                    // nothing is gained by checking it: accept any C2.
                    self.buf.clear();
                    self.state = State::Done;
                }
                State::Done => return Ok(true),
            }
        }
    }

    /// Moves bytes from `input` into `buf` until it holds `want`; true when it does.
    fn fill(&mut self, input: &mut Bytes, want: usize) -> bool {
        let need = want.saturating_sub(self.buf.len());
        let n = need.min(input.len());
        self.buf.extend_from_slice(&input.split_to(n));
        self.buf.len() == want
    }

    fn respond(&mut self, c1: &Bytes, out: &mut BytesMut) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        let c1_digest = find_client_digest(c1);
        match c1_digest {
            None => {
                self.kind = Some(HandshakeKind::Plain);
                out.put_u32(0);
                out.put_u32(0);
                out.put_slice(&self.s1_random);
                out.put_slice(c1);
            }
            Some((scheme, digest)) => {
                self.kind = Some(HandshakeKind::Digest(scheme));
                let mut s1 = [0u8; HANDSHAKE_SIZE];
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                s1[8..].copy_from_slice(&self.s1_random);
                let off = digest_offset(&s1, scheme);
                let d = packet_digest(&s1, off, &fms_key()[..FMS_TEXT.len()]);
                s1[off..off + DIGEST_SIZE].copy_from_slice(&d);
                out.put_slice(&s1);

                // S2's body only has to be arbitrary bytes; reuse the client's C1 so no second
                // random buffer is needed from the caller.
                let mut s2 = [0u8; HANDSHAKE_SIZE];
                s2.copy_from_slice(c1);
                let key = hmac_sha256(&fms_key(), &[&digest]);
                let sig = hmac_sha256(&key, &[&s2[..HANDSHAKE_SIZE - DIGEST_SIZE]]);
                s2[HANDSHAKE_SIZE - DIGEST_SIZE..].copy_from_slice(&sig);
                out.put_slice(&s2);
            }
        }
    }
}

/// The full 62-byte Flash Player key.
pub fn fp_key() -> [u8; 62] {
    let mut k = [0u8; 62];
    k[..30].copy_from_slice(FP_TEXT);
    k[30..].copy_from_slice(&KEY_TAIL);
    k
}

/// The full 68-byte Flash Media Server key.
pub fn fms_key() -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..36].copy_from_slice(FMS_TEXT);
    k[36..].copy_from_slice(&KEY_TAIL);
    k
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    // new_from_slice accepts keys of any length for HMAC; the error arm is unreachable.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_SIZE];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Offset of the 32-byte digest inside a 1536-byte C1/S1 for `scheme`. Always at most
/// `776 + 727 + 32 <= 1536`, so slicing with it cannot go out of bounds.
pub fn digest_offset(packet: &[u8; HANDSHAKE_SIZE], scheme: DigestScheme) -> usize {
    let base = match scheme {
        DigestScheme::Scheme0 => 8,
        DigestScheme::Scheme1 => 772,
    };
    let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

/// HMAC over the packet with the 32 bytes at `off` left out.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], off: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    hmac_sha256(key, &[&packet[..off], &packet[off + DIGEST_SIZE..]])
}

/// Writes a valid client digest into `c1` (bytes 4..8 must be non-zero): what a Flash Player
/// style client does. Used by tests and the load generator.
pub fn sign_client_c1(c1: &mut [u8; HANDSHAKE_SIZE], scheme: DigestScheme) {
    let off = digest_offset(c1, scheme);
    let d = packet_digest(c1, off, FP_TEXT);
    c1[off..off + DIGEST_SIZE].copy_from_slice(&d);
}

/// Checks whether S2 carries the digest a server must compute from the client's C1 digest.
pub fn verify_server_s2(c1: &[u8; HANDSHAKE_SIZE], scheme: DigestScheme, s2: &[u8]) -> bool {
    let off = digest_offset(c1, scheme);
    let Some(body) = s2.get(..HANDSHAKE_SIZE - DIGEST_SIZE) else {
        return false;
    };
    let key = hmac_sha256(&fms_key(), &[&c1[off..off + DIGEST_SIZE]]);
    Some(&hmac_sha256(&key, &[body])[..]) == s2.get(HANDSHAKE_SIZE - DIGEST_SIZE..)
}

/// Finds a valid client digest in C1: scheme 0 first (what ffmpeg and Flash send), then 1.
fn find_client_digest(c1: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    let c1: &[u8; HANDSHAKE_SIZE] = c1.try_into().ok()?;
    // A zero version field means the plain handshake (spec 5.2.3).
    if c1[4..8] == [0, 0, 0, 0] {
        return None;
    }
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let off = digest_offset(c1, scheme);
            let expected = packet_digest(c1, off, FP_TEXT);
            let mut found = [0u8; DIGEST_SIZE];
            found.copy_from_slice(&c1[off..off + DIGEST_SIZE]);
            (expected == found).then_some((scheme, found))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c1_pattern(version: [u8; 4]) -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        for (i, b) in c1.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        c1[..4].copy_from_slice(&[0, 0, 0, 9]);
        c1[4..8].copy_from_slice(&version);
        c1
    }

    fn run(c1: &[u8; HANDSHAKE_SIZE], split: usize) -> (ServerHandshake, BytesMut, Bytes) {
        let mut hs = ServerHandshake::new([0x5A; RANDOM_SIZE]);
        let mut wire = vec![RTMP_VERSION];
        wire.extend_from_slice(c1);
        wire.extend_from_slice(&[0xC2; HANDSHAKE_SIZE]);
        wire.extend_from_slice(b"rest");
        let mut out = BytesMut::new();
        let mut done = false;
        let mut rest = Vec::new();
        for piece in wire.chunks(split) {
            let mut input = Bytes::copy_from_slice(piece);
            done = hs.handle(&mut input, &mut out).unwrap();
            if done {
                // Bytes after C2 are left in the input for the chunk decoder.
                rest.extend_from_slice(&input);
            }
        }
        let rest = Bytes::from(rest);
        assert!(done);
        (hs, out, rest)
    }

    #[test]
    fn plain_handshake_echoes_c1() {
        let c1 = c1_pattern([0; 4]);
        let (hs, out, rest) = run(&c1, 4000);
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[9..1 + HANDSHAKE_SIZE], &[0x5A; RANDOM_SIZE][..]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
        assert_eq!(&rest[..], b"rest");
    }

    #[test]
    fn digest_schemes_verified_and_answered() {
        for scheme in [DigestScheme::Scheme0, DigestScheme::Scheme1] {
            let mut c1 = c1_pattern([0x80, 0, 7, 2]);
            sign_client_c1(&mut c1, scheme);
            for split in [1, 7, 1000, 5000] {
                let (hs, out, _) = run(&c1, split);
                assert_eq!(hs.kind(), Some(HandshakeKind::Digest(scheme)));
                // S1 carries a valid FMS digest at the same scheme's offset.
                let s1: &[u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
                let off = digest_offset(s1, scheme);
                assert_eq!(
                    &s1[off..off + 32],
                    &packet_digest(s1, off, &fms_key()[..36])
                );
                assert!(verify_server_s2(&c1, scheme, &out[1 + HANDSHAKE_SIZE..]));
            }
        }
    }

    #[test]
    fn corrupted_digest_falls_back_to_plain() {
        let mut c1 = c1_pattern([1, 2, 3, 4]);
        sign_client_c1(&mut c1, DigestScheme::Scheme0);
        let off = digest_offset(&c1, DigestScheme::Scheme0);
        c1[off] ^= 1;
        let (hs, out, _) = run(&c1, 1537);
        // Scheme 1 may match by chance only with probability 2^-256.
        assert_eq!(hs.kind(), Some(HandshakeKind::Plain));
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn wrong_version_refused() {
        let mut hs = ServerHandshake::new([0; RANDOM_SIZE]);
        let mut input = Bytes::from(vec![6u8; 1537]);
        let mut out = BytesMut::new();
        assert_eq!(
            hs.handle(&mut input, &mut out),
            Err(HandshakeError::UnsupportedVersion(6))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_waits() {
        let mut hs = ServerHandshake::new([0; RANDOM_SIZE]);
        let mut out = BytesMut::new();
        let mut input = Bytes::from(vec![3u8; 1536]);
        assert_eq!(hs.handle(&mut input, &mut out), Ok(false));
        assert!(out.is_empty() && input.is_empty());
        assert!(!hs.is_done());
    }
}
