//! AMF0 (Action Message Format 0) values: decode and encode, as used by RTMP commands and FLV
//! script data.
//!
//! Spec: Adobe "Action Message Format -- AMF 0" (December 2007), section 2 (type markers and
//! encodings). Every marker the RTMP ingest path can meet is decoded: number (2.2), boolean
//! (2.3), string (2.4), object (2.5), null (2.7), undefined (2.8), ECMA array (2.10), object end
//! (2.11), strict array (2.12), date (2.13), long string (2.14), XML document (2.17, kept as a
//! long string). The AMF3 switch marker (2.1, `0x11`), references (2.9), typed objects (2.18)
//! and the reserved markers are refused with [`Amf0Error::Unsupported`]: RTMP publishers
//! (ffmpeg, OBS, GStreamer) never send them in AMF0 command messages.
//!
//! Hostile input: nesting depth is capped by [`MAX_DEPTH`] and the number of values decoded by
//! one call by [`MAX_VALUES`] (the "AMF nesting bomb" and "billion empty objects" attacks).
//! No allocation is sized by a count read from the input; strings are bounded by the bytes
//! actually present. Decoding copies string bytes into `String`s: command names and metadata
//! keys are small, and owned values keep the API simple.
//!
//! ```
//! use sluice_proto::amf0::{self, Amf0Value};
//! let mut buf = Vec::new();
//! amf0::encode(&Amf0Value::String("connect".into()), &mut buf);
//! amf0::encode(&Amf0Value::Number(1.0), &mut buf);
//! let values = amf0::decode_all(&buf).unwrap();
//! assert_eq!(values, vec![Amf0Value::String("connect".into()), Amf0Value::Number(1.0)]);
//! ```

use thiserror::Error;

/// Deepest nesting of objects / arrays accepted. Guards the decoder's recursion (stack) against
/// nesting bombs; real RTMP commands and metadata nest at most 3 deep.
pub const MAX_DEPTH: usize = 32;

/// Most values (scalars and containers, counted recursively) one decode call accepts. Guards
/// memory: a 64 KiB message of empty objects would otherwise become tens of thousands of
/// allocations. ffmpeg's `onMetaData` with a keyframe index stays far below this.
pub const MAX_VALUES: usize = 16_384;

/// Type markers (AMF0 spec section 2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE 754 double (marker `0x00`).
    Number(f64),
    /// Boolean (marker `0x01`).
    Boolean(bool),
    /// UTF-8 string shorter than 64 KiB (marker `0x02`). Longer strings are encoded as long
    /// strings.
    String(String),
    /// Anonymous object: ordered key/value pairs (marker `0x03`).
    Object(Vec<(String, Amf0Value)>),
    /// Null (marker `0x05`).
    Null,
    /// Undefined (marker `0x06`).
    Undefined,
    /// ECMA (associative) array: ordered key/value pairs (marker `0x08`).
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Strict (dense) array (marker `0x0A`).
    StrictArray(Vec<Amf0Value>),
    /// Date: milliseconds since the Unix epoch, plus the (reserved, usually 0) time zone
    /// (marker `0x0B`).
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Time zone offset in minutes; the spec says senders should write 0.
        time_zone: i16,
    },
    /// UTF-8 string of any length (marker `0x0C`; XML documents, marker `0x0F`, decode to this
    /// too).
    LongString(String),
}

impl Amf0Value {
    /// The string content of a `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a `Number`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an `Object` or `EcmaArray`.
    pub fn as_properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an `Object` or `EcmaArray`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.as_properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Why AMF0 bytes were refused. All variants except `Unsupported` mean the sender wrote
/// malformed AMF0 (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 value truncated")]
    Truncated,
    /// A marker that is not part of AMF0.
    #[error("unknown AMF0 type marker {0:#04x}")]
    UnknownMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    /// A valid AMF0 marker this decoder does not implement (AMF3 switch, reference, typed
    /// object, movie clip, record set, unsupported).
    #[error("unsupported AMF0 type marker {0:#04x}")]
    Unsupported(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("AMF0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_VALUES`] values in one decode call.
    #[error("more than {MAX_VALUES} AMF0 values")]
    TooManyValues,
}

/// Decodes one value from the start of `buf`; returns it and the number of bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Amf0Value, usize), Amf0Error> {
    let mut d = Decoder {
        buf,
        pos: 0,
        values: 0,
    };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

/// Decodes values until `buf` is exhausted (the layout of RTMP command and data messages).
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut d = Decoder {
        buf,
        pos: 0,
        values: 0,
    };
    let mut out = Vec::new();
    while d.pos < buf.len() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

/// Appends the encoding of `value` to `out`. `String` values of 64 KiB or more are written as
/// long strings, so the output always decodes.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(marker::NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => {
            out.push(marker::BOOLEAN);
            out.push(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(marker::STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Err(_) => encode_long_string(s, out),
        },
        Amf0Value::LongString(s) => encode_long_string(s, out),
        Amf0Value::Object(props) => {
            out.push(marker::OBJECT);
            encode_properties(props, out);
        }
        Amf0Value::Null => out.push(marker::NULL),
        Amf0Value::Undefined => out.push(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.push(marker::ECMA_ARRAY);
            let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            encode_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(marker::STRICT_ARRAY);
            // A strict array longer than u32::MAX cannot exist in memory on any target we
            // build for; saturate rather than panic.
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.push(marker::DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
    }
}

/// Encodes a sequence of values back to back (a command or data message body).
pub fn encode_all(values: &[Amf0Value], out: &mut Vec<u8>) {
    for v in values {
        encode(v, out);
    }
}

fn encode_long_string(s: &str, out: &mut Vec<u8>) {
    out.push(marker::LONG_STRING);
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes key/value pairs and the empty-key object-end terminator. Keys longer than 64 KiB
/// cannot be expressed in AMF0; they are truncated at a character boundary so the output
/// stays decodable.
fn encode_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        let mut end = k.len().min(usize::from(u16::MAX));
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        let key = k.get(..end).unwrap_or_default();
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        // Lossy: publishers have been seen writing Latin-1 in metadata; refusing the whole
        // command for one odd byte would drop the stream.
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn count_value(&mut self) -> Result<(), Amf0Error> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues);
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        self.count_value()?;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => {
                let len = self.u16()?;
                Amf0Value::String(self.utf8(usize::from(len))?)
            }
            marker::LONG_STRING | marker::XML_DOCUMENT => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated)?;
                Amf0Value::LongString(self.utf8(len)?)
            }
            marker::OBJECT => Amf0Value::Object(self.properties(depth)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::ECMA_ARRAY => {
                // The count is advisory (spec 2.10); the terminator ends the array.
                let _count = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            marker::STRICT_ARRAY => {
                let count = self.u32()?;
                if depth >= MAX_DEPTH {
                    return Err(Amf0Error::TooDeep);
                }
                // No with_capacity(count): the count is untrusted; each element costs at
                // least one input byte, so growth is bounded by the input.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let time_zone = i16::from_be_bytes(self.array()?);
                Amf0Value::Date { millis, time_zone }
            }
            marker::OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
            0x04 | 0x07 | 0x0D | 0x0E | 0x10 | marker::AVMPLUS => {
                return Err(Amf0Error::Unsupported(m));
            }
            other => return Err(Amf0Error::UnknownMarker(other)),
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        if depth >= MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let mut props = Vec::new();
        loop {
            let len = self.u16()?;
            if len == 0 && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.utf8(usize::from(len))?;
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_vectors_decode() {
        // Number 1.0, boolean true, string "ab", null, undefined.
        let buf = [
            0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0x02, 0x00, 0x02, b'a', b'b', 0x05,
            0x06,
        ];
        let v = decode_all(&buf).unwrap();
        assert_eq!(
            v,
            vec![
                Amf0Value::Number(1.0),
                Amf0Value::Boolean(true),
                Amf0Value::String("ab".into()),
                Amf0Value::Null,
                Amf0Value::Undefined
            ]
        );
    }

    #[test]
    fn object_and_ecma_array() {
        let obj = [
            0x03, 0x00, 0x01, b'k', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x09,
        ];
        let (v, used) = decode(&obj).unwrap();
        assert_eq!(used, obj.len());
        assert_eq!(
            v,
            Amf0Value::Object(vec![("k".into(), Amf0Value::Number(2.0))])
        );
        assert_eq!(v.get("k"), Some(&Amf0Value::Number(2.0)));
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out, obj);

        let ecma = [
            0x08, 0, 0, 0, 1, 0x00, 0x01, b'b', 0x01, 0x00, 0x00, 0x00, 0x09,
        ];
        let (v, _) = decode(&ecma).unwrap();
        assert_eq!(
            v,
            Amf0Value::EcmaArray(vec![("b".into(), Amf0Value::Boolean(false))])
        );
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out, ecma);
    }

    #[test]
    fn strict_array_date_long_string() {
        let v = Amf0Value::StrictArray(vec![
            Amf0Value::Date {
                millis: 1.5e12,
                time_zone: 0,
            },
            Amf0Value::LongString("x".into()),
        ]);
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out[0], 0x0A);
        assert_eq!(decode(&out).unwrap(), (v, out.len()));
    }

    #[test]
    fn reject_truncated_everywhere() {
        let v = Amf0Value::Object(vec![
            ("a".into(), Amf0Value::String("hello".into())),
            (
                "b".into(),
                Amf0Value::StrictArray(vec![Amf0Value::Number(3.0)]),
            ),
        ]);
        let mut out = Vec::new();
        encode(&v, &mut out);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Err(Amf0Error::Truncated), "cut {cut}");
        }
    }

    #[test]
    fn amf3_switch_and_reserved_markers_refused() {
        assert_eq!(decode(&[0x11, 0x01]), Err(Amf0Error::Unsupported(0x11)));
        assert_eq!(decode(&[0x07, 0, 0]), Err(Amf0Error::Unsupported(0x07)));
        assert_eq!(decode(&[0x42]), Err(Amf0Error::UnknownMarker(0x42)));
        assert_eq!(decode(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
    }

    #[test]
    fn nesting_bomb_refused() {
        let mut buf = [0x0A, 0, 0, 0, 1].repeat(MAX_DEPTH + 5);
        buf.push(0x05);
        assert_eq!(decode(&buf), Err(Amf0Error::TooDeep));
        // Exactly at the limit is fine.
        let mut ok = [0x0A, 0, 0, 0, 1].repeat(MAX_DEPTH);
        ok.push(0x05);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn value_count_bomb_refused() {
        let buf = vec![0x05; MAX_VALUES + 1];
        assert_eq!(decode_all(&buf), Err(Amf0Error::TooManyValues));
        // A huge declared strict-array count with no elements must not allocate.
        assert_eq!(
            decode(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(Amf0Error::Truncated)
        );
    }

    #[test]
    fn long_plain_string_encodes_as_long_string() {
        let s = "z".repeat(70_000);
        let mut out = Vec::new();
        encode(&Amf0Value::String(s.clone()), &mut out);
        assert_eq!(out[0], 0x0C);
        assert_eq!(decode(&out).unwrap().0, Amf0Value::LongString(s));
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,8}".prop_map(Amf0Value::String),
            ".{0,8}".prop_map(Amf0Value::LongString),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (-1e13f64..1e13, any::<i16>())
                .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6)
                    .prop_map(Amf0Value::Object),
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6)
                    .prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(values in prop::collection::vec(arb_value(), 0..4)) {
            let mut out = Vec::new();
            encode_all(&values, &mut out);
            prop_assert_eq!(decode_all(&out).unwrap(), values);
        }
    }
}
