//! SRT encryption: the key material message, key derivation, key wrap and payload
//! decryption.
//!
//! Spec: draft-sharabayko-srt-01 section 3.2.2 (Key Material message) and section 6
//! (Encryption): 6.1 overview, 6.1.4 key encrypting key (PBKDF2-HMAC-SHA1, 2048 iterations,
//! salt = the last 64 bits of the KM salt), 6.1.5 key wrap (RFC 3394), 6.2 AES-CTR with an IV
//! built from the salt and the packet sequence number. libsrt's `haicrypt` is the reference
//! for details the draft leaves open.
//!
//! Keys are never logged or printed: [`SessionKeys`] has a redacting `Debug`.

use super::packet::{DataPacket, KeyFlags, PacketError, SeqNo, be32, out_buf};
use aes::{Aes128, Aes192, Aes256};
use bytes::Bytes;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit, StreamCipher, StreamCipherCoreWrapper};

/// KM message signature ("HAI" in PnP Vendor ID form), bytes 1..3.
pub const KM_SIGN: u16 = 0x2029;
/// KM message version (the V field).
pub const KM_VERSION: u8 = 1;
/// KM message packet type (the PT field): keying material.
pub const KM_PACKET_TYPE: u8 = 2;
/// Cipher code for AES-CTR, the only one this module implements.
pub const CIPHER_AES_CTR: u8 = 2;
/// Stream encapsulation code for SRT (SE field).
pub const SE_SRT: u8 = 2;
/// Salt length the spec mandates, bytes.
pub const SALT_LEN: usize = 16;
/// Bytes of the salt fed to PBKDF2 (its last 64 bits).
pub const PBKDF2_SALT_LEN: usize = 8;
/// PBKDF2 iteration count fixed by the spec.
pub const PBKDF2_ITERATIONS: u32 = 2048;
/// Longest passphrase accepted, bytes (libsrt allows 10..=79); guards the PBKDF2 input.
pub const MAX_PASSPHRASE_LEN: usize = 79;
/// Shortest passphrase accepted, bytes (libsrt's minimum).
pub const MIN_PASSPHRASE_LEN: usize = 10;
/// RFC 3394 default integrity check value.
const RFC3394_IV: [u8; 8] = [0xA6; 8];
const KM_HEADER_LEN: usize = 16;

/// Errors of the encryption layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's KM message is malformed (peer fault).
    #[error("peer sent a malformed key material message: {0}")]
    Malformed(&'static str),
    /// The peer asks for something this implementation does not do (incompatible peer).
    #[error("unsupported key material: {0}")]
    Unsupported(&'static str),
    /// The RFC 3394 integrity check failed: the passphrases differ. The engine rejects the
    /// connection with `SRT_REJ_BADSECRET`.
    #[error("wrong passphrase (key unwrap integrity check failed)")]
    BadSecret,
    /// The caller configured a key length that differs from the peer's.
    #[error("key length mismatch: configured {configured}, peer uses {peer}")]
    KeyLengthMismatch {
        /// Configured `pbkeylen`.
        configured: usize,
        /// The peer's key length.
        peer: usize,
    },
    /// The local passphrase is outside `MIN_PASSPHRASE_LEN..=MAX_PASSPHRASE_LEN` (local
    /// configuration fault).
    #[error("passphrase length {0} outside 10..=79")]
    BadPassphrase(usize),
    /// A data packet names a key this connection does not have.
    #[error("data packet uses a key that was not exchanged")]
    NoKey,
    /// Output buffer too small (internal fault).
    #[error(transparent)]
    Buffer(#[from] PacketError),
}

/// A passphrase kept out of `Debug` output (and so out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    /// Checks the length (`MIN_PASSPHRASE_LEN..=MAX_PASSPHRASE_LEN` bytes, as libsrt).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, CryptoError> {
        let v = bytes.into();
        if !(MIN_PASSPHRASE_LEN..=MAX_PASSPHRASE_LEN).contains(&v.len()) {
            return Err(CryptoError::BadPassphrase(v.len()));
        }
        Ok(Self(v))
    }

    /// The passphrase bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// A Key Material message (KMREQ / KMRSP body, spec 3.2.2). Salt and wrapped keys are slices
/// of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Which keys the message carries (even, odd or both).
    pub keys: KeyFlags,
    /// Key encryption key index (0 for passphrase-derived KEKs).
    pub keki: u32,
    /// Cipher code ([`CIPHER_AES_CTR`]).
    pub cipher: u8,
    /// Authentication code (0: none).
    pub auth: u8,
    /// Stream encapsulation ([`SE_SRT`]).
    pub se: u8,
    /// The salt ([`SALT_LEN`] bytes).
    pub salt: Bytes,
    /// Length of one session key: 16, 24 or 32.
    pub key_len: usize,
    /// RFC 3394-wrapped session keys (`8 + key_len * count` bytes; even first).
    pub wrapped: Bytes,
}

impl KeyMaterial {
    /// Parses a KM message.
    pub fn parse(b: Bytes) -> Result<KeyMaterial, CryptoError> {
        let h = b
            .get(..KM_HEADER_LEN)
            .ok_or(CryptoError::Malformed("short"))?;
        let (s_v_pt, sign) = (h[0], u16::from_be_bytes([h[1], h[2]]));
        if s_v_pt >> 7 != 0
            || (s_v_pt >> 4) & 7 != KM_VERSION
            || s_v_pt & 0xF != KM_PACKET_TYPE
            || sign != KM_SIGN
        {
            return Err(CryptoError::Malformed("header"));
        }
        let keys = KeyFlags::from_bits(u32::from(h[3]));
        if keys == KeyFlags::None {
            return Err(CryptoError::Malformed("no key"));
        }
        let keki = be32(&h[4..8]);
        let (cipher, auth, se) = (h[8], h[9], h[10]);
        let salt_len = usize::from(h[14]) * 4;
        let key_len = usize::from(h[15]) * 4;
        if salt_len != SALT_LEN {
            return Err(CryptoError::Malformed("salt length"));
        }
        if !matches!(key_len, 16 | 24 | 32) {
            return Err(CryptoError::Malformed("key length"));
        }
        let count = if keys == KeyFlags::Both { 2 } else { 1 };
        let wrapped_len = 8 + key_len * count;
        let salt_end = KM_HEADER_LEN + salt_len;
        let end = salt_end + wrapped_len;
        if b.len() != end {
            return Err(CryptoError::Malformed("length"));
        }
        Ok(KeyMaterial {
            keys,
            keki,
            cipher,
            auth,
            se,
            salt: b.slice(KM_HEADER_LEN..salt_end),
            key_len,
            wrapped: b.slice(salt_end..end),
        })
    }

    /// Bytes [`KeyMaterial::emit`] writes.
    pub fn len(&self) -> usize {
        KM_HEADER_LEN + self.salt.len() + self.wrapped.len()
    }

    /// Always false: a KM message has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message into `buf`; returns bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, CryptoError> {
        let need = self.len();
        let out = out_buf(buf, need)?;
        let sign = KM_SIGN.to_be_bytes();
        let keki = self.keki.to_be_bytes();
        out[..KM_HEADER_LEN].copy_from_slice(&[
            (KM_VERSION << 4) | KM_PACKET_TYPE,
            sign[0],
            sign[1],
            self.keys.bits() as u8,
            keki[0],
            keki[1],
            keki[2],
            keki[3],
            self.cipher,
            self.auth,
            self.se,
            0,
            0,
            0,
            (self.salt.len() / 4) as u8,
            (self.key_len / 4) as u8,
        ]);
        let salt_end = KM_HEADER_LEN + self.salt.len();
        out[KM_HEADER_LEN..salt_end].copy_from_slice(&self.salt);
        out[salt_end..need].copy_from_slice(&self.wrapped);
        Ok(need)
    }

    /// Unwraps the session keys with a passphrase. `pbkeylen` is the locally configured key
    /// length in bytes; 0 takes the peer's. A wrong passphrase gives
    /// [`CryptoError::BadSecret`].
    pub fn unwrap_keys(
        &self,
        passphrase: &[u8],
        pbkeylen: usize,
    ) -> Result<SessionKeys, CryptoError> {
        if self.cipher != CIPHER_AES_CTR {
            return Err(CryptoError::Unsupported("cipher other than AES-CTR"));
        }
        if self.keki != 0 {
            return Err(CryptoError::Unsupported("pre-shared KEK index"));
        }
        if pbkeylen != 0 && pbkeylen != self.key_len {
            return Err(CryptoError::KeyLengthMismatch {
                configured: pbkeylen,
                peer: self.key_len,
            });
        }
        let kek = derive_kek(passphrase, &self.salt, self.key_len)?;
        let plain = aes_unwrap(&kek, &self.wrapped)?;
        let mut keys = SessionKeys::new(&self.salt)?;
        let (first, second) = plain.split_at(self.key_len.min(plain.len()));
        match self.keys {
            KeyFlags::Even => keys.even = Some(AesKey::new(first)?),
            KeyFlags::Odd => keys.odd = Some(AesKey::new(first)?),
            KeyFlags::Both => {
                keys.even = Some(AesKey::new(first)?);
                keys.odd = Some(AesKey::new(second)?);
            }
            KeyFlags::None => return Err(CryptoError::Malformed("no key")),
        }
        Ok(keys)
    }
}

/// Derives the key encrypting key: PBKDF2-HMAC-SHA1 over the passphrase, salted with the
/// last [`PBKDF2_SALT_LEN`] bytes of the KM salt, [`PBKDF2_ITERATIONS`] rounds, `key_len`
/// bytes out (spec 6.1.4).
pub fn derive_kek(passphrase: &[u8], salt: &[u8], key_len: usize) -> Result<Vec<u8>, CryptoError> {
    if !(MIN_PASSPHRASE_LEN..=MAX_PASSPHRASE_LEN).contains(&passphrase.len()) {
        return Err(CryptoError::BadPassphrase(passphrase.len()));
    }
    if !matches!(key_len, 16 | 24 | 32) {
        return Err(CryptoError::Unsupported("key length"));
    }
    let tail = salt
        .len()
        .checked_sub(PBKDF2_SALT_LEN)
        .and_then(|at| salt.get(at..))
        .ok_or(CryptoError::Malformed("salt length"))?;
    let mut kek = vec![0u8; key_len];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase, tail, PBKDF2_ITERATIONS, &mut kek);
    Ok(kek)
}

/// An AES block cipher of any of the three key sizes.
#[derive(Clone)]
enum AesKey {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl AesKey {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let bad = |_| CryptoError::Unsupported("key length");
        Ok(match key.len() {
            16 => Self::A128(Aes128::new_from_slice(key).map_err(bad)?),
            24 => Self::A192(Aes192::new_from_slice(key).map_err(bad)?),
            32 => Self::A256(Aes256::new_from_slice(key).map_err(bad)?),
            _ => return Err(CryptoError::Unsupported("key length")),
        })
    }

    fn encrypt(&self, b: &mut [u8; 16]) {
        let b = b.into();
        match self {
            Self::A128(c) => c.encrypt_block(b),
            Self::A192(c) => c.encrypt_block(b),
            Self::A256(c) => c.encrypt_block(b),
        }
    }

    fn decrypt(&self, b: &mut [u8; 16]) {
        let b = b.into();
        match self {
            Self::A128(c) => c.decrypt_block(b),
            Self::A192(c) => c.decrypt_block(b),
            Self::A256(c) => c.decrypt_block(b),
        }
    }

    fn ctr(&self, iv: &[u8; 16], data: &mut [u8]) {
        use cipher::InnerIvInit;
        type Core<C> = ctr::CtrCore<C, ctr::flavors::Ctr128BE>;
        let iv = iv.into();
        match self {
            Self::A128(c) => StreamCipherCoreWrapper::from_core(Core::inner_iv_init(c.clone(), iv))
                .apply_keystream(data),
            Self::A192(c) => StreamCipherCoreWrapper::from_core(Core::inner_iv_init(c.clone(), iv))
                .apply_keystream(data),
            Self::A256(c) => StreamCipherCoreWrapper::from_core(Core::inner_iv_init(c.clone(), iv))
                .apply_keystream(data),
        }
    }
}

/// RFC 3394 key wrap (section 2.2.1): `plain` is a multiple of 8 bytes, at least 16.
pub fn aes_wrap(kek: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let k = AesKey::new(kek)?;
    if plain.len() < 16 || !plain.len().is_multiple_of(8) {
        return Err(CryptoError::Unsupported("wrap input length"));
    }
    let n = plain.len() / 8;
    let mut a = RFC3394_IV;
    let mut r: Vec<[u8; 8]> = plain
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            w
        })
        .collect();
    for j in 0..6u64 {
        for (i, ri) in r.iter_mut().enumerate() {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(ri);
            k.encrypt(&mut b);
            let t = (n as u64) * j + i as u64 + 1;
            a.copy_from_slice(&b[..8]);
            for (x, y) in a.iter_mut().zip(t.to_be_bytes()) {
                *x ^= y;
            }
            ri.copy_from_slice(&b[8..]);
        }
    }
    let mut out = Vec::with_capacity(8 * (n + 1));
    out.extend_from_slice(&a);
    r.iter().for_each(|w| out.extend_from_slice(w));
    Ok(out)
}

/// RFC 3394 key unwrap (section 2.2.2) with its integrity check: a mismatch (wrong KEK, so
/// wrong passphrase) gives [`CryptoError::BadSecret`].
pub fn aes_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let k = AesKey::new(kek)?;
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(CryptoError::Malformed("wrapped key length"));
    }
    let n = wrapped.len() / 8 - 1;
    let mut a = [0u8; 8];
    a.copy_from_slice(&wrapped[..8]);
    let mut r: Vec<[u8; 8]> = wrapped[8..]
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            w
        })
        .collect();
    for j in (0..6u64).rev() {
        for (i, ri) in r.iter_mut().enumerate().rev() {
            let t = (n as u64) * j + i as u64 + 1;
            let mut b = [0u8; 16];
            for ((d, x), y) in b[..8].iter_mut().zip(a).zip(t.to_be_bytes()) {
                *d = x ^ y;
            }
            b[8..].copy_from_slice(ri);
            k.decrypt(&mut b);
            a.copy_from_slice(&b[..8]);
            ri.copy_from_slice(&b[8..]);
        }
    }
    if a != RFC3394_IV {
        return Err(CryptoError::BadSecret);
    }
    Ok(r.concat())
}

/// The session keys of one connection: the salt and the even and odd session encrypting
/// keys (SEKs). A key refresh replaces one of them; data packets pick theirs with KK.
#[derive(Clone)]
pub struct SessionKeys {
    salt: [u8; SALT_LEN],
    even: Option<AesKey>,
    odd: Option<AesKey>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("even", &self.even.is_some())
            .field("odd", &self.odd.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Keys from a salt and raw SEKs (used by tests and by a sender).
    pub fn from_raw(
        salt: &[u8],
        even: Option<&[u8]>,
        odd: Option<&[u8]>,
    ) -> Result<Self, CryptoError> {
        let mut k = Self::new(salt)?;
        k.even = even.map(AesKey::new).transpose()?;
        k.odd = odd.map(AesKey::new).transpose()?;
        Ok(k)
    }

    fn new(salt: &[u8]) -> Result<Self, CryptoError> {
        let salt =
            <[u8; SALT_LEN]>::try_from(salt).map_err(|_| CryptoError::Malformed("salt length"))?;
        Ok(Self {
            salt,
            even: None,
            odd: None,
        })
    }

    /// Takes the keys a refresh KM message carried, keeping the ones it did not.
    pub fn refresh(&mut self, newer: SessionKeys) {
        self.salt = newer.salt;
        if newer.even.is_some() {
            self.even = newer.even;
        }
        if newer.odd.is_some() {
            self.odd = newer.odd;
        }
    }

    /// True when the key KK selects is present.
    pub fn has(&self, kk: KeyFlags) -> bool {
        match kk {
            KeyFlags::Even => self.even.is_some(),
            KeyFlags::Odd => self.odd.is_some(),
            _ => false,
        }
    }

    /// The CTR IV of a packet (spec 6.2): the first 112 bits of the salt, with the packet
    /// sequence number XORed into bytes 10..14; the last 16 bits count blocks from zero.
    pub fn iv(&self, seq: SeqNo) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt[..14]);
        for (d, s) in iv[10..14].iter_mut().zip(seq.get().to_be_bytes()) {
            *d ^= s;
        }
        iv
    }

    /// Encrypts or decrypts (CTR is symmetric) `data` in place for the packet `seq` under
    /// the key `kk`.
    pub fn apply(&self, kk: KeyFlags, seq: SeqNo, data: &mut [u8]) -> Result<(), CryptoError> {
        let key = match kk {
            KeyFlags::Even => self.even.as_ref(),
            KeyFlags::Odd => self.odd.as_ref(),
            _ => None,
        }
        .ok_or(CryptoError::NoKey)?;
        key.ctr(&self.iv(seq), data);
        Ok(())
    }

    /// Decrypts a data packet's payload. Copy: CTR output needs fresh bytes (the received
    /// buffer is shared and immutable), so this allocates one payload-sized buffer.
    /// Unencrypted packets come back as the same slice.
    pub fn decrypt(&self, p: &DataPacket) -> Result<Bytes, CryptoError> {
        if p.key == KeyFlags::None {
            return Ok(p.payload.clone());
        }
        let mut out = p.payload.to_vec();
        self.apply(p.key, p.seq, &mut out)?;
        Ok(Bytes::from(out))
    }
}

/// Builds a KM message the way a libsrt sender does: derives the KEK from `passphrase` and
/// `salt`, wraps `even` and/or `odd` (even first) and fills the header. Used by tests and
/// fuzz seeds; a listener only echoes the peer's KM message.
pub fn build_key_material(
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    even: Option<&[u8]>,
    odd: Option<&[u8]>,
) -> Result<KeyMaterial, CryptoError> {
    let (keys, key_len) = match (even, odd) {
        (Some(e), Some(o)) if e.len() == o.len() => (KeyFlags::Both, e.len()),
        (Some(e), None) => (KeyFlags::Even, e.len()),
        (None, Some(o)) => (KeyFlags::Odd, o.len()),
        _ => return Err(CryptoError::Unsupported("key set")),
    };
    let kek = derive_kek(passphrase, salt, key_len)?;
    let plain: Vec<u8> = even.into_iter().chain(odd).flatten().copied().collect();
    let wrapped = aes_wrap(&kek, &plain)?;
    Ok(KeyMaterial {
        keys,
        keki: 0,
        cipher: CIPHER_AES_CTR,
        auth: 0,
        se: SE_SRT,
        salt: Bytes::copy_from_slice(salt),
        key_len,
        wrapped: Bytes::from(wrapped),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc3394_4_1_128_bit_kek() {
        let kek = hex("000102030405060708090A0B0C0D0E0F");
        let key = hex("00112233445566778899AABBCCDDEEFF");
        let wrapped = hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5");
        assert_eq!(aes_wrap(&kek, &key).unwrap(), wrapped);
        assert_eq!(aes_unwrap(&kek, &wrapped).unwrap(), key);
    }

    #[test]
    fn rfc3394_4_6_256_bit_kek_256_bit_key() {
        let kek = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
        let key = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let wrapped = hex(
            "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
        );
        assert_eq!(aes_wrap(&kek, &key).unwrap(), wrapped);
        assert_eq!(aes_unwrap(&kek, &wrapped).unwrap(), key);
    }

    #[test]
    fn unwrap_with_wrong_kek_is_bad_secret() {
        let kek = hex("000102030405060708090A0B0C0D0E0F");
        let mut wrong = kek.clone();
        wrong[0] ^= 1;
        let wrapped = hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5");
        assert_eq!(aes_unwrap(&wrong, &wrapped), Err(CryptoError::BadSecret));
        assert!(matches!(
            aes_unwrap(&kek, &wrapped[..16]),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn pbkdf2_rfc6070_vector() {
        // RFC 6070 test 2: "password"/"salt", 2 iterations, 20 bytes.
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"password", b"salt", 2, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")
        );
    }

    #[test]
    fn kek_uses_last_eight_salt_bytes() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        b[0] = 9; // Differs only in the first half: same KEK.
        let pass = b"0123456789";
        assert_eq!(
            derive_kek(pass, &a, 16).unwrap(),
            derive_kek(pass, &b, 16).unwrap()
        );
        a[15] = 1;
        assert_ne!(
            derive_kek(pass, &a, 16).unwrap(),
            derive_kek(pass, &b, 16).unwrap()
        );
        assert_eq!(
            derive_kek(b"short", &a, 16),
            Err(CryptoError::BadPassphrase(5))
        );
    }

    #[test]
    fn ctr_iv_layout() {
        let salt: Vec<u8> = (1..=16).collect();
        let k = SessionKeys::from_raw(&salt, Some(&[0; 16]), None).unwrap();
        let iv = k.iv(SeqNo::new(0x0102_0304));
        assert_eq!(
            iv,
            [
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11 ^ 1,
                12 ^ 2,
                13 ^ 3,
                14 ^ 4,
                0,
                0
            ]
        );
    }

    #[test]
    fn km_emit_parse_roundtrip_and_reject() {
        let salt = [7u8; 16];
        let km = build_key_material(b"passphrase!", &salt, Some(&[1; 24]), Some(&[2; 24])).unwrap();
        let mut buf = vec![0u8; km.len()];
        km.emit(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0x12, 0x20, 0x29, 0x03]);
        let back = KeyMaterial::parse(Bytes::from(buf.clone())).unwrap();
        assert_eq!(back, km);
        for cut in 0..buf.len() {
            assert!(KeyMaterial::parse(Bytes::copy_from_slice(&buf[..cut])).is_err());
        }
        let mut bad = buf.clone();
        bad[1] = 0;
        assert!(KeyMaterial::parse(Bytes::from(bad)).is_err());
        let keys = back.unwrap_keys(b"passphrase!", 0).unwrap();
        assert!(keys.has(KeyFlags::Even) && keys.has(KeyFlags::Odd));
        assert_eq!(
            back.unwrap_keys(b"passphrase?", 0).unwrap_err(),
            CryptoError::BadSecret
        );
        assert!(matches!(
            back.unwrap_keys(b"passphrase!", 16),
            Err(CryptoError::KeyLengthMismatch { .. })
        ));
    }
}
