//! The server side of an RTMP publishing connection, as a sans-IO state machine.
//!
//! Spec: RTMP 1.0 section 7.2.1.1 (connect), 7.2.1.3 (createStream), 7.2.2.6 (publish),
//! 7.2.2.3 (deleteStream), 5.4.3-5.4.5 (acknowledgement window) and 7.1.7 (user control); the
//! `releaseStream` / `FCPublish` / `FCUnpublish` calls and the `onFCPublish` reply are Flash
//! Media Server conventions that ffmpeg and OBS follow (undocumented by Adobe).
//!
//! # Run loop
//! ```text
//! let mut s = ServerSession::new(SessionConfig::default(), random_1528_bytes);
//! loop {
//!     let data = socket.read()?;               // bytes as they arrive, any split
//!     s.handle_input(data)?;                   // Err: close the connection
//!     while let Some(ev) = s.poll_event() {    // in order
//!         match ev {
//!             SessionEvent::PublishRequested { stream_key, .. } =>
//!                 if key_ok(&stream_key) { s.accept_publish() }
//!                 else { s.reject_publish(BAD_NAME, "unknown stream key") },
//!             SessionEvent::Media(m) => forward(m),
//!             _ => {}
//!         }
//!     }
//!     while let Some(out) = s.poll_transmit() { socket.write_all(&out)? }
//!     if s.is_closed() { break }
//! }
//! ```
//!
//! The same loop on in-memory bytes:
//! ```
//! use bytes::Bytes;
//! use sluice_proto::rtmp::session::{BAD_NAME, ServerSession, SessionConfig, SessionEvent};
//!
//! let mut s = ServerSession::new(SessionConfig::default(), [0u8; 1528]);
//! // C0 and a plain C1 from the peer, in two reads.
//! s.handle_input(Bytes::from_static(&[3]))?;
//! s.handle_input(Bytes::from(vec![0u8; 1536]))?;
//! let s0s1s2 = s.poll_transmit().expect("handshake reply");
//! assert_eq!(s0s1s2.len(), 1 + 2 * 1536);
//! while let Some(ev) = s.poll_event() {
//!     if let SessionEvent::PublishRequested { stream_key, .. } = ev {
//!         if stream_key == "known" {
//!             s.accept_publish();
//!         } else {
//!             s.reject_publish(BAD_NAME, "unknown stream key");
//!         }
//!     }
//! }
//! # Ok::<(), sluice_proto::rtmp::session::SessionError>(())
//! ```
//!
//! Sequence handled: handshake → `connect` (answered with Window Acknowledgement Size, Set Peer
//! Bandwidth, Set Chunk Size and `_result` NetConnection.Connect.Success) → `releaseStream` /
//! `FCPublish` (`_result`) → `createStream` (`_result` with the stream id) → `publish`
//! ([`SessionEvent::PublishRequested`]; the application answers with
//! [`ServerSession::accept_publish`]: `onFCPublish`, StreamBegin and `onStatus`
//! NetStream.Publish.Start, or [`ServerSession::reject_publish`]: `onStatus` with level
//! `error`) → audio / video / data messages ([`SessionEvent::Media`],
//! [`SessionEvent::Metadata`]) → `FCUnpublish` / `deleteStream` / `closeStream`
//! (`onStatus` NetStream.Unpublish.Success, [`SessionEvent::Unpublished`]).
//!
//! Bounded memory: the chunk decoder's caps ([`ChunkLimits`]) bound reassembly; the output
//! buffer is capped by [`SessionConfig::max_pending_transmit`] (a peer that sends pings or
//! commands faster than the caller drains the output is dropped); events are produced at most
//! one per decoded message (or per FLV tag inside an aggregate message) of the last input, so
//! they are bounded by what the caller reads per call.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, ChunkStreamId, Message, MessageStreamId,
};
use super::handshake::{HandshakeError, HandshakeKind, RANDOM_SIZE, ServerHandshake};
use super::message::{
    BandwidthLimit, Command, MessageError, MessageType, ProtocolControl, TimestampUnwrapper,
    UserControl,
};
use crate::amf0::Amf0Value;
use crate::flv::{self, FileTagReader, FlvDemuxer, FlvError};
use crate::media::MediaEvent;

/// `onStatus` code for a refused stream name (the usual answer to a bad stream key).
pub const BAD_NAME: &str = "NetStream.Publish.BadName";

/// Chunk stream for replies to NetConnection commands (what FMS and ffmpeg use).
const CSID_COMMAND: u32 = 3;
/// Chunk stream for NetStream status messages.
const CSID_STREAM: u32 = 5;

/// Tunables of a [`ServerSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Chunk size announced to and used towards the peer after `connect`.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth window announced to the peer (dynamic limit).
    pub peer_bandwidth: u32,
    /// Caps of the chunk decoder.
    pub chunk_limits: ChunkLimits,
    /// Most bytes waiting in the output before the session gives up on the peer. Guards
    /// against a peer that makes the server talk (pings, commands) without reading.
    pub max_pending_transmit: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            chunk_limits: ChunkLimits::default(),
            max_pending_transmit: 1024 * 1024,
        }
    }
}

/// What the application learns from the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The peer sent `connect` and it was answered with success.
    Connected {
        /// The `app` property (`live` in `rtmp://host/live/key`).
        app: String,
        /// The `tcUrl` property, if sent.
        tc_url: Option<String>,
    },
    /// The peer asked to publish; answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`].
    PublishRequested {
        /// The publish name up to any `?`.
        stream_key: String,
        /// What followed a `?` in the publish name, if anything.
        query: Option<String>,
        /// The `app` of the connection.
        app: String,
        /// The `tcUrl` of the connection.
        tc_url: Option<String>,
    },
    /// Media parsed from an audio or video message of the accepted publish.
    Media(MediaEvent),
    /// An `onMetaData` object (sent directly or through `@setDataFrame`).
    Metadata(Amf0Value),
    /// The peer stopped publishing (`FCUnpublish`, `deleteStream` or `closeStream`).
    Unpublished,
}

/// Protocol violations at the session level (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// A command other than `connect` before `connect`.
    #[error("command {0:?} before connect")]
    NotConnected(String),
    /// `connect` on a connection that is already connected.
    #[error("second connect")]
    ConnectTwice,
    /// `publish` on a message stream that `createStream` did not create, or while another
    /// publish is active.
    #[error("publish on stream {0} not allowed in this state")]
    BadPublish(u32),
    /// `publish` without a name argument.
    #[error("publish without a stream name")]
    MissingStreamName,
    /// Audio or video before the publish was accepted.
    #[error("media before an accepted publish")]
    MediaBeforePublish,
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// Handshake failure.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// Chunk stream failure (protocol violation or cap exceeded).
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// Malformed control or command message.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// Malformed or unsupported media.
    #[error("media: {0}")]
    Flv(#[from] FlvError),
    /// Commands out of order.
    #[error("protocol: {0}")]
    Protocol(#[from] Violation),
    /// A valid request this ingest-only server does not serve (`play`).
    #[error("unsupported request: {0}")]
    Unsupported(&'static str),
    /// The output was not drained and grew past the configured cap.
    #[error("peer is not reading: output over the limit")]
    TransmitBacklog,
}

impl SessionError {
    /// True when the peer misbehaved (malformed or out-of-order input, or exceeded a cap);
    /// false for valid input Sluice does not support (e.g. an RTMPE version byte or an MP3
    /// audio track).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            SessionError::Handshake(HandshakeError::UnsupportedVersion(_))
            | SessionError::Unsupported(_) => false,
            SessionError::Flv(e) => e.is_peer_fault(),
            _ => true,
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Exchanging C0-C2 / S0-S2.
    Handshake,
    /// Waiting for `connect`.
    AwaitConnect,
    /// Connected, not publishing.
    Connected,
    /// `publish` received, waiting for the application's decision.
    PublishPending,
    /// Publishing: media flows.
    Publishing,
    /// The application refused the publish; input is ignored until the caller closes.
    Rejected,
}

/// Server side of one RTMP publishing connection. See the module docs for the run loop.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    state: SessionState,
    handshake: ServerHandshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    demux: FlvDemuxer,
    out: BytesMut,
    events: VecDeque<SessionEvent>,
    app: String,
    tc_url: Option<String>,
    /// Highest message stream id handed out by `createStream`.
    last_stream_id: u32,
    /// Message stream of the pending or active publish.
    publish_stream: u32,
    publish_name: String,
    fc_publish_seen: bool,
    bytes_in: u64,
    bytes_out: u64,
    /// The peer's Window Acknowledgement Size, once announced.
    peer_window: Option<u32>,
    /// `bytes_in` when the last Acknowledgement was sent.
    acked_at: u64,
    audio_ts: TimestampUnwrapper,
    video_ts: TimestampUnwrapper,
}

impl ServerSession {
    /// A session for a freshly accepted TCP connection; `s1_random` are the random bytes of
    /// S1 (from the caller's RNG).
    pub fn new(config: SessionConfig, s1_random: [u8; RANDOM_SIZE]) -> Self {
        let decoder = ChunkDecoder::new(config.chunk_limits);
        Self {
            config,
            state: SessionState::Handshake,
            handshake: ServerHandshake::new(s1_random),
            decoder,
            encoder: ChunkEncoder::new(),
            demux: FlvDemuxer::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            app: String::new(),
            tc_url: None,
            last_stream_id: 0,
            publish_stream: 0,
            publish_name: String::new(),
            fc_publish_seen: false,
            bytes_in: 0,
            bytes_out: 0,
            peer_window: None,
            acked_at: 0,
            audio_ts: TimestampUnwrapper::default(),
            video_ts: TimestampUnwrapper::default(),
        }
    }

    /// Feeds bytes received from the TCP peer. An error is final: close the connection.
    pub fn handle_input(&mut self, data: Bytes) -> Result<(), SessionError> {
        self.bytes_in += data.len() as u64;
        let mut data = data;
        if self.state == SessionState::Handshake {
            if !self.handshake.handle(&mut data, &mut self.out)? {
                return self.check_backlog();
            }
            self.state = SessionState::AwaitConnect;
        }
        if self.state == SessionState::Rejected {
            return Ok(());
        }
        self.decoder.push(data);
        while let Some(msg) = self.decoder.poll_message()? {
            self.on_message(msg)?;
            // Checked per message so one large input full of pings cannot grow the output
            // past the cap before the check.
            self.check_backlog()?;
            if self.state == SessionState::Rejected {
                break;
            }
        }
        self.maybe_acknowledge();
        self.check_backlog()
    }

    /// The next event for the application, in order.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the peer. Drain fully after each `handle_input`, `accept_publish`
    /// and `reject_publish`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let b = self.out.split().freeze();
        self.bytes_out += b.len() as u64;
        Some(b)
    }

    /// Accepts the pending publish: the peer is told NetStream.Publish.Start and media may
    /// flow. Does nothing unless a publish is pending.
    pub fn accept_publish(&mut self) {
        if self.state != SessionState::PublishPending {
            return;
        }
        self.state = SessionState::Publishing;
        let stream = self.publish_stream;
        if self.fc_publish_seen {
            let info = status("status", "NetStream.Publish.Start", &self.publish_name);
            self.send_command(0, "onFCPublish", 0.0, Amf0Value::Null, vec![info]);
        }
        self.send_user_control(UserControl::StreamBegin(stream));
        let desc = format!("{} is now published.", self.publish_name);
        let info = status("status", "NetStream.Publish.Start", &desc);
        self.send_command(stream, "onStatus", 0.0, Amf0Value::Null, vec![info]);
    }

    /// Refuses the pending publish with an `onStatus` of level `error`, `code` (usually
    /// [`BAD_NAME`]) and `description`; the caller then drains the output and closes the
    /// connection. Later input is ignored. Does nothing unless a publish is pending.
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        if self.state != SessionState::PublishPending {
            return;
        }
        self.state = SessionState::Rejected;
        let info = status("error", code, description);
        self.send_command(
            self.publish_stream,
            "onStatus",
            0.0,
            Amf0Value::Null,
            vec![info],
        );
    }

    /// Where the connection is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// True after a rejected publish: drain the output, then close.
    pub fn is_closed(&self) -> bool {
        self.state == SessionState::Rejected
    }

    /// The client's handshake flavour, once C1 has arrived.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake.kind()
    }

    /// Bytes received from the peer so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes handed out by [`poll_transmit`](Self::poll_transmit) so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    fn check_backlog(&self) -> Result<(), SessionError> {
        if self.out.len() > self.config.max_pending_transmit {
            return Err(SessionError::TransmitBacklog);
        }
        Ok(())
    }

    /// Sends an Acknowledgement each time another peer window's worth of bytes arrived
    /// (spec 5.4.3); the sequence number is the byte count modulo 2^32.
    fn maybe_acknowledge(&mut self) {
        let Some(window) = self.peer_window else {
            return;
        };
        if window > 0 && self.bytes_in - self.acked_at >= u64::from(window) {
            self.acked_at = self.bytes_in;
            self.send_control(ProtocolControl::Acknowledgement(self.bytes_in as u32));
        }
    }

    fn on_message(&mut self, msg: Message) -> Result<(), SessionError> {
        match MessageType::from(msg.type_id) {
            MessageType::WindowAckSize => {
                if let Some(Ok(ProtocolControl::WindowAckSize(w))) =
                    ProtocolControl::parse(msg.type_id, &msg.payload)
                {
                    self.peer_window = Some(w);
                    self.acked_at = self.bytes_in;
                } else {
                    return Err(MessageError::Truncated("Window Acknowledgement Size").into());
                }
            }
            MessageType::UserControl => {
                if let UserControl::PingRequest(t) = UserControl::parse(&msg.payload)? {
                    self.send_user_control(UserControl::PingResponse(t));
                }
            }
            MessageType::CommandAmf0 | MessageType::CommandAmf3 => {
                let amf3 = msg.type_id == u8::from(MessageType::CommandAmf3);
                let cmd = Command::parse(&msg.payload, amf3)?;
                self.on_command(msg.stream_id, cmd)?;
            }
            MessageType::Audio | MessageType::Video => {
                self.on_media(msg.type_id, msg.timestamp, msg.payload)?;
            }
            MessageType::Aggregate => {
                // Spec 7.1.6: FLV tags back to back; the first sub-tag's timestamp maps to the
                // message timestamp, the others keep their offset from it.
                let mut first = None;
                for tag in FileTagReader::without_header(msg.payload) {
                    let tag = tag?;
                    let base = *first.get_or_insert(tag.timestamp_ms);
                    let ts = msg
                        .timestamp
                        .wrapping_add(tag.timestamp_ms.wrapping_sub(base));
                    if tag.tag_type == flv::TAG_AUDIO || tag.tag_type == flv::TAG_VIDEO {
                        self.on_media(tag.tag_type, ts, tag.body)?;
                    }
                }
            }
            MessageType::DataAmf0 | MessageType::DataAmf3
                if self.state == SessionState::Publishing =>
            {
                let body = if msg.type_id == u8::from(MessageType::DataAmf3) {
                    msg.payload.get(1..).unwrap_or_default()
                } else {
                    &msg.payload[..]
                };
                if let Some(meta) = flv::parse_metadata(body)? {
                    self.events.push_back(SessionEvent::Metadata(meta));
                }
            }
            // Set Chunk Size and Abort are applied by the decoder; acknowledgements and peer
            // bandwidth from a publisher need no action; shared objects are not sent by
            // publishers and are ignored.
            _ => {}
        }
        Ok(())
    }

    fn on_media(&mut self, type_id: u8, timestamp: u32, body: Bytes) -> Result<(), SessionError> {
        if self.state != SessionState::Publishing {
            return Err(Violation::MediaBeforePublish.into());
        }
        let ev = if type_id == flv::TAG_AUDIO {
            let ts = self.audio_ts.unwrap(timestamp);
            self.demux.audio(ts, body)?
        } else {
            let ts = self.video_ts.unwrap(timestamp);
            self.demux.video(ts, body)?
        };
        if let Some(ev) = ev {
            self.events.push_back(SessionEvent::Media(ev));
        }
        Ok(())
    }

    fn on_command(&mut self, stream: MessageStreamId, cmd: Command) -> Result<(), SessionError> {
        if self.state == SessionState::AwaitConnect && cmd.name != "connect" {
            return Err(Violation::NotConnected(cmd.name).into());
        }
        let txn = cmd.transaction_id;
        match cmd.name.as_str() {
            "connect" => {
                if self.state != SessionState::AwaitConnect {
                    return Err(Violation::ConnectTwice.into());
                }
                self.app = cmd
                    .object
                    .get("app")
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.tc_url = cmd
                    .object
                    .get("tcUrl")
                    .and_then(Amf0Value::as_str)
                    .map(str::to_owned);
                self.send_control(ProtocolControl::WindowAckSize(self.config.window_ack_size));
                self.send_control(ProtocolControl::SetPeerBandwidth {
                    size: self.config.peer_bandwidth,
                    limit: BandwidthLimit::Dynamic,
                });
                self.send_control(ProtocolControl::SetChunkSize(self.config.out_chunk_size));
                self.encoder.set_chunk_size(self.config.out_chunk_size);
                let props = Amf0Value::Object(vec![
                    ("fmsVer".into(), Amf0Value::String("FMS/3,0,1,123".into())),
                    ("capabilities".into(), Amf0Value::Number(31.0)),
                ]);
                let mut info = status(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                if let Amf0Value::Object(p) = &mut info {
                    p.push(("objectEncoding".into(), Amf0Value::Number(0.0)));
                }
                self.send_command(0, "_result", txn, props, vec![info]);
                self.state = SessionState::Connected;
                self.events.push_back(SessionEvent::Connected {
                    app: self.app.clone(),
                    tc_url: self.tc_url.clone(),
                });
            }
            "releaseStream" | "FCPublish" => {
                if cmd.name == "FCPublish" {
                    self.fc_publish_seen = true;
                }
                if txn != 0.0 {
                    self.send_command(
                        0,
                        "_result",
                        txn,
                        Amf0Value::Null,
                        vec![Amf0Value::Undefined],
                    );
                }
            }
            "createStream" => {
                self.last_stream_id = self.last_stream_id.saturating_add(1);
                let id = f64::from(self.last_stream_id);
                self.send_command(
                    0,
                    "_result",
                    txn,
                    Amf0Value::Null,
                    vec![Amf0Value::Number(id)],
                );
            }
            "publish" => {
                let id = stream.0;
                if self.state != SessionState::Connected || id == 0 || id > self.last_stream_id {
                    return Err(Violation::BadPublish(id).into());
                }
                let name = cmd
                    .args
                    .first()
                    .and_then(Amf0Value::as_str)
                    .ok_or(Violation::MissingStreamName)?;
                let (key, query) = match name.split_once('?') {
                    Some((k, q)) => (k.to_owned(), Some(q.to_owned())),
                    None => (name.to_owned(), None),
                };
                self.publish_name = key.clone();
                self.publish_stream = id;
                self.state = SessionState::PublishPending;
                self.events.push_back(SessionEvent::PublishRequested {
                    stream_key: key,
                    query,
                    app: self.app.clone(),
                    tc_url: self.tc_url.clone(),
                });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if matches!(
                    self.state,
                    SessionState::Publishing | SessionState::PublishPending
                ) {
                    let desc = format!("{} is now unpublished.", self.publish_name);
                    let info = status("status", "NetStream.Unpublish.Success", &desc);
                    self.send_command(
                        self.publish_stream,
                        "onStatus",
                        0.0,
                        Amf0Value::Null,
                        vec![info],
                    );
                    self.state = SessionState::Connected;
                    self.fc_publish_seen = false;
                    self.events.push_back(SessionEvent::Unpublished);
                }
                if cmd.name == "FCUnpublish" && txn != 0.0 {
                    self.send_command(
                        0,
                        "_result",
                        txn,
                        Amf0Value::Null,
                        vec![Amf0Value::Undefined],
                    );
                }
            }
            "play" | "play2" => return Err(SessionError::Unsupported("play")),
            // `_result`/`_error` from the peer, `_checkbw`, `getStreamLength` and other calls a
            // publisher may make are not needed for ingest and are ignored.
            _ => {}
        }
        Ok(())
    }

    fn send_control(&mut self, pc: ProtocolControl) {
        let (t, body) = pc.emit();
        self.encoder.encode(
            ChunkStreamId::CONTROL,
            0,
            t,
            MessageStreamId(0),
            &body,
            &mut self.out,
        );
    }

    fn send_user_control(&mut self, uc: UserControl) {
        let body = uc.emit();
        let t = MessageType::UserControl.into();
        self.encoder.encode(
            ChunkStreamId::CONTROL,
            0,
            t,
            MessageStreamId(0),
            &body,
            &mut self.out,
        );
    }

    fn send_command(
        &mut self,
        stream: u32,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) {
        let cmd = Command {
            name: name.to_owned(),
            transaction_id: txn,
            object,
            args,
        };
        let csid = if stream == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        let Some(csid) = ChunkStreamId::new(csid) else {
            return;
        };
        let t = MessageType::CommandAmf0.into();
        self.encoder.encode(
            csid,
            0,
            t,
            MessageStreamId(stream),
            &cmd.emit(),
            &mut self.out,
        );
    }
}

/// An `onStatus`-style info object.
fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::Object(vec![
        ("level".into(), Amf0Value::String(level.into())),
        ("code".into(), Amf0Value::String(code.into())),
        ("description".into(), Amf0Value::String(description.into())),
    ])
}
