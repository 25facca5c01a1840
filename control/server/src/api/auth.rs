//! REST authentication (api-digest §1.1): HTTP Basic with a customer ID and secret, or the
//! HMAC-SHA256 scheme:
//!
//! ```text
//! Authorization: hmac username="<id>", algorithm="hmac-sha256",
//!                headers="host date request-line digest", signature="<base64>"
//! signing string = for each name in `headers`, joined by "\n":
//!   "request-line" -> "<METHOD> <path[?query]> HTTP/1.1", otherwise "<name>: <header value>"
//! signature      = base64(HMAC-SHA256(secret, signing string))
//! ```
//! Sluice requires `date` and `request-line` to be signed (replay protection and binding to
//! the request), a `Date` within the configured skew of the server clock, and, when `digest` is
//! signed or a body is present, a `Digest: SHA-256=<base64(sha256(body))>` header matching the
//! body.

use crate::config::{Config, Credential};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Longest `Authorization` header parsed: bounds parsing work.
pub const MAX_AUTH_HEADER: usize = 2048;
/// Most names accepted in the HMAC `headers` list.
pub const MAX_SIGNED_HEADERS: usize = 16;

/// Why a request was not authenticated (logged; the client only sees 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable `Authorization` header.
    #[error("missing or malformed Authorization header")]
    Malformed,
    /// Unknown customer or wrong secret or signature.
    #[error("bad credentials")]
    BadCredentials,
    /// `Date` missing, unparsable or outside the skew window.
    #[error("date missing or outside the allowed clock skew")]
    Date,
    /// `Digest` missing or not matching the body.
    #[error("digest missing or does not match the body")]
    Digest,
    /// The signed-header list lacks `date` or `request-line`, or names a missing header.
    #[error("signed header list unusable")]
    Headers,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the content, so timing does not reveal how much of a secret matched.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn find<'a>(cfg: &'a Config, id: &str) -> Option<&'a Credential> {
    cfg.control.credentials.iter().find(|c| c.id == id)
}

/// Verifies a request; `body` is the whole body and `now` Unix seconds.
pub fn verify(cfg: &Config, parts: &Parts, body: &[u8], now: u64) -> Result<(), AuthError> {
    let h = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Malformed)?;
    if h.len() > MAX_AUTH_HEADER {
        return Err(AuthError::Malformed);
    }
    let (scheme, rest) = h.split_once(' ').ok_or(AuthError::Malformed)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = B64.decode(rest.trim()).map_err(|_| AuthError::Malformed)?;
        let text = String::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
        let (id, secret) = text.split_once(':').ok_or(AuthError::Malformed)?;
        let c = find(cfg, id).ok_or(AuthError::BadCredentials)?;
        if ct_eq(c.secret.as_bytes(), secret.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    } else if scheme.eq_ignore_ascii_case("hmac") {
        verify_hmac(cfg, parts, rest, body, now)
    } else {
        Err(AuthError::Malformed)
    }
}

/// Parses `k="v", k2="v2"` parameters.
fn params(s: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item.split_once('=').ok_or(AuthError::Malformed)?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push((k.trim().to_ascii_lowercase(), v.to_string()));
    }
    Ok(out)
}

fn verify_hmac(
    cfg: &Config,
    parts: &Parts,
    rest: &str,
    body: &[u8],
    now: u64,
) -> Result<(), AuthError> {
    let ps = params(rest)?;
    let get = |k: &str| ps.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let user = get("username").ok_or(AuthError::Malformed)?;
    if !get("algorithm").is_some_and(|a| a.eq_ignore_ascii_case("hmac-sha256")) {
        return Err(AuthError::Malformed);
    }
    let names: Vec<String> = get("headers")
        .ok_or(AuthError::Malformed)?
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    if names.len() > MAX_SIGNED_HEADERS
        || !names.iter().any(|n| n == "date")
        || !names.iter().any(|n| n == "request-line")
    {
        return Err(AuthError::Headers);
    }
    let sig = B64
        .decode(get("signature").ok_or(AuthError::Malformed)?)
        .map_err(|_| AuthError::Malformed)?;
    let cred = find(cfg, user).ok_or(AuthError::BadCredentials)?;

    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let date = header("date").ok_or(AuthError::Date)?;
    let t = httpdate::parse_http_date(date).map_err(|_| AuthError::Date)?;
    let t = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| AuthError::Date)?
        .as_secs();
    if t.abs_diff(now) > cfg.control.hmac_max_skew_secs {
        return Err(AuthError::Date);
    }
    if names.iter().any(|n| n == "digest") || !body.is_empty() {
        let d = header("digest").ok_or(AuthError::Digest)?;
        let want = format!("SHA-256={}", B64.encode(Sha256::digest(body)));
        if !ct_eq(d.trim().as_bytes(), want.as_bytes()) {
            return Err(AuthError::Digest);
        }
        if !names.iter().any(|n| n == "digest") {
            // A body whose digest is not signed could be swapped in transit.
            return Err(AuthError::Headers);
        }
    }
    let mut lines = Vec::with_capacity(names.len());
    for n in &names {
        if n == "request-line" {
            let target = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            lines.push(format!("{} {} HTTP/1.1", parts.method, target));
        } else {
            let v = header(n).ok_or(AuthError::Headers)?;
            lines.push(format!("{n}: {v}"));
        }
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(cred.secret.as_bytes()).map_err(|_| AuthError::Malformed)?;
    mac.update(lines.join("\n").as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| AuthError::BadCredentials)
}

/// Builds an HMAC `Authorization` header value (for clients, tests and docs examples).
pub fn sign_hmac(
    id: &str,
    secret: &str,
    host: &str,
    date: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> (String, String) {
    let digest = format!("SHA-256={}", B64.encode(Sha256::digest(body)));
    let signing =
        format!("host: {host}\ndate: {date}\n{method} {path_and_query} HTTP/1.1\ndigest: {digest}");
    // HMAC accepts keys of any length, so this cannot fail.
    let sig = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut m) => {
            m.update(signing.as_bytes());
            B64.encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (
        format!(
            "hmac username=\"{id}\", algorithm=\"hmac-sha256\", headers=\"host date request-line digest\", signature=\"{sig}\""
        ),
        digest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn cfg() -> Config {
        let mut c = Config::default();
        c.control.credentials.push(Credential {
            id: "cid".into(),
            secret: "sec".into(),
        });
        c
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn basic_accepts_right_and_refuses_wrong() {
        let good = format!("Basic {}", B64.encode("cid:sec"));
        let bad = format!("Basic {}", B64.encode("cid:nope"));
        assert_eq!(
            verify(
                &cfg(),
                &parts("GET", "/x", &[("authorization", &good)]),
                b"",
                0
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &cfg(),
                &parts("GET", "/x", &[("authorization", &bad)]),
                b"",
                0
            ),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            verify(&cfg(), &parts("GET", "/x", &[]), b"", 0),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn hmac_round_trip_skew_and_digest() {
        let now = 1_700_000_000u64;
        let date =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now));
        let body = br#"{"a":1}"#;
        let (auth, digest) = sign_hmac("cid", "sec", "h:1", &date, "POST", "/p?q=1", body);
        let hs = [
            ("authorization", auth.as_str()),
            ("host", "h:1"),
            ("date", date.as_str()),
            ("digest", digest.as_str()),
        ];
        let p = parts("POST", "/p?q=1", &hs);
        assert_eq!(verify(&cfg(), &p, body, now), Ok(()));
        assert_eq!(verify(&cfg(), &p, body, now + 301), Err(AuthError::Date));
        assert_eq!(
            verify(&cfg(), &p, b"{\"a\":2}", now),
            Err(AuthError::Digest)
        );
        let other = parts("POST", "/p?q=2", &hs);
        assert_eq!(
            verify(&cfg(), &other, body, now),
            Err(AuthError::BadCredentials)
        );
    }
}
