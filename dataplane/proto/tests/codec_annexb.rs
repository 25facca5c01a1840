//! Property tests of Annex-B and AVCC framing on NAL units that obey emulation prevention.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_proto::codec::annexb;

/// A NAL unit as an encoder emits it: emulation prevention applied (H.264 §7.4.1) and a last
/// byte that is not zero.
fn nal() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(
        prop::sample::select(vec![0u8, 0, 0, 1, 2, 3, 0x41, 0xff]),
        1..300,
    )
    .prop_map(|raw| {
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 2 + 1);
        let mut zeros = 0;
        for b in raw {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        if out.last() == Some(&0) {
            out.push(0x80);
        }
        Bytes::from(out)
    })
}

proptest! {
    #[test]
    fn annexb_round_trip(nalus in prop::collection::vec(nal(), 0..8), three in any::<bool>(), trailing in 0usize..3) {
        let mut buf = Vec::new();
        for n in &nalus {
            buf.extend_from_slice(if three { &[0, 0, 1][..] } else { &[0, 0, 0, 1][..] });
            buf.extend_from_slice(n);
            buf.extend(std::iter::repeat_n(0u8, trailing));
        }
        let got: Vec<Bytes> = annexb::split(&Bytes::from(buf)).collect();
        prop_assert_eq!(got, nalus);
    }

    #[test]
    fn avcc_round_trip(nalus in prop::collection::vec(nal(), 0..8), size in prop::sample::select(vec![2u8, 4])) {
        let mut avcc = Vec::new();
        annexb::write_avcc(&nalus, size, &mut avcc).unwrap();
        let avcc = Bytes::from(avcc);
        let annexb_buf = annexb::avcc_to_annexb(&avcc, size).unwrap();
        prop_assert_eq!(annexb::annexb_to_avcc(&annexb_buf, size).unwrap(), avcc.clone());
        let mut back = Vec::new();
        annexb::split_avcc(&avcc, size, &mut back).unwrap();
        prop_assert_eq!(back, nalus);
        // Every strict prefix that cuts a NAL unit is rejected, never over-read.
        if avcc.len() > 1 {
            let cut = avcc.slice(..avcc.len() - 1);
            prop_assert!(annexb::split_avcc(&cut, size, &mut Vec::new()).is_err());
        }
    }
}
