//! SDP session descriptions (RFC 8866) for RTP forwarding: one `m=video` and/or one `m=audio`
//! section with the payload formats of RFC 6184 §8.1 (H.264), RFC 7798 §7.1 (H.265),
//! RFC 3640 §4.1 (MPEG4-GENERIC AAC-hbr) and RFC 7587 §6.1 (Opus).
//!
//! The description is what a receiver such as `ffmpeg -i stream.sdp` needs to decode the
//! forwarded stream: parameter sets and the AudioSpecificConfig travel out of band here.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::media::{AudioCodec, AudioConfig, VideoCodec, VideoConfig};

/// The video section of a forwarding SDP.
#[derive(Debug, Clone, Copy)]
pub struct VideoMedia<'a> {
    /// Destination UDP port for RTP (RTCP on `port + 1`).
    pub port: u16,
    /// RTP payload type.
    pub payload_type: u8,
    /// The track: codec and parameter sets.
    pub config: &'a VideoConfig,
}

/// The audio section of a forwarding SDP.
#[derive(Debug, Clone, Copy)]
pub struct AudioMedia<'a> {
    /// Destination UDP port for RTP (RTCP on `port + 1`).
    pub port: u16,
    /// RTP payload type.
    pub payload_type: u8,
    /// The track: codec, rate, channels and AudioSpecificConfig.
    pub config: &'a AudioConfig,
}

/// Everything a forwarding SDP states.
#[derive(Debug, Clone, Copy)]
pub struct ForwardingSdp<'a> {
    /// `o=` session id (a value the caller keeps per forwarder; RFC 8866 §5.2).
    pub session_id: u64,
    /// `o=` session version, bumped when the description changes.
    pub session_version: u64,
    /// `s=` session name.
    pub session_name: &'a str,
    /// `o=` origin address (this gateway).
    pub origin: IpAddr,
    /// `c=` address the RTP is sent to.
    pub connection: IpAddr,
    /// The video section, if any.
    pub video: Option<VideoMedia<'a>>,
    /// The audio section, if any.
    pub audio: Option<AudioMedia<'a>>,
}

/// Why an SDP could not be built: the track configuration lacks what the format needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The codec has no RTP payload format here.
    #[error("no RTP payload format for {0}")]
    UnsupportedCodec(&'static str),
    /// H.264 needs an SPS of at least 4 bytes for `profile-level-id`.
    #[error("missing or short SPS")]
    MissingSps,
    /// A payload type above 127.
    #[error("payload type {0} out of range")]
    BadPayloadType(u8),
    /// A session name with a line break would break the description's framing.
    #[error("session name contains a line break")]
    BadSessionName,
}

fn addr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    }
}

fn b64_list(sets: &[bytes::Bytes]) -> String {
    sets.iter()
        .map(|s| B64.encode(s))
        .collect::<Vec<_>>()
        .join(",")
}

impl ForwardingSdp<'_> {
    /// Renders the description with CRLF line endings.
    pub fn render(&self) -> Result<String, SdpError> {
        if self.session_name.contains(['\r', '\n']) {
            return Err(SdpError::BadSessionName);
        }
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "v=0\r\no=- {} {} {}\r\ns={}\r\nc={}\r\nt=0 0\r\n",
            self.session_id,
            self.session_version,
            addr(self.origin),
            if self.session_name.is_empty() {
                "-"
            } else {
                self.session_name
            },
            addr(self.connection),
        );
        if let Some(v) = &self.video {
            render_video(&mut s, v)?;
        }
        if let Some(a) = &self.audio {
            render_audio(&mut s, a)?;
        }
        Ok(s)
    }
}

fn render_video(s: &mut String, v: &VideoMedia<'_>) -> Result<(), SdpError> {
    let pt = v.payload_type;
    if pt > 127 {
        return Err(SdpError::BadPayloadType(pt));
    }
    let c = v.config;
    let _ = write!(s, "m=video {} RTP/AVP {pt}\r\n", v.port);
    match c.codec {
        VideoCodec::H264 => {
            let sps = c
                .sps
                .first()
                .filter(|s| s.len() >= 4)
                .ok_or(SdpError::MissingSps)?;
            let _ = write!(
                s,
                "a=rtpmap:{pt} H264/90000\r\na=fmtp:{pt} packetization-mode=1;profile-level-id={:02x}{:02x}{:02x}",
                sps[1], sps[2], sps[3]
            );
            if !c.pps.is_empty() {
                let _ = write!(
                    s,
                    ";sprop-parameter-sets={},{}",
                    b64_list(&c.sps),
                    b64_list(&c.pps)
                );
            }
            s.push_str("\r\n");
        }
        VideoCodec::H265 => {
            let _ = write!(s, "a=rtpmap:{pt} H265/90000\r\n");
            let mut params = Vec::new();
            for (name, sets) in [("vps", &c.vps), ("sps", &c.sps), ("pps", &c.pps)] {
                if !sets.is_empty() {
                    params.push(format!("sprop-{name}={}", b64_list(sets)));
                }
            }
            if !params.is_empty() {
                let _ = write!(s, "a=fmtp:{pt} {}\r\n", params.join(";"));
            }
        }
        VideoCodec::Av1 => return Err(SdpError::UnsupportedCodec("AV1")),
    }
    s.push_str("a=sendonly\r\n");
    Ok(())
}

fn render_audio(s: &mut String, a: &AudioMedia<'_>) -> Result<(), SdpError> {
    let pt = a.payload_type;
    if pt > 127 {
        return Err(SdpError::BadPayloadType(pt));
    }
    let c = a.config;
    let _ = write!(s, "m=audio {} RTP/AVP {pt}\r\n", a.port);
    match c.codec {
        AudioCodec::Aac => {
            let config: String = c
                .specific_config
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let _ = write!(
                s,
                "a=rtpmap:{pt} MPEG4-GENERIC/{}/{}\r\na=fmtp:{pt} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={config}\r\n",
                c.sample_rate,
                c.channels.max(1)
            );
        }
        AudioCodec::Opus => {
            // RFC 7587 §7: always opus/48000/2; stereo is a receiver preference.
            let _ = write!(s, "a=rtpmap:{pt} opus/48000/2\r\n");
            if c.channels >= 2 {
                let _ = write!(s, "a=fmtp:{pt} sprop-stereo=1\r\n");
            }
        }
    }
    s.push_str("a=sendonly\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn h264() -> VideoConfig {
        VideoConfig {
            codec: VideoCodec::H264,
            vps: vec![],
            sps: vec![Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0x95])],
            pps: vec![Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])],
            width: 320,
            height: 240,
            profile: 66,
            constraints: 0xc0,
            level: 30,
            frame_rate: None,
        }
    }

    #[test]
    fn h264_and_aac() {
        let v = h264();
        let a = AudioConfig {
            codec: AudioCodec::Aac,
            sample_rate: 44_100,
            channels: 2,
            specific_config: Bytes::from_static(&[0x12, 0x10]),
        };
        let sdp = ForwardingSdp {
            session_id: 42,
            session_version: 1,
            session_name: "Sluice",
            origin: "127.0.0.1".parse().unwrap(),
            connection: "127.0.0.1".parse().unwrap(),
            video: Some(VideoMedia {
                port: 5004,
                payload_type: 96,
                config: &v,
            }),
            audio: Some(AudioMedia {
                port: 5006,
                payload_type: 97,
                config: &a,
            }),
        }
        .render()
        .unwrap();
        let expected = "v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=Sluice\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=Z0LAHpU=,aM48gA==\r\n\
a=sendonly\r\n\
m=audio 5006 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n\
a=sendonly\r\n";
        assert_eq!(sdp, expected);
    }

    #[test]
    fn h265_opus_ipv6_and_errors() {
        let v = VideoConfig {
            codec: VideoCodec::H265,
            vps: vec![Bytes::from_static(&[0x40, 0x01])],
            sps: vec![Bytes::from_static(&[0x42, 0x01])],
            pps: vec![Bytes::from_static(&[0x44, 0x01])],
            ..h264()
        };
        let a = AudioConfig {
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            channels: 2,
            specific_config: Bytes::new(),
        };
        let mut d = ForwardingSdp {
            session_id: 1,
            session_version: 2,
            session_name: "",
            origin: "::1".parse().unwrap(),
            connection: "::1".parse().unwrap(),
            video: Some(VideoMedia {
                port: 6000,
                payload_type: 98,
                config: &v,
            }),
            audio: Some(AudioMedia {
                port: 6002,
                payload_type: 111,
                config: &a,
            }),
        };
        let sdp = d.render().unwrap();
        assert!(sdp.contains("c=IN IP6 ::1\r\n"));
        assert!(sdp.contains("a=fmtp:98 sprop-vps=QAE=;sprop-sps=QgE=;sprop-pps=RAE=\r\n"));
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 sprop-stereo=1\r\n"));
        let short = VideoConfig {
            sps: vec![Bytes::from_static(&[0x67])],
            ..h264()
        };
        d.video = Some(VideoMedia {
            port: 1,
            payload_type: 96,
            config: &short,
        });
        assert_eq!(d.render(), Err(SdpError::MissingSps));
        d.session_name = "a\r\nb";
        assert_eq!(d.render(), Err(SdpError::BadSessionName));
    }
}
