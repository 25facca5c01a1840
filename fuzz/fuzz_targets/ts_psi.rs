//! Fuzz PSI section reassembly and PAT/PMT parsing. Input: byte 0 says which of the first
//! eight 184-byte payloads start a unit (PUSI); the rest is cut into those payloads.
//! Invariants: sections handed out are exactly 3 + section_length bytes and within the cap;
//! a section that parses has a zero CRC residue and a body 12 bytes shorter; and any body
//! wrapped by `build_section` parses back to itself.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::ts::psi::{
    MAX_SECTION_SIZE, Pat, Pmt, Section, SectionAssembler, TABLE_ID_PMT, build_section,
    crc32_mpeg2,
};

fuzz_target!(|data: &[u8]| {
    let Some((&pusi_bits, rest)) = data.split_first() else {
        return;
    };
    let all = Bytes::copy_from_slice(rest);
    let mut asm = SectionAssembler::new();
    let mut out = Vec::new();
    for (i, start) in (0..all.len()).step_by(184).enumerate() {
        let pusi = i < 8 && pusi_bits & (1 << i) != 0;
        asm.push(pusi, all.slice(start..(start + 184).min(all.len())), &mut out);
    }
    for raw in out.into_iter().flatten() {
        assert!(raw.len() <= MAX_SECTION_SIZE);
        let declared = 3 + usize::from(u16::from_be_bytes([raw[1], raw[2]]) & 0x0fff);
        assert_eq!(raw.len(), declared);
        if let Ok(s) = Section::parse(raw.clone()) {
            assert_eq!(crc32_mpeg2(&raw), 0);
            assert_eq!(s.body.len() + 12, raw.len());
            let _ = Pat::from_section(&s);
            if let Ok(pmt) = Pmt::from_section(&s) {
                let used: usize = pmt
                    .streams
                    .iter()
                    .map(|e| 5 + e.descriptors.iter().map(|d| 2 + d.data.len()).sum::<usize>())
                    .sum();
                assert!(used + 4 <= s.body.len());
            }
        }
    }

    // Round trip: any body that fits wraps into a section that parses back to it.
    if rest.len() <= MAX_SECTION_SIZE - 12 {
        let built = build_section(TABLE_ID_PMT, 7, 3, rest);
        let s = Section::parse(Bytes::from(built)).expect("built section parses");
        assert_eq!(s.body.as_ref(), rest);
        assert_eq!((s.table_id, s.table_id_extension, s.version), (TABLE_ID_PMT, 7, 3));
    }
});
