//! A sans-IO RTMP client for load generation: publisher or player.
//!
//! Spec: Adobe RTMP 1.0 (December 2012): 5.2 (plain handshake: C0/C1 out, S0/S1/S2 in, C2
//! echoes S1), 5.4 (protocol control), 6.2 / 7.1.7 (user control), 7.2.1.1 (`connect`),
//! 7.2.1.3 (`createStream`), 7.2.2.1 (`play`), 7.2.2.6 (`publish`), 7.2.2 (`onStatus`).
//!
//! The caller owns the TCP socket and the clock: it feeds received bytes to
//! [`RtmpClient::handle_input`], writes out what [`RtmpClient::take_output`] returns, and reads
//! [`ClientEvent`]s from [`RtmpClient::poll_event`]. Chunking and AMF0 come from `sluice-proto`.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use sluice_proto::amf0::Amf0Value;
use sluice_proto::rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkStreamId, MessageStreamId,
};
use sluice_proto::rtmp::handshake::{HANDSHAKE_SIZE, RANDOM_SIZE, RTMP_VERSION};
use sluice_proto::rtmp::message::{
    Command, MessageError, MessageType, ProtocolControl, UserControl,
};
use thiserror::Error;

/// Chunk size the client announces and sends with: large enough that most audio frames
/// and small video frames go in one chunk, the size ffmpeg and OBS use.
pub const OUT_CHUNK_SIZE: u32 = 4096;

/// Most events held before the caller drains them. Media events for a player are counted
/// instead of queued once this is reached, so a slow caller cannot grow the queue.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// The Window Acknowledgement Size a client announces unless told otherwise (ffmpeg's).
pub const DEFAULT_ACK_WINDOW: u32 = 2_500_000;

/// Chunk stream of commands (what ffmpeg uses).
const CSID_COMMAND: u32 = 3;
/// Chunk stream of audio.
const CSID_AUDIO: u32 = 4;
/// Chunk stream of video and data.
const CSID_VIDEO: u32 = 6;

/// What the client does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends media with `publish` (live).
    Publish,
    /// Receives media with `play`.
    Play,
}

/// Where and what to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application name (the first path segment of the URL, `live`).
    pub app: String,
    /// The full `rtmp://host:port/app` URL, sent as `tcUrl`.
    pub tc_url: String,
    /// Stream name: the stream key for Sluice.
    pub stream: String,
    /// Publisher or player.
    pub role: Role,
    /// Window Acknowledgement Size announced to the server, so that it acknowledges what it
    /// received (0 = announce none). ffmpeg announces 2,500,000.
    pub ack_window: u32,
}

impl ClientConfig {
    /// Splits `rtmp://host[:port]/app/stream` into its parts; `None` when the URL has no
    /// app or stream segment.
    pub fn from_url(url: &str, role: Role) -> Option<(Self, String)> {
        let rest = url.strip_prefix("rtmp://")?;
        let (hostport, path) = rest.split_once('/')?;
        let (app, stream) = path.split_once('/')?;
        if hostport.is_empty() || app.is_empty() || stream.is_empty() {
            return None;
        }
        let hostport = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:1935")
        };
        Some((
            Self {
                app: app.to_string(),
                tc_url: format!("rtmp://{hostport}/{app}"),
                stream: stream.to_string(),
                role,
                ack_window: DEFAULT_ACK_WINDOW,
            },
            hostport,
        ))
    }
}

/// Where the client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// C0 and C1 written; waiting for S0, S1 and S2.
    Handshake,
    /// `connect` sent; waiting for its `_result`.
    Connecting,
    /// `createStream` sent; waiting for the stream id.
    CreatingStream,
    /// `publish` or `play` sent; waiting for `onStatus` `...Start`.
    Starting,
    /// Publishing or playing.
    Live,
    /// The server refused or broke the protocol; the caller should close.
    Failed,
}

/// Something the caller may want to count or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// `publish` or `play` was accepted: media may flow.
    Live,
    /// The server acknowledged this many bytes in total (its Acknowledgement, wrapping
    /// counter extended to 64 bits).
    Acked(u64),
    /// A player received an audio (8) or video (9) message.
    Media {
        /// Message type id.
        type_id: u8,
        /// Message timestamp, ms.
        timestamp: u32,
        /// The FLV tag body.
        body: Bytes,
    },
    /// An `onStatus` with this code (informational after `Live`).
    Status(String),
}

/// Why the client gave up. `Rejected` is the server's decision; the others mean the server
/// broke the protocol (or the caller misused the client: `NotLive`).
#[derive(Debug, Error)]
pub enum ClientError {
    /// S0 carried another protocol version.
    #[error("server handshake version {0}, expected 3")]
    BadVersion(u8),
    /// Chunk layer error from the server's bytes.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// Malformed message body from the server.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// `_error` or an error `onStatus` code.
    #[error("server refused: {0}")]
    Rejected(String),
    /// The server answered out of order.
    #[error("unexpected {0} in state {1:?}")]
    Unexpected(&'static str, State),
    /// `send_media` before `Live`, or as a player.
    #[error("not publishing")]
    NotLive,
}

/// The client state machine.
#[derive(Debug)]
pub struct RtmpClient {
    cfg: ClientConfig,
    state: State,
    /// Handshake bytes received so far (at most 1 + 2 * 1536; copied because S1 must be
    /// echoed and the three parts can arrive split anywhere).
    hs_buf: BytesMut,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    stream_id: u32,
    /// Bytes received, for our Acknowledgements.
    received: u64,
    /// The server's Window Acknowledgement Size (0 = none announced).
    ack_window: u32,
    last_ack_sent: u64,
    /// The server's last acknowledgement, extended past 32-bit wrap.
    acked: u64,
    /// Media messages not queued because the event queue was full.
    pub dropped_events: u64,
}

const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 2.0;

impl RtmpClient {
    /// A client that has written C0 and C1 (see [`Self::take_output`]). `c1_random` fills
    /// C1's random field; `epoch_ms` its time field.
    pub fn new(cfg: ClientConfig, epoch_ms: u32, c1_random: &[u8; RANDOM_SIZE]) -> Self {
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.extend_from_slice(&[RTMP_VERSION]);
        out.extend_from_slice(&epoch_ms.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // zero: plain (non-digest) handshake
        out.extend_from_slice(c1_random);
        Self {
            cfg,
            state: State::Handshake,
            hs_buf: BytesMut::new(),
            decoder: ChunkDecoder::default(),
            encoder: ChunkEncoder::new(),
            out,
            events: VecDeque::new(),
            stream_id: 0,
            received: 0,
            ack_window: 0,
            last_ack_sent: 0,
            acked: 0,
            dropped_events: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Bytes the server acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Bytes waiting to be written to the socket (possibly empty); the caller writes them all.
    pub fn take_output(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Bytes waiting, without taking them.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes received from the server.
    pub fn handle_input(&mut self, mut data: Bytes) -> Result<(), ClientError> {
        if self.state == State::Failed {
            return Ok(());
        }
        self.received += data.len() as u64;
        let r = self.handle_inner(&mut data);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn handle_inner(&mut self, data: &mut Bytes) -> Result<(), ClientError> {
        if self.state == State::Handshake {
            const S012: usize = 1 + 2 * HANDSHAKE_SIZE;
            let want = S012 - self.hs_buf.len();
            let take = want.min(data.len());
            self.hs_buf.extend_from_slice(&data[..take]);
            data.advance(take);
            if let Some(&v) = self.hs_buf.first()
                && v != RTMP_VERSION
            {
                return Err(ClientError::BadVersion(v));
            }
            if self.hs_buf.len() < S012 {
                return Ok(());
            }
            // C2 echoes S1 (spec 5.2.4).
            self.out
                .extend_from_slice(&self.hs_buf[1..1 + HANDSHAKE_SIZE]);
            self.hs_buf = BytesMut::new();
            self.send_connect();
            self.state = State::Connecting;
        }
        if !data.is_empty() {
            self.decoder.push(data.split_off(0));
        }
        while let Some(msg) = self.decoder.poll_message()? {
            self.on_message(msg.type_id, msg.timestamp, msg.payload)?;
        }
        if self.ack_window > 0 && self.received - self.last_ack_sent >= u64::from(self.ack_window) {
            self.last_ack_sent = self.received;
            self.control(ProtocolControl::Acknowledgement(self.received as u32));
        }
        Ok(())
    }

    fn on_message(&mut self, type_id: u8, timestamp: u32, body: Bytes) -> Result<(), ClientError> {
        match MessageType::from(type_id) {
            MessageType::Acknowledgement => {
                if let Some(Ok(ProtocolControl::Acknowledgement(n))) =
                    ProtocolControl::parse(type_id, &body)
                {
                    // Extend the wrapping 32-bit counter: the server never acknowledges
                    // more than we sent, so take the smallest value consistent with `n`.
                    let low = self.acked as u32;
                    self.acked += u64::from(n.wrapping_sub(low));
                    self.events.push_back(ClientEvent::Acked(self.acked));
                }
            }
            MessageType::WindowAckSize => {
                if let Some(Ok(ProtocolControl::WindowAckSize(n))) =
                    ProtocolControl::parse(type_id, &body)
                {
                    self.ack_window = n;
                }
            }
            MessageType::UserControl => {
                if let Ok(UserControl::PingRequest(t)) = UserControl::parse(&body) {
                    let body = UserControl::PingResponse(t).emit();
                    self.encode(ChunkStreamId::CONTROL, 0, 4, 0, &body);
                }
            }
            MessageType::CommandAmf0 | MessageType::CommandAmf3 => {
                let cmd = Command::parse(&body, type_id == 17)?;
                self.on_command(cmd)?;
            }
            MessageType::Audio | MessageType::Video => {
                if self.events.len() < MAX_QUEUED_EVENTS {
                    self.events.push_back(ClientEvent::Media {
                        type_id,
                        timestamp,
                        body,
                    });
                } else {
                    self.dropped_events += 1;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) -> Result<(), ClientError> {
        match cmd.name.as_str() {
            "_result" if cmd.transaction_id == TXN_CONNECT => {
                if self.state != State::Connecting {
                    return Err(ClientError::Unexpected("connect _result", self.state));
                }
                self.send_command("createStream", TXN_CREATE_STREAM, vec![]);
                self.state = State::CreatingStream;
            }
            "_result" if cmd.transaction_id == TXN_CREATE_STREAM => {
                if self.state != State::CreatingStream {
                    return Err(ClientError::Unexpected("createStream _result", self.state));
                }
                let id = cmd
                    .args
                    .first()
                    .and_then(Amf0Value::as_number)
                    .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                    .ok_or(ClientError::Unexpected("createStream result", self.state))?;
                self.stream_id = id as u32;
                self.start();
                self.state = State::Starting;
            }
            "_error" => {
                let why = cmd
                    .args
                    .first()
                    .and_then(|a| a.get("code").or(a.get("description")))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("_error")
                    .to_string();
                return Err(ClientError::Rejected(why));
            }
            "onStatus" => {
                let info = cmd.args.first();
                let code = info
                    .and_then(|a| a.get("code"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let level = info
                    .and_then(|a| a.get("level"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default();
                if level == "error" || code.ends_with(".BadName") || code.ends_with(".Failed") {
                    return Err(ClientError::Rejected(code));
                }
                let started = match self.cfg.role {
                    Role::Publish => code == "NetStream.Publish.Start",
                    Role::Play => code == "NetStream.Play.Start",
                };
                if started && self.state == State::Starting {
                    self.state = State::Live;
                    self.events.push_back(ClientEvent::Live);
                } else {
                    self.events.push_back(ClientEvent::Status(code));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends one FLV tag (audio 8, video 9, script data 18) as an RTMP message on the
    /// published stream. Script data is sent as `@setDataFrame` when it is `onMetaData`.
    pub fn send_media(
        &mut self,
        tag_type: u8,
        timestamp_ms: u32,
        body: &[u8],
    ) -> Result<(), ClientError> {
        if self.state != State::Live || self.cfg.role != Role::Publish {
            return Err(ClientError::NotLive);
        }
        let csid = if tag_type == 8 {
            CSID_AUDIO
        } else {
            CSID_VIDEO
        };
        let csid = ChunkStreamId::new(csid).ok_or(ClientError::NotLive)?;
        if tag_type == 18 {
            // Servers store metadata sent as `@setDataFrame` (what ffmpeg does).
            let mut b = Vec::with_capacity(body.len() + 16);
            sluice_proto::amf0::encode(&Amf0Value::String("@setDataFrame".into()), &mut b);
            b.extend_from_slice(body);
            self.encoder.encode(
                csid,
                timestamp_ms,
                18,
                MessageStreamId(self.stream_id),
                &b,
                &mut self.out,
            );
        } else {
            self.encoder.encode(
                csid,
                timestamp_ms,
                tag_type,
                MessageStreamId(self.stream_id),
                body,
                &mut self.out,
            );
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        self.control(ProtocolControl::SetChunkSize(OUT_CHUNK_SIZE));
        self.encoder.set_chunk_size(OUT_CHUNK_SIZE);
        if self.cfg.ack_window > 0 {
            self.control(ProtocolControl::WindowAckSize(self.cfg.ack_window));
        }
        let obj = Amf0Value::Object(vec![
            ("app".into(), Amf0Value::String(self.cfg.app.clone())),
            ("type".into(), Amf0Value::String("nonprivate".into())),
            (
                "flashVer".into(),
                Amf0Value::String("FMLE/3.0 (compatible; sluice-perf)".into()),
            ),
            ("tcUrl".into(), Amf0Value::String(self.cfg.tc_url.clone())),
        ]);
        let cmd = Command {
            name: "connect".into(),
            transaction_id: TXN_CONNECT,
            object: obj,
            args: vec![],
        };
        self.encode_command(0, &cmd);
    }

    fn start(&mut self) {
        let name = Amf0Value::String(self.cfg.stream.clone());
        let cmd = match self.cfg.role {
            Role::Publish => Command {
                name: "publish".into(),
                transaction_id: 0.0,
                object: Amf0Value::Null,
                args: vec![name, Amf0Value::String("live".into())],
            },
            Role::Play => {
                let body = UserControl::SetBufferLength {
                    stream: self.stream_id,
                    millis: 100,
                }
                .emit();
                self.encode(ChunkStreamId::CONTROL, 0, 4, 0, &body);
                Command {
                    name: "play".into(),
                    transaction_id: 0.0,
                    object: Amf0Value::Null,
                    args: vec![name],
                }
            }
        };
        self.encode_command(self.stream_id, &cmd);
    }

    fn send_command(&mut self, name: &str, txn: f64, args: Vec<Amf0Value>) {
        let cmd = Command {
            name: name.into(),
            transaction_id: txn,
            object: Amf0Value::Null,
            args,
        };
        self.encode_command(0, &cmd);
    }

    fn encode_command(&mut self, stream: u32, cmd: &Command) {
        let body = cmd.emit();
        if let Some(csid) = ChunkStreamId::new(CSID_COMMAND) {
            self.encode(csid, 0, 20, stream, &body);
        }
    }

    fn control(&mut self, pc: ProtocolControl) {
        let (t, body) = pc.emit();
        self.encode(ChunkStreamId::CONTROL, 0, t, 0, &body);
    }

    fn encode(&mut self, csid: ChunkStreamId, ts: u32, type_id: u8, stream: u32, body: &[u8]) {
        self.encoder.encode(
            csid,
            ts,
            type_id,
            MessageStreamId(stream),
            body,
            &mut self.out,
        );
    }

    /// Ends a publication politely (`deleteStream`); the caller then closes the socket.
    pub fn close(&mut self) {
        if self.state == State::Live {
            self.send_command(
                "deleteStream",
                0.0,
                vec![Amf0Value::Number(f64::from(self.stream_id))],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::amf0;

    fn cfg(role: Role) -> ClientConfig {
        ClientConfig::from_url("rtmp://127.0.0.1:1936/live/key1", role)
            .unwrap()
            .0
    }

    /// A scripted server: handshake bytes plus encoded messages.
    struct Server {
        enc: ChunkEncoder,
        dec: ChunkDecoder,
    }

    impl Server {
        fn new() -> Self {
            Self {
                enc: ChunkEncoder::new(),
                dec: ChunkDecoder::default(),
            }
        }
        fn command(&mut self, name: &str, txn: f64, args: Vec<Amf0Value>) -> Bytes {
            let body = Command {
                name: name.into(),
                transaction_id: txn,
                object: Amf0Value::Null,
                args,
            }
            .emit();
            let mut out = BytesMut::new();
            self.enc.encode(
                ChunkStreamId::new(3).unwrap(),
                0,
                20,
                MessageStreamId(0),
                &body,
                &mut out,
            );
            out.freeze()
        }
        fn control(&mut self, pc: ProtocolControl) -> Bytes {
            let (t, b) = pc.emit();
            let mut out = BytesMut::new();
            self.enc.encode(
                ChunkStreamId::CONTROL,
                0,
                t,
                MessageStreamId(0),
                &b,
                &mut out,
            );
            out.freeze()
        }
        /// Commands the client sent, by name.
        fn read(&mut self, bytes: Bytes) -> Vec<(u8, Bytes)> {
            self.dec.push(bytes);
            let mut v = vec![];
            while let Some(m) = self.dec.poll_message().unwrap() {
                v.push((m.type_id, m.payload));
            }
            v
        }
    }

    fn status(code: &str, level: &str) -> Vec<Amf0Value> {
        vec![Amf0Value::Object(vec![
            ("level".into(), Amf0Value::String(level.into())),
            ("code".into(), Amf0Value::String(code.into())),
        ])]
    }

    fn handshake(c: &mut RtmpClient) -> Bytes {
        let c01 = c.take_output();
        assert_eq!(c01.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(c01[0], 3);
        let mut s = vec![3u8];
        s.extend((0..HANDSHAKE_SIZE).map(|i| (i % 251) as u8)); // S1
        s.extend_from_slice(&c01[1..]); // S2 echoes C1
        // Split delivery: the state machine must reassemble.
        c.handle_input(Bytes::copy_from_slice(&s[..700])).unwrap();
        assert_eq!(c.take_output().len(), 0);
        c.handle_input(Bytes::copy_from_slice(&s[700..])).unwrap();
        let out = c.take_output();
        assert_eq!(
            &out[..HANDSHAKE_SIZE],
            &s[1..1 + HANDSHAKE_SIZE],
            "C2 echoes S1"
        );
        assert_eq!(c.state(), State::Connecting);
        out.slice(HANDSHAKE_SIZE..)
    }

    #[test]
    fn publisher_reaches_live_and_sends_media() {
        let mut c = RtmpClient::new(cfg(Role::Publish), 0, &[7; RANDOM_SIZE]);
        let mut srv = Server::new();
        let after_c2 = handshake(&mut c);
        let msgs = srv.read(after_c2);
        assert_eq!(msgs[0].0, 1, "Set Chunk Size first");
        assert_eq!(
            ProtocolControl::parse(msgs[1].0, &msgs[1].1),
            Some(Ok(ProtocolControl::WindowAckSize(DEFAULT_ACK_WINDOW)))
        );
        let connect = Command::parse(&msgs[2].1, false).unwrap();
        assert_eq!(connect.name, "connect");
        assert_eq!(
            connect.object.get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        assert_eq!(
            connect.object.get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://127.0.0.1:1936/live")
        );
        // Server answers connect.
        let mut input = BytesMut::new();
        input.extend_from_slice(&srv.control(ProtocolControl::WindowAckSize(5000)));
        input.extend_from_slice(&srv.command("_result", 1.0, vec![]));
        c.handle_input(input.freeze()).unwrap();
        assert_eq!(c.state(), State::CreatingStream);
        let out = c.take_output();
        assert!(!out.is_empty());
        c.handle_input(srv.command("_result", 2.0, vec![Amf0Value::Number(1.0)]))
            .unwrap();
        assert_eq!(c.state(), State::Starting);
        c.take_output();
        assert!(matches!(
            c.send_media(9, 0, b"x"),
            Err(ClientError::NotLive)
        ));
        c.handle_input(srv.command("onStatus", 0.0, status("NetStream.Publish.Start", "status")))
            .unwrap();
        assert_eq!(c.state(), State::Live);
        assert_eq!(c.poll_event(), Some(ClientEvent::Live));
        c.send_media(9, 40, &[0x17, 1, 0, 0, 0, 1, 2, 3]).unwrap();
        c.send_media(18, 0, &[2, 0, 10]).unwrap();
        let out = c.take_output();
        let mut dec = ChunkDecoder::default();
        dec.push(Bytes::from_static(&[
            0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0,
        ]));
        while dec.poll_message().unwrap().is_some() {}
        dec.push(out);
        let m = dec.poll_message().unwrap().unwrap();
        assert_eq!(
            (m.type_id, m.timestamp, m.stream_id),
            (9, 40, MessageStreamId(1))
        );
        assert_eq!(&m.payload[..], &[0x17, 1, 0, 0, 0, 1, 2, 3]);
        let m = dec.poll_message().unwrap().unwrap();
        assert_eq!(m.type_id, 18);
        let (v, _) = amf0::decode(&m.payload).unwrap();
        assert_eq!(v.as_str(), Some("@setDataFrame"));
        // Acknowledgement bookkeeping, including 32-bit wrap.
        c.handle_input(srv.control(ProtocolControl::Acknowledgement(1000)))
            .unwrap();
        assert_eq!(c.acked(), 1000);
        c.handle_input(srv.control(ProtocolControl::Acknowledgement(u32::MAX)))
            .unwrap();
        c.handle_input(srv.control(ProtocolControl::Acknowledgement(5)))
            .unwrap();
        assert_eq!(c.acked(), (1u64 << 32) + 5);
    }

    #[test]
    fn rejection_fails_the_client() {
        let mut c = RtmpClient::new(cfg(Role::Publish), 0, &[1; RANDOM_SIZE]);
        let mut srv = Server::new();
        handshake(&mut c);
        c.handle_input(srv.command("_result", 1.0, vec![])).unwrap();
        c.handle_input(srv.command("_result", 2.0, vec![Amf0Value::Number(1.0)]))
            .unwrap();
        let r = c.handle_input(srv.command(
            "onStatus",
            0.0,
            status("NetStream.Publish.BadName", "error"),
        ));
        assert!(matches!(r, Err(ClientError::Rejected(ref s)) if s == "NetStream.Publish.BadName"));
        assert_eq!(c.state(), State::Failed);
        // Further input is ignored, not a panic.
        c.handle_input(Bytes::from_static(&[0xFF; 32])).unwrap();
    }

    #[test]
    fn out_of_order_result_and_bad_version_rejected() {
        let mut c = RtmpClient::new(cfg(Role::Play), 0, &[1; RANDOM_SIZE]);
        let mut srv = Server::new();
        handshake(&mut c);
        let r = c.handle_input(srv.command("_result", 2.0, vec![Amf0Value::Number(1.0)]));
        assert!(matches!(r, Err(ClientError::Unexpected(..))));
        let mut c = RtmpClient::new(cfg(Role::Play), 0, &[1; RANDOM_SIZE]);
        assert!(matches!(
            c.handle_input(Bytes::from_static(&[6, 0, 0])),
            Err(ClientError::BadVersion(6))
        ));
    }

    #[test]
    fn player_gets_media_answers_ping_and_acks() {
        let mut c = RtmpClient::new(cfg(Role::Play), 0, &[1; RANDOM_SIZE]);
        let mut srv = Server::new();
        srv.read(handshake(&mut c));
        c.handle_input(srv.control(ProtocolControl::WindowAckSize(100)))
            .unwrap();
        c.handle_input(srv.command("_result", 1.0, vec![])).unwrap();
        c.handle_input(srv.command("_result", 2.0, vec![Amf0Value::Number(1.0)]))
            .unwrap();
        let sent = srv.read(c.take_output());
        assert!(
            sent.iter()
                .any(|(t, b)| *t == 20 && Command::parse(b, false).unwrap().name == "play")
        );
        c.handle_input(srv.command("onStatus", 0.0, status("NetStream.Play.Start", "status")))
            .unwrap();
        assert_eq!(c.poll_event(), Some(ClientEvent::Live));
        let mut out = BytesMut::new();
        srv.enc.encode(
            ChunkStreamId::new(6).unwrap(),
            33,
            9,
            MessageStreamId(1),
            &[0x27, 1, 0, 0, 0],
            &mut out,
        );
        let ping = UserControl::PingRequest(99).emit();
        srv.enc.encode(
            ChunkStreamId::CONTROL,
            0,
            4,
            MessageStreamId(0),
            &ping,
            &mut out,
        );
        c.handle_input(out.freeze()).unwrap();
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Media {
                type_id: 9,
                timestamp: 33,
                ..
            })
        ));
        let sent = srv.read(c.take_output());
        assert!(sent.iter().any(
            |(t, b)| *t == 4 && UserControl::parse(b).unwrap() == UserControl::PingResponse(99)
        ));
        assert!(
            sent.iter().any(|(t, _)| *t == 3),
            "acknowledgement after the 100-byte window"
        );
    }

    #[test]
    fn url_parsing() {
        let (c, hp) = ClientConfig::from_url("rtmp://localhost/live/abc", Role::Publish).unwrap();
        assert_eq!(hp, "localhost:1935");
        assert_eq!((c.app.as_str(), c.stream.as_str()), ("live", "abc"));
        assert!(ClientConfig::from_url("rtmp://h/live", Role::Publish).is_none());
        assert!(ClientConfig::from_url("http://h/live/x", Role::Publish).is_none());
    }
}
