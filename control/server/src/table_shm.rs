//! [`ConfigSink`] and [`StatsSource`] on the shared-memory table (`sluice_table::Table`,
//! architecture §3).

use crate::config::DuplicatePolicy;
use crate::store::{
    AppRow, AppSettings, ForwarderRow, KeyRow, RevocationRow, Snapshot, TemplateRow,
};
use crate::table::{
    AudioInfo, ConfigChange, ConfigSink, EventInfo, EventKind, SinkError, StatsSource, StreamInfo,
    StreamStatus, VideoInfo,
};
use sluice_table as t;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The table plus the control process's position in its event ring.
pub struct ShmTable {
    table: t::Table,
    cursor: Mutex<t::EventCursor>,
    /// Where the cursor is kept across control restarts, so a restarted control neither
    /// re-sends the webhooks of events it already handled nor skips those published while it
    /// was down.
    cursor_file: Option<PathBuf>,
}

/// A dataplane whose heartbeat (written every 500 ms) is older than this is taken as down:
/// its streams are no longer listed as online. The same threshold drives `sluice_dataplane_up`.
pub const DATAPLANE_STALE_MS: u64 = 5_000;

impl ShmTable {
    /// Creates or opens the table file with default capacities; the event cursor starts at
    /// the oldest event in the ring.
    pub fn open(path: &Path) -> Result<ShmTable, t::TableError> {
        ShmTable::open_with_cursor(path, None)
    }

    /// Like [`ShmTable::open`], resuming the event cursor from `cursor_file` (a decimal
    /// sequence number) and saving it there whenever it moves.
    pub fn open_with_cursor(
        path: &Path,
        cursor_file: Option<PathBuf>,
    ) -> Result<ShmTable, t::TableError> {
        ShmTable::open_sized(path, &t::Capacities::default(), cursor_file)
    }

    /// Like [`ShmTable::open_with_cursor`] with explicit capacities (`[table]` settings).
    pub fn open_sized(
        path: &Path,
        caps: &t::Capacities,
        cursor_file: Option<PathBuf>,
    ) -> Result<ShmTable, t::TableError> {
        let table = t::Table::create_or_open(path, caps)?;
        let next = cursor_file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(ShmTable {
            table,
            cursor: Mutex::new(t::EventCursor { next }),
            cursor_file,
        })
    }
}

fn app(a: &AppRow, s: &AppSettings) -> t::AppRecord {
    t::AppRecord {
        id: a.id.clone(),
        certificate_hex: a.certificate_hex.clone(),
        domains: a.domains.clone(),
        srt_passphrase: a.srt_passphrase.clone(),
        srt_pbkeylen: a.srt_pbkeylen,
        default_template: s.default_template.clone(),
        max_streams: a.max_streams,
        max_bitrate_kbps: a.max_bitrate_kbps,
        duplicate_policy: match a.duplicate_policy {
            DuplicatePolicy::RefuseNew => t::DuplicatePolicy::RefuseNew,
            DuplicatePolicy::ReplaceOld => t::DuplicatePolicy::ReplaceOld,
        },
    }
}

fn key(k: &KeyRow) -> t::KeyRecord {
    t::KeyRecord {
        key: k.key.clone(),
        app_id: k.app_id.clone(),
        channel: k.channel.clone(),
        uid: k.uid.clone(),
        expires_at: k.expires_at(),
        created_at: k.created_at,
        template_id: k.template_id.clone(),
    }
}

fn revocation(r: &RevocationRow) -> t::RevocationRecord {
    t::RevocationRecord {
        app_id: r.app_id.clone(),
        key: r.key.clone(),
        until: r.until,
    }
}

fn template(x: &TemplateRow) -> t::TemplateRecord {
    t::TemplateRecord {
        app_id: x.app_id.clone(),
        id: x.id.clone(),
        settings_json: x.settings_json.clone(),
    }
}

fn forwarder(f: &ForwarderRow) -> t::ForwarderRecord {
    t::ForwarderRecord {
        id: f.id.clone(),
        app_id: f.app_id.clone(),
        sid: f.sid.clone(),
        host: f.host,
        video_port: f.video_port,
        audio_port: f.audio_port,
    }
}

fn sink_err(e: t::TableError) -> SinkError {
    SinkError(e.to_string())
}

impl ConfigSink for ShmTable {
    fn apply(&self, change: &ConfigChange) -> Result<(), SinkError> {
        let tb = &self.table;
        match change {
            ConfigChange::PutApp(a, s) => tb.put_app(&app(a, s)),
            ConfigChange::PutKey(k) => tb.put_key(&key(k)),
            ConfigChange::RemoveKey(k) => tb.remove_key(k).map(drop),
            ConfigChange::PutRevocation(r) => tb.put_revocation(&revocation(r)),
            ConfigChange::PutTemplate(x) => tb.put_template(&template(x)),
            ConfigChange::RemoveTemplate(a, id) => tb.remove_template(a, id).map(drop),
            ConfigChange::PutForwarder(f) => tb.put_forwarder(&forwarder(f)),
            ConfigChange::RemoveForwarder(a, id) => tb.remove_forwarder(a, id).map(drop),
            ConfigChange::PutCommand(c) => tb.put_command(&t::StreamCommand {
                app_id: c.app_id.clone(),
                sid: c.sid.clone(),
                kick_seq: c.kick_seq,
                audio_muted: c.audio_muted,
                video_muted: c.video_muted,
            }),
            ConfigChange::RemoveCommand(a, sid) => tb.remove_command(a, sid).map(drop),
        }
        .map_err(sink_err)
    }

    fn sync(&self, s: &Snapshot) -> Result<(), SinkError> {
        let desired = t::ConfigSnapshot {
            apps: s.apps.iter().map(|(a, st)| app(a, st)).collect(),
            keys: s.keys.iter().map(key).collect(),
            revocations: s.revocations.iter().map(revocation).collect(),
            templates: s.templates.iter().map(template).collect(),
            forwarders: s.forwarders.iter().map(forwarder).collect(),
            // Kick and mute commands belong to streams of the previous control run.
            commands: Vec::new(),
        };
        let r = self.table.sync_config(&desired).map_err(sink_err)?;
        tracing::info!(
            "table rebuilt from the store: {} upserted, {} removed, {} unchanged",
            r.upserted,
            r.removed,
            r.unchanged
        );
        Ok(())
    }
}

fn stream(s: t::StreamStats) -> StreamInfo {
    StreamInfo {
        sid: s.sid,
        app_id: s.app_id,
        channel: s.channel,
        uid: s.uid,
        url: s.url,
        protocol: s.protocol,
        status: match s.status {
            t::StreamStatus::Started => StreamStatus::Started,
            t::StreamStatus::Running => StreamStatus::Running,
        },
        begin_at_ms: s.begin_at_ms,
        video: s.video.map(|v| VideoInfo {
            codec: v.codec,
            width: v.width,
            height: v.height,
            fps: v.fps,
            bitrate_kbps: v.bitrate_kbps,
            gop_ms: v.gop_ms,
            bframes: v.bframes,
            profile_level_id: v.profile_level_id,
        }),
        audio: s.audio.map(|a| AudioInfo {
            codec: a.codec,
            channels: a.channels,
            sample_rate: a.sample_rate,
            bitrate_kbps: a.bitrate_kbps,
        }),
        video_params: s.video_params,
        audio_config: s.audio_config,
        domain: s.domain,
        bytes_in_video: s.bytes_in_video,
        bytes_in_audio: s.bytes_in_audio,
        bytes_out_video: s.bytes_out_video,
        bytes_out_audio: s.bytes_out_audio,
        viewers: s.viewers,
        forwarders: s.forwarders,
    }
}

impl StatsSource for ShmTable {
    fn streams(&self) -> Vec<StreamInfo> {
        // Stats slots of a dataplane that died stay in the table until the next one starts
        // and resets them; a stream is only reported while the dataplane is alive.
        let hb = self.table.last_dataplane_heartbeat();
        if crate::time::now_ms().saturating_sub(hb) > DATAPLANE_STALE_MS {
            return Vec::new();
        }
        self.table.all_stats().into_iter().map(stream).collect()
    }

    fn poll_events(&self) -> (Vec<EventInfo>, u64) {
        let Ok(mut cur) = self.cursor.lock() else {
            return (Vec::new(), 0);
        };
        let before = cur.next;
        let batch = self.table.read_events(&mut cur);
        if cur.next != before
            && let Some(f) = &self.cursor_file
            && let Err(e) = crate::supervise::write_private(f, cur.next.to_string().as_bytes())
        {
            tracing::warn!("cannot save the event cursor to {}: {e}", f.display());
        }
        let events = batch
            .events
            .into_iter()
            .map(|e| EventInfo {
                kind: match e.kind {
                    t::EventKind::Connected => EventKind::Connected,
                    t::EventKind::Disconnected => EventKind::Disconnected,
                    t::EventKind::Aborted => EventKind::Aborted,
                    t::EventKind::ProfileUpdated => EventKind::ProfileUpdated,
                },
                at_ms: e.at_ms,
                sid: e.sid,
                app_id: e.app_id,
                channel: e.channel,
                uid: e.uid,
                error_code: e.error_code,
                reason: e.reason,
                stream_key: e.stream_key,
                domain: e.domain,
                protocol: e.protocol,
                begin_at_ms: e.begin_at_ms,
                stats: e.stats.map(stream),
            })
            .collect();
        (events, batch.lost)
    }

    fn dataplane_heartbeat_ms(&self) -> u64 {
        self.table.last_dataplane_heartbeat()
    }

    fn table_generation(&self) -> u64 {
        self.table.generation()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        self.table
            .counters()
            .into_iter()
            .map(|(c, v)| (c.name().to_string(), v))
            .collect()
    }
}
