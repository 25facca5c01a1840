//! The committed seed corpora of the `ts_demux` and `ts_psi` fuzz targets are written by the
//! test muxer. This test checks they are still what the muxer produces (so seeds follow
//! format changes); run it with `SLUICE_WRITE_SEEDS=1` to rewrite them.

use std::path::PathBuf;

use bytes::Bytes;
use sluice_proto::ts::testmux::{MuxPes, MuxStream, TestMuxer, opus_descriptors, opus_pes_payload};
use sluice_proto::ts::{DemuxEvent, Demuxer, Pid};

fn muxer() -> TestMuxer {
    TestMuxer::new(
        Pid::new(0x1000),
        vec![
            MuxStream {
                pid: Pid::new(0x100),
                stream_type: 0x1b,
                descriptors: vec![],
            },
            MuxStream {
                pid: Pid::new(0x101),
                stream_type: 0x0f,
                descriptors: vec![],
            },
            MuxStream {
                pid: Pid::new(0x102),
                stream_type: 0x06,
                descriptors: opus_descriptors(2),
            },
        ],
    )
}

fn av_stream() -> Vec<u8> {
    let mut mux = muxer();
    let mut out = Vec::new();
    mux.write_psi(&mut out);
    for f in 0..3u64 {
        let video = vec![0x41; 150 + 100 * f as usize];
        let pts = 126_000 + f * 3600;
        mux.write_pes(
            &MuxPes {
                pid: Pid::new(0x100),
                stream_id: 0xe0,
                pts: Some(pts + 3600),
                dts: Some(pts),
                random_access: f == 0,
                bounded: false,
                data: &video,
            },
            &mut out,
        );
        mux.write_pes(
            &MuxPes {
                pid: Pid::new(0x101),
                stream_id: 0xc0,
                pts: Some(pts),
                dts: None,
                random_access: false,
                bounded: true,
                data: &[0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0x21],
            },
            &mut out,
        );
        let opus = opus_pes_payload(&[&[0xfc, 1, 2, 3], &[0xfc; 20]]);
        mux.write_pes(
            &MuxPes {
                pid: Pid::new(0x102),
                stream_id: 0xbd,
                pts: Some(pts),
                dts: None,
                random_access: false,
                bounded: true,
                data: &opus,
            },
            &mut out,
        );
    }
    out
}

/// One PES as the muxer writes it, cut out of its TS packets.
fn pes_bytes(
    stream_id: u8,
    bounded: bool,
    pts: Option<u64>,
    dts: Option<u64>,
    data: &[u8],
) -> Vec<u8> {
    let mut mux = muxer();
    let mut ts = Vec::new();
    mux.write_pes(
        &MuxPes {
            pid: Pid::new(0x100),
            stream_id,
            pts,
            dts,
            random_access: false,
            bounded,
            data,
        },
        &mut ts,
    );
    assert_eq!(ts.len(), 188, "seed PES must fit one packet");
    let start = if ts[3] & 0x20 != 0 {
        5 + usize::from(ts[4])
    } else {
        4
    };
    ts[start..].to_vec()
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let av = av_stream();
    let mut garbage = vec![0x47, 0x00, 0x12];
    garbage.extend_from_slice(&av[..188 * 5]);
    garbage.extend_from_slice(&[0x47; 13]);
    garbage.extend_from_slice(&av[188 * 5..]);
    let mux = muxer();
    let psi_payload = |section: Vec<u8>| {
        let mut v = vec![0x01, 0x00]; // PUSI on the first payload, pointer_field 0
        v.extend(section);
        v
    };
    let mut split_pmt = vec![0x03, 0x00];
    split_pmt.extend(mux.pmt_section());
    split_pmt.extend(std::iter::repeat_n(0xff, 10));
    vec![
        ("ts_demux", "av_stream.ts", av),
        ("ts_demux", "garbage_resync.ts", garbage),
        ("ts_psi", "pat", psi_payload(mux.pat_section())),
        ("ts_psi", "pmt_opus", psi_payload(mux.pmt_section())),
        ("ts_psi", "pmt_then_stuffing", split_pmt),
        (
            "ts_pes",
            "video_pts_dts",
            pes_bytes(
                0xe0,
                false,
                Some(133_200),
                Some(126_000),
                &[0, 0, 0, 1, 0x65, 0x88],
            ),
        ),
        (
            "ts_pes",
            "audio_bounded",
            pes_bytes(
                0xc0,
                true,
                Some(126_000),
                None,
                &[0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc],
            ),
        ),
        (
            "ts_pes",
            "opus_framing",
            opus_pes_payload(&[&[0xfc, 1, 2], &[0xfc; 300]]),
        ),
    ]
}

#[test]
fn seed_stream_demuxes() {
    let mut d = Demuxer::new();
    d.push(Bytes::from(av_stream()));
    d.flush();
    let mut pes = 0;
    while let Some(e) = d.poll() {
        pes += usize::from(!matches!(e, DemuxEvent::ProgramChanged { .. }));
    }
    assert_eq!(pes, 9);
}

#[test]
fn committed_seeds_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = std::env::var_os("SLUICE_WRITE_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = root.join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with SLUICE_WRITE_SEEDS=1", path.display()));
        assert_eq!(
            committed,
            bytes,
            "{} is stale; run with SLUICE_WRITE_SEEDS=1",
            path.display()
        );
    }
}
