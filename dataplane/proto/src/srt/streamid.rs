//! SRT stream id grammar: how a publisher names its stream key and ingest host.
//!
//! Three forms are accepted:
//! - a plain stream key: `KEY`;
//! - OBS style: `KEY?h=DOMAIN` (further `&name=value` pairs are kept);
//! - libsrt's access-control syntax (libsrt `docs/features/access-control.md`):
//!   `#!::r=KEY,h=DOMAIN,m=publish,u=USER` with the standard keys `r` (resource), `h` (host),
//!   `m` (mode: `request`, `publish`, `bidirectional`), `u` (user), `s` (session), `t` (type);
//!   unknown keys are kept in [`StreamId::extra`].
//!
//! # A missing `m=`
//! The access-control convention makes `request` (the caller receives) the default mode.
//! This parser reports the mode as written ([`StreamId::mode`] is `None` without `m=`, in
//! every form) and leaves the policy to its user: [`StreamId::spec_mode`] applies the
//! convention's default, [`StreamId::is_publish`] is Sluice's reading as an ingest-only
//! listener (nothing can be played from it, so only an explicit `m=request` is a caller
//! asking for a stream; encoders that write `#!::r=KEY` mean to publish).
//!
//! The stream id reaches the listener in the SID handshake extension (draft-sharabayko-srt-01
//! section 3.2.1.3); [`super::handshake`] undoes its per-word byte order first.

/// Longest stream id accepted, in bytes. libsrt caps `SRTO_STREAMID` at 512 bytes; the cap
/// also bounds the allocations made while parsing a stream id a peer sent.
pub const MAX_STREAM_ID_LEN: usize = 512;

/// Errors in a stream id sent by a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    /// Longer than [`MAX_STREAM_ID_LEN`].
    #[error("stream id is {0} bytes, longer than {MAX_STREAM_ID_LEN}")]
    TooLong(usize),
    /// Not UTF-8.
    #[error("stream id is not UTF-8")]
    NotUtf8,
    /// No stream key in it.
    #[error("stream id names no stream key")]
    MissingKey,
    /// A `name=value` element without `=`, or with an empty name.
    #[error("malformed stream id element {0:?}")]
    Malformed(String),
    /// A standard key given twice.
    #[error("stream id key {0:?} given twice")]
    Duplicate(String),
    /// An `m=` value other than `request`, `publish`, `bidirectional`.
    #[error("unknown stream id mode {0:?}")]
    BadMode(String),
}

/// The `m=` mode of the access-control syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The caller wants to receive (libsrt's default when `m` is absent).
    #[default]
    Request,
    /// The caller publishes.
    Publish,
    /// Both directions.
    Bidirectional,
}

/// A parsed stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamId {
    /// The stream key (the plain form, the part before `?`, or `r=`).
    pub key: String,
    /// Ingest host (`h=`), if given.
    pub host: Option<String>,
    /// Mode (`m=`) as written; `None` when absent (always so in the plain and OBS forms).
    pub mode: Option<Mode>,
    /// User name (`u=`), if given.
    pub user: Option<String>,
    /// Other `name=value` pairs, in order (including `s=` and `t=`).
    pub extra: Vec<(String, String)>,
}

impl StreamId {
    /// Parses a stream id from its bytes (already in reading order).
    pub fn parse(raw: &[u8]) -> Result<StreamId, StreamIdError> {
        if raw.len() > MAX_STREAM_ID_LEN {
            return Err(StreamIdError::TooLong(raw.len()));
        }
        let s = std::str::from_utf8(raw).map_err(|_| StreamIdError::NotUtf8)?;
        if let Some(body) = s.strip_prefix("#!::") {
            return Self::parse_access_control(body);
        }
        let (key, query) = match s.split_once('?') {
            Some((k, q)) => (k, Some(q)),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(StreamIdError::MissingKey);
        }
        let mut id = StreamId {
            key: key.to_owned(),
            host: None,
            mode: None,
            user: None,
            extra: Vec::new(),
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (k, v) = split_pair(pair)?;
            if k == "h" {
                set_once(&mut id.host, k, v)?;
            } else {
                id.extra.push((k.to_owned(), v.to_owned()));
            }
        }
        Ok(id)
    }

    fn parse_access_control(body: &str) -> Result<StreamId, StreamIdError> {
        let mut key = None;
        let mut host = None;
        let mut mode = None;
        let mut user = None;
        let mut extra = Vec::new();
        for pair in body.split(',') {
            let (k, v) = split_pair(pair)?;
            match k {
                "r" => set_once(&mut key, k, v)?,
                "h" => set_once(&mut host, k, v)?,
                "u" => set_once(&mut user, k, v)?,
                "m" => {
                    let m = match v {
                        "request" => Mode::Request,
                        "publish" => Mode::Publish,
                        "bidirectional" => Mode::Bidirectional,
                        other => return Err(StreamIdError::BadMode(other.to_owned())),
                    };
                    if mode.replace(m).is_some() {
                        return Err(StreamIdError::Duplicate(k.to_owned()));
                    }
                }
                _ => extra.push((k.to_owned(), v.to_owned())),
            }
        }
        let key = key
            .filter(|k: &String| !k.is_empty())
            .ok_or(StreamIdError::MissingKey)?;
        Ok(StreamId {
            key,
            host,
            mode,
            user,
            extra,
        })
    }

    /// The mode under the access-control convention: as written, or [`Mode::Request`] when
    /// absent.
    pub fn spec_mode(&self) -> Mode {
        self.mode.unwrap_or_default()
    }

    /// True unless the caller explicitly asked to receive (`m=request`): `m=publish`,
    /// `m=bidirectional` and a missing `m=` publish to an ingest (see the module docs).
    pub fn is_publish(&self) -> bool {
        !matches!(self.mode, Some(Mode::Request))
    }
}

fn split_pair(pair: &str) -> Result<(&str, &str), StreamIdError> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(StreamIdError::Malformed(pair.to_owned())),
    }
}

fn set_once(slot: &mut Option<String>, k: &str, v: &str) -> Result<(), StreamIdError> {
    if slot.replace(v.to_owned()).is_some() {
        return Err(StreamIdError::Duplicate(k.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_key() {
        let id = StreamId::parse(b"abc123").unwrap();
        assert_eq!(id.key, "abc123");
        assert_eq!(id.host, None);
        assert_eq!(id.mode, None);
        assert!(id.is_publish());
    }

    #[test]
    fn obs_style() {
        let id = StreamId::parse(b"abc?h=ingest.example.com&x=1").unwrap();
        assert_eq!(id.key, "abc");
        assert_eq!(id.host.as_deref(), Some("ingest.example.com"));
        assert_eq!(id.extra, vec![("x".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn access_control() {
        let id = StreamId::parse(b"#!::r=key1,h=ingest.example.com,m=publish,u=bob,t=stream,zz=9")
            .unwrap();
        assert_eq!(id.key, "key1");
        assert_eq!(id.host.as_deref(), Some("ingest.example.com"));
        assert_eq!(id.mode, Some(Mode::Publish));
        assert_eq!(id.user.as_deref(), Some("bob"));
        assert_eq!(
            id.extra,
            vec![
                ("t".to_owned(), "stream".to_owned()),
                ("zz".to_owned(), "9".to_owned())
            ]
        );
        assert!(id.is_publish());
        // No `m=`: reported as absent; the convention's default is request, the ingest's
        // reading is publish.
        let bare = StreamId::parse(b"#!::r=k,h=x").unwrap();
        assert_eq!(bare.mode, None);
        assert_eq!(bare.spec_mode(), Mode::Request);
        assert!(bare.is_publish());
        let req = StreamId::parse(b"#!::r=k,m=request").unwrap();
        assert_eq!(req.mode, Some(Mode::Request));
        assert!(!req.is_publish());
        // `m=request` inside another value is not a mode.
        let tricky = StreamId::parse(b"#!::r=km=request,u=m=request").unwrap();
        assert_eq!(tricky.mode, None);
        assert!(tricky.is_publish());
        assert_eq!(
            StreamId::parse(b"#!::r=k,m=bidirectional").unwrap().mode,
            Some(Mode::Bidirectional)
        );
    }

    #[test]
    fn garbage_rejected() {
        assert_eq!(StreamId::parse(b""), Err(StreamIdError::MissingKey));
        assert_eq!(StreamId::parse(b"?h=x"), Err(StreamIdError::MissingKey));
        assert_eq!(StreamId::parse(b"#!::h=x"), Err(StreamIdError::MissingKey));
        assert!(matches!(
            StreamId::parse(b"#!::r=a,junk"),
            Err(StreamIdError::Malformed(_))
        ));
        assert!(matches!(
            StreamId::parse(b"#!::r=a,=b"),
            Err(StreamIdError::Malformed(_))
        ));
        assert!(matches!(
            StreamId::parse(b"#!::r=a,r=b"),
            Err(StreamIdError::Duplicate(_))
        ));
        assert!(matches!(
            StreamId::parse(b"#!::r=a,m=push"),
            Err(StreamIdError::BadMode(_))
        ));
        assert_eq!(StreamId::parse(&[0xFF, 0xFE]), Err(StreamIdError::NotUtf8));
        assert_eq!(
            StreamId::parse(&[b'a'; MAX_STREAM_ID_LEN + 1]),
            Err(StreamIdError::TooLong(MAX_STREAM_ID_LEN + 1))
        );
        assert!(StreamId::parse(&[b'a'; MAX_STREAM_ID_LEN]).is_ok());
    }
}
