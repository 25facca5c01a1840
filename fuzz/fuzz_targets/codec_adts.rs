//! ADTS splitting and AudioSpecificConfig: frames tile the input without over-read, headers
//! round-trip through AudioSpecificConfig, and ASC bytes re-serialise to an equal config.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::codec::aac::{self, AdtsHeader, AudioSpecificConfig};

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let mut frames = aac::adts_frames(&input);
    let mut used = 0usize;
    for frame in frames.by_ref() {
        let Ok(f) = frame else { break };
        let len = usize::from(f.header.frame_length);
        assert_eq!(f.payload.len() + f.header.header_len(), len);
        used += len;
        let asc = f.header.audio_specific_config();
        let rebuilt = asc.adts_header(f.payload.len()).unwrap();
        let h = AdtsHeader::parse(&rebuilt).unwrap().unwrap();
        assert_eq!(h.audio_specific_config(), asc);
        assert_eq!(
            h.frame_length,
            f.header.frame_length - (f.header.header_len() as u16 - 7)
        );
    }
    assert!(used <= data.len());
    assert!(frames.remaining() <= data.len());

    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        assert_eq!(AudioSpecificConfig::parse(&asc.to_bytes()), Ok(asc));
    }
});
