//! The per-stream RTP packetizers: run once per stream on its owner core; the packets they
//! produce are shared (as reference-counted descriptors) by the GOP cache and every receiver.

use bytes::Bytes;
use sluice_proto::codec::video_config_from_parameter_sets;
use sluice_proto::media::{
    AudioCodec, AudioConfig, AudioFrame, VideoCodec, VideoConfig, VideoFrame,
};
use sluice_proto::rtp::{
    AacPacketizer, H264Packetizer, H265Packetizer, OpusPacketizer, PacketizerConfig, RtpPacket,
    RtpTimestamp, SeqNo, Ssrc,
};

/// RTP payload type used for video in forwarding SDPs.
pub const VIDEO_PT: u8 = 96;
/// RTP payload type used for audio in forwarding SDPs.
pub const AUDIO_PT: u8 = 97;

/// Which track a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Video.
    Video,
    /// Audio.
    Audio,
}

/// The clock state of a track's RTP stream, for RTCP sender reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpState {
    /// SSRC of the track.
    pub ssrc: u32,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// RTP timestamp of the last packetized frame.
    pub rtp_ts: u32,
    /// Wall-clock milliseconds when that frame was packetized.
    pub wall_ms: u64,
}

/// Fills width, height, frame rate and profile from the parameter sets, keeping what the
/// container said when the parameter sets cannot be parsed.
pub fn complete_video_config(cfg: &mut VideoConfig) {
    if let Ok(parsed) = video_config_from_parameter_sets(cfg.codec, &cfg.vps, &cfg.sps, &cfg.pps) {
        cfg.width = parsed.width;
        cfg.height = parsed.height;
        cfg.frame_rate = parsed.frame_rate.or(cfg.frame_rate);
        cfg.profile = parsed.profile;
        cfg.constraints = parsed.constraints;
        cfg.level = parsed.level;
    }
}

fn random_config(payload_type: u8, mtu: usize) -> PacketizerConfig {
    let mut c = PacketizerConfig::new(
        Ssrc(rand::random()),
        payload_type,
        SeqNo(rand::random()),
        RtpTimestamp(rand::random()),
    );
    c.max_payload = mtu;
    c
}

enum VideoPk {
    H264(H264Packetizer),
    H265(H265Packetizer),
}

/// Video track packetizer.
pub struct VideoRtp {
    cfg: VideoConfig,
    pk: VideoPk,
    state: RtpState,
}

impl VideoRtp {
    /// A packetizer for the track, or `None` for a codec with no RTP format here (AV1).
    pub fn new(cfg: VideoConfig, mtu: usize) -> Option<Self> {
        let pc = random_config(VIDEO_PT, mtu);
        let pk = match cfg.codec {
            VideoCodec::H264 => VideoPk::H264(H264Packetizer::new(pc, Some(&cfg)).ok()?),
            VideoCodec::H265 => VideoPk::H265(H265Packetizer::new(pc, Some(&cfg)).ok()?),
            VideoCodec::Av1 => return None,
        };
        let state = RtpState {
            ssrc: pc.ssrc.0,
            clock_rate: 90_000,
            rtp_ts: pc.initial_timestamp.0,
            wall_ms: 0,
        };
        Some(VideoRtp { cfg, pk, state })
    }

    /// Packetizes one picture, appending to `out`.
    pub fn packetize(&mut self, frame: &VideoFrame, out: &mut Vec<RtpPacket>) {
        let first = out.len();
        match &mut self.pk {
            VideoPk::H264(p) => p.packetize(frame, out),
            VideoPk::H265(p) => p.packetize(frame, out),
        }
        if let Some(p) = out.get(first) {
            self.state.rtp_ts = p.header.timestamp.0;
            self.state.wall_ms = crate::time::unix_ms();
        }
    }

    /// The track configuration.
    pub fn config(&self) -> &VideoConfig {
        &self.cfg
    }

    /// Clock state for sender reports.
    pub fn rtp_state(&self) -> RtpState {
        self.state
    }

    /// VPS, SPS and PPS as raw NAL units, for the stats record (and so the SDP).
    pub fn parameter_sets(&self) -> Vec<Vec<u8>> {
        self.cfg
            .vps
            .iter()
            .chain(&self.cfg.sps)
            .chain(&self.cfg.pps)
            .map(|b: &Bytes| b.to_vec())
            .collect()
    }
}

enum AudioPk {
    Aac(AacPacketizer),
    Opus(OpusPacketizer),
}

/// Audio track packetizer.
pub struct AudioRtp {
    cfg: AudioConfig,
    pk: AudioPk,
    state: RtpState,
    /// Frames that could not be packetized (oversized AAC or Opus units).
    pub rejected: u64,
}

impl AudioRtp {
    /// A packetizer for the track.
    pub fn new(cfg: AudioConfig, mtu: usize) -> Option<Self> {
        let pc = random_config(AUDIO_PT, mtu);
        let (pk, rate) = match cfg.codec {
            AudioCodec::Aac => (
                AudioPk::Aac(AacPacketizer::new(pc, cfg.sample_rate).ok()?),
                cfg.sample_rate,
            ),
            AudioCodec::Opus => (AudioPk::Opus(OpusPacketizer::new(pc).ok()?), 48_000),
        };
        let state = RtpState {
            ssrc: pc.ssrc.0,
            clock_rate: rate.max(1),
            rtp_ts: pc.initial_timestamp.0,
            wall_ms: 0,
        };
        Some(AudioRtp {
            cfg,
            pk,
            state,
            rejected: 0,
        })
    }

    /// Packetizes one audio frame, appending to `out`.
    pub fn packetize(&mut self, frame: &AudioFrame, out: &mut Vec<RtpPacket>) {
        let first = out.len();
        let r = match &mut self.pk {
            AudioPk::Aac(p) => p.packetize(frame, out),
            AudioPk::Opus(p) => p.packetize(frame, out),
        };
        if r.is_err() {
            self.rejected += 1;
        }
        if let Some(p) = out.get(first) {
            self.state.rtp_ts = p.header.timestamp.0;
            self.state.wall_ms = crate::time::unix_ms();
        }
    }

    /// The track configuration.
    pub fn config(&self) -> &AudioConfig {
        &self.cfg
    }

    /// Clock state for sender reports.
    pub fn rtp_state(&self) -> RtpState {
        self.state
    }
}
