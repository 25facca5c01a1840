//! Locally generated stream keys (api-digest §3.1): thin wrappers over the project's codec,
//! `sluice_proto::streamkey`, taking the certificate as the configured hex text.
//!
//! Local keys have no "never expires" value: `E` is an absolute Unix time and a key is valid
//! strictly before it (so `E = 0` is always expired), as `sluice_proto::streamkey` decides.

use sluice_proto::streamkey;

pub use sluice_proto::streamkey::KeyClaims as Claims;
pub use sluice_proto::streamkey::MAX_KEY_CHARS;

/// Why a key is not a valid local key for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalKeyError {
    /// The certificate is not 32 hex characters (a configuration fault).
    #[error("certificate is not 32 hex characters")]
    BadCertificate,
    /// The key does not decode with this certificate (the publisher's fault).
    #[error(transparent)]
    Illegal(#[from] streamkey::IllegalKey),
}

fn cert(hex: &str) -> Result<streamkey::Certificate, LocalKeyError> {
    streamkey::Certificate::from_hex(hex).map_err(|_| LocalKeyError::BadCertificate)
}

/// Encodes claims under a hex certificate with the caller's random IV.
pub fn encode(cert_hex: &str, claims: &Claims, iv: [u8; 16]) -> Result<String, LocalKeyError> {
    Ok(streamkey::encode(&cert(cert_hex)?, claims, iv))
}

/// Decodes a key with a hex certificate.
pub fn decode(cert_hex: &str, key: &str) -> Result<Claims, LocalKeyError> {
    Ok(streamkey::decode(&cert(cert_hex)?, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn digest_vector_and_refusals() {
        let c = Claims {
            channel: "test".into(),
            uid: "123".into(),
            expires_at: 1_700_000_000,
            template_id: None,
        };
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        let k = encode(CERT, &c, iv).unwrap();
        assert_eq!(k, "AAECAwQFBgcICQoLDA0ODy40IYBrBlUQBXd2U8VgC-Yyl26zRA");
        assert_eq!(decode(CERT, &k).unwrap(), c);
        assert!(decode("ffffffffffffffffffffffffffffffff", &k).is_err());
        assert_eq!(decode("xyz", &k), Err(LocalKeyError::BadCertificate));
        assert!(matches!(
            decode(CERT, "abc"),
            Err(LocalKeyError::Illegal(_))
        ));
    }
}
