//! Interop with the reference stream-key tool (`../shared/tools/streamkey`, Node `crypto` +
//! `msgpack-lite`): for random claims and certificates, keys made by either side with the
//! same IV are byte-identical, and each side decodes the other's keys.
//!
//! Needs `node` and `npm` (the registry must be reachable for `npm ci`). Point
//! `SLUICE_STREAMKEY_TOOL` at the tool's folder if it is not at `<workspace>/../shared/...`;
//! `SLUICE_INTEROP_SEED` replays a run, `SLUICE_INTEROP_CASES` changes the case count.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_proto::streamkey::{Certificate, KeyClaims, decode, encode};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The 89 characters the service allows in channel names and string uids.
const CHANNEL_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&()+-:;<=.>?@[]^_{}|~,";

fn tool_source() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_STREAMKEY_TOOL") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/streamkey")
}

fn require(cmd: &str) {
    let ok = Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{cmd}` is not installed or not on PATH: the stream-key interop test needs Node.js \
         and npm (run scripts/setup.sh --test)"
    );
}

/// Copies the tool to a fresh temp dir and installs its locked dependencies there.
fn install_tool() -> PathBuf {
    require("node");
    require("npm");
    let src = tool_source();
    assert!(
        src.join("streamkey.js").is_file(),
        "reference tool not found at {} (set SLUICE_STREAMKEY_TOOL)",
        src.display()
    );
    let dir = std::env::temp_dir().join(format!("sluice-streamkey-ref-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["streamkey.js", "package.json", "package-lock.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm ci failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn node(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg("streamkey.js")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node streamkey.js {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

fn random_text(rng: &mut StdRng, max: usize) -> String {
    let len = rng.gen_range(0..=max);
    (0..len)
        .map(|_| char::from(CHANNEL_CHARS[rng.gen_range(0..CHANNEL_CHARS.len())]))
        .collect()
}

fn random_claims(rng: &mut StdRng) -> KeyClaims {
    let uid = match rng.gen_range(0..4) {
        0 => rng.gen_range(1..=u32::MAX).to_string(),
        1 => random_text(rng, 255),
        // Beyond the service's 255-byte limit, but the codecs must still agree (str16).
        2 => "u".repeat(256) + &random_text(rng, 40),
        _ => rng.gen_range(0..1000).to_string(),
    };
    let expires_at = match rng.gen_range(0..4) {
        0 => rng.gen_range(0..128),
        1 => rng.gen_range(0..1u64 << 31),
        // From 2^31 on msgpack-lite writes a float64; exact up to 2^53 - 1.
        2 => rng.gen_range(1u64 << 31..1u64 << 53),
        _ => 1_700_000_000 + rng.gen_range(0..100_000_000),
    };
    KeyClaims {
        // Up to 63 bytes (the service's limit); lengths >= 32 exercise str8.
        channel: random_text(rng, 63),
        uid,
        expires_at,
        template_id: rng
            .gen_bool(0.5)
            .then(|| random_text(rng, 40).replace(' ', "_")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_encode(dir: &Path, cert: &str, c: &KeyClaims, iv: Option<&[u8; 16]>) -> String {
    let e = c.expires_at.to_string();
    let mut args = vec![
        "encode",
        "--cert",
        cert,
        "--channel",
        &c.channel,
        "--uid",
        &c.uid,
        "--expires-at",
        &e,
    ];
    if let Some(t) = &c.template_id {
        args.extend(["--template", t]);
    }
    let iv_hex = iv.map(|iv| hex(iv));
    if let Some(h) = &iv_hex {
        args.extend(["--iv", h]);
    }
    node(dir, &args)
}

/// The JSON the reference decoder prints for `c` (msgpack-lite keeps the map's key order).
fn expected_json(c: &KeyClaims) -> String {
    let s = |v: &str| serde_json_string(v);
    let mut out = format!(
        "{{\"C\":{},\"U\":{},\"E\":{}",
        s(&c.channel),
        s(&c.uid),
        c.expires_at
    );
    if let Some(t) = &c.template_id {
        out.push_str(&format!(",\"T\":{}", s(t)));
    }
    out.push('}');
    out
}

/// JSON string literal for printable ASCII (the only characters the generator produces).
fn serde_json_string(v: &str) -> String {
    let mut out = String::from("\"");
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn streamkey_matches_reference_tool() {
    let dir = install_tool();
    let seed = std::env::var("SLUICE_INTEROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    let cases: usize = std::env::var("SLUICE_INTEROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("streamkey interop: seed {seed}, {cases} cases (SLUICE_INTEROP_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);

    // The documented vector first.
    let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
    let vector = KeyClaims {
        channel: "test".into(),
        uid: "123".into(),
        expires_at: 1_700_000_000,
        template_id: None,
    };
    let cert_hex = "0123456789abcdef0123456789abcdef";
    let cert = Certificate::from_hex(cert_hex).unwrap();
    assert_eq!(
        node_encode(&dir, cert_hex, &vector, Some(&iv)),
        "AAECAwQFBgcICQoLDA0ODy40IYBrBlUQBXd2U8VgC-Yyl26zRA"
    );
    assert_eq!(
        encode(&cert, &vector, iv),
        "AAECAwQFBgcICQoLDA0ODy40IYBrBlUQBXd2U8VgC-Yyl26zRA"
    );

    for case in 0..cases {
        let cert_bytes: [u8; 16] = rng.r#gen();
        let cert_hex = hex(&cert_bytes);
        let cert = Certificate::from_hex(&cert_hex).unwrap();
        let claims = random_claims(&mut rng);
        let iv: [u8; 16] = rng.r#gen();
        let ctx = format!("case {case} (seed {seed}): {claims:?}");

        // Same IV both ways: byte-identical keys.
        let from_node = node_encode(&dir, &cert_hex, &claims, Some(&iv));
        let from_rust = encode(&cert, &claims, iv);
        assert_eq!(from_rust, from_node, "{ctx}");
        // Node's key decodes in Rust (here identical, so also try a random-IV key).
        assert_eq!(decode(&cert, &from_node).as_ref(), Ok(&claims), "{ctx}");
        if case % 4 == 0 {
            let random_iv = node_encode(&dir, &cert_hex, &claims, None);
            assert_eq!(decode(&cert, &random_iv).as_ref(), Ok(&claims), "{ctx}");
        }
        // Rust's key decodes in Node.
        let json = node(&dir, &["decode", "--cert", &cert_hex, "--key", &from_rust]);
        assert_eq!(json, expected_json(&claims), "{ctx}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
