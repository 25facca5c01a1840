//! Real AAC from ffmpeg (ADTS, AAC-LC) through the pool: every 20 ms of input comes out as an
//! Opus frame that libopus decodes back to 960 samples, with pts advancing by 20 ms.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_transcode::{AacInput, OPUS_FRAME_SAMPLES, Pool};

/// ADTS frames (header stripped) and the AudioSpecificConfig built from the first header.
fn adts_frames(rate: u32, seconds: u32) -> (Bytes, Vec<Bytes>) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={rate}"))
        .args([
            "-t",
            &seconds.to_string(),
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-f",
            "adts",
            "-",
        ])
        .output()
        .expect("ffmpeg is required (scripts/setup.sh --test)");
    let data = out.stdout;
    let mut frames = Vec::new();
    let mut asc = Bytes::new();
    let mut i = 0;
    while i + 7 <= data.len() {
        assert_eq!(data[i], 0xFF, "lost ADTS sync");
        let len = (((data[i + 3] & 3) as usize) << 11)
            | ((data[i + 4] as usize) << 3)
            | ((data[i + 5] as usize) >> 5);
        let hdr = if data[i + 1] & 1 == 1 { 7 } else { 9 };
        if asc.is_empty() {
            let profile = (data[i + 2] >> 6) + 1;
            let sfi = (data[i + 2] >> 2) & 0xF;
            let ch = ((data[i + 2] & 1) << 2) | (data[i + 3] >> 6);
            asc = Bytes::from(vec![
                (profile << 3) | (sfi >> 1),
                ((sfi & 1) << 7) | (ch << 3),
            ]);
        }
        frames.push(Bytes::copy_from_slice(&data[i + hdr..i + len]));
        i += len;
    }
    (asc, frames)
}

fn run(rate: u32) {
    let (asc, frames) = adts_frames(rate, 2);
    assert!(frames.len() > 50);
    let pool = Pool::start(1, 4096);
    let t = pool
        .open(AacInput {
            specific_config: asc,
            sample_rate: rate,
            channels: 2,
        })
        .unwrap();
    for (n, f) in frames.iter().enumerate() {
        let pts = n as i64 * 1024 * 90_000 / i64::from(rate);
        assert!(t.push(pts, f.clone()));
    }
    let expect = frames.len() * 1024 * 48_000 / rate as usize / OPUS_FRAME_SAMPLES;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() + 3 < expect && Instant::now() < deadline {
        match t.poll() {
            Some(f) => got.push(f),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(
        got.len() + 3 >= expect,
        "{} Opus frames for {} expected",
        got.len(),
        expect
    );
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut pcm = vec![0f32; 5760 * 2];
    for w in got.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1800, "20 ms apart at 90 kHz");
    }
    for f in &got {
        assert_eq!(
            dec.decode_float(&f.data, &mut pcm, false).unwrap(),
            OPUS_FRAME_SAMPLES
        );
    }
    assert_eq!(
        pool.counters()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn aac_48k_to_opus() {
    run(48_000);
}

#[test]
fn aac_44k1_to_opus_resampled() {
    run(44_100);
}
