//! Writes the seed corpora of the perf fuzz targets (`fuzz/corpus/perf_*`), after checking
//! that each seed does what it is meant to (the scripted server brings a client to `Live`;
//! the marker seeds carry a marker). Deterministic, so re-running rewrites identical files.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use sluice_perf::rtmp_client::{ClientConfig, Role, RtmpClient, State};
use sluice_perf::sei;
use sluice_proto::amf0::Amf0Value;
use sluice_proto::rtmp::chunk::{ChunkEncoder, ChunkStreamId, MessageStreamId};
use sluice_proto::rtmp::message::{Command, ProtocolControl, UserControl};

fn server_script(role: Role) -> Vec<u8> {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let cs = |n| ChunkStreamId::new(n).unwrap();
    for pc in [
        ProtocolControl::WindowAckSize(64),
        ProtocolControl::SetChunkSize(4096),
    ] {
        let (t, b) = pc.emit();
        enc.encode(
            ChunkStreamId::CONTROL,
            0,
            t,
            MessageStreamId(0),
            &b,
            &mut out,
        );
    }
    enc.set_chunk_size(4096);
    let code = match role {
        Role::Publish => "NetStream.Publish.Start",
        Role::Play => "NetStream.Play.Start",
    };
    let status = Amf0Value::Object(vec![
        ("level".into(), Amf0Value::String("status".into())),
        ("code".into(), Amf0Value::String(code.into())),
    ]);
    for (name, txn, args) in [
        ("_result", 1.0, vec![]),
        ("_result", 2.0, vec![Amf0Value::Number(1.0)]),
        ("onStatus", 0.0, vec![status]),
    ] {
        let body = Command {
            name: name.into(),
            transaction_id: txn,
            object: Amf0Value::Null,
            args,
        }
        .emit();
        enc.encode(cs(3), 0, 20, MessageStreamId(0), &body, &mut out);
    }
    let ping = UserControl::PingRequest(5).emit();
    enc.encode(
        ChunkStreamId::CONTROL,
        0,
        4,
        MessageStreamId(0),
        &ping,
        &mut out,
    );
    let (t, b) = ProtocolControl::Acknowledgement(1000).emit();
    enc.encode(
        ChunkStreamId::CONTROL,
        0,
        t,
        MessageStreamId(0),
        &b,
        &mut out,
    );
    let mut video = vec![0x17, 1, 0, 0, 0, 0, 0, 0, 30];
    video.extend_from_slice(&sei::marker_nal(1));
    enc.encode(cs(6), 40, 9, MessageStreamId(1), &video, &mut out);
    out.to_vec()
}

#[test]
fn write_perf_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let dir = root.join("perf_rtmp_client");
    std::fs::create_dir_all(&dir).unwrap();
    for (sel, role, name) in [(0u8, Role::Publish, "publish"), (1, Role::Play, "play")] {
        let script = server_script(role);
        // The fuzz target starts after a valid handshake; check the script reaches Live.
        let (cfg, _) = ClientConfig::from_url("rtmp://127.0.0.1/live/k", role).unwrap();
        let mut c = RtmpClient::new(cfg, 0, &[9; 1528]);
        let mut hs = vec![3u8];
        hs.extend_from_slice(&[1u8; 3072]);
        c.handle_input(Bytes::from(hs)).unwrap();
        c.handle_input(Bytes::from(script.clone())).unwrap();
        assert_eq!(c.state(), State::Live, "{name}");
        assert_eq!(c.acked(), 1000);
        let mut seed = vec![sel | (7 << 2)];
        seed.extend_from_slice(&script);
        std::fs::write(dir.join(name), seed).unwrap();
    }
    let dir = root.join("perf_markers");
    std::fs::create_dir_all(&dir).unwrap();
    let nal = sei::marker_nal(0x0000_0100_0000_0000);
    let mut stap = vec![24u8, 0, 2, 0x09, 0x10];
    stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
    stap.extend_from_slice(&nal);
    assert!(sei::find_in_rtp_payload(&stap).is_some());
    let mut rtp = vec![0x80, 0xE0, 0, 1, 0, 0, 0, 90, 0, 0, 0, 7];
    rtp.extend_from_slice(&nal);
    std::fs::write(dir.join("single-nal"), &nal).unwrap();
    std::fs::write(dir.join("stap-a"), &stap).unwrap();
    std::fs::write(dir.join("rtp-packet"), &rtp).unwrap();
}
