//! SRT listener handshake: arbitrary CIFs (induction or conclusion, with a valid cookie so
//! the extension and stream-id parsers are reached) must give a typed result, and anything
//! the listener writes must parse back as the handshake it claims to be.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::srt::handshake::*;
use sluice_proto::srt::packet::{Control, ControlPacket, SocketId, Timestamp};
use sluice_proto::srt::streamid::MAX_STREAM_ID_LEN;

const PEER: &[u8] = b"198.51.100.1:5000";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, cif)) = data.split_first() else {
        return;
    };
    let mut cif = cif.to_vec();
    if cif.len() >= HANDSHAKE_CIF_LEN && mode & 1 == 1 {
        // Make the cookie valid so validation goes past the cookie check.
        let cookie = syn_cookie(b"fuzz", PEER, 1);
        cif[28..32].copy_from_slice(&cookie.to_be_bytes());
    }
    let cif = Bytes::from(cif);
    if let Ok(hs) = Handshake::parse(cif.clone()) {
        let mut out = vec![0u8; hs.len()];
        hs.emit(&mut out).expect("emit");
        assert_eq!(Handshake::parse(Bytes::from(out)).expect("re-parse"), hs);
    }
    let listener = Listener::new(ListenerConfig {
        cookie_secret: b"fuzz".to_vec(),
        listener_socket: SocketId(1),
        ..ListenerConfig::default()
    });
    let packet = ControlPacket {
        timestamp: Timestamp(0),
        dest: SocketId(0),
        control: Control::Handshake(cif),
    };
    let mut buf = vec![0u8; 2048];
    match listener.handle(&packet, PEER, [0; 16], 1, &mut buf) {
        Ok(ListenerEvent::InductionReply(n)) => {
            let (_, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..n])).unwrap();
            assert_eq!(hs.extension, SRT_MAGIC);
            assert_eq!(hs.cookie, syn_cookie(b"fuzz", PEER, 1));
        }
        Ok(ListenerEvent::Rejected { reason, len, .. }) => {
            let (_, hs) = parse_handshake_packet(Bytes::copy_from_slice(&buf[..len])).unwrap();
            assert_eq!(hs.hs_type, HandshakeType::Rejection(reason));
        }
        Ok(ListenerEvent::Conclusion(req)) => {
            assert!(req.stream_id.len() <= MAX_STREAM_ID_LEN);
            let _ = req.stream_id();
            let pass: Option<&[u8]> = req.kmreq.as_ref().map(|_| &b"fuzz passphrase"[..]);
            match listener.accept(&req, SocketId(2), pass, 0, &mut buf) {
                Ok(acc) => {
                    let (_, hs) =
                        parse_handshake_packet(Bytes::copy_from_slice(&buf[..acc.len])).unwrap();
                    assert_eq!(hs.hs_type, HandshakeType::Conclusion);
                    assert!(hs.extensions().all(|e| e.is_ok()));
                    assert!(acc.latency >= listener.config().latency);
                }
                Err(e) => {
                    let n = listener.reject(&req, e.reject_reason(), &mut buf).unwrap();
                    let (_, hs) =
                        parse_handshake_packet(Bytes::copy_from_slice(&buf[..n])).unwrap();
                    assert!(matches!(hs.hs_type, HandshakeType::Rejection(_)));
                }
            }
        }
        Err(_) => {}
    }
});
