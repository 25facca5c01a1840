//! RTMP chunk decoder: never panics, decodes identically whatever the input split, holds
//! bounded memory, and every decoded message survives encode -> decode unchanged (so each
//! reassembled payload has exactly its declared length).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_proto::rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, MAX_MESSAGE_LEN, MAX_REASSEMBLY_BYTES, Message,
};

fn decode(pieces: impl Iterator<Item = Bytes>) -> (Vec<Message>, Option<ChunkError>) {
    let mut dec = ChunkDecoder::default();
    let mut msgs = Vec::new();
    for p in pieces {
        dec.push(p);
        loop {
            match dec.poll_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= MAX_MESSAGE_LEN as usize);
                    msgs.push(m);
                }
                Ok(None) => break,
                Err(e) => return (msgs, Some(e)),
            }
            assert!(dec.reassembly_bytes() <= MAX_REASSEMBLY_BYTES);
        }
        // After Ok(None) at most one incomplete chunk header stays queued.
        assert!(dec.queued_input() < 18);
    }
    (msgs, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(rest);
    let (whole, whole_err) = decode(std::iter::once(input.clone()));
    let step = usize::from(split % 17) + 1;
    let pieces = (0..input.len()).step_by(step).map(|i| input.slice(i..(i + step).min(input.len())));
    let (split_msgs, split_err) = decode(pieces);
    assert_eq!(whole, split_msgs);
    assert_eq!(whole_err, split_err);

    // Re-encode and decode again.
    let mut enc = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    for m in &whole {
        enc.encode(m.csid, m.timestamp, m.type_id, m.stream_id, &m.payload, &mut wire);
        if m.type_id == 1 {
            let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap()) & 0x7FFF_FFFF;
            enc.set_chunk_size(size);
        }
    }
    let (again, err) = decode(std::iter::once(wire.freeze()));
    assert_eq!(err, None);
    assert_eq!(again, whole);
});
