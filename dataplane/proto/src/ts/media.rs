//! From demuxed PES to codec-neutral media: the last step of SRT (MPEG-TS) ingest.
//!
//! Takes the [`DemuxEvent`]s of [`super::Demuxer`] and yields [`MediaEvent`]s, the same units
//! the RTMP path produces, so everything after ingest is protocol-neutral:
//! - H.264 / H.265 PES (ISO/IEC 13818-1 §2.14 and §2.17: one access unit per PES, Annex-B
//!   byte stream) are split at start codes ([`annexb::split`]); access unit delimiters are
//!   dropped; SPS/PPS (and the H.265 VPS) are collected into a [`crate::media::VideoConfig`], emitted when
//!   they first appear and whenever they change. The parameter sets stay in the picture too
//!   (in-band, as the encoder sent them), so a downstream decoder can join at any keyframe.
//! - AAC in ADTS (ISO/IEC 14496-3 §1.A.2; stream type 0x0F): one [`AudioFrame`] per ADTS frame,
//!   the header stripped, timestamps advanced by 1024 samples per frame from the PES PTS; the
//!   [`AudioConfig`] comes from the first ADTS header (and again if it changes).
//! - Opus (the "Encapsulation of Opus in ISO/IEC 13818-1" mapping from opus-codec.org, as
//!   ffmpeg writes it; the demuxer already split the control headers): one frame per Opus packet, durations from
//!   the TOC byte (RFC 6716 §3.1).
//!
//! # Timestamps
//! 33-bit PTS/DTS are unwrapped per track ([`PtsUnwrapper`]) and rebased on one base shared by
//! both tracks: the first timestamp of the stream maps to 0, so audio/video sync is kept. Each
//! track's decode timeline is guaranteed non-decreasing and free of jumps above
//! [`MAX_TIMESTAMP_JUMP`]: a step backwards or too far forwards (an encoder restart, a
//! discontinuity) shifts that track's offset so its timeline continues just after the last
//! frame, and is counted in [`MediaStats::discontinuities`]. Video `pts >= dts` always holds.
//!
//! # Zero copy
//! NAL units and audio frames are [`Bytes`] slices of the PES payload; no bytes are copied here.
//!
//! ```
//! use bytes::Bytes;
//! use sluice_proto::media::MediaEvent;
//! use sluice_proto::ts::media::TsMediaReader;
//!
//! let mut reader = TsMediaReader::new();
//! reader.push(Bytes::from_static(&[0x47; 188])); // bytes as SRT released them
//! while let Some(ev) = reader.poll() {
//!     if let MediaEvent::Video(frame) = ev {
//!         println!("picture at {} with {} NAL units", frame.pts, frame.nalus.len());
//!     }
//! }
//! ```

use std::collections::VecDeque;

use bytes::Bytes;

use super::demux::{DemuxEvent, Demuxer, ElementaryStream, PesFrame};
use super::packet::Pid;
use super::pes::PtsUnwrapper;
use super::psi::EsCodec;
use crate::codec::{aac, annexb, h264, h265, opus, video_config_from_parameter_sets};
use crate::media::{
    AudioCodec, AudioConfig, AudioFrame, MEDIA_CLOCK_HZ, MediaEvent, VideoCodec, VideoFrame,
};

/// Largest forward step between two consecutive decode timestamps of one track that is taken
/// as real time (10 s at 90 kHz). Guards the timeline against a corrupt or restarted stream
/// jumping hours ahead, which would stall every receiver's jitter buffer.
pub const MAX_TIMESTAMP_JUMP: i64 = 10 * MEDIA_CLOCK_HZ as i64;
/// Most parameter sets of one kind kept per video track. Guards the config (and the work of
/// comparing it per keyframe) against a PES full of tiny fake SPS; encoders send one.
pub const MAX_PARAMETER_SETS: usize = 16;
/// AAC frames carry 1024 samples (AAC-LC; ISO/IEC 14496-3 §4.5.1.1 frameLengthFlag 0).
const AAC_FRAME_SAMPLES: i64 = 1024;

/// Counters of what the adapter dropped or repaired; every drop is counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Video access units emitted.
    pub video_frames: u64,
    /// Audio frames emitted.
    pub audio_frames: u64,
    /// PES without a PTS (dropped: nothing to time them by).
    pub missing_timestamps: u64,
    /// Timeline repairs: a track's timestamp went backwards or jumped too far ahead.
    pub discontinuities: u64,
    /// Parameter sets that did not describe a usable video config.
    pub bad_parameter_sets: u64,
    /// ADTS frames or bytes that did not parse, or trailing partial frames.
    pub bad_adts: u64,
    /// Opus packets with an invalid TOC / frame count.
    pub bad_opus: u64,
    /// PES on PIDs that are not the selected video or audio track.
    pub ignored_pes: u64,
}

/// The decode timeline of one track: unwrapping, shared base, repair offset.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    unwrap: PtsUnwrapper,
    /// Added after rebasing; changed by discontinuity repairs.
    offset: i64,
    last: Option<i64>,
}

impl Timeline {
    fn new(seed: PtsUnwrapper) -> Timeline {
        Timeline {
            unwrap: seed,
            offset: 0,
            last: None,
        }
    }
}

#[derive(Debug)]
struct VideoTrack {
    pid: Pid,
    codec: VideoCodec,
    time: Option<Timeline>,
    /// The parameter sets of the last config emitted (or tried), to detect changes.
    vps: Vec<Bytes>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
}

#[derive(Debug)]
struct AudioTrack {
    pid: Pid,
    codec: EsCodec,
    time: Option<Timeline>,
    config: Option<AudioConfig>,
}

/// Turns [`DemuxEvent`]s into [`MediaEvent`]s. Follows the first video (H.264/H.265) and the
/// first audio (AAC/Opus) stream of the program; see the module docs for the rules.
#[derive(Debug, Default)]
pub struct MediaAdapter {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// The first unwrapped timestamp of the stream (raw 33-bit value), shared by both tracks.
    base: Option<(u64, i64)>,
    stats: MediaStats,
    nal_scratch: Vec<Bytes>,
}

/// Maps a 90 kHz decode/presentation pair through a track timeline. Returns `(dts, pts)`.
fn place(
    base: &mut Option<(u64, i64)>,
    time: &mut Option<Timeline>,
    stats: &mut MediaStats,
    dts_raw: u64,
    pts_raw: u64,
) -> (i64, i64) {
    let (base_raw, base_val) = *base.get_or_insert_with(|| {
        let raw = dts_raw & super::pes::TIMESTAMP_MASK;
        (raw, raw as i64)
    });
    let t = time.get_or_insert_with(|| {
        // Seed the track's unwrapper at the base, so a track that starts just after a 2^33
        // wrap lands next to the other one instead of 26 hours away.
        let mut seed = PtsUnwrapper::new();
        seed.unwrap(base_raw);
        Timeline::new(seed)
    });
    let dts_u = t.unwrap.unwrap(dts_raw);
    let pts_u = t.unwrap.unwrap(pts_raw);
    // Leave the unwrapper's reference on the decode timeline (monotonic), not on the PTS.
    t.unwrap.unwrap(dts_raw);
    let mut dts = dts_u.wrapping_sub(base_val).wrapping_add(t.offset);
    if let Some(last) = t.last
        && (dts < last || dts - last > MAX_TIMESTAMP_JUMP)
    {
        // Continue one tick after the last frame: the smallest step that keeps order.
        let want = last.saturating_add(1);
        t.offset = t.offset.wrapping_add(want.wrapping_sub(dts));
        dts = want;
        stats.discontinuities += 1;
    }
    t.last = Some(dts);
    let pts_delta = pts_u.wrapping_sub(dts_u).clamp(0, MAX_TIMESTAMP_JUMP);
    (dts, dts.saturating_add(pts_delta))
}

impl MediaAdapter {
    /// An adapter waiting for a program.
    pub fn new() -> MediaAdapter {
        MediaAdapter::default()
    }

    /// Counters.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Handles one demuxer event, appending the media events it yields to `out`.
    pub fn handle(&mut self, ev: DemuxEvent, out: &mut Vec<MediaEvent>) {
        match ev {
            DemuxEvent::ProgramChanged { streams } => self.program(&streams),
            DemuxEvent::Pes(frame) => {
                if self.video.as_ref().is_some_and(|v| v.pid == frame.pid) {
                    self.video_pes(frame, out);
                } else if self
                    .audio
                    .as_ref()
                    .is_some_and(|a| a.pid == frame.pid && a.codec == EsCodec::AdtsAac)
                {
                    self.aac_pes(frame, out);
                } else {
                    self.stats.ignored_pes += 1;
                }
            }
            DemuxEvent::OpusPackets { pid, pts, packets } => {
                if self
                    .audio
                    .as_ref()
                    .is_some_and(|a| a.pid == pid && matches!(a.codec, EsCodec::Opus { .. }))
                {
                    self.opus_pes(pts, packets, out);
                } else {
                    self.stats.ignored_pes += 1;
                }
            }
        }
    }

    fn program(&mut self, streams: &[ElementaryStream]) {
        let video = streams.iter().find_map(|s| match s.codec {
            EsCodec::H264 => Some((s.pid, VideoCodec::H264)),
            EsCodec::H265 => Some((s.pid, VideoCodec::H265)),
            _ => None,
        });
        let audio = streams
            .iter()
            .find(|s| matches!(s.codec, EsCodec::AdtsAac | EsCodec::Opus { .. }));
        // A track that keeps its PID and codec keeps its state (timeline, config). A new one
        // keeps the timeline: downstream it is still the stream's one video (or audio) track,
        // whose timestamps must keep going forward.
        match video {
            Some((pid, codec)) => {
                if !self
                    .video
                    .as_ref()
                    .is_some_and(|v| v.pid == pid && v.codec == codec)
                {
                    let time = self.video.as_ref().and_then(|v| v.time);
                    self.video = Some(VideoTrack {
                        pid,
                        codec,
                        time,
                        vps: Vec::new(),
                        sps: Vec::new(),
                        pps: Vec::new(),
                    });
                }
            }
            None => {
                if let Some(v) = self.video.as_mut() {
                    // No video any more: stop matching its PID, keep the timeline.
                    v.pid = Pid::NULL;
                }
            }
        }
        match audio {
            Some(s) => {
                if !self
                    .audio
                    .as_ref()
                    .is_some_and(|a| a.pid == s.pid && a.codec == s.codec)
                {
                    let time = self.audio.as_ref().and_then(|a| a.time);
                    self.audio = Some(AudioTrack {
                        pid: s.pid,
                        codec: s.codec,
                        time,
                        config: None,
                    });
                }
            }
            None => {
                if let Some(a) = self.audio.as_mut() {
                    a.pid = Pid::NULL;
                }
            }
        }
    }

    fn video_pes(&mut self, frame: PesFrame, out: &mut Vec<MediaEvent>) {
        let Some(v) = self.video.as_mut() else {
            return;
        };
        let Some(pts_raw) = frame.pts else {
            self.stats.missing_timestamps += 1;
            return;
        };
        let dts_raw = frame.dts.unwrap_or(pts_raw);
        self.nal_scratch.clear();
        let mut vps = Vec::new();
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        for nal in annexb::split(&frame.data) {
            let (aud, kind) = match v.codec {
                VideoCodec::H264 => match h264::nal_type(&nal) {
                    Some(h264::NalType::Aud) => (true, None),
                    Some(h264::NalType::Sps) => (false, Some(&mut sps)),
                    Some(h264::NalType::Pps) => (false, Some(&mut pps)),
                    _ => (false, None),
                },
                _ => match h265::nal_type(&nal) {
                    Some(h265::NAL_AUD) => (true, None),
                    Some(h265::NAL_VPS) => (false, Some(&mut vps)),
                    Some(h265::NAL_SPS) => (false, Some(&mut sps)),
                    Some(h265::NAL_PPS) => (false, Some(&mut pps)),
                    _ => (false, None),
                },
            };
            if aud {
                continue;
            }
            if let Some(list) = kind
                && list.len() < MAX_PARAMETER_SETS
                && !list.contains(&nal)
            {
                list.push(nal.clone());
            }
            self.nal_scratch.push(nal);
        }
        if self.nal_scratch.is_empty() {
            return;
        }
        // A keyframe that repeats the parameter sets already known is the common case: compare
        // before building a config.
        let changed = (!sps.is_empty() && sps != v.sps)
            || (!pps.is_empty() && pps != v.pps)
            || (!vps.is_empty() && vps != v.vps);
        if changed {
            if !sps.is_empty() {
                v.sps = sps;
            }
            if !pps.is_empty() {
                v.pps = pps;
            }
            if !vps.is_empty() {
                v.vps = vps;
            }
            let have_all = !v.sps.is_empty()
                && !v.pps.is_empty()
                && (v.codec == VideoCodec::H264 || !v.vps.is_empty());
            if have_all {
                match video_config_from_parameter_sets(v.codec, &v.vps, &v.sps, &v.pps) {
                    Ok(cfg) => out.push(MediaEvent::VideoConfig(cfg)),
                    Err(_) => self.stats.bad_parameter_sets += 1,
                }
            }
        }
        let nals = self.nal_scratch.iter().map(|n| n.as_ref());
        let keyframe = frame.random_access
            || match v.codec {
                VideoCodec::H264 => h264::is_keyframe(nals),
                _ => h265::is_keyframe(nals),
            };
        let (dts, pts) = place(
            &mut self.base,
            &mut v.time,
            &mut self.stats,
            dts_raw,
            pts_raw,
        );
        self.stats.video_frames += 1;
        out.push(MediaEvent::Video(VideoFrame {
            pts,
            dts,
            keyframe,
            nalus: std::mem::take(&mut self.nal_scratch),
        }));
    }

    fn aac_pes(&mut self, frame: PesFrame, out: &mut Vec<MediaEvent>) {
        let Some(a) = self.audio.as_mut() else {
            return;
        };
        let Some(pts_raw) = frame.pts else {
            self.stats.missing_timestamps += 1;
            return;
        };
        let mut frames = aac::adts_frames(&frame.data);
        let mut index: i64 = 0;
        let mut seg_rate: i64 = 0;
        let mut seg_start: i64 = 0;
        let mut first_pts = None;
        let mut last_pts = None;
        for r in frames.by_ref() {
            let f = match r {
                Ok(f) => f,
                Err(_) => {
                    self.stats.bad_adts += 1;
                    break;
                }
            };
            if f.header.raw_data_blocks != 1 {
                // Several raw blocks share one header; splitting them needs the block
                // position table. Encoders feeding SRT write one block per frame.
                self.stats.bad_adts += 1;
                continue;
            }
            let asc = f.header.audio_specific_config();
            let rate = i64::from(f.header.sample_rate().max(1));
            let config = AudioConfig {
                codec: AudioCodec::Aac,
                sample_rate: f.header.sample_rate(),
                channels: f.header.channel_configuration,
                specific_config: asc.to_bytes(),
            };
            if a.config.as_ref() != Some(&config) {
                a.config = Some(config.clone());
                out.push(MediaEvent::AudioConfig(config));
            }
            let start = *first_pts.get_or_insert_with(|| {
                place(
                    &mut self.base,
                    &mut a.time,
                    &mut self.stats,
                    pts_raw,
                    pts_raw,
                )
                .0
            });
            // From the start of the run of frames at this rate, so per-frame rounding does not
            // accumulate; a rate change (hostile or broken input) starts a new run where the
            // previous one ended, so timestamps keep going forward.
            if seg_rate != rate {
                if seg_rate != 0 {
                    seg_start += index * AAC_FRAME_SAMPLES * i64::from(MEDIA_CLOCK_HZ) / seg_rate;
                } else {
                    seg_start = start;
                }
                seg_rate = rate;
                index = 0;
            }
            let pts = seg_start + index * AAC_FRAME_SAMPLES * i64::from(MEDIA_CLOCK_HZ) / rate;
            index += 1;
            last_pts = Some(pts);
            self.stats.audio_frames += 1;
            out.push(MediaEvent::Audio(AudioFrame {
                pts,
                data: f.payload,
            }));
        }
        if frames.remaining() > 0 {
            self.stats.bad_adts += 1;
        }
        // The next PES must not start before this one's last frame.
        if let (Some(t), Some(last)) = (a.time.as_mut(), last_pts) {
            t.last = Some(last);
        }
    }

    fn opus_pes(&mut self, pts_raw: Option<u64>, packets: Vec<Bytes>, out: &mut Vec<MediaEvent>) {
        let Some(a) = self.audio.as_mut() else {
            return;
        };
        let Some(pts_raw) = pts_raw else {
            self.stats.missing_timestamps += 1;
            return;
        };
        let EsCodec::Opus { channel_config } = a.codec else {
            return;
        };
        let mut start = None;
        let mut samples: i64 = 0;
        let mut last_pts = None;
        for p in packets {
            let Ok(n) = opus::packet_samples(&p) else {
                self.stats.bad_opus += 1;
                continue;
            };
            if a.config.is_none() {
                // Channel config codes 1..=8 are channel counts (mapping family 0/1); others
                // need the extended descriptor, so fall back to the TOC's stereo bit.
                let toc = opus::Toc::from_byte(p.first().copied().unwrap_or_default());
                let channels = match channel_config {
                    Some(c @ 1..=8) => c,
                    _ if toc.stereo => 2,
                    _ => 1,
                };
                let config = AudioConfig {
                    codec: AudioCodec::Opus,
                    sample_rate: opus::OPUS_CLOCK_HZ,
                    channels,
                    specific_config: Bytes::new(),
                };
                a.config = Some(config.clone());
                out.push(MediaEvent::AudioConfig(config));
            }
            let s = *start.get_or_insert_with(|| {
                place(
                    &mut self.base,
                    &mut a.time,
                    &mut self.stats,
                    pts_raw,
                    pts_raw,
                )
                .0
            });
            let pts = s + samples * i64::from(MEDIA_CLOCK_HZ) / i64::from(opus::OPUS_CLOCK_HZ);
            samples += i64::from(n);
            last_pts = Some(pts);
            self.stats.audio_frames += 1;
            out.push(MediaEvent::Audio(AudioFrame { pts, data: p }));
        }
        if let (Some(t), Some(last)) = (a.time.as_mut(), last_pts) {
            t.last = Some(last);
        }
    }
}

/// The whole TS-to-media path for one connection: a [`Demuxer`] and a [`MediaAdapter`].
/// Run loop: [`TsMediaReader::push`] each payload in order, then [`TsMediaReader::poll`] until
/// `None`; at the end of the stream, [`TsMediaReader::flush`] and poll again.
#[derive(Debug, Default)]
pub struct TsMediaReader {
    demux: Demuxer,
    adapter: MediaAdapter,
    out: VecDeque<MediaEvent>,
    scratch: Vec<MediaEvent>,
}

impl TsMediaReader {
    /// A reader waiting for sync and a PAT.
    pub fn new() -> TsMediaReader {
        TsMediaReader::default()
    }

    /// Feeds TS bytes (e.g. one SRT payload of seven packets), split anywhere.
    pub fn push(&mut self, data: Bytes) {
        self.demux.push(data);
        self.drain();
    }

    /// Ends the input: completes the PES still open.
    pub fn flush(&mut self) {
        self.demux.flush();
        self.drain();
    }

    /// The next media event, if any.
    pub fn poll(&mut self) -> Option<MediaEvent> {
        self.out.pop_front()
    }

    /// The demuxer's counters.
    pub fn demux_stats(&self) -> super::DemuxStats {
        self.demux.stats()
    }

    /// The adapter's counters.
    pub fn media_stats(&self) -> MediaStats {
        self.adapter.stats()
    }

    fn drain(&mut self) {
        while let Some(ev) = self.demux.poll() {
            self.adapter.handle(ev, &mut self.scratch);
            self.out.extend(self.scratch.drain(..));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::aac::AudioSpecificConfig;
    use crate::ts::testmux::{MuxPes, MuxStream, TestMuxer, opus_descriptors, opus_pes_payload};

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x02, 0x04];
    const AUD: &[u8] = &[0x09, 0xf0];
    const VIDEO: u16 = 0x100;
    const AUDIO: u16 = 0x101;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    }

    fn adts(frames: &[&[u8]]) -> Vec<u8> {
        let asc = AudioSpecificConfig::new(2, 48_000, 2);
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(&asc.adts_header(f.len()).unwrap());
            v.extend_from_slice(f);
        }
        v
    }

    fn muxer(audio_type: u8, audio_desc: Vec<u8>) -> TestMuxer {
        TestMuxer::new(
            Pid::new(0x1000),
            vec![
                MuxStream {
                    pid: Pid::new(VIDEO),
                    stream_type: 0x1b,
                    descriptors: vec![],
                },
                MuxStream {
                    pid: Pid::new(AUDIO),
                    stream_type: audio_type,
                    descriptors: audio_desc,
                },
            ],
        )
    }

    fn pes(pid: u16, pts: u64, dts: Option<u64>, data: &[u8]) -> MuxPes<'_> {
        MuxPes {
            pid: Pid::new(pid),
            stream_id: if pid == VIDEO { 0xe0 } else { 0xc0 },
            pts: Some(pts),
            dts,
            random_access: false,
            bounded: pid != VIDEO,
            data,
        }
    }

    fn read(ts: Vec<u8>) -> (Vec<MediaEvent>, TsMediaReader) {
        let mut r = TsMediaReader::new();
        // Pushed in SRT-sized payloads (7 packets), as the engine does.
        let all = Bytes::from(ts);
        let mut at = 0;
        while at < all.len() {
            let end = (at + 1316).min(all.len());
            r.push(all.slice(at..end));
            at = end;
        }
        r.flush();
        let mut out = Vec::new();
        while let Some(e) = r.poll() {
            out.push(e);
        }
        (out, r)
    }

    #[test]
    fn h264_and_aac_become_media_events() {
        let mut m = muxer(0x0f, vec![]);
        let mut ts = Vec::new();
        m.write_psi(&mut ts);
        let base = (1u64 << 33) - 3000; // wraps during the stream
        let key = annexb(&[AUD, SPS, PPS, IDR]);
        m.write_pes(&pes(VIDEO, base + 6000, Some(base), &key), &mut ts);
        let audio = adts(&[&[1, 2, 3], &[4, 5], &[6]]);
        m.write_pes(&pes(AUDIO, base + 1000, None, &audio), &mut ts);
        let p = annexb(&[AUD, SLICE]);
        m.write_pes(&pes(VIDEO, base + 9000, Some(base + 3000), &p), &mut ts);
        m.write_pes(&pes(VIDEO, base + 12000, Some(base + 6000), &p), &mut ts);
        let (ev, r) = read(ts);

        let cfg = ev.iter().find_map(|e| match e {
            MediaEvent::VideoConfig(c) => Some(c),
            _ => None,
        });
        let cfg = cfg.expect("video config");
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(cfg.sps, vec![Bytes::from_static(SPS)]);
        let video: Vec<&VideoFrame> = ev
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Video(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(video.len(), 3);
        assert!(video[0].keyframe && !video[1].keyframe);
        // Rebased on the first timestamp completed (the bounded audio PES completes before
        // the unbounded video PES), B-frame offsets kept, across the 2^33 wrap.
        assert_eq!((video[0].dts, video[0].pts), (-1000, 5000));
        assert_eq!((video[2].dts, video[2].pts), (5000, 11000));
        // AUD dropped, parameter sets kept in-band.
        assert_eq!(video[0].nalus.len(), 3);
        assert_eq!(video[1].nalus, vec![Bytes::from_static(SLICE)]);

        let acfg = ev.iter().find_map(|e| match e {
            MediaEvent::AudioConfig(c) => Some(c),
            _ => None,
        });
        let acfg = acfg.expect("audio config");
        assert_eq!(
            (acfg.codec, acfg.sample_rate, acfg.channels),
            (AudioCodec::Aac, 48_000, 2)
        );
        assert_eq!(acfg.specific_config.as_ref(), &[0x11, 0x90]);
        let audio: Vec<&AudioFrame> = ev
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Audio(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(audio.len(), 3);
        // 1024 samples at 48 kHz = 1920 ticks of 90 kHz per frame, on the shared base.
        let pts: Vec<i64> = audio.iter().map(|a| a.pts).collect();
        assert_eq!(pts, vec![0, 1920, 3840]);
        assert_eq!(audio[1].data.as_ref(), &[4, 5]);
        assert_eq!(r.media_stats().discontinuities, 0);
        assert_eq!(r.media_stats().video_frames, 3);
    }

    #[test]
    fn config_emitted_once_until_parameter_sets_change() {
        let mut m = muxer(0x0f, vec![]);
        let mut ts = Vec::new();
        m.write_psi(&mut ts);
        let key = annexb(&[SPS, PPS, IDR]);
        for i in 0..3u64 {
            m.write_pes(&pes(VIDEO, i * 3000, None, &key), &mut ts);
        }
        // Same SPS, another PPS id encoding: a change.
        let key2 = annexb(&[SPS, &[0x68, 0xce, 0x3c, 0x80], IDR]);
        m.write_pes(&pes(VIDEO, 9000, None, &key2), &mut ts);
        m.write_pes(&pes(VIDEO, 12000, None, &key2), &mut ts);
        let (ev, _) = read(ts);
        let configs = ev
            .iter()
            .filter(|e| matches!(e, MediaEvent::VideoConfig(_)))
            .count();
        assert_eq!(configs, 2);
    }

    #[test]
    fn opus_packets_timed_from_toc() {
        let mut m = muxer(0x06, opus_descriptors(2));
        let mut ts = Vec::new();
        m.write_psi(&mut ts);
        // Two 20 ms CELT packets (config 31, stereo), then one more PES.
        let payload = opus_pes_payload(&[&[0xfc, 1, 2], &[0xfc, 3]]);
        let mut p = pes(AUDIO, 90_000, None, &payload);
        p.stream_id = 0xbd;
        m.write_pes(&p, &mut ts);
        let payload2 = opus_pes_payload(&[&[0xfc, 4]]);
        let mut p2 = pes(AUDIO, 93_600, None, &payload2);
        p2.stream_id = 0xbd;
        m.write_pes(&p2, &mut ts);
        let (ev, _) = read(ts);
        let MediaEvent::AudioConfig(c) = &ev[0] else {
            panic!("expected the audio config first: {ev:?}");
        };
        assert_eq!(
            (c.codec, c.sample_rate, c.channels),
            (AudioCodec::Opus, 48_000, 2)
        );
        let pts: Vec<i64> = ev
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Audio(a) => Some(a.pts),
                _ => None,
            })
            .collect();
        // 960 samples at 48 kHz = 1800 ticks.
        assert_eq!(pts, vec![0, 1800, 3600]);
    }

    #[test]
    fn timeline_repairs_backward_and_huge_jumps() {
        let mut m = muxer(0x0f, vec![]);
        let mut ts = Vec::new();
        m.write_psi(&mut ts);
        let f = annexb(&[SPS, PPS, IDR]);
        for pts in [
            90_000u64,
            93_000,
            5_000,
            8_000,
            90_000 * 1000,
            90_000 * 1000 + 3000,
        ] {
            m.write_pes(&pes(VIDEO, pts, None, &f), &mut ts);
        }
        let (ev, r) = read(ts);
        let dts: Vec<i64> = ev
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Video(v) => Some(v.dts),
                _ => None,
            })
            .collect();
        // The restart continues one tick after the last frame, then advances normally.
        assert_eq!(dts, vec![0, 3000, 3001, 6001, 6002, 9002]);
        assert_eq!(r.media_stats().discontinuities, 2);
    }

    #[test]
    fn pes_without_pts_and_unknown_pids_are_counted() {
        let mut m = muxer(0x0f, vec![]);
        let mut ts = Vec::new();
        m.write_psi(&mut ts);
        let f = annexb(&[SPS, PPS, IDR]);
        let mut p = pes(VIDEO, 0, None, &f);
        p.pts = None;
        m.write_pes(&p, &mut ts);
        // Truncated ADTS: header says more bytes than the PES has.
        let mut a = adts(&[&[1, 2, 3, 4]]);
        a.truncate(a.len() - 2);
        m.write_pes(&pes(AUDIO, 0, None, &a), &mut ts);
        let (ev, r) = read(ts);
        assert!(
            ev.iter()
                .all(|e| !matches!(e, MediaEvent::Video(_) | MediaEvent::Audio(_)))
        );
        assert_eq!(r.media_stats().missing_timestamps, 1);
        assert_eq!(r.media_stats().bad_adts, 1);
    }

    mod wrap {
        use super::*;
        use crate::ts::StreamType;
        use proptest::prelude::*;

        fn program() -> DemuxEvent {
            DemuxEvent::ProgramChanged {
                streams: vec![
                    ElementaryStream {
                        pid: Pid::new(VIDEO),
                        stream_type: StreamType::H264,
                        codec: EsCodec::H264,
                    },
                    ElementaryStream {
                        pid: Pid::new(AUDIO),
                        stream_type: StreamType::AdtsAac,
                        codec: EsCodec::AdtsAac,
                    },
                ],
            }
        }

        fn video(pts: u64, dts: u64) -> DemuxEvent {
            DemuxEvent::Pes(PesFrame {
                pid: Pid::new(VIDEO),
                stream_type: StreamType::H264,
                codec: EsCodec::H264,
                pts: Some(pts & crate::ts::pes::TIMESTAMP_MASK),
                dts: Some(dts & crate::ts::pes::TIMESTAMP_MASK),
                random_access: false,
                data: Bytes::from(annexb(&[SLICE])),
            })
        }

        fn audio(pts: u64) -> DemuxEvent {
            DemuxEvent::Pes(PesFrame {
                pid: Pid::new(AUDIO),
                stream_type: StreamType::AdtsAac,
                codec: EsCodec::AdtsAac,
                pts: Some(pts & crate::ts::pes::TIMESTAMP_MASK),
                dts: None,
                random_access: false,
                data: Bytes::from(adts(&[&[1, 2]])),
            })
        }

        proptest! {
            /// Hours of 25 fps video and 48 kHz AAC in virtual time, starting anywhere in the
            /// 33-bit range (so across the 2^33 wrap): the rebased timelines are exact,
            /// continuous, never repaired, and the two tracks stay in sync.
            #[test]
            fn timelines_survive_the_33_bit_wrap(
                start in 0u64..(1 << 33),
                audio_lead in 0u64..9000,
                frames in 1usize..3000,
            ) {
                let mut a = MediaAdapter::new();
                let mut out = Vec::new();
                a.handle(program(), &mut out);
                // Far apart samples so a few thousand PES span many hours.
                let step_v: u64 = 3600 * 97;
                for i in 0..frames as u64 {
                    let t = start + i * step_v;
                    a.handle(audio(t + audio_lead), &mut out);
                    a.handle(video(t + 7200, t), &mut out);
                }
                prop_assert_eq!(a.stats().discontinuities, 0);
                let mut vi = 0u64;
                let mut ai = 0u64;
                for e in &out {
                    match e {
                        MediaEvent::Video(v) => {
                            let want = (vi * step_v) as i64 - audio_lead as i64;
                            prop_assert_eq!(v.dts, want);
                            prop_assert_eq!(v.pts, want + 7200);
                            vi += 1;
                        }
                        MediaEvent::Audio(f) => {
                            prop_assert_eq!(f.pts, (ai * step_v) as i64);
                            ai += 1;
                        }
                        _ => {}
                    }
                }
                prop_assert_eq!((vi, ai), (frames as u64, frames as u64));
            }
        }
    }
}
