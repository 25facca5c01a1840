//! AMF0: decode -> encode -> decode -> encode is stable (the two encodings are identical),
//! and decoding never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut first = Vec::new();
    amf0::encode_all(&values, &mut first);
    let again = amf0::decode_all(&first).expect("our own encoding decodes");
    let mut second = Vec::new();
    amf0::encode_all(&again, &mut second);
    assert_eq!(first, second);
});
