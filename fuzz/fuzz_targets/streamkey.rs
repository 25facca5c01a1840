//! Stream-key decoder. Input: one mode byte, then either the key text (even mode byte) or a
//! claims plaintext (odd). Invariants: no panic; whatever decodes re-encodes (same IV) into a
//! key that decodes to equal claims and stays within the accepted length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::streamkey::{Certificate, MAX_KEY_CHARS, decode, encode, parse_claims};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(cert) = Certificate::from_hex("0123456789abcdef0123456789abcdef") else {
        return;
    };
    let claims = if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match decode(&cert, text) {
            Ok(c) => {
                assert!(text.len() <= MAX_KEY_CHARS);
                c
            }
            Err(_) => return,
        }
    } else {
        match parse_claims(rest) {
            Ok(c) => c,
            Err(_) => return,
        }
    };
    let iv = [mode; 16];
    let key = encode(&cert, &claims, iv);
    // The re-encoded key is canonical: no longer than the input allowed plus base64 growth.
    // (Re-encoding may grow the plaintext by 4 bytes: a float32 E becomes a float64.)
    assert!(key.len() <= (rest.len() + 24) * 4 / 3 + 4);
    assert_eq!(decode(&cert, &key), Ok(claims.clone()), "round trip");
    // Encoding is deterministic in the IV.
    assert_eq!(encode(&cert, &claims, iv), key);
});
