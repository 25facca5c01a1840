//! Annex-B splitting: every NAL unit is a non-empty slice of the input that holds no start
//! code and no trailing zero; re-joining with start codes and splitting again gives the same
//! units; the AVCC conversion round-trips them.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::codec::annexb;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let range = input.as_ptr_range();
    let nalus: Vec<Bytes> = annexb::split(&input).collect();
    let mut total = 0;
    for n in &nalus {
        assert!(!n.is_empty());
        assert_ne!(n.last(), Some(&0));
        assert!(range.start <= n.as_ptr() && n.as_ptr_range().end <= range.end);
        assert!(n.windows(3).all(|w| w != [0, 0, 1]));
        total += n.len();
    }
    assert!(total <= data.len());

    let mut joined = Vec::new();
    annexb::write_annexb(&nalus, &mut joined);
    let again: Vec<Bytes> = annexb::split(&Bytes::from(joined.clone())).collect();
    assert_eq!(again, nalus);

    let avcc = annexb::annexb_to_avcc(&Bytes::from(joined), 4).unwrap();
    let mut back = Vec::new();
    annexb::split_avcc(&avcc, 4, &mut back).unwrap();
    assert_eq!(back, nalus);

    // The raw input read as AVCC must never over-read.
    for size in [1u8, 2, 4] {
        let mut out = Vec::new();
        let _ = annexb::split_avcc(&input, size, &mut out);
        assert!(out.iter().map(Bytes::len).sum::<usize>() <= data.len());
    }
});
