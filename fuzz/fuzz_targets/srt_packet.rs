//! SRT packet parser: parse -> emit -> parse must give the same packet, the emitted bytes
//! must never exceed the input (plus the 4-byte CIF that keep-alive and shutdown always
//! carry), and every NAK / handshake view must be walkable without panicking.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::srt::handshake::Handshake;
use sluice_proto::srt::packet::{Control, Packet};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = vec![0u8; p.len()];
    let n = p.emit(&mut out).expect("emit into a buffer of len()");
    assert_eq!(n, p.len());
    assert!(
        n <= data.len() + 4,
        "emitted {n} from {} input bytes",
        data.len()
    );
    if let Packet::Data(_) = p {
        assert_eq!(&out[..], data, "data packets round-trip bit for bit");
    }
    let again = Packet::parse(Bytes::from(out)).expect("re-parse of emitted packet");
    assert_eq!(again, p);
    if let Packet::Control(c) = &p {
        match &c.control {
            Control::Nak(l) => assert!(l.iter().all(|e| e.is_ok())),
            Control::Handshake(cif) => {
                if let Ok(hs) = Handshake::parse(cif.clone()) {
                    assert!(hs.extensions().count() <= 17);
                }
            }
            _ => {}
        }
    }
});
