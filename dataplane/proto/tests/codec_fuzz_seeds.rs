//! Seed corpora for the codec_* and rtp_* fuzz targets, built from spec-shaped vectors.
//!
//! `SLUICE_WRITE_SEEDS=1 cargo test -p sluice-proto --test codec_fuzz_seeds` (re)writes them
//! under `fuzz/corpus/<target>/`; a plain run checks that the committed seeds are the ones
//! this file builds and that they still parse, so a format change cannot leave stale seeds.

use std::path::PathBuf;

use bytes::Bytes;
use sluice_proto::codec::aac::AudioSpecificConfig;
use sluice_proto::codec::{annexb, h264, h265};
use sluice_proto::media::VideoFrame;
use sluice_proto::rtp::{H264Packetizer, PacketizerConfig, RtpTimestamp, SeqNo, Ssrc};

const SPS264: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS264: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
const SPS265: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x3c, 0xa0, 0x0b, 0x08, 0x04, 0x85, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0, 0x16, 0x80, 0x80,
    0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c, 0x04,
];

fn idr(len: usize) -> Vec<u8> {
    let mut v = vec![0x65, 0x88, 0x84];
    v.extend((0..len).map(|i| (i * 7 + 1) as u8 | 0x10));
    v
}

fn len_prefixed(nalus: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nalus {
        v.extend_from_slice(&(n.len() as u16).to_be_bytes());
        v.extend_from_slice(n);
    }
    v
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let idr = idr(300);
    let annexb_stream = [
        &[0, 0, 0, 1][..],
        SPS264,
        &[0, 0, 1],
        PPS264,
        &[0, 0, 1],
        &idr,
        &[0, 0],
    ]
    .concat();
    let asc = AudioSpecificConfig::new(2, 44_100, 2);
    let mut adts = asc.adts_header(4).unwrap().to_vec();
    adts.extend_from_slice(&[0x21, 0x10, 0x04, 0x60]);
    let mut crc = AudioSpecificConfig::new(2, 48_000, 1)
        .adts_header(5)
        .unwrap()
        .to_vec();
    // protection_absent = 0: the same 12-byte frame now holds a 2-byte CRC and 3 bytes.
    crc[1] &= !1;
    crc.extend_from_slice(&[0xab, 0xcd, 1, 2, 3]);
    adts.extend_from_slice(&crc);

    let mut rtp = Vec::new();
    let cfg = PacketizerConfig {
        max_payload: 100,
        ..PacketizerConfig::new(Ssrc(1), 96, SeqNo(65_535), RtpTimestamp(0))
    };
    let mut p = H264Packetizer::new(cfg, None).unwrap();
    let mut out = Vec::new();
    p.packetize(
        &VideoFrame {
            pts: 0,
            dts: 0,
            keyframe: true,
            nalus: vec![
                Bytes::from_static(SPS264),
                Bytes::from_static(PPS264),
                Bytes::from(idr.clone()),
            ],
        },
        &mut out,
    );
    for pkt in &out {
        let wire = pkt.to_vec();
        rtp.push(wire.len() as u8);
        rtp.extend_from_slice(&wire);
    }

    let mut packetize264 = vec![0x00, 0x40, 0x01];
    packetize264.extend(len_prefixed(&[&[0x09, 0xf0], SPS264, PPS264, &idr]));
    let mut packetize265 = vec![0x00, 0x30, 0x03];
    packetize265.extend(len_prefixed(&[
        &[0x40, 0x01, 0x0c, 0x01],
        SPS265,
        &[0x44, 0x01, 0xc1, 0x72],
        &[&[0x26, 0x01][..], &idr[1..]].concat(),
    ]));

    vec![
        ("codec_annexb", "h264_stream", annexb_stream),
        (
            "codec_annexb",
            "trailing_zeros",
            vec![0xff, 0, 0, 1, 9, 0xf0, 0, 0, 0, 0, 1, 0x41, 0, 0],
        ),
        (
            "codec_sps",
            "h264_baseline",
            [&[0][..], &SPS264[1..]].concat(),
        ),
        ("codec_sps", "h265_main", [&[1][..], &SPS265[2..]].concat()),
        (
            "codec_sps",
            "h264_high444_cropped",
            vec![
                0, 0xf4, 0x00, 0x0d, 0x91, 0x9b, 0x28, 0x2c, 0x12, 0xf7, 0x78, 0x08, 0x80, 0x00,
                0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x18, 0x07, 0x8a, 0x14, 0xcb,
            ],
        ),
        ("codec_adts", "two_frames", adts),
        (
            "codec_adts",
            "asc_explicit_rate",
            AudioSpecificConfig {
                object_type: 2,
                sampling_frequency_index: 15,
                sample_rate: 20_000,
                channel_configuration: 2,
            }
            .to_bytes()
            .to_vec(),
        ),
        ("codec_opus", "celt_20ms_stereo", vec![0xfc, 0xff, 0xfe]),
        ("codec_opus", "code3_vbr", vec![0x1b, 0x83, 10, 20]),
        ("rtp_packetize", "h264_keyframe", packetize264),
        ("rtp_packetize", "h265_keyframe", packetize265),
        ("rtp_depacketize", "stap_a_fu_a", rtp),
    ]
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn seeds_are_current_and_parse() {
    let write = std::env::var_os("SLUICE_WRITE_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = corpus_dir(target).join(name);
        if write {
            std::fs::create_dir_all(corpus_dir(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with SLUICE_WRITE_SEEDS=1)", path.display()));
        assert_eq!(on_disk, bytes, "{} is stale", path.display());
    }
    // The seeds exercise the parsers' success paths, not only their rejections.
    let all = seeds();
    let stream = Bytes::from(all[0].2.clone());
    assert_eq!(annexb::split(&stream).count(), 3);
    assert_eq!(h264::Sps::parse(SPS264).unwrap().width, 320);
    assert_eq!(h265::Sps::parse(SPS265).unwrap().width, 352);
    let adts = Bytes::from(all[5].2.clone());
    let frames: Vec<_> = sluice_proto::codec::aac::adts_frames(&adts).collect();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(Result::is_ok));
    assert_eq!(
        AudioSpecificConfig::parse(&all[6].2).unwrap().sample_rate,
        20_000
    );
}
