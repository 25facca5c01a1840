//! Fuzz PES header parsing, PES reassembly and Opus control-header framing. Invariants: a
//! parsed header lies within its input and every shorter prefix asks for more bytes (or fails
//! the same way); the assembler's output never exceeds its input; Opus splitting accounts for
//! every byte and re-framing the packets splits back to the same packets; timestamps
//! round-trip through their 5-byte encoding.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::ts::pes::{
    MAX_PES_SIZE, PesAssembler, PesHeader, TIMESTAMP_MASK, read_timestamp, split_opus_packets,
    write_timestamp,
};
use sluice_proto::ts::testmux::opus_pes_payload;

fuzz_target!(|data: &[u8]| {
    match PesHeader::parse(data) {
        Ok(Some(h)) => {
            assert!(h.header_len <= data.len());
            assert!(h.pts.is_none_or(|t| t <= TIMESTAMP_MASK));
            for n in 0..h.header_len.min(data.len()) {
                assert!(matches!(PesHeader::parse(&data[..n]), Ok(None) | Err(_)));
            }
        }
        Ok(None) => {}
        Err(e) => {
            // Extending the input cannot cure a header that is already wrong.
            let mut longer = data.to_vec();
            longer.resize(data.len() + 32, 0);
            assert_eq!(PesHeader::parse(&longer), Err(e));
        }
    }

    // Reassembly over 184-byte payloads, PUSI on the first.
    let all = Bytes::copy_from_slice(data);
    let mut asm = PesAssembler::new();
    let mut out = Vec::new();
    for (i, start) in (0..all.len()).step_by(184).enumerate() {
        asm.push(i == 0, false, &all, start..(start + 184).min(all.len()), &mut out);
    }
    out.extend(asm.flush());
    for pes in out.into_iter().flatten() {
        assert!(pes.payload.len() <= data.len() && pes.payload.len() <= MAX_PES_SIZE);
    }

    if let Ok(packets) = split_opus_packets(&all) {
        let sum: usize = packets.iter().map(|p| p.len()).sum();
        assert!(sum + 3 * packets.len() <= data.len());
        let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_ref()).collect();
        let reframed = Bytes::from(opus_pes_payload(&refs));
        assert_eq!(split_opus_packets(&reframed).as_ref(), Ok(&packets));
    }

    if let Some(b) = data.first_chunk::<8>() {
        let ts = u64::from_le_bytes(*b) & TIMESTAMP_MASK;
        assert_eq!(read_timestamp(write_timestamp(2, ts)), ts);
    }
});
