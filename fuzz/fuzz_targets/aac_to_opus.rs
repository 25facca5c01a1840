#![no_main]
//! AAC -> Opus transcoder on hostile input: an AudioSpecificConfig and a run of frames from
//! the fuzzer. Never panics, and every push yields a bounded number of Opus frames, each a
//! non-empty packet within the Opus size limit, with non-decreasing timestamps between resyncs.
use libfuzzer_sys::fuzz_target;
use sluice_transcode::{AacInput, Transcoder};

fuzz_target!(|data: &[u8]| {
    // `Transcoder::push` contains decoder panics by design (a third-party decoder on hostile
    // input); silence the hook so a contained panic does not abort. Panics anywhere else
    // still unwind to libfuzzer-sys and fail the run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Some((asc, mut rest)) = data.split_at_checked(2) else { return };
    let input = AacInput {
        specific_config: bytes::Bytes::copy_from_slice(asc),
        sample_rate: 48_000,
        channels: 2,
    };
    let Ok(mut t) = Transcoder::new(&input) else { return };
    let mut out = Vec::new();
    let mut pts = 0i64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        out.clear();
        t.push(pts, frame, &mut out);
        // 1024 samples at the lowest AAC rate (7350 Hz) resample to under 7 Opus frames.
        assert!(out.len() <= 16, "{} frames from one AAC frame", out.len());
        for w in out.windows(2) {
            assert!(w[1].pts > w[0].pts);
        }
        for f in &out {
            assert!(!f.data.is_empty() && f.data.len() <= 1275 * 3);
        }
        pts += 1920;
    }
});
