//! The records stored in the table's regions.
//!
//! Every record is serialised with `rmp-serde` as a msgpack *map* (field names included), so a
//! newer writer may add fields (with `#[serde(default)]`) and an older reader ignores them:
//! records grow without an ABI break. The ABI version covers only the header and slot layout.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What the dataplane does when a second stream arrives for a channel + uid that is already
/// live (the documented service refuses it with abort code 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DuplicatePolicy {
    /// Refuse the new stream (abort code 5, "conflict"); the running one keeps going.
    #[default]
    RefuseNew,
    /// Disconnect the running stream and accept the new one.
    ReplaceOld,
}

/// One application (an Agora "project"): its certificate, ingest domains and limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppRecord {
    /// The App ID (the `{appId}` in REST paths). Identity of the record.
    pub id: String,
    /// The 32-hex App certificate that local stream keys are encrypted with.
    pub certificate_hex: String,
    /// Ingest host names bound to this app (RTMP tcUrl host, SRT `h=`).
    pub domains: Vec<String>,
    /// SRT passphrase, when the app requires encrypted SRT.
    #[serde(default)]
    pub srt_passphrase: Option<String>,
    /// SRT key length (bytes) callers must encrypt with: 0 accepts the caller's choice,
    /// 16, 24 or 32 is enforced (a caller using another length is refused).
    #[serde(default)]
    pub srt_pbkeylen: u8,
    /// The app-wide default template (appconfig), if any.
    #[serde(default)]
    pub default_template: Option<String>,
    /// Concurrent stream limit; 0 = unlimited.
    #[serde(default)]
    pub max_streams: u32,
    /// Per-stream bitrate limit in kbit/s (abort code 6 above it); 0 = unlimited.
    #[serde(default)]
    pub max_bitrate_kbps: u32,
    /// Behaviour on a second stream for the same channel + uid.
    #[serde(default)]
    pub duplicate_policy: DuplicatePolicy,
}

/// A stream key created through the REST API. Identity: `key`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The stream key string as the encoder sends it.
    pub key: String,
    /// The app the key belongs to.
    pub app_id: String,
    /// The RTC channel the stream is published into.
    pub channel: String,
    /// The RTC uid the stream is published as (string form, as in the REST API).
    pub uid: String,
    /// Expiry, Unix seconds; 0 = never.
    pub expires_at: u64,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// The template bound to the key, if any.
    #[serde(default)]
    pub template_id: Option<String>,
}

/// A revoked locally generated key (local keys cannot be deleted, only refused until they
/// expire). Identity: `(app_id, key)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// The app the key was generated for.
    pub app_id: String,
    /// The revoked key string.
    pub key: String,
    /// Unix seconds after which the revocation may be dropped (the key's own expiry).
    pub until: u64,
}

/// A stream template (transcoding settings). Identity: `(app_id, id)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// The app the template belongs to.
    pub app_id: String,
    /// The template id.
    pub id: String,
    /// The template's settings, as the JSON the REST API accepted.
    pub settings_json: String,
}

/// An RTP forwarder: copy a live stream's RTP to a fixed address. Identity: `(app_id, id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwarderRecord {
    /// The forwarder id.
    pub id: String,
    /// The app the forwarder belongs to.
    pub app_id: String,
    /// The stream (session id) to forward.
    pub sid: String,
    /// Destination address.
    pub host: IpAddr,
    /// Destination UDP port for video RTP.
    pub video_port: u16,
    /// Destination UDP port for audio RTP; 0 = no audio.
    pub audio_port: u16,
}

/// An operator command for a live stream (force disconnect, mute). Identity: `(app_id, sid)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamCommand {
    /// The app the stream belongs to.
    pub app_id: String,
    /// The stream's session id.
    pub sid: String,
    /// Incremented by each force-disconnect request; the dataplane kicks the stream when the
    /// value differs from the one it last acted on.
    pub kick_seq: u64,
    /// Drop the stream's audio.
    pub audio_muted: bool,
    /// Drop the stream's video.
    pub video_muted: bool,
}

/// Lifecycle state of a live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StreamStatus {
    /// Connected and authenticated; media not flowing yet.
    #[default]
    Started,
    /// Media is flowing.
    Running,
}

/// Video track statistics of a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VideoStats {
    /// Codec name as reported by the REST API (`"H264"`, `"H265"`).
    pub codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Measured bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Measured GOP length, milliseconds.
    pub gop_ms: u32,
    /// Whether the stream carries B-frames.
    pub bframes: bool,
    /// H.264 `profile-level-id` (6 hex digits) for SDP; empty for other codecs.
    pub profile_level_id: String,
}

/// Audio track statistics of a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AudioStats {
    /// Codec name (`"AAC"`, `"OPUS"`).
    pub codec: String,
    /// Channel count.
    pub channels: u32,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Measured bitrate, kbit/s.
    pub bitrate_kbps: u32,
}

/// One live stream as the dataplane reports it. Identity: `sid` (one stats slot per stream).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamStats {
    /// Session id (new for every push).
    pub sid: String,
    /// The app the stream belongs to.
    pub app_id: String,
    /// RTC channel.
    pub channel: String,
    /// RTC uid.
    pub uid: String,
    /// The ingest URL the encoder used.
    pub url: String,
    /// The ingest domain.
    pub domain: String,
    /// `"rtmp"` or `"srt"`.
    pub protocol: String,
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Connection time, Unix milliseconds.
    pub begin_at_ms: u64,
    /// The dataplane core that owns the stream.
    pub core: u32,
    /// Video track, once known.
    pub video: Option<VideoStats>,
    /// Audio track, once known.
    pub audio: Option<AudioStats>,
    /// Video bytes received.
    pub bytes_in_video: u64,
    /// Audio bytes received.
    pub bytes_in_audio: u64,
    /// Video bytes sent (all egress).
    pub bytes_out_video: u64,
    /// Audio bytes sent (all egress).
    pub bytes_out_audio: u64,
    /// Active RTP forwarders.
    pub forwarders: u32,
    /// Active WebRTC viewers.
    pub viewers: u32,
    /// When the dataplane last wrote this record, Unix milliseconds.
    pub updated_ms: u64,
    /// Raw video parameter-set NAL units (VPS/SPS/PPS, no start codes) for SDP.
    #[serde(default)]
    pub video_params: Vec<Vec<u8>>,
    /// Raw audio decoder configuration (AAC AudioSpecificConfig, Opus head).
    #[serde(default)]
    pub audio_config: Vec<u8>,
}

/// What happened to a stream (the webhook event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// `live_stream_connected` (1).
    Connected,
    /// `live_stream_disconnected` (2).
    Disconnected,
    /// `live_stream_aborted` (3), with `error_code` and `reason`.
    Aborted,
    /// `live_profile_updated` (4).
    ProfileUpdated,
}

/// One stream event, written by the dataplane into the event ring for control to turn into a
/// webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Session id.
    pub sid: String,
    /// App id.
    pub app_id: String,
    /// RTC channel.
    pub channel: String,
    /// RTC uid.
    pub uid: String,
    /// The stream key the encoder presented.
    pub stream_key: String,
    /// The ingest domain.
    pub domain: String,
    /// `"rtmp"` or `"srt"`.
    pub protocol: String,
    /// Connection time, Unix milliseconds.
    pub begin_at_ms: u64,
    /// Abort code (1..=10) for [`EventKind::Aborted`]; 0 otherwise.
    pub error_code: u32,
    /// Human-readable reason for [`EventKind::Aborted`].
    pub reason: String,
    /// Final or current stats (disconnected, profile updated).
    pub stats: Option<StreamStats>,
}

/// Every config region's content: what control rebuilds from its store and hands to
/// [`crate::Table::sync_config`], and what [`crate::Table::snapshot_config`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSnapshot {
    /// Apps.
    pub apps: Vec<AppRecord>,
    /// REST stream keys.
    pub keys: Vec<KeyRecord>,
    /// Revoked local keys.
    pub revocations: Vec<RevocationRecord>,
    /// Templates.
    pub templates: Vec<TemplateRecord>,
    /// RTP forwarders.
    pub forwarders: Vec<ForwarderRecord>,
    /// Stream commands.
    pub commands: Vec<StreamCommand>,
}
