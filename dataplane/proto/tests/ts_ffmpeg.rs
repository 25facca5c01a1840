//! Interop: demux real ffmpeg MPEG-TS output (H.264 + AAC, H.265 + AAC, H.264 + Opus) and
//! compare every stream's frames and timestamps with what `ffprobe -show_packets` reports.
//! The files are generated in a temporary directory; no media is committed. ffmpeg and
//! ffprobe must be installed (the test fails with a clear message otherwise).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use sluice_proto::ts::{DemuxEvent, Demuxer, EsCodec, Pid};

/// One packet as ffprobe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbePacket {
    pts: u64,
    dts: u64,
    key: bool,
}

fn tool(name: &str) -> Command {
    let probe = Command::new(name).arg("-version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{name} is required for this test: install ffmpeg (apt-get install ffmpeg)"
    );
    Command::new(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-ts-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn generate(dir: &Path, vcodec: &str, acodec: &str) -> PathBuf {
    let out = dir.join(format!("{vcodec}-{acodec}.ts"));
    let status = tool("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "2"])
        .args(["-c:v", vcodec, "-g", "25"])
        .args(["-x265-params", "log-level=error"])
        .args(["-c:a", acodec, "-f", "mpegts"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed for {vcodec}/{acodec}");
    out
}

/// ffprobe's packets per PID, in file order.
fn probe(file: &Path) -> HashMap<Pid, Vec<ProbePacket>> {
    let run = |entries: &str| {
        let out = tool("ffprobe")
            .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
            .arg(file)
            .output()
            .expect("run ffprobe");
        assert!(out.status.success(), "ffprobe failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let mut pid_of = HashMap::new();
    for line in run("stream=index,id").lines().filter(|l| !l.is_empty()) {
        let mut f = line.split(',');
        let index: u32 = f.next().unwrap().parse().unwrap();
        let id = f.next().unwrap().trim_start_matches("0x");
        pid_of.insert(index, Pid::new(u16::from_str_radix(id, 16).unwrap()));
    }
    let mut packets: HashMap<Pid, Vec<ProbePacket>> = HashMap::new();
    for line in run("packet=stream_index,pts,dts,flags")
        .lines()
        .filter(|l| !l.is_empty())
    {
        let f: Vec<&str> = line.split(',').collect();
        let pid = pid_of[&f[0].parse::<u32>().unwrap()];
        let pts: u64 = f[1].parse().unwrap();
        let dts: u64 = f[2].parse().unwrap_or(pts);
        packets.entry(pid).or_default().push(ProbePacket {
            pts,
            dts,
            key: f[3].starts_with('K'),
        });
    }
    packets
}

/// ADTS frames in an AAC PES payload (ISO/IEC 13818-7 §6.2: 12-bit syncword, 13-bit
/// frame_length).
fn adts_frames(mut b: &[u8]) -> usize {
    let mut n = 0;
    while b.len() >= 7 {
        assert_eq!((b[0], b[1] & 0xf0), (0xff, 0xf0), "ADTS sync");
        let len = (usize::from(b[3] & 3) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
        assert!(len >= 7 && len <= b.len(), "ADTS frame length {len}");
        b = &b[len..];
        n += 1;
    }
    assert!(b.is_empty(), "trailing bytes after ADTS frames");
    n
}

fn demux_file(file: &Path, piece: usize) -> (Vec<DemuxEvent>, Demuxer) {
    let all = Bytes::from(std::fs::read(file).unwrap());
    let mut d = Demuxer::new();
    let mut ev = vec![];
    let mut at = 0;
    while at < all.len() {
        let end = (at + piece).min(all.len());
        d.push(all.slice(at..end));
        at = end;
        while let Some(e) = d.poll() {
            ev.push(e);
        }
    }
    d.flush();
    while let Some(e) = d.poll() {
        ev.push(e);
    }
    (ev, d)
}

fn check(vcodec: &str, acodec: &str, expect_video: EsCodec) {
    let dir = temp_dir(&format!("{vcodec}-{acodec}"));
    let file = generate(&dir, vcodec, acodec);
    let probed = probe(&file);
    let (ev, d) = demux_file(&file, 1316);
    let (ev64k, _) = demux_file(&file, 65_536);
    assert_eq!(ev, ev64k, "1316-byte and 64 KiB pushes differ");

    let DemuxEvent::ProgramChanged { streams } = &ev[0] else {
        panic!("no program first")
    };
    assert_eq!(streams.len(), 2);
    let video = streams
        .iter()
        .find(|s| s.codec == expect_video)
        .expect("video stream");
    let audio = streams
        .iter()
        .find(|s| s.pid != video.pid)
        .expect("audio stream");

    // Video: one PES per frame, same PTS/DTS and keyframe flags as ffprobe, in order.
    let ours: Vec<ProbePacket> = ev
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Pes(f) if f.pid == video.pid => {
                let pts = f.pts.expect("video PES without PTS");
                Some(ProbePacket {
                    pts,
                    dts: f.dts.unwrap_or(pts),
                    key: f.random_access,
                })
            }
            _ => None,
        })
        .collect();
    assert_eq!(ours, probed[&video.pid], "video frames differ from ffprobe");
    assert_eq!(ours.len(), 50);

    // Audio: ffmpeg packs several frames into one PES; the frame count matches ffprobe and
    // each PES PTS is that of its first frame.
    let reference = &probed[&audio.pid];
    let mut frames = 0usize;
    let mut pes = 0usize;
    for e in &ev {
        let (pts, n) = match e {
            DemuxEvent::Pes(f) if f.pid == audio.pid => {
                assert_eq!(audio.codec, EsCodec::AdtsAac);
                (f.pts, adts_frames(&f.data))
            }
            DemuxEvent::OpusPackets { pid, pts, packets } if *pid == audio.pid => {
                assert!(matches!(audio.codec, EsCodec::Opus { .. }));
                assert!(packets.iter().all(|p| !p.is_empty()));
                (*pts, packets.len())
            }
            _ => continue,
        };
        assert_eq!(pts, Some(reference[frames].pts), "PTS of audio PES {pes}");
        frames += n;
        pes += 1;
    }
    assert!(pes > 1);
    assert_eq!(
        frames,
        reference.len(),
        "audio frame count differs from ffprobe"
    );

    let s = d.stats();
    assert_eq!(
        (
            s.cc_errors,
            s.crc_errors,
            s.psi_errors,
            s.pes_errors,
            s.sync_losses
        ),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ffmpeg_h264_aac() {
    check("libx264", "aac", EsCodec::H264);
}

#[test]
fn ffmpeg_h265_aac() {
    check("libx265", "aac", EsCodec::H265);
}

#[test]
fn ffmpeg_h264_opus() {
    check("libx264", "libopus", EsCodec::H264);
}
