//! Opus TOC parsing: durations never exceed 120 ms and agree with the frame count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::codec::opus;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = opus::frame_count(data) {
        let samples = opus::packet_samples(data).unwrap();
        assert!(frames >= 1 && samples <= opus::MAX_PACKET_SAMPLES);
        let toc = opus::Toc::from_byte(data[0]);
        assert_eq!(samples, u32::from(frames) * toc.frame_samples());
    }
});
