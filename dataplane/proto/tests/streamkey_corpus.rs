//! The committed seed corpus of the `streamkey` fuzz target (`fuzz/corpus/streamkey/`).
//! `SLUICE_WRITE_CORPUS=1 cargo test -p sluice-proto --test streamkey_corpus` rewrites it;
//! otherwise the test checks the committed seeds still mean what they were written for.

use sluice_proto::streamkey::{Certificate, KeyClaims, decode, encode, parse_claims};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/streamkey")
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

/// `(file name, fuzz input, what it decodes to)`.
fn seeds() -> Vec<(&'static str, Vec<u8>, Option<KeyClaims>)> {
    let cert = Certificate::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let key = |c: &KeyClaims, iv: u8| {
        let mut v = vec![0u8];
        v.extend_from_slice(encode(&cert, c, [iv; 16]).as_bytes());
        v
    };
    let plain = |hex: &str| {
        let mut v = vec![1u8];
        v.extend(unhex(hex));
        v
    };
    let vector = claims("test", "123", 1_700_000_000, None);
    let long = claims(
        &"c".repeat(40),
        &"9".repeat(300),
        3_000_000_000,
        Some("tpl"),
    );
    vec![
        ("key-vector", key(&vector, 0), Some(vector.clone())),
        ("key-long-template", key(&long, 7), Some(long)),
        (
            "key-padded",
            {
                let mut k = key(&vector, 2);
                k.extend_from_slice(b"==");
                k
            },
            Some(vector.clone()),
        ),
        (
            "plain-vector",
            plain("83a143a474657374a155a3313233a145ce6553f100"),
            Some(vector),
        ),
        (
            "plain-unknown-nested",
            plain("84a143a163a155a131a145cd0100a15893c0a178810191cb4000000000000000"),
            Some(claims("c", "1", 256, None)),
        ),
        (
            "plain-float-e",
            plain("83a143a163a155a131a145cb41e65a0bc0000000"),
            Some(claims("c", "1", 3_000_000_000, None)),
        ),
        ("plain-truncated", plain("83a143a163a155a131a145ce65"), None),
    ]
}

#[test]
fn seed_corpus_is_current() {
    let cert = Certificate::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let write = std::env::var_os("SLUICE_WRITE_CORPUS").is_some();
    let dir = corpus_dir();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, input, want) in seeds() {
        let (mode, rest) = input.split_first().unwrap();
        let got = if mode & 1 == 0 {
            decode(&cert, std::str::from_utf8(rest).unwrap()).ok()
        } else {
            parse_claims(rest).ok()
        };
        assert_eq!(got, want, "{name}");
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &input).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with SLUICE_WRITE_CORPUS=1)", path.display())
            });
            assert_eq!(
                committed, input,
                "{name} is stale; rewrite with SLUICE_WRITE_CORPUS=1"
            );
        }
    }
}
