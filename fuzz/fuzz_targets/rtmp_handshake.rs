//! RTMP server handshake: arbitrary bytes in arbitrary splits never panic; with a version-3
//! C0 the reply is exactly S0+S1+S2 (S2 echoing a plain C1, or carrying the digest a digest
//! C1 requires), and whatever follows C2 is left untouched for the chunk decoder.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_proto::rtmp::handshake::{
    DigestScheme, HANDSHAKE_SIZE, HandshakeKind, ServerHandshake, sign_client_c1, verify_server_s2,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut wire = rest.to_vec();
    // Half the time, turn the input into a digest C1 so the digest path is reached.
    if sel & 1 == 1 && wire.len() > HANDSHAKE_SIZE {
        wire[0] = 3;
        let c1: &mut [u8; HANDSHAKE_SIZE] = (&mut wire[1..=HANDSHAKE_SIZE]).try_into().unwrap();
        c1[4] |= 1;
        let scheme = if sel & 2 == 0 { DigestScheme::Scheme0 } else { DigestScheme::Scheme1 };
        sign_client_c1(c1, scheme);
    }
    let wire = Bytes::from(wire);
    let step = usize::from(sel >> 2) * 37 + 1;
    let mut hs = ServerHandshake::new([0xA5; 1528]);
    let mut out = BytesMut::new();
    let mut rest_out = Vec::new();
    let mut failed = false;
    for start in (0..wire.len()).step_by(step) {
        let mut piece = wire.slice(start..(start + step).min(wire.len()));
        match hs.handle(&mut piece, &mut out) {
            Ok(true) => rest_out.extend_from_slice(&piece),
            Ok(false) => assert!(piece.is_empty(), "handshake left input before it finished"),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed {
        assert_ne!(wire[0], 3);
        assert!(out.is_empty());
        return;
    }
    if wire.len() <= HANDSHAKE_SIZE {
        assert!(out.is_empty());
        return;
    }
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    assert_eq!(out[0], 3);
    let c1: [u8; HANDSHAKE_SIZE] = wire[1..=HANDSHAKE_SIZE].try_into().unwrap();
    let s2 = &out[1 + HANDSHAKE_SIZE..];
    match hs.kind() {
        Some(HandshakeKind::Plain) => assert_eq!(s2, &c1[..]),
        Some(HandshakeKind::Digest(scheme)) => assert!(verify_server_s2(&c1, scheme, s2)),
        None => panic!("kind unknown after C1"),
    }
    let done_at = 1 + 2 * HANDSHAKE_SIZE;
    assert_eq!(hs.is_done(), wire.len() >= done_at);
    if wire.len() > done_at {
        assert_eq!(&rest_out[..], &wire[done_at..]);
    }
});
