//! Seed corpora of the `srt_*` fuzz targets, generated here so they stay valid as the
//! formats evolve. The test checks that the committed seeds under `fuzz/corpus/` match;
//! `SLUICE_WRITE_SEEDS=1 cargo test -p sluice-proto --test srt_fuzz_seeds` rewrites them.

use bytes::Bytes;
use sluice_proto::srt::crypto::build_key_material;
use sluice_proto::srt::handshake::{encode_stream_id, ext_type, syn_cookie};
use sluice_proto::srt::packet::*;
use std::path::PathBuf;

fn emit(p: Packet) -> Vec<u8> {
    let mut b = vec![0u8; p.len()];
    p.emit(&mut b).unwrap();
    b
}

fn ctl(control: Control) -> Vec<u8> {
    emit(Packet::Control(ControlPacket {
        timestamp: Timestamp(5000),
        dest: SocketId(0x1234),
        control,
    }))
}

fn cif(hs_type: u32, cookie: u32, exts: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [5u32, 5, 1000, 1500, 8192, hs_type, 0x4242, cookie] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(&[0; 16]);
    v.extend_from_slice(exts);
    v
}

fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let data = emit(Packet::Data(DataPacket {
        seq: SeqNo::new(77),
        position: PacketPosition::Only,
        in_order: false,
        key: KeyFlags::None,
        retransmitted: false,
        msg: MsgNo::new(3),
        timestamp: Timestamp(1000),
        dest: SocketId(9),
        payload: Bytes::from_static(&[0x47, 0x40, 0x00, 0x10]),
    }));
    let ack = ctl(Control::Ack(Ack {
        ack_number: 4,
        last_ack: SeqNo::new(78),
        info: Some(AckInfo {
            rtt: 20_000,
            rtt_var: 5_000,
            buffer_available: 8000,
            rates: Some(AckRates {
                packets_per_sec: 500,
                link_capacity: 500,
                bytes_per_sec: 600_000,
            }),
        }),
    }));
    let nak = ctl(Control::Nak(LossList::from_entries(&[
        LossEntry::Single(SeqNo::new(3)),
        LossEntry::Range(SeqNo::new(5), SeqNo::new(9)),
    ])));
    let drop = ctl(Control::DropReq {
        msg: 2,
        first: SeqNo::new(1),
        last: SeqNo::new(2),
    });
    let mut hsreq = 0x0001_0500u32.to_be_bytes().to_vec();
    hsreq.extend_from_slice(&0xBFu32.to_be_bytes());
    hsreq.extend_from_slice(&((120u32 << 16) | 120).to_be_bytes());
    let km = build_key_material(b"fuzz passphrase", &[1; 16], Some(&[2; 16]), None).unwrap();
    let mut km_bytes = vec![0u8; km.len()];
    km.emit(&mut km_bytes).unwrap();
    let mut exts = ext(ext_type::HSREQ, &hsreq);
    exts.extend(ext(
        ext_type::SID,
        &encode_stream_id(b"#!::r=live/key,m=publish"),
    ));
    let plain_conclusion = cif(u32::MAX, 0, &exts);
    exts.extend(ext(ext_type::KMREQ, &km_bytes));
    let crypt_conclusion = cif(u32::MAX, 0, &exts);
    let induction = cif(1, 0, &[]);
    let mut hs_packet = ctl(Control::Handshake(Bytes::from(plain_conclusion.clone())));
    // The packet seed carries a real cookie too, though the packet target ignores it.
    hs_packet[16 + 28..16 + 32]
        .copy_from_slice(&syn_cookie(b"fuzz", b"198.51.100.1:5000", 1).to_be_bytes());
    let with_mode = |m: u8, c: &[u8]| [&[m][..], c].concat();
    // Receiver ops (5 bytes each): data, data after a gap, time step, control (ACKACK),
    // poll-timeout jump.
    let rx_ops = vec![
        0, 0, 0, 0, 1, //
        0, 0, 4, 0, 4, //
        2, 0, 0, 0x27, 0x10, //
        1, 0, 6, 0, 1, //
        3, 0, 0, 0, 0, //
        0, 0, 2, 1, 2, //
        2, 0, 3, 0, 0,
    ];
    vec![
        ("srt_packet", "data", data),
        ("srt_packet", "ack", ack),
        ("srt_packet", "nak", nak),
        ("srt_packet", "dropreq", drop),
        ("srt_packet", "keepalive", ctl(Control::KeepAlive)),
        ("srt_packet", "handshake", hs_packet),
        ("srt_handshake", "induction", with_mode(0, &induction)),
        (
            "srt_handshake",
            "conclusion",
            with_mode(1, &plain_conclusion),
        ),
        (
            "srt_handshake",
            "conclusion_kmreq",
            with_mode(1, &crypt_conclusion),
        ),
        ("srt_receiver", "ops", rx_ops),
    ]
}

#[test]
fn committed_seeds_match_generator() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = std::env::var_os("SLUICE_WRITE_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = root.join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with SLUICE_WRITE_SEEDS=1)",
                path.display()
            )
        });
        assert_eq!(on_disk, bytes, "{} is stale", path.display());
    }
}
