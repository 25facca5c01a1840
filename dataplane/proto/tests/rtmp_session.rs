//! Scenario tests: a client written here (digest handshake, chunk encoder, AMF0 commands)
//! drives `rtmp::session::ServerSession` through a whole publish, with the input split at
//! random boundaries, and checks the server's replies with a chunk decoder.

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sluice_proto::amf0::{self, Amf0Value};
use sluice_proto::media::{MediaEvent, VideoCodec};
use sluice_proto::rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkStreamId, Message, MessageStreamId,
};
use sluice_proto::rtmp::handshake::{
    DigestScheme, HANDSHAKE_SIZE, RANDOM_SIZE, sign_client_c1, verify_server_s2,
};
use sluice_proto::rtmp::message::{Command, ProtocolControl, UserControl};
use sluice_proto::rtmp::session::{
    BAD_NAME, ServerSession, SessionConfig, SessionError, SessionEvent, SessionState, Violation,
};

fn csid(n: u32) -> ChunkStreamId {
    ChunkStreamId::new(n).unwrap()
}

struct Client {
    enc: ChunkEncoder,
    wire: BytesMut,
    c1: [u8; HANDSHAKE_SIZE],
}

impl Client {
    fn new() -> Self {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        for (i, b) in c1.iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2654435761).to_be_bytes()[0];
        }
        c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
        sign_client_c1(&mut c1, DigestScheme::Scheme0);
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[3]);
        wire.extend_from_slice(&c1);
        // C2: the server accepts any 1536 bytes.
        wire.extend_from_slice(&[0x22; HANDSHAKE_SIZE]);
        Self {
            enc: ChunkEncoder::new(),
            wire,
            c1,
        }
    }

    fn command(
        &mut self,
        stream: u32,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) {
        let body = Command {
            name: name.into(),
            transaction_id: txn,
            object,
            args,
        }
        .emit();
        let cs = if stream == 0 { 3 } else { 8 };
        self.enc.encode(
            csid(cs),
            0,
            20,
            MessageStreamId(stream),
            &body,
            &mut self.wire,
        );
    }

    fn control(&mut self, pc: ProtocolControl) {
        let (t, body) = pc.emit();
        self.enc
            .encode(csid(2), 0, t, MessageStreamId(0), &body, &mut self.wire);
        if let ProtocolControl::SetChunkSize(n) = pc {
            self.enc.set_chunk_size(n);
        }
    }

    fn media(&mut self, type_id: u8, ts: u32, body: &[u8]) {
        let cs = if type_id == 8 { 4 } else { 6 };
        self.enc.encode(
            csid(cs),
            ts,
            type_id,
            MessageStreamId(1),
            body,
            &mut self.wire,
        );
    }

    fn take(&mut self) -> Bytes {
        self.wire.split().freeze()
    }

    fn connect_and_publish(&mut self, key: &str) -> Bytes {
        let obj = Amf0Value::Object(vec![
            ("app".into(), Amf0Value::String("live".into())),
            ("type".into(), Amf0Value::String("nonprivate".into())),
            (
                "tcUrl".into(),
                Amf0Value::String("rtmp://127.0.0.1:1935/live".into()),
            ),
        ]);
        self.command(0, "connect", 1.0, obj, vec![]);
        self.control(ProtocolControl::SetChunkSize(60_000));
        let name = || vec![Amf0Value::String("ignored".into())];
        self.command(0, "releaseStream", 2.0, Amf0Value::Null, name());
        self.command(0, "FCPublish", 3.0, Amf0Value::Null, name());
        self.command(0, "createStream", 4.0, Amf0Value::Null, vec![]);
        self.command(
            1,
            "publish",
            5.0,
            Amf0Value::Null,
            vec![
                Amf0Value::String(key.into()),
                Amf0Value::String("live".into()),
            ],
        );
        self.take()
    }

    fn media_and_unpublish(&mut self) -> Bytes {
        let mut meta = Vec::new();
        amf0::encode_all(
            &[
                Amf0Value::String("@setDataFrame".into()),
                Amf0Value::String("onMetaData".into()),
                Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
            ],
            &mut meta,
        );
        self.enc
            .encode(csid(4), 0, 18, MessageStreamId(1), &meta, &mut self.wire);
        let mut seq = vec![
            0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E,
        ];
        seq.extend_from_slice(&[1, 0, 2, 0x68, 0xCE]);
        self.media(9, 0, &seq);
        self.media(8, 0, &[0xAF, 0, 0x12, 0x10]);
        for i in 0..25u32 {
            let key = i % 10 == 0;
            let nal_len = 3000 + i as usize * 37; // > 128 and crosses chunk boundaries
            let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            v.extend_from_slice(&(nal_len as u32).to_be_bytes());
            v.push(if key { 0x65 } else { 0x41 });
            v.extend(std::iter::repeat_n(i as u8, nal_len - 1));
            self.media(9, i * 40, &v);
            self.media(8, i * 40 + 3, &[0xAF, 1, 0x21, i as u8]);
        }
        // Timestamps near the extended-timestamp threshold.
        self.media(8, 0xFF_FFFE, &[0xAF, 1, 0xEE]);
        self.media(8, 0x100_0010, &[0xAF, 1, 0xEF]);
        self.command(
            0,
            "FCUnpublish",
            6.0,
            Amf0Value::Null,
            vec![Amf0Value::String("k".into())],
        );
        self.command(
            0,
            "deleteStream",
            7.0,
            Amf0Value::Null,
            vec![Amf0Value::Number(1.0)],
        );
        self.take()
    }
}

/// Feeds `data` split at random points; returns events, transmitted bytes.
fn feed(
    s: &mut ServerSession,
    data: &Bytes,
    rng: &mut StdRng,
    max_piece: usize,
) -> (Vec<SessionEvent>, Vec<u8>) {
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = rng.gen_range(1..=max_piece).min(data.len() - pos);
        s.handle_input(data.slice(pos..pos + n)).unwrap();
        pos += n;
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        while let Some(b) = s.poll_transmit() {
            out.extend_from_slice(&b);
        }
    }
    (events, out)
}

fn server_messages(out: &[u8]) -> Vec<Message> {
    let mut dec = ChunkDecoder::default();
    dec.push(Bytes::copy_from_slice(out));
    std::iter::from_fn(|| dec.poll_message().unwrap()).collect()
}

fn command_names(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.type_id == 20)
        .map(|m| {
            let c = Command::parse(&m.payload, false).unwrap();
            let code = c
                .args
                .first()
                .and_then(|a| a.get("code"))
                .and_then(Amf0Value::as_str)
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            format!("{}{}", c.name, code)
        })
        .collect()
}

fn run_publish(
    seed: u64,
    max_piece: usize,
) -> (Vec<SessionEvent>, Vec<u8>, Vec<u8>, [u8; HANDSHAKE_SIZE]) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = Client::new();
    let c1 = client.c1;
    let part_a = client.connect_and_publish("sk-123?sign=abc");
    let part_b = client.media_and_unpublish();
    let mut s = ServerSession::new(SessionConfig::default(), [7; RANDOM_SIZE]);
    let (mut events, out_a) = feed(&mut s, &part_a, &mut rng, max_piece);
    assert_eq!(s.state(), SessionState::PublishPending);
    s.accept_publish();
    let mut accept_out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        accept_out.extend_from_slice(&b);
    }
    let (ev_b, out_b) = feed(&mut s, &part_b, &mut rng, max_piece);
    events.extend(ev_b);
    let mut out = out_a;
    out.extend_from_slice(&accept_out);
    out.extend_from_slice(&out_b);
    assert_eq!(s.bytes_in(), (part_a.len() + part_b.len()) as u64);
    assert_eq!(s.bytes_out(), out.len() as u64);
    (events, out, part_b.to_vec(), c1)
}

#[test]
fn full_publish_any_split_gives_identical_events() {
    let (reference, out, _, c1) = run_publish(1, 100_000);
    // Handshake reply: S0 + S1 + S2 with a valid digest.
    assert_eq!(out[0], 3);
    assert!(verify_server_s2(
        &c1,
        DigestScheme::Scheme0,
        &out[1 + HANDSHAKE_SIZE..1 + 2 * HANDSHAKE_SIZE]
    ));
    let msgs = server_messages(&out[1 + 2 * HANDSHAKE_SIZE..]);
    // Control messages after connect.
    let controls: Vec<_> = msgs
        .iter()
        .filter_map(|m| ProtocolControl::parse(m.type_id, &m.payload).map(Result::unwrap))
        .collect();
    assert!(controls.contains(&ProtocolControl::WindowAckSize(2_500_000)));
    assert!(controls.contains(&ProtocolControl::SetChunkSize(4096)));
    assert!(msgs.iter().any(
        |m| m.type_id == 4 && UserControl::parse(&m.payload) == Ok(UserControl::StreamBegin(1))
    ));
    assert_eq!(
        command_names(&msgs),
        [
            "_result NetConnection.Connect.Success",
            "_result",
            "_result",
            "_result",
            "onFCPublish NetStream.Publish.Start",
            "onStatus NetStream.Publish.Start",
            "onStatus NetStream.Unpublish.Success",
            "_result",
        ]
    );
    // createStream's _result carries stream id 1.
    let create = Command::parse(
        &msgs
            .iter()
            .filter(|m| m.type_id == 20)
            .nth(3)
            .unwrap()
            .payload,
        false,
    )
    .unwrap();
    assert_eq!(
        (create.transaction_id, create.args.clone()),
        (4.0, vec![Amf0Value::Number(1.0)])
    );

    // Events: connect, publish request with the query split off, metadata, media, unpublish.
    assert_eq!(
        reference[0],
        SessionEvent::Connected {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live".into())
        }
    );
    assert_eq!(
        reference[1],
        SessionEvent::PublishRequested {
            stream_key: "sk-123".into(),
            query: Some("sign=abc".into()),
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live".into())
        }
    );
    assert!(
        matches!(&reference[2], SessionEvent::Metadata(m) if m.get("width") == Some(&Amf0Value::Number(320.0)))
    );
    assert!(
        matches!(&reference[3], SessionEvent::Media(MediaEvent::VideoConfig(c)) if c.codec == VideoCodec::H264 && c.profile == 0x42)
    );
    assert!(
        matches!(&reference[4], SessionEvent::Media(MediaEvent::AudioConfig(c)) if c.sample_rate == 44100)
    );
    let videos: Vec<_> = reference
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Media(MediaEvent::Video(v)) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(videos.len(), 25);
    assert_eq!(videos.iter().filter(|v| v.keyframe).count(), 3);
    assert_eq!(videos[7].dts, 7 * 40 * 90);
    assert_eq!(videos[7].len(), 3000 + 7 * 37);
    let audio_pts: Vec<i64> = reference
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Media(MediaEvent::Audio(a)) => Some(a.pts),
            _ => None,
        })
        .collect();
    assert_eq!(audio_pts.len(), 27);
    assert_eq!(audio_pts[25], 0xFF_FFFE * 90);
    assert_eq!(audio_pts[26], 0x100_0010 * 90);
    assert_eq!(reference.last(), Some(&SessionEvent::Unpublished));

    for (seed, max_piece) in [(2, 1), (3, 7), (4, 200), (5, 5000), (6, 1)] {
        let (events, out2, _, _) = run_publish(seed, max_piece);
        assert_eq!(events, reference, "seed {seed} max_piece {max_piece}");
        assert_eq!(out2, out, "server output must not depend on input splits");
    }
}

fn publish_pending(key: &str) -> ServerSession {
    let mut client = Client::new();
    let a = client.connect_and_publish(key);
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    s.handle_input(a).unwrap();
    while s.poll_event().is_some() {}
    while s.poll_transmit().is_some() {}
    s
}

#[test]
fn reject_sends_error_status_and_ignores_later_input() {
    let mut s = publish_pending("bad");
    s.reject_publish(BAD_NAME, "stream key is not valid");
    assert!(s.is_closed());
    let out = s.poll_transmit().unwrap();
    let msgs = server_messages(&out);
    // A fresh decoder can read it: it is the first message on its chunk stream (format 0).
    let c = Command::parse(&msgs[0].payload, false).unwrap();
    assert_eq!(c.name, "onStatus");
    let info = &c.args[0];
    assert_eq!(info.get("level").and_then(Amf0Value::as_str), Some("error"));
    assert_eq!(info.get("code").and_then(Amf0Value::as_str), Some(BAD_NAME));
    assert_eq!(
        info.get("description").and_then(Amf0Value::as_str),
        Some("stream key is not valid")
    );
    // Media after rejection is ignored, not an error.
    s.handle_input(Bytes::from_static(&[
        0x06, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x17,
    ]))
    .unwrap();
    assert_eq!(s.poll_event(), None);
}

#[test]
fn media_before_accept_is_a_violation() {
    let mut s = publish_pending("k");
    let mut enc = ChunkEncoder::new();
    let mut w = BytesMut::new();
    enc.encode(
        csid(6),
        0,
        9,
        MessageStreamId(1),
        &[0x17, 2, 0, 0, 0],
        &mut w,
    );
    // A new client-side encoder writes a format 0 header, which needs no earlier state.
    let err = s.handle_input(w.freeze()).unwrap_err();
    assert_eq!(err, SessionError::Protocol(Violation::MediaBeforePublish));
    assert!(err.is_peer_fault());
}

#[test]
fn commands_before_connect_and_bad_version_refused() {
    let mut client = Client::new();
    client.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    assert!(matches!(
        s.handle_input(client.take()),
        Err(SessionError::Protocol(Violation::NotConnected(_)))
    ));

    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    let err = s.handle_input(Bytes::from(vec![6u8; 1537])).unwrap_err();
    assert!(!err.is_peer_fault());
}

#[test]
fn ping_answered_and_window_acknowledged() {
    let mut client = Client::new();
    let a = client.connect_and_publish("k");
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    s.handle_input(a).unwrap();
    s.accept_publish();
    while s.poll_transmit().is_some() {}
    client.control(ProtocolControl::WindowAckSize(5000));
    let body = UserControl::PingRequest(0xABCD).emit();
    client
        .enc
        .encode(csid(2), 0, 4, MessageStreamId(0), &body, &mut client.wire);
    s.handle_input(client.take()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    // Later control messages use compressed headers relative to earlier output, so look for
    // the response body in the bytes rather than decoding them out of context.
    let pong = UserControl::PingResponse(0xABCD).emit();
    assert!(out.windows(pong.len()).any(|w| w == &pong[..]));

    // 6000 bytes of audio: crosses the 5000-byte window once.
    for i in 0..20 {
        client.media(8, i, &[0xAF, 1, 0, 0, 0, 0, 0, 0, 0, 0].repeat(30));
    }
    let before = s.bytes_in();
    s.handle_input(client.take()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    let ack = ProtocolControl::Acknowledgement(s.bytes_in() as u32)
        .emit()
        .1;
    assert!(s.bytes_in() - before >= 5000);
    assert!(
        out.windows(4).any(|w| w == &ack[..]),
        "acknowledgement sent"
    );
}

#[test]
fn output_backlog_is_bounded() {
    let mut client = Client::new();
    let a = client.connect_and_publish("k");
    let config = SessionConfig {
        max_pending_transmit: 8 * 1024,
        ..SessionConfig::default()
    };
    let mut s = ServerSession::new(config, [0; RANDOM_SIZE]);
    s.handle_input(a).unwrap();
    let body = UserControl::PingRequest(1).emit();
    let mut result = Ok(());
    for _ in 0..2000 {
        client
            .enc
            .encode(csid(2), 0, 4, MessageStreamId(0), &body, &mut client.wire);
        result = s.handle_input(client.take());
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(SessionError::TransmitBacklog));
}

#[test]
fn random_splits_fuzzish() {
    // Many random splits of the whole stream, checking only the event count.
    let (reference, _, _, _) = run_publish(10, 64);
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..5 {
        let seed = rng.r#gen::<u64>();
        let (events, _, _, _) = run_publish(seed, 1 + (seed % 300) as usize);
        assert_eq!(events.len(), reference.len());
    }
}

#[test]
fn aggregate_message_is_split_into_media() {
    let mut client = Client::new();
    let a = client.connect_and_publish("k");
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    s.handle_input(a).unwrap();
    s.accept_publish();
    while s.poll_event().is_some() {}
    // Two AAC frames as FLV tags with sub-timestamps 5000 and 5023; the message says 100.
    let mut agg = Vec::new();
    for (ts, byte) in [(5000u32, 0x11u8), (5023, 0x22)] {
        agg.extend_from_slice(&[8, 0, 0, 3]);
        agg.extend_from_slice(&[(ts >> 16) as u8, (ts >> 8) as u8, ts as u8, 0, 0, 0, 0]);
        agg.extend_from_slice(&[0xAF, 1, byte]);
        agg.extend_from_slice(&14u32.to_be_bytes());
    }
    client
        .enc
        .encode(csid(4), 100, 22, MessageStreamId(1), &agg, &mut client.wire);
    s.handle_input(client.take()).unwrap();
    let got: Vec<(i64, u8)> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            SessionEvent::Media(MediaEvent::Audio(a)) => Some((a.pts, a.data[0])),
            _ => None,
        })
        .collect();
    assert_eq!(got, [(100 * 90, 0x11), (123 * 90, 0x22)]);
}

#[test]
fn out_of_order_commands_are_violations() {
    // publish on a stream createStream never returned.
    let mut client = Client::new();
    client.command(0, "connect", 1.0, Amf0Value::Object(vec![]), vec![]);
    client.command(
        1,
        "publish",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::String("k".into())],
    );
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    assert_eq!(
        s.handle_input(client.take()),
        Err(SessionError::Protocol(Violation::BadPublish(1)))
    );

    // connect twice.
    let mut client = Client::new();
    client.command(0, "connect", 1.0, Amf0Value::Object(vec![]), vec![]);
    client.command(0, "connect", 2.0, Amf0Value::Object(vec![]), vec![]);
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    assert_eq!(
        s.handle_input(client.take()),
        Err(SessionError::Protocol(Violation::ConnectTwice))
    );

    // publish without a name.
    let mut client = Client::new();
    client.command(0, "connect", 1.0, Amf0Value::Object(vec![]), vec![]);
    client.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    client.command(1, "publish", 0.0, Amf0Value::Null, vec![Amf0Value::Null]);
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    assert_eq!(
        s.handle_input(client.take()),
        Err(SessionError::Protocol(Violation::MissingStreamName))
    );
}

#[test]
fn amf3_command_framing_and_republish_after_unpublish() {
    let mut client = Client::new();
    // connect sent as an AMF3 command message (type 17): a 0x00 format byte, then AMF0.
    let mut body = vec![0u8];
    body.extend_from_slice(
        &Command {
            name: "connect".into(),
            transaction_id: 1.0,
            object: Amf0Value::Object(vec![("app".into(), Amf0Value::String("app3".into()))]),
            args: vec![],
        }
        .emit(),
    );
    client
        .enc
        .encode(csid(3), 0, 17, MessageStreamId(0), &body, &mut client.wire);
    client.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    client.command(
        1,
        "publish",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::String("first".into())],
    );
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    s.handle_input(client.take()).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(&evs[0], SessionEvent::Connected { app, .. } if app == "app3"));
    assert!(
        matches!(&evs[1], SessionEvent::PublishRequested { stream_key, .. } if stream_key == "first")
    );
    s.accept_publish();

    client.media(8, 0, &[0xAF, 1, 1]);
    client.command(1, "closeStream", 0.0, Amf0Value::Null, vec![]);
    client.command(
        1,
        "publish",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::String("again".into())],
    );
    s.handle_input(client.take()).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(evs[0], SessionEvent::Media(MediaEvent::Audio(_))));
    assert_eq!(evs[1], SessionEvent::Unpublished);
    assert!(
        matches!(&evs[2], SessionEvent::PublishRequested { stream_key, .. } if stream_key == "again")
    );
    assert_eq!(s.state(), SessionState::PublishPending);
}

#[test]
fn play_is_refused_as_unsupported() {
    let mut client = Client::new();
    client.command(0, "connect", 1.0, Amf0Value::Object(vec![]), vec![]);
    client.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    client.command(
        1,
        "play",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::String("k".into())],
    );
    let mut s = ServerSession::new(SessionConfig::default(), [0; RANDOM_SIZE]);
    let err = s.handle_input(client.take()).unwrap_err();
    assert_eq!(err, SessionError::Unsupported("play"));
    assert!(!err.is_peer_fault());
}
