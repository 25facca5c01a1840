//! FLV tag bodies: never panics; every NAL unit / audio frame handed out is a slice inside
//! the input (no over-read, zero copy), their total is bounded by the input, and
//! composition-time offsets stay within the 24-bit range.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::flv::{FlvDemuxer, MAX_NALUS_PER_FRAME, parse_metadata};
use sluice_proto::media::MediaEvent;

fn inside(part: &Bytes, whole: &Bytes) {
    if part.is_empty() {
        return;
    }
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    assert!(p >= w && p + part.len() <= w + whole.len(), "slice outside the input");
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut demux = FlvDemuxer::new();
    // Feed the body twice so a sequence header can change the NAL length size for the next.
    for ts in [0i64, 1 << 40] {
        let body = Bytes::copy_from_slice(rest);
        let ev = match sel % 3 {
            0 => demux.video(ts, body.clone()),
            1 => demux.audio(ts, body.clone()),
            _ => {
                let _ = parse_metadata(rest);
                return;
            }
        };
        match ev {
            Ok(Some(MediaEvent::Video(v))) => {
                assert!(!v.nalus.is_empty() && v.nalus.len() <= MAX_NALUS_PER_FRAME);
                assert!(v.len() <= body.len());
                v.nalus.iter().for_each(|n| inside(n, &body));
                assert_eq!(v.dts, ts * 90);
                assert!((v.pts - v.dts).abs() <= (1 << 23) * 90);
            }
            Ok(Some(MediaEvent::Audio(a))) => {
                inside(&a.data, &body);
                assert_eq!(a.pts, ts * 90);
            }
            Ok(Some(MediaEvent::VideoConfig(c))) => {
                c.vps.iter().chain(&c.sps).chain(&c.pps).for_each(|n| inside(n, &body));
            }
            Ok(Some(MediaEvent::AudioConfig(c))) => inside(&c.specific_config, &body),
            Ok(None) | Err(_) => {}
        }
    }
});
