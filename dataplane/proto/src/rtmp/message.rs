//! RTMP messages above the chunk layer: protocol control (spec 5.4), user control (spec 6.2,
//! event types in 7.1.7) and AMF0 command messages (spec 7.1.1, 7.2).
//!
//! Spec: RTMP 1.0 sections 5.4.1-5.4.5, 6.2, 7.1 and 7.2.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::amf0::{self, Amf0Error, Amf0Value};

/// Message type ids (spec 5.4, 6.2, 7.1). Open: unknown ids are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: Set Chunk Size.
    SetChunkSize,
    /// 2: Abort.
    Abort,
    /// 3: Acknowledgement.
    Acknowledgement,
    /// 4: User Control.
    UserControl,
    /// 5: Window Acknowledgement Size.
    WindowAckSize,
    /// 6: Set Peer Bandwidth.
    SetPeerBandwidth,
    /// 8: audio (an FLV audio tag body).
    Audio,
    /// 9: video (an FLV video tag body).
    Video,
    /// 15: AMF3 data.
    DataAmf3,
    /// 16: AMF3 shared object.
    SharedObjectAmf3,
    /// 17: AMF3 command.
    CommandAmf3,
    /// 18: AMF0 data (`@setDataFrame`, `onMetaData`).
    DataAmf0,
    /// 19: AMF0 shared object.
    SharedObjectAmf0,
    /// 20: AMF0 command.
    CommandAmf0,
    /// 22: aggregate.
    Aggregate,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::SetChunkSize,
            2 => Self::Abort,
            3 => Self::Acknowledgement,
            4 => Self::UserControl,
            5 => Self::WindowAckSize,
            6 => Self::SetPeerBandwidth,
            8 => Self::Audio,
            9 => Self::Video,
            15 => Self::DataAmf3,
            16 => Self::SharedObjectAmf3,
            17 => Self::CommandAmf3,
            18 => Self::DataAmf0,
            19 => Self::SharedObjectAmf0,
            20 => Self::CommandAmf0,
            22 => Self::Aggregate,
            other => Self::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::SetChunkSize => 1,
            MessageType::Abort => 2,
            MessageType::Acknowledgement => 3,
            MessageType::UserControl => 4,
            MessageType::WindowAckSize => 5,
            MessageType::SetPeerBandwidth => 6,
            MessageType::Audio => 8,
            MessageType::Video => 9,
            MessageType::DataAmf3 => 15,
            MessageType::SharedObjectAmf3 => 16,
            MessageType::CommandAmf3 => 17,
            MessageType::DataAmf0 => 18,
            MessageType::SharedObjectAmf0 => 19,
            MessageType::CommandAmf0 => 20,
            MessageType::Aggregate => 22,
            MessageType::Unknown(v) => v,
        }
    }
}

/// Why a message body was refused (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Body shorter than its type requires.
    #[error("{0} message too short")]
    Truncated(&'static str),
    /// A command whose first value is not a string or second not a number.
    #[error("malformed command message")]
    MalformedCommand,
    /// AMF0 decoding failed.
    #[error("AMF0: {0}")]
    Amf0(#[from] Amf0Error),
}

/// Limit type of Set Peer Bandwidth (spec 5.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthLimit {
    /// 0: hard.
    Hard,
    /// 1: soft.
    Soft,
    /// 2: dynamic.
    Dynamic,
    /// Other values.
    Unknown(u8),
}

/// Protocol control messages (spec 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolControl {
    /// Set Chunk Size (5.4.1).
    SetChunkSize(u32),
    /// Abort the message on a chunk stream (5.4.2).
    Abort(u32),
    /// Acknowledgement: bytes received so far, wrapping (5.4.3).
    Acknowledgement(u32),
    /// Window Acknowledgement Size (5.4.4).
    WindowAckSize(u32),
    /// Set Peer Bandwidth (5.4.5).
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type.
        limit: BandwidthLimit,
    },
}

impl ProtocolControl {
    /// Parses the body of a message of type 1, 2, 3, 5 or 6; `None` for other types.
    pub fn parse(type_id: u8, body: &[u8]) -> Option<Result<Self, MessageError>> {
        let u32_at = |name| {
            body.get(..4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(MessageError::Truncated(name))
        };
        Some(match MessageType::from(type_id) {
            MessageType::SetChunkSize => {
                u32_at("Set Chunk Size").map(|v| Self::SetChunkSize(v & 0x7FFF_FFFF))
            }
            MessageType::Abort => u32_at("Abort").map(Self::Abort),
            MessageType::Acknowledgement => u32_at("Acknowledgement").map(Self::Acknowledgement),
            MessageType::WindowAckSize => {
                u32_at("Window Acknowledgement Size").map(Self::WindowAckSize)
            }
            MessageType::SetPeerBandwidth => u32_at("Set Peer Bandwidth").and_then(|size| {
                let limit = match body.get(4) {
                    Some(0) => BandwidthLimit::Hard,
                    Some(1) => BandwidthLimit::Soft,
                    Some(2) => BandwidthLimit::Dynamic,
                    Some(&v) => BandwidthLimit::Unknown(v),
                    None => return Err(MessageError::Truncated("Set Peer Bandwidth")),
                };
                Ok(Self::SetPeerBandwidth { size, limit })
            }),
            _ => return None,
        })
    }

    /// The message type id and body.
    pub fn emit(&self) -> (u8, Bytes) {
        let mut b = BytesMut::with_capacity(5);
        let t = match *self {
            Self::SetChunkSize(v) => {
                b.put_u32(v & 0x7FFF_FFFF);
                MessageType::SetChunkSize
            }
            Self::Abort(v) => {
                b.put_u32(v);
                MessageType::Abort
            }
            Self::Acknowledgement(v) => {
                b.put_u32(v);
                MessageType::Acknowledgement
            }
            Self::WindowAckSize(v) => {
                b.put_u32(v);
                MessageType::WindowAckSize
            }
            Self::SetPeerBandwidth { size, limit } => {
                b.put_u32(size);
                b.put_u8(match limit {
                    BandwidthLimit::Hard => 0,
                    BandwidthLimit::Soft => 1,
                    BandwidthLimit::Dynamic => 2,
                    BandwidthLimit::Unknown(v) => v,
                });
                MessageType::SetPeerBandwidth
            }
        };
        (t.into(), b.freeze())
    }
}

/// User control events (spec 6.2 and 7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// 0: the stream became functional.
    StreamBegin(u32),
    /// 1: playback ended.
    StreamEof(u32),
    /// 2: no more data on the stream.
    StreamDry(u32),
    /// 3: the client's buffer length in milliseconds.
    SetBufferLength {
        /// Stream id.
        stream: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// 4: the stream is recorded.
    StreamIsRecorded(u32),
    /// 6: ping carrying the sender's timestamp.
    PingRequest(u32),
    /// 7: answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// Any other event type and its data.
    Unknown {
        /// Event type.
        kind: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControl {
    /// Parses a User Control message body.
    pub fn parse(body: &Bytes) -> Result<Self, MessageError> {
        let kind = body
            .get(..2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
            .ok_or(MessageError::Truncated("User Control"))?;
        let word = |at: usize| {
            body.get(at..at + 4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or(MessageError::Truncated("User Control"))
        };
        Ok(match kind {
            0 => Self::StreamBegin(word(2)?),
            1 => Self::StreamEof(word(2)?),
            2 => Self::StreamDry(word(2)?),
            3 => Self::SetBufferLength {
                stream: word(2)?,
                millis: word(6)?,
            },
            4 => Self::StreamIsRecorded(word(2)?),
            6 => Self::PingRequest(word(2)?),
            7 => Self::PingResponse(word(2)?),
            kind => Self::Unknown {
                kind,
                data: body.slice(2..),
            },
        })
    }

    /// The message body (type 4).
    pub fn emit(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        match self {
            Self::StreamBegin(v) => (b.put_u16(0), b.put_u32(*v)).1,
            Self::StreamEof(v) => (b.put_u16(1), b.put_u32(*v)).1,
            Self::StreamDry(v) => (b.put_u16(2), b.put_u32(*v)).1,
            Self::SetBufferLength { stream, millis } => {
                b.put_u16(3);
                b.put_u32(*stream);
                b.put_u32(*millis);
            }
            Self::StreamIsRecorded(v) => (b.put_u16(4), b.put_u32(*v)).1,
            Self::PingRequest(v) => (b.put_u16(6), b.put_u32(*v)).1,
            Self::PingResponse(v) => (b.put_u16(7), b.put_u32(*v)).1,
            Self::Unknown { kind, data } => {
                b.put_u16(*kind);
                b.put_slice(data);
            }
        }
        b.freeze()
    }
}

/// An AMF0 command message (spec 7.1.1): name, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Procedure name (`connect`, `publish`, `_result`, ...).
    pub name: String,
    /// Transaction id (0 when no reply is expected).
    pub transaction_id: f64,
    /// The command object (`Null` for most stream commands).
    pub object: Amf0Value,
    /// Further arguments.
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// Parses a command message body. `amf3` selects type 17 framing, whose body starts with
    /// one format byte (0 = the rest is AMF0, which is what every publisher sends).
    pub fn parse(body: &[u8], amf3: bool) -> Result<Self, MessageError> {
        let body = if amf3 {
            body.get(1..).unwrap_or_default()
        } else {
            body
        };
        let mut values = amf0::decode_all(body)?.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => s,
            _ => return Err(MessageError::MalformedCommand),
        };
        // Some clients omit the transaction id on notifications; treat it as 0.
        let transaction_id = match values.next() {
            Some(Amf0Value::Number(n)) => n,
            None => 0.0,
            Some(_) => return Err(MessageError::MalformedCommand),
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Self {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// The AMF0 body (type 20).
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        amf0::encode(&Amf0Value::String(self.name.clone()), &mut out);
        amf0::encode(&Amf0Value::Number(self.transaction_id), &mut out);
        amf0::encode(&self.object, &mut out);
        amf0::encode_all(&self.args, &mut out);
        out
    }
}

/// Extends RTMP's 32-bit millisecond timestamps (which wrap after ~49.7 days) to a monotonic
/// 64-bit timeline, assuming consecutive timestamps differ by less than 2^31 ms. Small
/// backwards steps (B-frames in some muxers, interleaved audio) are kept as negative deltas.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampUnwrapper {
    last: Option<(u32, i64)>,
}

impl TimestampUnwrapper {
    /// The extended value of `ts`.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((prev, prev_ext)) => {
                prev_ext.saturating_add(i64::from(ts.wrapping_sub(prev) as i32))
            }
        };
        self.last = Some((ts, ext));
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_control_round_trip() {
        for pc in [
            ProtocolControl::SetChunkSize(4096),
            ProtocolControl::Abort(3),
            ProtocolControl::Acknowledgement(0xFFFF_FFFF),
            ProtocolControl::WindowAckSize(2_500_000),
            ProtocolControl::SetPeerBandwidth {
                size: 2_500_000,
                limit: BandwidthLimit::Dynamic,
            },
        ] {
            let (t, body) = pc.emit();
            assert_eq!(ProtocolControl::parse(t, &body), Some(Ok(pc)));
            assert!(matches!(
                ProtocolControl::parse(t, &body[..body.len() - 1]),
                Some(Err(MessageError::Truncated(_)))
            ));
        }
        assert_eq!(ProtocolControl::parse(9, &[]), None);
    }

    #[test]
    fn user_control_vectors() {
        let ping = Bytes::from_static(&[0, 6, 0, 0, 0x12, 0x34]);
        assert_eq!(
            UserControl::parse(&ping),
            Ok(UserControl::PingRequest(0x1234))
        );
        assert_eq!(
            &UserControl::PingResponse(0x1234).emit()[..],
            &[0, 7, 0, 0, 0x12, 0x34]
        );
        let sbl = UserControl::SetBufferLength {
            stream: 1,
            millis: 3000,
        };
        assert_eq!(UserControl::parse(&sbl.emit()), Ok(sbl));
        assert!(UserControl::parse(&Bytes::from_static(&[0, 0, 1])).is_err());
    }

    #[test]
    fn command_round_trip_and_amf3_framing() {
        let c = Command {
            name: "publish".into(),
            transaction_id: 5.0,
            object: Amf0Value::Null,
            args: vec![
                Amf0Value::String("key".into()),
                Amf0Value::String("live".into()),
            ],
        };
        let body = c.emit();
        assert_eq!(Command::parse(&body, false).unwrap(), c);
        let mut amf3 = vec![0];
        amf3.extend_from_slice(&body);
        assert_eq!(Command::parse(&amf3, true).unwrap(), c);
        assert_eq!(
            Command::parse(&[0x05], false),
            Err(MessageError::MalformedCommand)
        );
    }

    proptest! {
        #[test]
        fn unwrapper_follows_wrapping_steps(start in any::<u32>(), steps in prop::collection::vec(-1000i32..100_000, 1..200)) {
            let mut u = TimestampUnwrapper::default();
            let mut ts = start;
            let mut expected = i64::from(start);
            prop_assert_eq!(u.unwrap(ts), expected);
            for s in steps {
                ts = ts.wrapping_add(s as u32);
                expected += i64::from(s);
                prop_assert_eq!(u.unwrap(ts), expected);
            }
        }
    }
}
