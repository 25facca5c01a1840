//! The server's view of the shared-memory table (architecture §3), behind two small traits so
//! the REST layer and its tests do not depend on the table's memory layout:
//! [`ConfigSink`] receives every durable configuration change (and the full state at start),
//! [`StatsSource`] yields the live streams and events the dataplane publishes.
//! [`MemoryTable`] implements both in memory for tests and for running without a dataplane.

use crate::store::{
    AppRow, AppSettings, ForwarderRow, KeyRow, RevocationRow, Snapshot, TemplateRow,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// A command to a live stream (kick and mute), as the dataplane polls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCommand {
    /// Owning app.
    pub app_id: String,
    /// The stream session.
    pub sid: String,
    /// Bumped by each force-disconnect; the dataplane kicks when it sees a new value.
    pub kick_seq: u64,
    /// Audio is not forwarded while set.
    pub audio_muted: bool,
    /// Video is not forwarded while set.
    pub video_muted: bool,
}

/// One configuration change, applied right after it is durable in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigChange {
    /// App inserted or replaced, with its settings.
    PutApp(AppRow, AppSettings),
    /// REST key inserted or replaced.
    PutKey(KeyRow),
    /// REST key deleted.
    RemoveKey(String),
    /// Local key revoked.
    PutRevocation(RevocationRow),
    /// Template created or replaced.
    PutTemplate(TemplateRow),
    /// Template deleted (app, id).
    RemoveTemplate(String, String),
    /// Forwarder added.
    PutForwarder(ForwarderRow),
    /// Forwarder removed (app, id).
    RemoveForwarder(String, String),
    /// Kick or mute state of a stream.
    PutCommand(StreamCommand),
    /// Command of a stream that is gone (app, sid).
    RemoveCommand(String, String),
}

/// Failure to write the table (full region, record too large, I/O).
#[derive(Debug, thiserror::Error)]
#[error("table: {0}")]
pub struct SinkError(pub String);

/// Where configuration goes after it is durable.
pub trait ConfigSink: Send + Sync {
    /// Applies one change.
    fn apply(&self, change: &ConfigChange) -> Result<(), SinkError>;
    /// Makes the table's configuration equal to `snapshot` (at start).
    fn sync(&self, snapshot: &Snapshot) -> Result<(), SinkError>;
}

/// Lifecycle state of a live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Connected, no media yet.
    Started,
    /// Media flowing.
    Running,
}

/// Source video parameters of a live stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoInfo {
    /// `H.264`, `H.265`, ...
    pub codec: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// kbps.
    pub bitrate_kbps: u32,
    /// GOP in ms.
    pub gop_ms: u32,
    /// B-frames seen.
    pub bframes: bool,
    /// H.264 `profile-level-id` (6 hex digits) when known, for SDP.
    pub profile_level_id: String,
}

/// Source audio parameters of a live stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioInfo {
    /// `AAC`, `OPUS`, ...
    pub codec: String,
    /// Channel count.
    pub channels: u32,
    /// Hz.
    pub sample_rate: u32,
    /// kbps.
    pub bitrate_kbps: u32,
}

/// A live stream as the dataplane reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Session ID.
    pub sid: String,
    /// Owning app.
    pub app_id: String,
    /// RTC channel.
    pub channel: String,
    /// RTC uid.
    pub uid: String,
    /// `{domain}/live/{streamKey}`.
    pub url: String,
    /// `rtmp` or `srt`.
    pub protocol: String,
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Unix ms of the connection.
    pub begin_at_ms: u64,
    /// Video parameters once known.
    pub video: Option<VideoInfo>,
    /// Audio parameters once known.
    pub audio: Option<AudioInfo>,
    /// Raw VPS/SPS/PPS NAL units (for SDP `sprop-*`).
    pub video_params: Vec<Vec<u8>>,
    /// AudioSpecificConfig or Opus head (for SDP `config=`).
    pub audio_config: Vec<u8>,
}

/// Event kinds, numbered as the webhook `eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// 1 `live_stream_connected`.
    Connected,
    /// 2 `live_stream_disconnected`.
    Disconnected,
    /// 3 `live_stream_aborted`.
    Aborted,
    /// 4 `live_profile_updated`.
    ProfileUpdated,
}

impl EventKind {
    /// Webhook `eventType` number.
    pub fn code(self) -> u32 {
        match self {
            EventKind::Connected => 1,
            EventKind::Disconnected => 2,
            EventKind::Aborted => 3,
            EventKind::ProfileUpdated => 4,
        }
    }
    /// Webhook event name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Connected => "live_stream_connected",
            EventKind::Disconnected => "live_stream_disconnected",
            EventKind::Aborted => "live_stream_aborted",
            EventKind::ProfileUpdated => "live_profile_updated",
        }
    }
}

/// One dataplane event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// What happened.
    pub kind: EventKind,
    /// Unix ms.
    pub at_ms: u64,
    /// Session ID.
    pub sid: String,
    /// Owning app.
    pub app_id: String,
    /// RTC channel.
    pub channel: String,
    /// RTC uid.
    pub uid: String,
    /// Abort code (0 unless aborted).
    pub error_code: u32,
    /// Abort reason text.
    pub reason: String,
}

/// Where live-stream state comes from.
pub trait StatsSource: Send + Sync {
    /// Every live stream.
    fn streams(&self) -> Vec<StreamInfo>;
    /// Events published since the previous call, oldest first, and how many were lost.
    fn poll_events(&self) -> (Vec<EventInfo>, u64);
    /// Unix ms of the dataplane's last heartbeat (0 = never).
    fn dataplane_heartbeat_ms(&self) -> u64;
}

/// The configuration as a [`MemoryTable`] holds it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Apps by ID.
    pub apps: BTreeMap<String, (AppRow, AppSettings)>,
    /// REST keys by text.
    pub keys: BTreeMap<String, KeyRow>,
    /// Revocations by (app, key).
    pub revocations: BTreeMap<(String, String), RevocationRow>,
    /// Templates by (app, id).
    pub templates: BTreeMap<(String, String), TemplateRow>,
    /// Forwarders by (app, id).
    pub forwarders: BTreeMap<(String, String), ForwarderRow>,
    /// Commands by (app, sid).
    pub commands: BTreeMap<(String, String), StreamCommand>,
    /// Number of changes applied (a generation counter).
    pub generation: u64,
}

/// In-memory [`ConfigSink`] + [`StatsSource`]: tests inject streams and events here.
#[derive(Default)]
pub struct MemoryTable {
    config: Mutex<MemoryConfig>,
    streams: Mutex<Vec<StreamInfo>>,
    events: Mutex<VecDeque<EventInfo>>,
}

impl MemoryTable {
    /// An empty table.
    pub fn new() -> MemoryTable {
        MemoryTable::default()
    }
    /// A copy of the configuration.
    pub fn config(&self) -> MemoryConfig {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }
    /// Replaces the live streams.
    pub fn set_streams(&self, s: Vec<StreamInfo>) {
        if let Ok(mut g) = self.streams.lock() {
            *g = s;
        }
    }
    /// Publishes an event.
    pub fn push_event(&self, e: EventInfo) {
        if let Ok(mut g) = self.events.lock() {
            g.push_back(e);
        }
    }
}

impl ConfigSink for MemoryTable {
    fn apply(&self, change: &ConfigChange) -> Result<(), SinkError> {
        let mut c = self
            .config
            .lock()
            .map_err(|_| SinkError("poisoned".into()))?;
        c.generation = c.generation.wrapping_add(1);
        match change.clone() {
            ConfigChange::PutApp(a, s) => {
                c.apps.insert(a.id.clone(), (a, s));
            }
            ConfigChange::PutKey(k) => {
                c.keys.insert(k.key.clone(), k);
            }
            ConfigChange::RemoveKey(k) => {
                c.keys.remove(&k);
            }
            ConfigChange::PutRevocation(r) => {
                c.revocations.insert((r.app_id.clone(), r.key.clone()), r);
            }
            ConfigChange::PutTemplate(t) => {
                c.templates.insert((t.app_id.clone(), t.id.clone()), t);
            }
            ConfigChange::RemoveTemplate(a, id) => {
                c.templates.remove(&(a, id));
            }
            ConfigChange::PutForwarder(f) => {
                c.forwarders.insert((f.app_id.clone(), f.id.clone()), f);
            }
            ConfigChange::RemoveForwarder(a, id) => {
                c.forwarders.remove(&(a, id));
            }
            ConfigChange::PutCommand(cmd) => {
                c.commands
                    .insert((cmd.app_id.clone(), cmd.sid.clone()), cmd);
            }
            ConfigChange::RemoveCommand(a, sid) => {
                c.commands.remove(&(a, sid));
            }
        }
        Ok(())
    }

    fn sync(&self, s: &Snapshot) -> Result<(), SinkError> {
        let mut c = self
            .config
            .lock()
            .map_err(|_| SinkError("poisoned".into()))?;
        c.generation = c.generation.wrapping_add(1);
        c.apps = s
            .apps
            .iter()
            .map(|(a, st)| (a.id.clone(), (a.clone(), st.clone())))
            .collect();
        c.keys = s.keys.iter().map(|k| (k.key.clone(), k.clone())).collect();
        c.revocations = s
            .revocations
            .iter()
            .map(|r| ((r.app_id.clone(), r.key.clone()), r.clone()))
            .collect();
        c.templates = s
            .templates
            .iter()
            .map(|t| ((t.app_id.clone(), t.id.clone()), t.clone()))
            .collect();
        c.forwarders = s
            .forwarders
            .iter()
            .map(|f| ((f.app_id.clone(), f.id.clone()), f.clone()))
            .collect();
        Ok(())
    }
}

impl StatsSource for MemoryTable {
    fn streams(&self) -> Vec<StreamInfo> {
        self.streams.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn poll_events(&self) -> (Vec<EventInfo>, u64) {
        let drained = self
            .events
            .lock()
            .map(|mut e| e.drain(..).collect())
            .unwrap_or_default();
        (drained, 0)
    }
    fn dataplane_heartbeat_ms(&self) -> u64 {
        0
    }
}
