//! Seed corpora for the `rtmp_chunk`, `rtmp_handshake`, `rtmp_message`, `amf0`, `flv_tag` and
//! `rtmp_session` fuzz targets.
//!
//! The test builds each seed and checks it exercises the intended path (so a seed that stops
//! parsing fails here). With `SLUICE_WRITE_FUZZ_SEEDS=1` it also writes them to
//! `fuzz/corpus/<target>/`:
//! `SLUICE_WRITE_FUZZ_SEEDS=1 cargo test -p sluice-proto --test rtmp_fuzz_seeds`.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use sluice_proto::amf0::{self, Amf0Value};
use sluice_proto::flv::FlvDemuxer;
use sluice_proto::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkStreamId, MessageStreamId};
use sluice_proto::rtmp::message::{Command, ProtocolControl, UserControl};

fn csid(n: u32) -> ChunkStreamId {
    ChunkStreamId::new(n).unwrap()
}

fn connect_body() -> Vec<u8> {
    Command {
        name: "connect".into(),
        transaction_id: 1.0,
        object: Amf0Value::Object(vec![
            ("app".into(), Amf0Value::String("live".into())),
            ("tcUrl".into(), Amf0Value::String("rtmp://h/live".into())),
        ]),
        args: vec![],
    }
    .emit()
}

fn metadata_body() -> Vec<u8> {
    let mut b = Vec::new();
    amf0::encode_all(
        &[
            Amf0Value::String("@setDataFrame".into()),
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("encoder".into(), Amf0Value::String("obs".into())),
                ("stereo".into(), Amf0Value::Boolean(true)),
            ]),
        ],
        &mut b,
    );
    b
}

fn avc_seq() -> Vec<u8> {
    vec![
        0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1F, 1, 0, 2, 0x68,
        0xEB,
    ]
}

fn avc_frame() -> Vec<u8> {
    vec![
        0x17, 1, 0, 0, 0x50, 0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x06, 0x05,
    ]
}

fn chunk_stream() -> Vec<u8> {
    let mut enc = ChunkEncoder::new();
    let mut w = BytesMut::new();
    enc.encode(csid(3), 0, 20, MessageStreamId(0), &connect_body(), &mut w);
    enc.encode(csid(4), 0, 18, MessageStreamId(1), &metadata_body(), &mut w);
    enc.encode(csid(6), 0, 9, MessageStreamId(1), &avc_seq(), &mut w);
    enc.encode(csid(6), 40, 9, MessageStreamId(1), &[0x27; 300], &mut w);
    enc.encode(csid(6), 80, 9, MessageStreamId(1), &[0x27; 300], &mut w);
    enc.encode(
        csid(4),
        0xFF_FFFF,
        8,
        MessageStreamId(1),
        &[0xAF, 1, 2],
        &mut w,
    );
    enc.encode(
        csid(2),
        0,
        1,
        MessageStreamId(0),
        &256u32.to_be_bytes(),
        &mut w,
    );
    enc.set_chunk_size(256);
    enc.encode(csid(400), 7, 9, MessageStreamId(1), &[0x27; 600], &mut w);
    w.to_vec()
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let with = |sel: u8, body: Vec<u8>| [vec![sel], body].concat();
    let mut opus = vec![0x90];
    opus.extend_from_slice(b"Opus");
    opus.extend_from_slice(b"OpusHead");
    opus.extend_from_slice(&[1, 2, 0x38, 1, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    let mut hvc = vec![0x91];
    hvc.extend_from_slice(b"hvc1");
    hvc.extend_from_slice(&[0, 0, 40, 0, 0, 0, 2, 19 << 1, 1]);
    let mut session_tail = BytesMut::new();
    let mut enc = ChunkEncoder::new();
    enc.encode(
        csid(9),
        0,
        18,
        MessageStreamId(1),
        &metadata_body(),
        &mut session_tail,
    );
    enc.encode(
        csid(6),
        0,
        9,
        MessageStreamId(1),
        &avc_seq(),
        &mut session_tail,
    );
    enc.encode(
        csid(6),
        40,
        9,
        MessageStreamId(1),
        &avc_frame(),
        &mut session_tail,
    );
    enc.encode(
        csid(4),
        0,
        8,
        MessageStreamId(1),
        &[0xAF, 0, 0x12, 0x10],
        &mut session_tail,
    );
    enc.encode(
        csid(2),
        0,
        4,
        MessageStreamId(0),
        &[0, 6, 0, 0, 0, 9],
        &mut session_tail,
    );
    vec![
        ("rtmp_chunk", "stream_step1", with(0, chunk_stream())),
        ("rtmp_chunk", "stream_step7", with(6, chunk_stream())),
        ("amf0", "connect", connect_body()),
        ("amf0", "metadata", metadata_body()),
        ("amf0", "nested", {
            let mut b = Vec::new();
            amf0::encode(
                &Amf0Value::StrictArray(vec![
                    Amf0Value::Object(vec![(
                        "d".into(),
                        Amf0Value::Date {
                            millis: 1e12,
                            time_zone: 0,
                        },
                    )]),
                    Amf0Value::LongString("long".into()),
                    Amf0Value::Undefined,
                ]),
                &mut b,
            );
            b
        }),
        ("flv_tag", "avc_seq", with(0, avc_seq())),
        ("flv_tag", "avc_frame", with(0, avc_frame())),
        ("flv_tag", "hevc_ex_frame", with(0, hvc)),
        ("flv_tag", "aac_seq", with(1, vec![0xAF, 0, 0x12, 0x10])),
        ("flv_tag", "opus_seq", with(1, opus)),
        ("flv_tag", "metadata", with(2, metadata_body())),
        ("rtmp_handshake", "plain_then_chunk", {
            let mut h = vec![0u8, 3];
            h.extend((0..2 * 1536).map(|i| (i % 251) as u8));
            h.extend_from_slice(&[0x02, 0, 0, 0]);
            h
        }),
        ("rtmp_handshake", "digest_scheme1_split", {
            let mut h = vec![0x0Fu8, 3];
            h.extend((0..2 * 1536).map(|i| (i % 13) as u8));
            h
        }),
        // type 3 (Acknowledgement) is selector 9: 9 % 3 == 0 and 9 / 3 % 8 == 3.
        (
            "rtmp_message",
            "acknowledgement",
            with(9, vec![0, 0, 0x10, 0]),
        ),
        (
            "rtmp_message",
            "ping_request",
            with(1, vec![0, 6, 0, 0, 0, 42]),
        ),
        ("rtmp_message", "connect_command", with(2, connect_body())),
        (
            "rtmp_session",
            "published_media",
            with(9, session_tail.to_vec()),
        ),
        (
            "rtmp_session",
            "handshake_only_ping",
            with(
                16,
                vec![0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1],
            ),
        ),
    ]
}

#[test]
fn seeds_exercise_their_targets() {
    for (target, name, data) in seeds() {
        match target {
            "rtmp_chunk" => {
                let mut dec = ChunkDecoder::default();
                dec.push(Bytes::copy_from_slice(&data[1..]));
                let n = std::iter::from_fn(|| dec.poll_message().unwrap()).count();
                assert_eq!(n, 8, "{name}");
            }
            "amf0" => assert!(!amf0::decode_all(&data).unwrap().is_empty(), "{name}"),
            "flv_tag" if data[0] == 2 => {
                assert!(
                    sluice_proto::flv::parse_metadata(&data[1..])
                        .unwrap()
                        .is_some()
                )
            }
            "flv_tag" => {
                let mut d = FlvDemuxer::new();
                let body = Bytes::copy_from_slice(&data[1..]);
                let ev = if data[0] == 0 {
                    d.video(0, body)
                } else {
                    d.audio(0, body)
                };
                assert!(ev.unwrap().is_some(), "{name}");
            }
            "rtmp_message" if data[0] == 2 => assert!(Command::parse(&data[1..], false).is_ok()),
            "rtmp_message" if data[0] == 1 => {
                assert!(UserControl::parse(&Bytes::copy_from_slice(&data[1..])).is_ok())
            }
            "rtmp_message" => assert!(matches!(ProtocolControl::parse(3, &data[1..]), Some(Ok(_)))),
            "rtmp_handshake" => assert!(data.len() > 1 + 2 * 1536 && data[1] == 3, "{name}"),
            _ => assert!(data.len() > 10, "{name}"),
        }
    }
    if std::env::var_os("SLUICE_WRITE_FUZZ_SEEDS").is_some() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        for (target, name, data) in seeds() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), data).unwrap();
        }
    }
}
