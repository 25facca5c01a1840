#![no_main]
//! STUN first-contact parser: never panics, never reads past its input, and whatever it
//! accepts re-emits (as a USERNAME-only Binding request) to a message that parses back to the
//! same username and transaction id.
use libfuzzer_sys::fuzz_target;
use sluice_proto::stun;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = stun::parse(data) else { return };
    assert!(data.len() >= stun::HEADER_LEN);
    assert_eq!(v.transaction.len(), 12);
    if let Some(u) = v.username {
        assert!(u.len() <= stun::MAX_USERNAME);
        // Borrowed from the input: the slice lies inside `data`.
        let start = u.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + u.len() <= data.len());
        if let Some(ufrag) = v.local_ufrag() {
            assert!(ufrag.len() < u.len());
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(v.transaction);
        let mut out = Vec::new();
        stun::emit_binding_request(&tid, u, &mut out);
        let back = stun::parse(&out).expect("re-emitted message parses");
        assert_eq!(back.username, Some(u));
        assert_eq!(back.transaction, v.transaction);
    }
});
