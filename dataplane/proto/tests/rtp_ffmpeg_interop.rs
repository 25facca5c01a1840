//! Interop: ffmpeg-encoded H.264 or H.265 (Annex-B) and AAC (ADTS) are parsed with `codec`, packetized
//! with `rtp`, described with `rtp::sdp`, sent over loopback UDP and decoded by a real ffmpeg
//! reading the SDP. Asserts the decoded frame counts and the resolution ffmpeg saw.
//!
//! Needs `ffmpeg` with libx264 and libx265 on PATH; the media is generated into a temp dir per run.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_proto::codec::{aac, annexb, h264, h265, video_config_from_parameter_sets};
use sluice_proto::media::{AudioCodec, AudioConfig, AudioFrame, VideoCodec, VideoFrame};
use sluice_proto::rtp::sdp::{AudioMedia, ForwardingSdp, VideoMedia};
use sluice_proto::rtp::{
    AacPacketizer, PacketizerConfig, RtpPacket, RtpTimestamp, SeqNo, Ssrc, VideoPacketizer,
};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: i64 = 25;
const SECONDS: u32 = 2;

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("sluice-rtp-interop-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Groups Annex-B NAL units into access units: a new picture starts at a non-VCL unit after a
/// VCL one, or at the first slice of a picture (H.264 §7.4.1.2.3 with first_mb_in_slice 0;
/// H.265 §7.4.2.4.4 with first_slice_segment_in_pic_flag).
fn access_units(codec: VideoCodec, nalus: impl Iterator<Item = Bytes>) -> Vec<Vec<Bytes>> {
    let mut aus: Vec<Vec<Bytes>> = Vec::new();
    let mut cur: Vec<Bytes> = Vec::new();
    let mut cur_has_vcl = false;
    for nal in nalus {
        let (vcl, first_slice) = match codec {
            VideoCodec::H264 => {
                let vcl = h264::nal_type(&nal).unwrap().is_vcl();
                (
                    vcl,
                    vcl && h264::SliceHeader::parse(&nal).unwrap().first_mb_in_slice == 0,
                )
            }
            _ => {
                let h = h265::NalHeader::parse(&nal).unwrap();
                (h.is_vcl(), h.is_vcl() && nal[2] & 0x80 != 0)
            }
        };
        let starts_new = cur_has_vcl && (!vcl || first_slice);
        if starts_new {
            aus.push(std::mem::take(&mut cur));
            cur_has_vcl = false;
        }
        cur_has_vcl |= vcl;
        cur.push(nal);
    }
    if !cur.is_empty() {
        aus.push(cur);
    }
    aus
}

/// An even port whose pair (RTP, RTCP) is free on loopback right now.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        drop(s);
        let p = p & !1;
        if p > 1024
            && UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free UDP port pair");
}

fn wait_until_bound(port: u16, deadline: Instant) {
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "ffmpeg never bound port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ffmpeg_decodes_our_h264_and_aac_rtp() {
    interop(VideoCodec::H264);
}

#[test]
fn ffmpeg_decodes_our_h265_and_aac_rtp() {
    interop(VideoCodec::H265);
}

fn interop(codec: VideoCodec) {
    if !have_ffmpeg() {
        eprintln!("ffmpeg not on PATH: interop test not run");
        return;
    }
    let dir = TempDir::new(&format!("{codec:?}"));
    let (vpath, apath, sdp_path) = (dir.path("v.es"), dir.path("a.aac"), dir.path("s.sdp"));
    let size = format!("testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let secs = SECONDS.to_string();
    let (encoder, format, params_flag, params) = match codec {
        VideoCodec::H264 => ("libx264", "h264", "-x264-params", "bframes=0:keyint=25"),
        _ => (
            "libx265",
            "hevc",
            "-x265-params",
            "bframes=0:keyint=25:log-level=error",
        ),
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &size,
        "-t",
        &secs,
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        encoder,
        params_flag,
        params,
        "-f",
        format,
        &vpath,
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &secs,
        "-c:a",
        "aac",
        "-ac",
        "2",
        "-f",
        "adts",
        &apath,
    ]);

    // Video: Annex-B -> access units -> VideoFrames.
    let vbytes = Bytes::from(std::fs::read(Path::new(&vpath)).unwrap());
    let aus = access_units(codec, annexb::split(&vbytes));
    assert_eq!(aus.len(), (FPS as u32 * SECONDS) as usize);
    let nal_type = |n: &Bytes| match codec {
        VideoCodec::H264 => h264::nal_type(n).map(|t| t.as_u8()),
        _ => h265::nal_type(n),
    };
    let find = |t: u8| {
        aus[0]
            .iter()
            .filter(|n| nal_type(n) == Some(t))
            .cloned()
            .collect::<Vec<_>>()
    };
    let vconfig = match codec {
        VideoCodec::H264 => video_config_from_parameter_sets(codec, &[], &find(7), &find(8)),
        _ => video_config_from_parameter_sets(
            codec,
            &find(h265::NAL_VPS),
            &find(h265::NAL_SPS),
            &find(h265::NAL_PPS),
        ),
    }
    .unwrap();
    assert_eq!((vconfig.width, vconfig.height), (WIDTH, HEIGHT));
    let vframes: Vec<VideoFrame> = aus
        .into_iter()
        .enumerate()
        .map(|(i, nalus)| {
            let pts = i as i64 * 90_000 / FPS;
            VideoFrame {
                pts,
                dts: pts,
                keyframe: match codec {
                    VideoCodec::H264 => h264::is_keyframe(nalus.iter().map(|n| &n[..])),
                    _ => h265::is_keyframe(nalus.iter().map(|n| &n[..])),
                },
                nalus,
            }
        })
        .collect();
    assert!(vframes[0].keyframe);

    // Audio: ADTS -> raw AUs + AudioSpecificConfig.
    let abytes = Bytes::from(std::fs::read(Path::new(&apath)).unwrap());
    let adts: Vec<aac::AdtsFrame> = aac::adts_frames(&abytes).map(Result::unwrap).collect();
    let asc = adts[0].header.audio_specific_config();
    let aconfig = AudioConfig {
        codec: AudioCodec::Aac,
        sample_rate: asc.sample_rate,
        channels: asc.channel_configuration,
        specific_config: asc.to_bytes(),
    };
    let aframes: Vec<AudioFrame> = adts
        .iter()
        .enumerate()
        .map(|(i, f)| AudioFrame {
            pts: i as i64 * 1024 * 90_000 / i64::from(asc.sample_rate),
            data: f.payload.clone(),
        })
        .collect();

    let (vport, aport) = (free_port_pair(), free_port_pair());
    let sdp = ForwardingSdp {
        session_id: 1,
        session_version: 1,
        session_name: "sluice interop",
        origin: "127.0.0.1".parse().unwrap(),
        connection: "127.0.0.1".parse().unwrap(),
        video: Some(VideoMedia {
            port: vport,
            payload_type: 96,
            config: &vconfig,
        }),
        audio: Some(AudioMedia {
            port: aport,
            payload_type: 97,
            config: &aconfig,
        }),
    }
    .render()
    .unwrap();
    std::fs::write(&sdp_path, &sdp).unwrap();

    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(["-protocol_whitelist", "file,udp,rtp", "-i", &sdp_path])
        .args(["-map", "0:v", "-map", "0:a", "-f", "framemd5", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    wait_until_bound(vport, deadline);
    wait_until_bound(aport, deadline);

    // Start the numbering near the wrap points so the receiver sees both wrap.
    let cfg = |pt, seq, ts| {
        PacketizerConfig::new(
            Ssrc(0x5eed_0000 + u32::from(pt)),
            pt,
            SeqNo(seq),
            RtpTimestamp(ts),
        )
    };
    let vcfg = cfg(96, 65_500, u32::MAX - 90_000);
    let mut vp = VideoPacketizer::new(vcfg, &vconfig).unwrap();
    let mut ap = AacPacketizer::new(cfg(97, 65_530, u32::MAX - 20_000), asc.sample_rate).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut packets: Vec<RtpPacket> = Vec::new();
    let (mut vi, mut ai) = (0, 0);
    let mut sent_video = 0usize;
    while vi < vframes.len() || ai < aframes.len() {
        // Interleave by presentation time, as a live source would.
        let take_video =
            ai >= aframes.len() || (vi < vframes.len() && vframes[vi].pts <= aframes[ai].pts);
        packets.clear();
        let port = if take_video {
            vp.packetize(&vframes[vi], &mut packets);
            vi += 1;
            sent_video += 1;
            vport
        } else {
            ap.packetize(&aframes[ai], &mut packets).unwrap();
            ai += 1;
            aport
        };
        for p in &packets {
            assert!(p.payload_len() <= 1200);
            sock.send_to(&p.to_vec(), ("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    // 'q' asks ffmpeg to stop reading and flush its decoders.
    let _ = child.stdin.take().unwrap().write_all(b"q");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ffmpeg did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "ffmpeg failed: {err}");

    assert!(
        out.contains(&format!("#dimensions 0: {WIDTH}x{HEIGHT}")),
        "no dimensions line in:\n{out}"
    );
    let count = |stream: &str| {
        out.lines()
            .filter(|l| !l.starts_with('#') && l.split(',').next().map(str::trim) == Some(stream))
            .count()
    };
    let (video, audio) = (count("0"), count("1"));
    // 'q' stops ffmpeg's reading while the last pictures may still wait in its demuxer and
    // interleaving queues, so the tail can be short by a couple of frames; nothing else may be.
    assert!(
        video + 3 >= sent_video && video <= sent_video,
        "decoded {video} of {sent_video} video frames; stderr: {err}"
    );
    // Every picture decoded from RTP equals the one decoded from the original file.
    let reference = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            &vpath,
        ])
        .args(["-f", "framemd5", "-"])
        .output()
        .unwrap();
    let hashes = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("0,"))
            .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
            .collect()
    };
    let want = hashes(&String::from_utf8_lossy(&reference.stdout));
    let got = hashes(&out);
    assert_eq!(want.len(), sent_video);
    assert_eq!(got[..], want[..got.len()]);
    assert!(
        audio * 10 >= aframes.len() * 9,
        "decoded {audio} of {} audio frames; stderr: {err}",
        aframes.len()
    );
}
