//! Locally generated stream keys (api-digest §3.1, after Agora's Node sample).
//!
//! A key is `base64url_nopad(iv || AES-128-CTR(cert, iv, msgpack(claims)))` where the claims
//! are the msgpack map `{C: channel, U: uid, E: expiresAt, T?: templateId}`, the cipher key is
//! the 16 bytes of the 32-hex App certificate and `iv` is 16 random bytes. There is no MAC:
//! CTR is malleable, so [`decode`] is strict about structure; a key that decrypts to anything
//! but a well-formed claims map is an [`IllegalKey`] (abort code 1).
//!
//! [`encode`] writes msgpack exactly as the reference encoder (npm `msgpack-lite` 0.1.26)
//! does, so both produce the same key for the same IV:
//! - the map is a fixmap in the order `C, U, E[, T]`;
//! - strings are fixstr below 32 bytes, str8 up to 255 bytes, then str16 / str32;
//! - `E` below 2^31 is the smallest unsigned form (positive fixint, uint8/16/32); from 2^31 on
//!   msgpack-lite writes a float64 (its integer path goes through a 32-bit `value | 0`), and
//!   so do we, up to 2^53; above 2^53 (not representable in a JavaScript number) we write
//!   uint64 so that the value survives exactly.
//!
//! [`decode`] accepts any valid msgpack for the same map:
//! - keys in any order, strings in any str width; `bin` is *not* accepted for strings (the
//!   reference never writes it and it would admit non-UTF-8 channel names);
//! - `E` as any non-negative integer form, or a float32/float64 holding a non-negative
//!   integral value (what msgpack-lite writes from 2^31 on);
//! - `T` may be absent or nil;
//! - unknown extra keys (of any type, with any value) are skipped, so a future field does not
//!   invalidate older gateways; a repeated known key is rejected as ambiguous;
//! - trailing bytes after the map are rejected;
//! - the text is base64url, with or without `=` padding (the reference strips it); the
//!   standard alphabet's `+` and `/` are rejected.
//!
//! Work is bounded: the key text is capped at [`MAX_KEY_CHARS`], the map at
//! [`MAX_MAP_ENTRIES`], and skipping unknown values is iterative with a count checked against
//! the bytes left, so nothing recurses or allocates by an untrusted length.

use aes::Aes128;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cipher::{InnerIvInit, KeyInit, StreamCipher};
use rmp::Marker;

/// Longest stream key text accepted by [`decode`]. Guards the stack buffer the key is decoded
/// into and the work per connection attempt; legitimate keys (channel < 64 bytes, uid <= 255
/// bytes, a template id) stay well under 700 characters.
pub const MAX_KEY_CHARS: usize = 2048;

/// Most entries accepted in the claims map (4 known plus room for future fields). Guards the
/// parse loop against a map header claiming billions of entries.
pub const MAX_MAP_ENTRIES: u32 = 16;

/// Length of the IV prefix, which is also the AES block size.
pub const IV_LEN: usize = 16;

/// Bytes a [`MAX_KEY_CHARS`]-character base64 text decodes to at most.
const MAX_RAW_LEN: usize = MAX_KEY_CHARS / 4 * 3;

/// JavaScript's largest exactly representable integer (2^53 - 1): the reference encoder's
/// float64 path is exact up to here.
const JS_MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// The base64url engine: no padding written, padding optional on input.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An App certificate: the AES-128 key local stream keys are encrypted with. Holds the
/// expanded key schedule too, so decoding many keys under one app does not redo it.
#[derive(Clone)]
pub struct Certificate {
    bytes: [u8; 16],
    cipher: Aes128,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Certificate {}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The certificate is a secret: keep it out of logs.
        f.write_str("Certificate(..)")
    }
}

/// The certificate text is not 32 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an App certificate is 32 hexadecimal digits")]
pub struct BadCertificate;

impl Certificate {
    /// Parses the 32-hex-digit App certificate (either case).
    pub fn from_hex(hex: &str) -> Result<Certificate, BadCertificate> {
        let digits = hex.as_bytes();
        if digits.len() != 32 {
            return Err(BadCertificate);
        }
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_val(*hi)?, hex_val(*lo)?),
                _ => return Err(BadCertificate),
            };
            *byte = (hi << 4) | lo;
        }
        Ok(Certificate {
            bytes: out,
            cipher: Aes128::new(&out.into()),
        })
    }

    /// The 16 key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// The CTR keystream for `iv`.
    fn keystream(&self, iv: &[u8; IV_LEN]) -> Aes128Ctr {
        Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(self.cipher.clone(), iv.into()))
    }
}

fn hex_val(c: u8) -> Result<u8, BadCertificate> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(BadCertificate),
    }
}

/// What a stream key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaims {
    /// `C`: the RTC channel.
    pub channel: String,
    /// `U`: the RTC uid, as a string.
    pub uid: String,
    /// `E`: expiry, Unix seconds.
    pub expires_at: u64,
    /// `T`: the stream template, if any.
    pub template_id: Option<String>,
}

impl KeyClaims {
    /// Whether the key has expired at `now_unix` (seconds). The key is valid strictly before
    /// `expires_at`; `E = 0` is therefore always expired (the service documents no
    /// "never expires" value for local keys).
    pub fn is_expired(&self, now_unix: u64) -> bool {
        now_unix >= self.expires_at
    }

    /// Checks channel and uid against the service's naming rules (api-digest §1.3): channel
    /// under 64 bytes, uid at most 255 bytes, both from the 89-character set, and not both
    /// empty or `"0"`. [`decode`] does not apply these (the reference tool does not either);
    /// the gateway calls this before admitting a stream (abort code 1 on failure).
    pub fn check_names(&self) -> Result<(), IllegalKey> {
        let c = self.channel.as_bytes();
        if c.len() > MAX_CHANNEL_BYTES || !c.iter().all(|&b| is_name_char(b)) {
            return Err(IllegalKey::BadChannel);
        }
        let u = self.uid.as_bytes();
        if u.len() > MAX_UID_BYTES || !u.iter().all(|&b| is_name_char(b)) {
            return Err(IllegalKey::BadUid);
        }
        let blank = |s: &str| s.is_empty() || s == "0";
        if blank(&self.channel) && blank(&self.uid) {
            return Err(IllegalKey::NoIdentity);
        }
        Ok(())
    }
}

/// Why a stream key was refused. Every variant is the publisher's fault and maps to abort code
/// 1 ("illegal streamKey"); the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalKey {
    /// Longer than [`MAX_KEY_CHARS`].
    #[error("stream key longer than {MAX_KEY_CHARS} characters")]
    TooLong,
    /// Not base64url text.
    #[error("stream key is not base64url")]
    NotBase64,
    /// No ciphertext after the IV.
    #[error("stream key too short")]
    TooShort,
    /// The plaintext is not well-formed msgpack (truncated, or a marker never used here).
    #[error("stream key payload is not well-formed msgpack")]
    Malformed,
    /// The top-level value is not a map, or the map has more than [`MAX_MAP_ENTRIES`].
    #[error("stream key payload is not a claims map")]
    NotAMap,
    /// A known field has the wrong type (or is not UTF-8, or `E` is negative/fractional).
    #[error("stream key field {0} has the wrong type")]
    WrongType(char),
    /// A known field appears twice.
    #[error("stream key field {0} appears twice")]
    Duplicate(char),
    /// A required field (`C`, `U`, `E`) is missing.
    #[error("stream key field {0} is missing")]
    Missing(char),
    /// Bytes follow the claims map.
    #[error("stream key payload has trailing bytes")]
    TrailingBytes,
    /// The channel is 64 bytes or longer or has a character outside the allowed set
    /// (from [`KeyClaims::check_names`], not from [`decode`]).
    #[error("stream key channel name is not allowed")]
    BadChannel,
    /// The uid is longer than 255 bytes or has a character outside the allowed set
    /// (from [`KeyClaims::check_names`]).
    #[error("stream key uid is not allowed")]
    BadUid,
    /// Channel and uid are both empty or `"0"` (from [`KeyClaims::check_names`]).
    #[error("stream key has neither channel nor uid")]
    NoIdentity,
}

/// Longest channel name, in bytes (the service: "under 64 bytes").
pub const MAX_CHANNEL_BYTES: usize = 63;

/// Longest string uid, in bytes.
pub const MAX_UID_BYTES: usize = 255;

/// Whether `b` is in the 89-character set the service allows in channel names and string
/// uids: ASCII letters, digits, space and `! # $ % & ( ) + - : ; < = . > ? @ [ ] ^ _ { } | ~ ,`.
pub fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" !#$%&()+-:;<=.>?@[]^_{}|~,".contains(&b)
}

/// Builds the stream key for `claims`, encrypted under `cert` with the caller's random `iv`.
pub fn encode(cert: &Certificate, claims: &KeyClaims, iv: [u8; IV_LEN]) -> String {
    let mut buf = rmp::encode::ByteBuf::with_capacity(64);
    buf.as_mut_vec().extend_from_slice(&iv);
    let entries = if claims.template_id.is_some() { 4 } else { 3 };
    // The writes below go into a growable buffer whose error type is uninhabited.
    let Ok(_) = rmp::encode::write_map_len(&mut buf, entries);
    write_str(&mut buf, "C");
    write_str(&mut buf, &claims.channel);
    write_str(&mut buf, "U");
    write_str(&mut buf, &claims.uid);
    write_str(&mut buf, "E");
    write_expiry(&mut buf, claims.expires_at);
    if let Some(t) = &claims.template_id {
        write_str(&mut buf, "T");
        write_str(&mut buf, t);
    }
    let mut blob = buf.into_vec();
    if let Some(body) = blob.get_mut(IV_LEN..) {
        cert.keystream(&iv).apply_keystream(body);
    }
    B64.encode(&blob)
}

fn write_str(buf: &mut rmp::encode::ByteBuf, s: &str) {
    // rmp picks fixstr / str8 / str16 / str32 by byte length, as msgpack-lite does.
    let Ok(()) = rmp::encode::write_str(buf, s);
}

fn write_expiry(buf: &mut rmp::encode::ByteBuf, e: u64) {
    if e < 1 << 31 {
        let Ok(_) = rmp::encode::write_uint(buf, e);
    } else if e <= JS_MAX_SAFE_INTEGER {
        // msgpack-lite's quirk, reproduced for byte equality; exact because e <= 2^53 - 1.
        let Ok(()) = rmp::encode::write_f64(buf, e as f64);
    } else {
        let Ok(()) = rmp::encode::write_u64(buf, e);
    }
}

/// Decrypts and validates a stream key.
pub fn decode(cert: &Certificate, key: &str) -> Result<KeyClaims, IllegalKey> {
    if key.len() > MAX_KEY_CHARS {
        return Err(IllegalKey::TooLong);
    }
    let mut raw = [0u8; MAX_RAW_LEN];
    let n = B64
        .decode_slice(key.as_bytes(), &mut raw)
        .map_err(|_| IllegalKey::NotBase64)?;
    let raw = raw.get_mut(..n).ok_or(IllegalKey::NotBase64)?;
    if raw.len() <= IV_LEN {
        return Err(IllegalKey::TooShort);
    }
    let (iv, body) = raw.split_at_mut(IV_LEN);
    let iv: [u8; IV_LEN] = (&*iv).try_into().map_err(|_| IllegalKey::TooShort)?;
    cert.keystream(&iv).apply_keystream(body);
    parse_claims(body)
}

/// Parses the plaintext claims map (exposed for tests and the fuzz target).
pub fn parse_claims(plain: &[u8]) -> Result<KeyClaims, IllegalKey> {
    let mut r = Reader { buf: plain };
    let entries = match r.marker()? {
        Marker::FixMap(n) => u32::from(n),
        Marker::Map16 => u32::from(r.be_u16()?),
        Marker::Map32 => r.be_u32()?,
        _ => return Err(IllegalKey::NotAMap),
    };
    if entries > MAX_MAP_ENTRIES {
        return Err(IllegalKey::NotAMap);
    }
    let (mut c, mut u, mut e, mut t) = (None, None, None, None::<Option<String>>);
    for _ in 0..entries {
        let marker = r.marker()?;
        let name = match str_len(&mut r, marker)? {
            Some(len) => r.take(len)?,
            None => {
                // A non-string key is nothing we know: skip its value too.
                r.skip_after(marker)?;
                r.skip_value()?;
                continue;
            }
        };
        match name {
            b"C" => set_once(&mut c, 'C', r.string('C')?)?,
            b"U" => set_once(&mut u, 'U', r.string('U')?)?,
            b"E" => set_once(&mut e, 'E', r.expiry()?)?,
            b"T" => {
                let m = r.marker()?;
                let v = if m == Marker::Null {
                    None
                } else {
                    Some(r.string_after(m, 'T')?)
                };
                set_once(&mut t, 'T', v)?;
            }
            _ => r.skip_value()?,
        }
    }
    if !r.buf.is_empty() {
        return Err(IllegalKey::TrailingBytes);
    }
    Ok(KeyClaims {
        channel: c.ok_or(IllegalKey::Missing('C'))?,
        uid: u.ok_or(IllegalKey::Missing('U'))?,
        expires_at: e.ok_or(IllegalKey::Missing('E'))?,
        template_id: t.flatten(),
    })
}

fn set_once<T>(slot: &mut Option<T>, name: char, v: T) -> Result<(), IllegalKey> {
    if slot.is_some() {
        return Err(IllegalKey::Duplicate(name));
    }
    *slot = Some(v);
    Ok(())
}

/// The byte length of a str marker's payload (reading its length field), or `None` if the
/// marker is not a string.
fn str_len(r: &mut Reader<'_>, m: Marker) -> Result<Option<usize>, IllegalKey> {
    Ok(Some(match m {
        Marker::FixStr(n) => usize::from(n),
        Marker::Str8 => usize::from(r.u8()?),
        Marker::Str16 => usize::from(r.be_u16()?),
        Marker::Str32 => r.be_u32()? as usize,
        _ => return Ok(None),
    }))
}

/// A cursor over the plaintext that never reads past its end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IllegalKey> {
        if n > self.buf.len() {
            return Err(IllegalKey::Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IllegalKey> {
        self.take(N)?.try_into().map_err(|_| IllegalKey::Malformed)
    }

    fn u8(&mut self) -> Result<u8, IllegalKey> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn be_u16(&mut self) -> Result<u16, IllegalKey> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn be_u32(&mut self) -> Result<u32, IllegalKey> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn be_u64(&mut self) -> Result<u64, IllegalKey> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn marker(&mut self) -> Result<Marker, IllegalKey> {
        Ok(Marker::from_u8(self.u8()?))
    }

    fn string(&mut self, field: char) -> Result<String, IllegalKey> {
        let m = self.marker()?;
        self.string_after(m, field)
    }

    fn string_after(&mut self, m: Marker, field: char) -> Result<String, IllegalKey> {
        let len = str_len(self, m)?.ok_or(IllegalKey::WrongType(field))?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| IllegalKey::WrongType(field))
    }

    fn expiry(&mut self) -> Result<u64, IllegalKey> {
        let wrong = IllegalKey::WrongType('E');
        Ok(match self.marker()? {
            Marker::FixPos(n) => u64::from(n),
            Marker::U8 => u64::from(self.u8()?),
            Marker::U16 => u64::from(self.be_u16()?),
            Marker::U32 => u64::from(self.be_u32()?),
            Marker::U64 => self.be_u64()?,
            // Signed forms are valid msgpack for non-negative values too.
            Marker::I8 => u64::try_from(i8::from_be_bytes(self.array()?)).map_err(|_| wrong)?,
            Marker::I16 => u64::try_from(i16::from_be_bytes(self.array()?)).map_err(|_| wrong)?,
            Marker::I32 => u64::try_from(i32::from_be_bytes(self.array()?)).map_err(|_| wrong)?,
            Marker::I64 => u64::try_from(i64::from_be_bytes(self.array()?)).map_err(|_| wrong)?,
            Marker::F32 => float_to_u64(f64::from(f32::from_bits(self.be_u32()?))).ok_or(wrong)?,
            Marker::F64 => float_to_u64(f64::from_bits(self.be_u64()?)).ok_or(wrong)?,
            _ => return Err(wrong),
        })
    }

    /// Consumes the payload that follows `m` for scalar and container headers, returning the
    /// number of nested values the container holds (0 for scalars).
    fn skip_after(&mut self, m: Marker) -> Result<u64, IllegalKey> {
        let fixed = |n: usize, r: &mut Self| r.take(n).map(|_| 0u64);
        match m {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                Ok(0)
            }
            Marker::U8 | Marker::I8 => fixed(1, self),
            Marker::U16 | Marker::I16 => fixed(2, self),
            Marker::U32 | Marker::I32 | Marker::F32 => fixed(4, self),
            Marker::U64 | Marker::I64 | Marker::F64 => fixed(8, self),
            Marker::FixStr(n) => fixed(usize::from(n), self),
            Marker::Str8 | Marker::Bin8 => {
                let n = self.u8()?;
                fixed(usize::from(n), self)
            }
            Marker::Str16 | Marker::Bin16 => {
                let n = self.be_u16()?;
                fixed(usize::from(n), self)
            }
            Marker::Str32 | Marker::Bin32 => {
                let n = self.be_u32()?;
                fixed(n as usize, self)
            }
            Marker::FixArray(n) => Ok(u64::from(n)),
            Marker::Array16 => Ok(u64::from(self.be_u16()?)),
            Marker::Array32 => Ok(u64::from(self.be_u32()?)),
            Marker::FixMap(n) => Ok(2 * u64::from(n)),
            Marker::Map16 => Ok(2 * u64::from(self.be_u16()?)),
            Marker::Map32 => Ok(2 * u64::from(self.be_u32()?)),
            Marker::FixExt1 => fixed(2, self),
            Marker::FixExt2 => fixed(3, self),
            Marker::FixExt4 => fixed(5, self),
            Marker::FixExt8 => fixed(9, self),
            Marker::FixExt16 => fixed(17, self),
            Marker::Ext8 => {
                let n = self.u8()?;
                fixed(usize::from(n) + 1, self)
            }
            Marker::Ext16 => {
                let n = self.be_u16()?;
                fixed(usize::from(n) + 1, self)
            }
            Marker::Ext32 => {
                let n = self.be_u32()?;
                fixed((n as usize).saturating_add(1), self)
            }
            Marker::Reserved => Err(IllegalKey::Malformed),
        }
    }

    /// Skips one complete value of any shape without recursion: `pending` counts values still
    /// to skip. Every value takes at least one byte, so a count above the bytes left is
    /// malformed, which bounds the loop by the input length.
    fn skip_value(&mut self) -> Result<(), IllegalKey> {
        let mut pending: u64 = 1;
        while pending > 0 {
            let m = self.marker()?;
            pending = pending - 1 + self.skip_after(m)?;
            if pending > self.buf.len() as u64 {
                return Err(IllegalKey::Malformed);
            }
        }
        Ok(())
    }
}

/// A float that holds a non-negative integral value exactly representable in u64.
fn float_to_u64(f: f64) -> Option<u64> {
    // 2^64 as f64; anything at or above it does not fit.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < LIMIT).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "0123456789abcdef0123456789abcdef";
    const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const VECTOR_KEY: &str = "AAECAwQFBgcICQoLDA0ODy40IYBrBlUQBXd2U8VgC-Yyl26zRA";

    fn cert() -> Certificate {
        Certificate::from_hex(CERT).unwrap()
    }

    fn claims(c: &str, u: &str, e: u64, t: Option<&str>) -> KeyClaims {
        KeyClaims {
            channel: c.into(),
            uid: u.into(),
            expires_at: e,
            template_id: t.map(Into::into),
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Encrypts a hand-made plaintext with the test cert and IV.
    fn key_for_plain(plain: &[u8]) -> String {
        let mut blob = IV.to_vec();
        let mut body = plain.to_vec();
        cert().keystream(&IV).apply_keystream(&mut body);
        blob.extend_from_slice(&body);
        B64.encode(blob)
    }

    #[test]
    fn spec_vector_encodes() {
        let key = encode(&cert(), &claims("test", "123", 1_700_000_000, None), IV);
        assert_eq!(key, VECTOR_KEY);
    }

    #[test]
    fn spec_vector_decodes() {
        let c = decode(&cert(), VECTOR_KEY).unwrap();
        assert_eq!(c, claims("test", "123", 1_700_000_000, None));
        let plain = unhex("83a143a474657374a155a3313233a145ce6553f100");
        assert_eq!(parse_claims(&plain).unwrap(), c);
    }

    #[test]
    fn padded_input_accepted_standard_alphabet_refused() {
        let padded = format!("{VECTOR_KEY}==");
        assert!(decode(&cert(), &padded).is_ok());
        let std_alpha = VECTOR_KEY.replace('-', "+");
        assert_eq!(decode(&cert(), &std_alpha), Err(IllegalKey::NotBase64));
    }

    #[test]
    fn encodes_like_msgpack_lite() {
        // Byte forms checked against msgpack-lite 0.1.26 (see tests/streamkey_interop.rs).
        let plain = |cl: &KeyClaims| {
            let key = encode(&cert(), cl, IV);
            let mut raw = B64.decode(key).unwrap();
            cert().keystream(&IV).apply_keystream(&mut raw[16..]);
            raw[16..].to_vec()
        };
        let p = plain(&claims(&"a".repeat(32), "1", 127, Some("t")));
        assert_eq!(&p[..5], &[0x84, 0xa1, b'C', 0xd9, 32]);
        assert!(p.ends_with(&[0xa1, b'E', 0x7f, 0xa1, b'T', 0xa1, b't']));
        let p = plain(&claims("c", &"u".repeat(256), 128, None));
        assert_eq!(&p[5..10], &[0xa1, b'U', 0xda, 0x01, 0x00]);
        assert!(p.ends_with(&[0xa1, b'E', 0xcc, 0x80]));
        let p = plain(&claims("c", "u", 3_000_000_000, None));
        assert!(p.ends_with(&[0xcb, 0x41, 0xe6, 0x5a, 0x0b, 0xc0, 0, 0, 0]));
        let p = plain(&claims("c", "u", u64::MAX, None));
        assert!(p.ends_with(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn accepts_other_valid_encodings() {
        // Map16, reordered keys, str16 key names, int64 E, nil T, unknown keys with nested values.
        let plain = unhex(concat!(
            "de0006",
            "a145d300000000000000ff",
            "a155a131",
            "da0001", /* str16 "C" */
            "43",
            "a163",
            "a154c0",
            "a15893c0a178", /* X: [nil, "x", {1: [2]}] */
            "81019102",
            "07c3", /* non-string key 7: true */
        ));
        assert_eq!(parse_claims(&plain).unwrap(), claims("c", "1", 255, None));
        let f32_e = unhex("83a143a163a155a131a145ca4f000000"); // E = 2^31 as float32
        assert_eq!(parse_claims(&f32_e).unwrap().expires_at, 1 << 31);
    }

    #[test]
    fn rejects_bad_claims() {
        let cases: &[(&str, IllegalKey)] = &[
            ("", IllegalKey::Malformed),
            ("93a143a163a155", IllegalKey::NotAMap),
            ("df00010000", IllegalKey::NotAMap),
            ("82a143a163a155a131", IllegalKey::Missing('E')),
            ("83a143a163a155a131a145ff", IllegalKey::WrongType('E')),
            (
                "83a143a163a155a131a145cb3ff8000000000000",
                IllegalKey::WrongType('E'),
            ),
            ("83a143c40163a155a131a14501", IllegalKey::WrongType('C')),
            ("83a143a1ffa155a131a14501", IllegalKey::WrongType('C')),
            (
                "84a143a163a143a163a155a131a14501",
                IllegalKey::Duplicate('C'),
            ),
            ("83a143a163a155a131a14501c0", IllegalKey::TrailingBytes),
            ("83a143a163a155a131a145", IllegalKey::Malformed),
            (
                "84a143a163a155a131a14501a158dd7fffffff",
                IllegalKey::Malformed,
            ),
            ("84a143a163a155a131a14501a158c1", IllegalKey::Malformed),
        ];
        for (hex, want) in cases {
            assert_eq!(parse_claims(&unhex(hex)), Err(*want), "{hex}");
            // Through the whole pipeline too (an empty body is caught earlier, as too short).
            if !hex.is_empty() {
                assert_eq!(
                    decode(&cert(), &key_for_plain(&unhex(hex))),
                    Err(*want),
                    "{hex}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            decode(&cert(), "AAECAwQFBgcICQoLDA0ODw"),
            Err(IllegalKey::TooShort)
        );
        assert_eq!(decode(&cert(), "not base64!"), Err(IllegalKey::NotBase64));
        let long = "A".repeat(MAX_KEY_CHARS + 4);
        assert_eq!(decode(&cert(), &long), Err(IllegalKey::TooLong));
        // Every truncation of the vector is refused, never a panic.
        for n in 0..VECTOR_KEY.len() {
            assert!(decode(&cert(), &VECTOR_KEY[..n]).is_err(), "prefix {n}");
        }
        // A different certificate decrypts to garbage, which is refused.
        let other = Certificate::from_hex("ffffffffffffffffffffffffffffffff").unwrap();
        assert!(decode(&other, VECTOR_KEY).is_err());
    }

    #[test]
    fn certificate_parsing() {
        assert_eq!(
            Certificate::from_hex(CERT).unwrap().as_bytes()[..2],
            [0x01, 0x23]
        );
        assert!(Certificate::from_hex(&CERT.to_uppercase()).is_ok());
        assert_eq!(Certificate::from_hex(&CERT[1..]), Err(BadCertificate));
        assert_eq!(
            Certificate::from_hex(&CERT.replace('0', "g")),
            Err(BadCertificate)
        );
        assert_eq!(format!("{:?}", cert()), "Certificate(..)");
    }

    #[test]
    fn name_rules() {
        assert_eq!(claims("test", "123", 1, None).check_names(), Ok(()));
        assert_eq!(claims("", "123", 1, None).check_names(), Ok(()));
        assert_eq!(claims("a b!{}|~,", "u-1", 1, None).check_names(), Ok(()));
        assert_eq!(
            claims(&"c".repeat(63), &"u".repeat(255), 1, None).check_names(),
            Ok(())
        );
        assert_eq!(
            claims(&"c".repeat(64), "1", 1, None).check_names(),
            Err(IllegalKey::BadChannel)
        );
        assert_eq!(
            claims("a/b", "1", 1, None).check_names(),
            Err(IllegalKey::BadChannel)
        );
        assert_eq!(
            claims("é", "1", 1, None).check_names(),
            Err(IllegalKey::BadChannel)
        );
        assert_eq!(
            claims("c", &"u".repeat(256), 1, None).check_names(),
            Err(IllegalKey::BadUid)
        );
        assert_eq!(
            claims("c", "a\"b", 1, None).check_names(),
            Err(IllegalKey::BadUid)
        );
        assert_eq!(
            claims("", "0", 1, None).check_names(),
            Err(IllegalKey::NoIdentity)
        );
        assert_eq!(
            claims("0", "", 1, None).check_names(),
            Err(IllegalKey::NoIdentity)
        );
        let allowed = (0..=255u8).filter(|&b| is_name_char(b)).count();
        assert_eq!(allowed, 89);
    }

    #[test]
    fn expiry_boundary() {
        let c = claims("c", "u", 100, None);
        assert!(!c.is_expired(99));
        assert!(c.is_expired(100));
        assert!(claims("c", "u", 0, None).is_expired(0));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(c in "[a-zA-Z0-9 !#$%&()+\\-:;<=.>?@\\[\\]^_{}|~,]{0,63}",
                      u in "[0-9a-z]{0,300}", e: u64, t in proptest::option::of("[a-z0-9]{0,40}"),
                      iv: [u8; 16]) {
            let cl = claims(&c, &u, e, t.as_deref());
            let key = encode(&cert(), &cl, iv);
            proptest::prop_assert_eq!(decode(&cert(), &key), Ok(cl));
        }
    }
}

/// True when every byte of `s` is in the 89-character set of channel names and string uids
/// (ASCII letters, digits, space and ``! # $ % & ( ) + - : ; < = . > ? @ [ ] ^ _ { } | ~ ,``).
pub fn is_name(s: &str) -> bool {
    s.bytes().all(is_name_char)
}

/// Normalises a uid the way the documented service does (api-digest §1.3): a numeric string
/// in 1..=4294967295 becomes its integer form without leading zeros; a larger or non-numeric
/// one stays a string uid (at most 255 bytes of the name set); `""` or all zeros become the
/// integer `random()` returns (a zero from it is taken as 1). `None` when the uid is invalid.
pub fn normalize_uid(uid: &str, random: impl FnOnce() -> u32) -> Option<String> {
    if uid.bytes().all(|b| b == b'0') {
        return Some(random().max(1).to_string());
    }
    if uid.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = uid.trim_start_matches('0');
        if trimmed.len() <= 10
            && let Ok(n) = trimmed.parse::<u64>()
            && (1..=u64::from(u32::MAX)).contains(&n)
        {
            return Some(n.to_string());
        }
    }
    (uid.len() <= MAX_UID_BYTES && is_name(uid)).then(|| uid.to_string())
}

#[cfg(test)]
mod uid_tests {
    use super::normalize_uid;

    #[test]
    fn uid_forms() {
        assert_eq!(normalize_uid("0123", || 7).as_deref(), Some("123"));
        assert_eq!(
            normalize_uid("4294967295", || 7).as_deref(),
            Some("4294967295")
        );
        assert_eq!(
            normalize_uid("4294967296", || 7).as_deref(),
            Some("4294967296")
        );
        assert_eq!(normalize_uid("123abc", || 7).as_deref(), Some("123abc"));
        assert_eq!(normalize_uid("", || 7).as_deref(), Some("7"));
        assert_eq!(normalize_uid("0", || 0).as_deref(), Some("1"));
        assert_eq!(normalize_uid("a/b", || 7), None);
        assert_eq!(normalize_uid(&"x".repeat(256), || 7), None);
    }
}
