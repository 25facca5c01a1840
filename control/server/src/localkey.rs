//! Locally generated stream keys (api-digest §3.1): base64url(iv || AES-128-CTR(cert, msgpack
//! {C, U, E, T?})).
//!
//! INTERIM: `sluice_proto::streamkey` is being written in parallel and is the codec the whole
//! project will share. Until it lands on main, this module carries a small interim codec behind
//! [`interim_encode`] / [`interim_decode`] so the CLI, key revocation and the key inspector
//! work and can be tested; after the merge these two functions become thin calls into
//! `sluice_proto::streamkey` and the rest of the server does not change.

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Longest key text accepted for decoding: bounds the base64 and cipher work per request.
pub const MAX_KEY_CHARS: usize = 2048;

/// Decoded claims of a local key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `C`: channel.
    pub channel: String,
    /// `U`: uid.
    pub uid: String,
    /// `E`: absolute expiry, Unix seconds (0 = never).
    pub expires_at: u64,
    /// `T`: template ID.
    pub template_id: Option<String>,
}

/// Why a key is not a valid local key for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalKey {
    /// The certificate is not 32 hex characters.
    #[error("certificate is not 32 hex characters")]
    BadCertificate,
    /// Not base64url, too short or too long.
    #[error("not a base64url key of a plausible length")]
    Encoding,
    /// Decrypted bytes are not the expected msgpack map.
    #[error("payload is not a valid claims map")]
    Payload,
}

fn cert_bytes(cert_hex: &str) -> Result<[u8; 16], IllegalKey> {
    if !crate::config::is_hex32(cert_hex) {
        return Err(IllegalKey::BadCertificate);
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = cert_hex
            .get(i * 2..i * 2 + 2)
            .ok_or(IllegalKey::BadCertificate)?;
        *o = u8::from_str_radix(pair, 16).map_err(|_| IllegalKey::BadCertificate)?;
    }
    Ok(out)
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    // rmp picks the smallest str form; writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(buf, s);
}

/// Encodes claims with the given IV (interim codec, see module docs).
pub fn interim_encode(cert_hex: &str, claims: &Claims, iv: [u8; 16]) -> Result<String, IllegalKey> {
    let key = cert_bytes(cert_hex)?;
    let mut data = Vec::with_capacity(64);
    let n = if claims.template_id.is_some() { 4 } else { 3 };
    let _ = rmp::encode::write_map_len(&mut data, n);
    write_str(&mut data, "C");
    write_str(&mut data, &claims.channel);
    write_str(&mut data, "U");
    write_str(&mut data, &claims.uid);
    write_str(&mut data, "E");
    let _ = rmp::encode::write_uint(&mut data, claims.expires_at);
    if let Some(t) = &claims.template_id {
        write_str(&mut data, "T");
        write_str(&mut data, t);
    }
    Aes128Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut data);
    let mut blob = iv.to_vec();
    blob.extend_from_slice(&data);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob))
}

fn read_str(rd: &mut &[u8]) -> Result<String, IllegalKey> {
    let len = rmp::decode::read_str_len(rd).map_err(|_| IllegalKey::Payload)?;
    let len = usize::try_from(len).map_err(|_| IllegalKey::Payload)?;
    let (s, rest) = rd.split_at_checked(len).ok_or(IllegalKey::Payload)?;
    *rd = rest;
    String::from_utf8(s.to_vec()).map_err(|_| IllegalKey::Payload)
}

/// Decodes a key with a certificate (interim codec, see module docs). Accepts any msgpack
/// str/int widths and key order, requires C, U and E, rejects unknown keys and trailing bytes.
pub fn interim_decode(cert_hex: &str, key_text: &str) -> Result<Claims, IllegalKey> {
    let key = cert_bytes(cert_hex)?;
    if key_text.len() > MAX_KEY_CHARS {
        return Err(IllegalKey::Encoding);
    }
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key_text.trim_end_matches('='))
        .map_err(|_| IllegalKey::Encoding)?;
    let (iv, ct) = blob.split_at_checked(16).ok_or(IllegalKey::Encoding)?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| IllegalKey::Encoding)?;
    if ct.is_empty() {
        return Err(IllegalKey::Encoding);
    }
    // Copy forced by decryption: the plaintext is new bytes.
    let mut data = ct.to_vec();
    Aes128Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut data);
    let mut rd: &[u8] = &data;
    let n = rmp::decode::read_map_len(&mut rd).map_err(|_| IllegalKey::Payload)?;
    if !(3..=4).contains(&n) {
        return Err(IllegalKey::Payload);
    }
    let (mut c, mut u, mut e, mut t) = (None, None, None, None);
    for _ in 0..n {
        match read_str(&mut rd)?.as_str() {
            "C" if c.is_none() => c = Some(read_str(&mut rd)?),
            "U" if u.is_none() => u = Some(read_str(&mut rd)?),
            "T" if t.is_none() => t = Some(read_str(&mut rd)?),
            "E" if e.is_none() => {
                e = Some(rmp::decode::read_int::<u64, _>(&mut rd).map_err(|_| IllegalKey::Payload)?)
            }
            _ => return Err(IllegalKey::Payload),
        }
    }
    if !rd.is_empty() {
        return Err(IllegalKey::Payload);
    }
    Ok(Claims {
        channel: c.ok_or(IllegalKey::Payload)?,
        uid: u.ok_or(IllegalKey::Payload)?,
        expires_at: e.ok_or(IllegalKey::Payload)?,
        template_id: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "0123456789abcdef0123456789abcdef";

    fn iv() -> [u8; 16] {
        core::array::from_fn(|i| i as u8)
    }

    #[test]
    fn digest_vector() {
        let c = Claims {
            channel: "test".into(),
            uid: "123".into(),
            expires_at: 1_700_000_000,
            template_id: None,
        };
        let k = interim_encode(CERT, &c, iv()).unwrap();
        assert_eq!(k, "AAECAwQFBgcICQoLDA0ODy40IYBrBlUQBXd2U8VgC-Yyl26zRA");
        assert_eq!(interim_decode(CERT, &k).unwrap(), c);
    }

    #[test]
    fn template_round_trips_and_wrong_cert_or_truncation_fail() {
        let c = Claims {
            channel: "a b".into(),
            uid: "x".repeat(40),
            expires_at: 0,
            template_id: Some("720p".into()),
        };
        let k = interim_encode(CERT, &c, iv()).unwrap();
        assert_eq!(interim_decode(CERT, &k).unwrap(), c);
        assert!(interim_decode("ffffffffffffffffffffffffffffffff", &k).is_err());
        assert!(interim_decode(CERT, &k[..k.len() - 3]).is_err());
        assert_eq!(interim_decode(CERT, "abc"), Err(IllegalKey::Encoding));
    }
}
