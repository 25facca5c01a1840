//! RTMP server session: after a valid handshake (and, depending on the first byte, a valid
//! connect + createStream + publish that gets accepted), arbitrary input never panics, the
//! output stays within the configured backlog, and the byte counters add up.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_proto::amf0::Amf0Value;
use sluice_proto::rtmp::chunk::{ChunkEncoder, ChunkStreamId, MessageStreamId};
use sluice_proto::rtmp::message::Command;
use sluice_proto::rtmp::session::{ServerSession, SessionConfig, SessionEvent};

fn prefix(publish: bool) -> Bytes {
    let mut w = BytesMut::new();
    w.extend_from_slice(&[3]);
    w.extend_from_slice(&[0u8; 1536]);
    w.extend_from_slice(&[0u8; 1536]);
    if publish {
        let mut enc = ChunkEncoder::new();
        let cmds = [
            (0, "connect", 1.0, Amf0Value::Object(vec![("app".into(), Amf0Value::String("live".into()))]), vec![]),
            (0, "createStream", 2.0, Amf0Value::Null, vec![]),
            (1, "publish", 3.0, Amf0Value::Null, vec![Amf0Value::String("key".into())]),
        ];
        for (stream, name, txn, object, args) in cmds {
            let body = Command { name: name.into(), transaction_id: txn, object, args }.emit();
            let csid = ChunkStreamId::new(if stream == 0 { 3 } else { 8 }).unwrap();
            enc.encode(csid, 0, 20, MessageStreamId(stream), &body, &mut w);
        }
    }
    w.freeze()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let config = SessionConfig { max_pending_transmit: 64 * 1024, ..SessionConfig::default() };
    let cap = config.max_pending_transmit;
    let mut s = ServerSession::new(config, [0; 1528]);
    let mut fed = 0u64;
    let mut sent = 0u64;
    let step = usize::from(sel >> 1).max(1);
    let input = prefix(sel & 1 == 1);
    let rest = Bytes::copy_from_slice(rest);
    let pieces = std::iter::once(input).chain((0..rest.len()).step_by(step).map(|i| rest.slice(i..(i + step).min(rest.len()))));
    for piece in pieces {
        fed += piece.len() as u64;
        let result = s.handle_input(piece);
        while let Some(ev) = s.poll_event() {
            if matches!(ev, SessionEvent::PublishRequested { .. }) {
                s.accept_publish();
            }
        }
        let mut out = 0usize;
        while let Some(b) = s.poll_transmit() {
            out += b.len();
        }
        // One input's replies stay under the backlog cap plus the largest single reply batch
        // (the handshake answer, 3073 bytes, or an accept's few hundred bytes).
        assert!(out <= cap + 4096, "transmit {out} over bound");
        sent += out as u64;
        if result.is_err() {
            break;
        }
    }
    assert_eq!(s.bytes_in(), fed);
    assert_eq!(s.bytes_out(), sent);
});
