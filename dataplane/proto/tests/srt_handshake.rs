//! Caller-listener handshake scenarios against the sans-IO listener, with handshakes built
//! byte by byte the way a libsrt 1.5 caller lays them out.

use bytes::Bytes;
use sluice_proto::srt::crypto::{CryptoError, KeyMaterial, SessionKeys, build_key_material};
use sluice_proto::srt::handshake::*;
use sluice_proto::srt::packet::{Control, ControlPacket, KeyFlags, Packet, SeqNo, SocketId};
use sluice_proto::srt::streamid::Mode;
use std::time::Duration;

const PEER: &[u8] = b"192.0.2.7:40000";
const CALLER_SOCKET: u32 = 0x1122_3344;
const ISN: u32 = 0x0ABC_DEF0;

fn header(dest: u32) -> Vec<u8> {
    let mut v = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&1234u32.to_be_bytes());
    v.extend_from_slice(&dest.to_be_bytes());
    v
}

/// A handshake packet as a libsrt caller sends it.
fn caller_hs(version: u32, ext_field: u16, hs_type: u32, cookie: u32, exts: &[u8]) -> Bytes {
    let mut v = header(0);
    for w in [
        version,
        u32::from(ext_field),
        ISN,
        1500,
        8192,
        hs_type,
        CALLER_SOCKET,
        cookie,
    ] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(&[0x7F, 0, 0, 1]);
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(exts);
    Bytes::from(v)
}

fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
    assert_eq!(body.len() % 4, 0);
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn hsreq(recv_ms: u16, send_ms: u16, flags: u32) -> Vec<u8> {
    let mut b = 0x0001_0502u32.to_be_bytes().to_vec();
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&((u32::from(recv_ms) << 16) | u32::from(send_ms)).to_be_bytes());
    ext(ext_type::HSREQ, &b)
}

const LIVE_FLAGS: u32 = SrtFlags::TSBPDSND
    | SrtFlags::TSBPDRCV
    | SrtFlags::CRYPT
    | SrtFlags::TLPKTDROP
    | SrtFlags::PERIODICNAK
    | SrtFlags::REXMITFLG;

fn listener() -> Listener {
    Listener::new(ListenerConfig {
        cookie_secret: b"cookie secret".to_vec(),
        listener_socket: SocketId(0x5555),
        latency: Duration::from_millis(120),
        peer_latency: Duration::from_millis(120),
        ..ListenerConfig::default()
    })
}

fn control(b: Bytes) -> ControlPacket {
    match Packet::parse(b).unwrap() {
        Packet::Control(c) => c,
        Packet::Data(_) => panic!("data"),
    }
}

fn induce(l: &Listener, minute: u32) -> u32 {
    let mut buf = [0u8; 1500];
    let ev = l
        .handle(
            &control(caller_hs(4, 2, 1, 0, &[])),
            PEER,
            [0; 16],
            minute,
            &mut buf,
        )
        .unwrap();
    let ListenerEvent::InductionReply(n) = ev else {
        panic!("{ev:?}")
    };
    let (pkt, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!(pkt.dest, SocketId(CALLER_SOCKET));
    assert_eq!(hs.version, 5);
    assert_eq!(hs.extension, SRT_MAGIC);
    assert_eq!(hs.hs_type, HandshakeType::Induction);
    assert_eq!(hs.isn, SeqNo::new(ISN));
    assert_eq!(hs.cookie, syn_cookie(b"cookie secret", PEER, minute));
    hs.cookie
}

fn conclude(l: &Listener, minute: u32, exts: &[u8]) -> (ListenerEvent, Vec<u8>) {
    let cookie = induce(l, minute);
    let mut buf = vec![0u8; 1500];
    let ev = l
        .handle(
            &control(caller_hs(5, 5, u32::MAX, cookie, exts)),
            PEER,
            [0; 16],
            minute,
            &mut buf,
        )
        .unwrap();
    (ev, buf)
}

fn sid(s: &[u8]) -> Vec<u8> {
    ext(ext_type::SID, &encode_stream_id(s))
}

#[test]
fn plain_conclusion_negotiates_latency_and_stream_id() {
    let l = listener();
    let mut exts = hsreq(200, 80, LIVE_FLAGS);
    // The stream id on the wire, written out by hand: "#!::r=key1,m=publish" is 20 bytes,
    // each 4-byte group reversed.
    let mut raw = Vec::new();
    for w in b"#!::r=key1,m=publish".chunks(4) {
        raw.extend(w.iter().rev());
    }
    exts.extend(ext(ext_type::SID, &raw));
    let (ev, _) = conclude(&l, 100, &exts);
    let ListenerEvent::Conclusion(req) = ev else {
        panic!("{ev:?}")
    };
    let id = req.stream_id().unwrap();
    assert_eq!(id.key, "key1");
    assert_eq!(id.mode, Some(Mode::Publish));
    assert_eq!(req.timestamp.0, 1234);
    let mut buf = [0u8; 1500];
    let acc = l.accept(&req, SocketId(77), None, 0, &mut buf).unwrap();
    // Caller sends with 80 ms, we receive with 120 ms: max is 120. Caller receives with
    // 200 ms, we propose 120: max is 200.
    assert_eq!(acc.latency, Duration::from_millis(120));
    assert_eq!(acc.peer_latency, Duration::from_millis(200));
    assert_eq!(acc.peer_socket, SocketId(CALLER_SOCKET));
    assert_eq!(acc.peer_isn, SeqNo::new(ISN));
    assert!(acc.keys.is_none());
    let (pkt, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..acc.len])).unwrap();
    assert_eq!(pkt.dest, SocketId(CALLER_SOCKET));
    assert_eq!(hs.hs_type, HandshakeType::Conclusion);
    assert_eq!(hs.socket_id, SocketId(77));
    assert_eq!(hs.extension, ext_flags::HSREQ);
    let exts: Vec<_> = hs.extensions().map(Result::unwrap).collect();
    let [Extension::HsRsp(rsp)] = exts.as_slice() else {
        panic!("{exts:?}")
    };
    assert_eq!(rsp.recv_latency_ms, 120);
    assert_eq!(rsp.send_latency_ms, 200);
    assert!(rsp.flags.has(SrtFlags::TSBPDRCV | SrtFlags::TLPKTDROP));
    assert!(!rsp.flags.has(SrtFlags::CRYPT));
}

#[test]
fn sender_latency_above_ours_wins() {
    let l = listener();
    let (ev, _) = conclude(&l, 5, &hsreq(0, 500, LIVE_FLAGS));
    let ListenerEvent::Conclusion(req) = ev else {
        panic!()
    };
    let acc = l
        .accept(&req, SocketId(1), None, 0, &mut [0; 1500])
        .unwrap();
    assert_eq!(acc.latency, Duration::from_millis(500));
}

#[test]
fn cookie_from_previous_minute_accepted_older_dropped() {
    let l = listener();
    let cookie = induce(&l, 10);
    let hs = control(caller_hs(
        5,
        1,
        u32::MAX,
        cookie,
        &hsreq(120, 120, LIVE_FLAGS),
    ));
    let mut buf = [0u8; 1500];
    assert!(matches!(
        l.handle(&hs, PEER, [0; 16], 11, &mut buf),
        Ok(ListenerEvent::Conclusion(_))
    ));
    assert_eq!(
        l.handle(&hs, PEER, [0; 16], 12, &mut buf),
        Err(HandshakeError::BadCookie)
    );
    assert_eq!(
        l.handle(&hs, b"192.0.2.8:40000", [0; 16], 10, &mut buf),
        Err(HandshakeError::BadCookie)
    );
}

fn expect_rejected(ev: ListenerEvent, buf: &[u8], want: RejectReason) {
    let ListenerEvent::Rejected { reason, len, .. } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(reason, want);
    let (pkt, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..len])).unwrap();
    assert_eq!(pkt.dest, SocketId(CALLER_SOCKET));
    assert_eq!(hs.hs_type, HandshakeType::Rejection(want));
}

#[test]
fn hsv4_conclusion_rejected_with_version() {
    let l = listener();
    let cookie = induce(&l, 1);
    let mut buf = [0u8; 1500];
    let ev = l
        .handle(
            &control(caller_hs(4, 0, u32::MAX, cookie, &[])),
            PEER,
            [0; 16],
            1,
            &mut buf,
        )
        .unwrap();
    expect_rejected(ev, &buf, RejectReason::VERSION);
}

#[test]
fn malformed_extensions_rejected_as_rogue() {
    let l = listener();
    // Missing HSREQ.
    let (ev, buf) = conclude(&l, 1, &sid(b"abc"));
    expect_rejected(ev, &buf, RejectReason::ROGUE);
    // Extension length past the end.
    let mut bad = hsreq(1, 1, LIVE_FLAGS);
    bad.extend_from_slice(&[0, 5, 0, 9, b'a', b'b', b'c', b'd']);
    let (ev, buf) = conclude(&l, 1, &bad);
    expect_rejected(ev, &buf, RejectReason::ROGUE);
    // HSREQ too short.
    let (ev, buf) = conclude(&l, 1, &ext(ext_type::HSREQ, &[0; 4]));
    expect_rejected(ev, &buf, RejectReason::ROGUE);
    // Stream API.
    let (ev, buf) = conclude(&l, 1, &hsreq(1, 1, LIVE_FLAGS | SrtFlags::STREAM));
    expect_rejected(ev, &buf, RejectReason::MESSAGEAPI);
    // Packet filter.
    let mut f = hsreq(1, 1, LIVE_FLAGS);
    f.extend(ext(ext_type::FILTER, &encode_stream_id(b"fec,cols:10")));
    let (ev, buf) = conclude(&l, 1, &f);
    expect_rejected(ev, &buf, RejectReason::FILTER);
}

#[test]
fn truncated_handshake_is_malformed() {
    let l = listener();
    let full = caller_hs(4, 2, 1, 0, &[]);
    for cut in 16..full.len() {
        let r = l.handle(
            &control(full.slice(..cut)),
            PEER,
            [0; 16],
            0,
            &mut [0; 1500],
        );
        assert_eq!(r, Err(HandshakeError::Malformed("short CIF")), "cut {cut}");
    }
}

#[test]
fn user_rejection_after_stream_id_check() {
    let l = listener();
    let mut exts = hsreq(120, 120, LIVE_FLAGS);
    exts.extend(sid(b"revoked-key"));
    let (ev, _) = conclude(&l, 3, &exts);
    let ListenerEvent::Conclusion(req) = ev else {
        panic!()
    };
    let mut buf = [0u8; 1500];
    let n = l.reject(&req, RejectReason::FORBIDDEN, &mut buf).unwrap();
    // The handshake type word sits at CIF offset 20: 1000 + 1403.
    assert_eq!(&buf[16 + 20..16 + 24], &2403u32.to_be_bytes());
    let (_, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!(
        hs.hs_type,
        HandshakeType::Rejection(RejectReason::FORBIDDEN)
    );
}

fn encrypted_conclusion(passphrase: &[u8]) -> (Listener, Box<ConclusionRequest>, Vec<u8>) {
    let l = listener();
    let salt = [0x5Au8; 16];
    let km = build_key_material(passphrase, &salt, Some(&[0x11; 16]), None).unwrap();
    let mut km_bytes = vec![0u8; km.len()];
    km.emit(&mut km_bytes).unwrap();
    let mut exts = hsreq(120, 120, LIVE_FLAGS);
    exts.extend(ext(ext_type::KMREQ, &km_bytes));
    exts.extend(sid(b"key"));
    let (ev, _) = conclude(&l, 9, &exts);
    let ListenerEvent::Conclusion(req) = ev else {
        panic!("{ev:?}")
    };
    (l, req, km_bytes)
}

#[test]
fn encrypted_conclusion_echoes_kmrsp_and_decrypts() {
    let (l, req, km_bytes) = encrypted_conclusion(b"correct horse battery");
    let mut buf = [0u8; 1500];
    let acc = l
        .accept(
            &req,
            SocketId(9),
            Some(b"correct horse battery"),
            0,
            &mut buf,
        )
        .unwrap();
    let (_, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..acc.len])).unwrap();
    assert_eq!(hs.extension, ext_flags::HSREQ | ext_flags::KMREQ);
    let exts: Vec<_> = hs.extensions().map(Result::unwrap).collect();
    assert!(matches!(&exts[0], Extension::HsRsp(r) if r.flags.has(SrtFlags::CRYPT)));
    assert_eq!(exts[1], Extension::KmRsp(Bytes::from(km_bytes)));
    // The negotiated keys decrypt what a sender with the same SEK encrypted.
    let keys = acc.keys.unwrap();
    let sender = SessionKeys::from_raw(&[0x5A; 16], Some(&[0x11; 16]), None).unwrap();
    let mut payload = *b"0123456789abcdef0123";
    sender
        .apply(KeyFlags::Even, SeqNo::new(42), &mut payload)
        .unwrap();
    assert_ne!(&payload, b"0123456789abcdef0123");
    keys.apply(KeyFlags::Even, SeqNo::new(42), &mut payload)
        .unwrap();
    assert_eq!(&payload, b"0123456789abcdef0123");
}

#[test]
fn wrong_passphrase_is_badsecret() {
    let (l, req, _) = encrypted_conclusion(b"correct horse battery");
    let err = l
        .accept(
            &req,
            SocketId(9),
            Some(b"wrong horse battery"),
            0,
            &mut [0; 1500],
        )
        .unwrap_err();
    assert_eq!(err, AcceptError::Crypto(CryptoError::BadSecret));
    assert_eq!(err.reject_reason(), RejectReason::BADSECRET);
    let mut buf = [0u8; 1500];
    let n = l.reject(&req, err.reject_reason(), &mut buf).unwrap();
    let (_, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!(hs.hs_type.wire(), 1010);
    // No passphrase on our side: unsecure.
    let err = l.accept(&req, SocketId(9), None, 0, &mut buf).unwrap_err();
    assert_eq!(err.reject_reason(), RejectReason::UNSECURE);
}

#[test]
fn passphrase_required_but_peer_unencrypted() {
    let l = listener();
    let (ev, _) = conclude(&l, 2, &hsreq(120, 120, LIVE_FLAGS));
    let ListenerEvent::Conclusion(req) = ev else {
        panic!()
    };
    let err = l
        .accept(&req, SocketId(1), Some(b"0123456789"), 0, &mut [0; 1500])
        .unwrap_err();
    assert_eq!(err, AcceptError::Unsecure);
}

#[test]
fn libsrt_layout_kmreq_unwraps() {
    // A KMREQ assembled field by field as libsrt's hcrypt_ctx_tx builds it: 0x12 (V=1,
    // PT=2), sign 0x2029, KK=even, KEKI 0, cipher AES-CTR, auth 0, SE 2, reserved, slen/4 = 4,
    // klen/4 = 4, salt, then the SEK wrapped under PBKDF2(passphrase, salt[8..16], 2048).
    let pass = b"my secret passphrase";
    let salt: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
    let sek = [0xC3u8; 16];
    let mut kek = [0u8; 16];
    pbkdf2_kek(pass, &salt[8..], &mut kek);
    let wrapped = sluice_proto::srt::crypto::aes_wrap(&kek, &sek).unwrap();
    let mut msg = vec![0x12, 0x20, 0x29, 0x01, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 4, 4];
    msg.extend_from_slice(&salt);
    msg.extend_from_slice(&wrapped);
    assert_eq!(msg.len(), 16 + 16 + 24);
    let km = KeyMaterial::parse(Bytes::from(msg)).unwrap();
    assert_eq!(km.keys, KeyFlags::Even);
    let keys = km.unwrap_keys(pass, 16).unwrap();
    let reference = SessionKeys::from_raw(&salt, Some(&sek), None).unwrap();
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    keys.apply(KeyFlags::Even, SeqNo::new(7), &mut a).unwrap();
    reference
        .apply(KeyFlags::Even, SeqNo::new(7), &mut b)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        keys.apply(KeyFlags::Odd, SeqNo::new(7), &mut a),
        Err(CryptoError::NoKey)
    );
}

/// PBKDF2-HMAC-SHA1 with 2048 rounds, written against the spec so the test does not reuse
/// the code under test's derivation path.
fn pbkdf2_kek(pass: &[u8], salt: &[u8], out: &mut [u8; 16]) {
    use hmac::{Hmac, Mac};
    let prf = |data: &[&[u8]]| {
        let mut m = Hmac::<sha1::Sha1>::new_from_slice(pass).unwrap();
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes()
    };
    let mut u = prf(&[salt, &1u32.to_be_bytes()]);
    let mut t = u;
    for _ in 1..2048 {
        u = prf(&[&u]);
        for (x, y) in t.iter_mut().zip(u.iter()) {
            *x ^= y;
        }
    }
    out.copy_from_slice(&t[..16]);
}

#[test]
fn non_handshake_packet_refused() {
    let l = listener();
    let p = ControlPacket {
        timestamp: Default::default(),
        dest: SocketId(0),
        control: Control::KeepAlive,
    };
    assert_eq!(
        l.handle(&p, PEER, [0; 16], 0, &mut [0; 64]),
        Err(HandshakeError::NotHandshake)
    );
}

/// A conclusion and the first data packet (header and 32 payload bytes) captured from
/// srt-live-transmit 1.5.1 publishing with `passphrase=interop-passphrase-1&pbkeylen=16`
/// and `streamid=#!::r=key1,m=publish`; the plaintext is byte `i * 7 % 251` at offset `i`.
const LIBSRT_CONCLUSION: &str = "8000000000000000000003700000000000000005000200077a59cdea000005dc00002000ffffffff07eb45e9d8749c9f0100007f0000000000000000000000000001000300010501000000bf00c800c8000500053a3a2123656b3d726d2c31796275703d6873696c0003000e122029010000000002000200000004047d4aaab1d09b946682ee792620502f5e69fdd96cb3a54d4d6cf49e3fd2feaa9c82d9043f43e3aa4f";
const LIBSRT_DATA: &str = "7a59cdeac800000100007a66000002006e311a6634a166f1f9783bed4895ba7459c2a97deaac64e6f634040659471b9e";

fn unhex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .into()
}

#[test]
fn libsrt_captured_conclusion_and_data_decrypt() {
    let (pkt, hs) = parse_handshake_packet(unhex(LIBSRT_CONCLUSION)).unwrap();
    assert_eq!(pkt.dest, SocketId(0));
    assert_eq!(hs.version, 5);
    assert_eq!(hs.encryption, 2, "AES-128 advertised");
    assert_eq!(
        hs.extension,
        ext_flags::HSREQ | ext_flags::KMREQ | ext_flags::CONFIG
    );
    assert_eq!(hs.hs_type, HandshakeType::Conclusion);
    assert_eq!(hs.mtu, 1500);
    assert_eq!(hs.flow_window, 8192);
    assert_eq!(
        &hs.peer_ip[..4],
        &[1, 0, 0, 127],
        "127.0.0.1, word byte-reversed"
    );
    let exts: Vec<_> = hs.extensions().map(Result::unwrap).collect();
    let [
        Extension::HsReq(req),
        Extension::Sid(sid),
        Extension::KmReq(km),
    ] = exts.as_slice()
    else {
        panic!("{exts:?}")
    };
    assert_eq!(req.version, 0x0001_0501);
    assert_eq!(req.flags, SrtFlags(0xBF));
    assert_eq!((req.recv_latency_ms, req.send_latency_ms), (200, 200));
    assert_eq!(decode_stream_id(sid).unwrap(), b"#!::r=key1,m=publish");
    let km = KeyMaterial::parse(km.clone()).unwrap();
    assert_eq!(
        (km.keys, km.key_len, km.cipher, km.se),
        (KeyFlags::Even, 16, 2, 2)
    );
    assert_eq!(
        km.unwrap_keys(b"interop-passphrase-2", 0).unwrap_err(),
        CryptoError::BadSecret
    );
    let keys = km.unwrap_keys(b"interop-passphrase-1", 0).unwrap();
    let Packet::Data(d) = Packet::parse(unhex(LIBSRT_DATA)).unwrap() else {
        panic!("not data")
    };
    assert_eq!(d.seq, hs.isn, "first packet carries the ISN");
    assert_eq!(d.key, KeyFlags::Even);
    let plain = keys.decrypt(&d).unwrap();
    let expect: Vec<u8> = (0..32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(&plain[..], &expect[..]);
}
