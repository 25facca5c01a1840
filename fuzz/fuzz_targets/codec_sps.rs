//! H.264 / H.265 parameter set and slice header parsers: never panic, and what they return
//! stays within the bounds the specs allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::codec::{h264, h265};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 2 {
        0 => {
            let mut nal = vec![0x67];
            nal.extend_from_slice(rest);
            if let Ok(s) = h264::Sps::parse(&nal) {
                assert!(s.width <= (1 << 16) * 16 + 16);
                assert!(s.height <= ((1 << 16) + 1) * 32);
                assert!(s.id <= 31 && s.chroma_format_idc <= 3);
                if let Some((n, d)) = s.frame_rate() {
                    assert!(n > 0 && d > 0);
                }
            }
            let _ = h264::Pps::parse(&[&[0x68], rest].concat());
            if let Ok(h) = h264::SliceHeader::parse(&[&[0x65], rest].concat()) {
                let _ = h.slice_type;
            }
        }
        _ => {
            let mut nal = vec![0x42, 0x01];
            nal.extend_from_slice(rest);
            if let Ok(s) = h265::Sps::parse(&nal) {
                assert!(s.width <= s.pic_width && s.height <= s.pic_height);
                assert!(s.pic_width <= 1 << 16 && s.pic_height <= 1 << 16);
                assert!(s.max_sub_layers <= 7);
                assert!(s.slice_address_bits() <= 32);
                let pps = h265::Pps {
                    id: 0,
                    sps_id: 0,
                    dependent_slice_segments_enabled: rest.first().is_some_and(|b| b & 1 == 1),
                    output_flag_present: false,
                    num_extra_slice_header_bits: rest.first().map_or(0, |b| b >> 5),
                };
                let _ = h265::slice_type(&[&[0x02, 0x01], rest].concat(), &pps, &s);
            }
            let _ = h265::Pps::parse(&[&[0x44, 0x01], rest].concat());
        }
    }
});
