//! Fuzz the MPEG-TS to media path (`ts::media::TsMediaReader`: demuxer plus media adapter)
//! with arbitrary bytes. Invariants:
//! - the output does not depend on how the input was split into pushes;
//! - per track, decode timestamps never go backwards and never step further than
//!   `MAX_TIMESTAMP_JUMP`; a video frame's PTS is never before its DTS;
//! - zero copy: the media payload handed out never exceeds the input;
//! - a config precedes the frames that can use it only when one was seen, and every
//!   video config describes a picture (the adapter only emits configs that parsed).
//!
//! Seeds: `h264_aac.ts` and `h265_opus.ts` are 0.3 s of ffmpeg `testsrc` + `sine` at 64x48
//! (`-c:v libx264 -g 5 -bf 2 -c:a aac` and `-c:v libx265 -c:a libopus`, `-f mpegts`), plus the
//! `ts_demux` seeds.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::media::MediaEvent;
use sluice_proto::ts::media::{MAX_TIMESTAMP_JUMP, TsMediaReader};

fn run(chunks: impl IntoIterator<Item = Bytes>) -> Vec<MediaEvent> {
    let mut r = TsMediaReader::new();
    let mut ev = Vec::new();
    for c in chunks {
        r.push(c);
        while let Some(e) = r.poll() {
            ev.push(e);
        }
    }
    r.flush();
    while let Some(e) = r.poll() {
        ev.push(e);
    }
    ev
}

fuzz_target!(|data: &[u8]| {
    let all = Bytes::copy_from_slice(data);
    let whole = run([all.clone()]);

    let mut state = (data.len() as u32).wrapping_mul(2_654_435_761) | 1;
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < all.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let end = (at + 1 + (state % 1400) as usize).min(all.len());
        pieces.push(all.slice(at..end));
        at = end;
    }
    assert_eq!(whole, run(pieces), "output depends on the split");

    let mut last_video: Option<i64> = None;
    let mut last_audio: Option<i64> = None;
    let mut bytes = 0usize;
    for e in &whole {
        match e {
            MediaEvent::Video(v) => {
                assert!(v.pts >= v.dts, "pts before dts");
                if let Some(l) = last_video {
                    assert!(v.dts >= l && v.dts - l <= MAX_TIMESTAMP_JUMP, "{l} -> {}", v.dts);
                }
                last_video = Some(v.dts);
                assert!(!v.nalus.is_empty());
                bytes += v.len();
            }
            MediaEvent::Audio(a) => {
                if let Some(l) = last_audio {
                    assert!(a.pts >= l && a.pts - l <= MAX_TIMESTAMP_JUMP, "{l} -> {}", a.pts);
                }
                last_audio = Some(a.pts);
                bytes += a.data.len();
            }
            MediaEvent::VideoConfig(c) => assert!(!c.sps.is_empty() && !c.pps.is_empty()),
            MediaEvent::AudioConfig(c) => assert!(c.sample_rate > 0 && c.channels <= 8),
        }
    }
    assert!(bytes <= data.len(), "more payload out than in");
});
