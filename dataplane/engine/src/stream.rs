//! A live stream on its owner core: track configuration, the RTP packetizers (run once per
//! stream, whatever the number of receivers), the cached GOP for late joiners, and the egress
//! seam that fans each packetized frame out to its receivers (RTP forwarders and WebRTC
//! viewers), stats and lifecycle events.

use crate::latency::Egress;
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_proto::media::{AudioCodec, MediaEvent, VideoCodec};
use sluice_proto::rtp::RtpPacket;
use sluice_table::{
    AudioStats, Event, EventKind, ForwarderRecord, StatsSlot, StreamCommand, StreamStats,
    StreamStatus, Table, VideoStats,
};

use crate::admission::{AbortCode, Refusal};
use crate::core::CoreCtx;
use crate::egress::Forwarder;
use crate::packetize::{AudioRtp, Track, VideoRtp};
use crate::registry::StreamGuard;
use crate::webrtc::directory::{ChannelKey, Directory, LiveEntry};
use crate::webrtc::viewer::SendCodec;
use crate::webrtc::{CoreWebrtc, audio_send_codec, video_send_codec};

/// Who is publishing, from where.
#[derive(Debug, Clone)]
pub struct StreamIdentity {
    /// Session id (new for every publish).
    pub sid: String,
    /// App.
    pub app_id: String,
    /// Channel.
    pub channel: String,
    /// Uid.
    pub uid: String,
    /// The stream key as presented.
    pub key: String,
    /// `{domain}/{app}/{key}` as the online-streams API reports it.
    pub url: String,
    /// Ingest host name the publisher used.
    pub domain: String,
    /// `rtmp` or `srt`.
    pub protocol: &'static str,
    /// Publisher address.
    pub peer: Option<SocketAddr>,
}

/// Cached packets of the current GOP, so a new receiver starts at once on a keyframe.
#[derive(Default)]
struct GopCache {
    packets: Vec<GopEntry>,
    bytes: usize,
    /// Set when the GOP outgrew the cap: stop caching until the next keyframe.
    overflowed: bool,
    /// The first cached video packet begins a keyframe (false before the first keyframe).
    starts_on_keyframe: bool,
}

/// One cached packet.
struct GopEntry {
    track: Track,
    /// The descriptor (header plus a slice of the receive buffer): what forwarders replay.
    packet: RtpPacket,
    /// The payload as WebRTC takes it (`Arc<[u8]>`), made once per stream the first time a
    /// viewer needs it (live fan-out or a join), then shared by every viewer that joins
    /// during this GOP instead of copied per viewer.
    webrtc_payload: OnceCell<Arc<[u8]>>,
}

impl GopEntry {
    fn new(track: Track, packet: RtpPacket) -> Self {
        GopEntry {
            track,
            packet,
            webrtc_payload: OnceCell::new(),
        }
    }

    /// The shared WebRTC payload, made on first use.
    fn webrtc_payload(&self) -> Arc<[u8]> {
        self.webrtc_payload
            .get_or_init(|| crate::webrtc::payload_arc(&self.packet))
            .clone()
    }
}

/// A cached packet handed to a WebRTC viewer: the descriptor and its shared payload.
pub struct GopPacket {
    /// Audio or video.
    pub track: Track,
    /// The RTP packet descriptor.
    pub packet: RtpPacket,
    /// Its payload as str0m takes it, shared with the stream's cache.
    pub payload: Arc<[u8]>,
}

/// Keeps the stream listed in the WebRTC directory while it lives, and tells this core's
/// viewers when it ends (on drop, so every way a stream can end is covered).
struct Listing {
    directory: Directory,
    key: ChannelKey,
    sid: String,
    webrtc: Rc<CoreWebrtc>,
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.directory.remove(&self.key, &self.sid);
        self.webrtc.stream_ended(&self.sid);
    }
}

/// Audio packets kept for audio-only streams (no keyframes to anchor a GOP).
const AUDIO_ONLY_CACHE_PACKETS: usize = 50;

/// A publishing stream.
pub struct Stream {
    /// Identity.
    pub id: StreamIdentity,
    /// Session id (copy of `id.sid` for convenient lookups).
    pub sid: String,
    /// App id.
    pub app_id: String,
    template_id: Option<String>,
    begin_at_ms: u64,
    core: u32,
    guard: StreamGuard,
    stats_slot: Option<StatsSlot>,
    video: Option<VideoRtp>,
    audio: Option<AudioRtp>,
    gop: GopCache,
    gop_cap: usize,
    forwarders: Vec<Forwarder>,
    packet_buf: Vec<RtpPacket>,
    // Counters.
    bytes_in_video: u64,
    bytes_in_audio: u64,
    bytes_out_video: u64,
    bytes_out_audio: u64,
    frames_video: u64,
    // Rates over the last second.
    window_bytes: u64,
    window_frames: u64,
    window_start_ms: u64,
    bitrate_kbps: u32,
    fps: u32,
    last_keyframe_pts: Option<i64>,
    gop_ms: u32,
    bframes: bool,
    over_bitrate_since: Option<u64>,
    max_bitrate_kbps: u32,
    last_media_ms: u64,
    /// Kernel receive time (ns since the Unix epoch) of the ingest read being handled, set by
    /// the ingest loop before the read's events; `None` where unknown (SRT, handoffs).
    pub ingest_arrival_ns: Option<u64>,
    media_timeout_ms: u64,
    profile_announced: bool,
    audio_muted: bool,
    video_muted: bool,
    kick_seq: Option<u64>,
    close: Option<Refusal>,
    closing_normal: bool,
    listing: Listing,
    viewers: u32,
    /// AAC is transcoded to Opus for WebRTC (template `audio.enabled`, on by default).
    transcode_audio: bool,
    /// The current audio track is AAC that the transcoder accepts (and `transcode_audio`):
    /// WebRTC is offered Opus. The transcoder itself runs only while there are viewers.
    opus_offered: bool,
    aac_to_opus: Option<sluice_transcode::AacToOpus>,
    /// Packetizer of the transcoded Opus track (WebRTC only; forwarders keep AAC).
    opus_rtp: Option<AudioRtp>,
    /// The RTMP connection's socket, which housekeeping shuts down when the stream must
    /// close: a publishing connection reads without a timeout (a timer per read cost more
    /// than the read), so nothing else would wake it. Valid while the stream is in its
    /// core's stream map: the connection removes the stream before closing the socket.
    ingest_fd: Option<std::os::fd::RawFd>,
    close_signalled: bool,
}

impl Stream {
    /// Starts a stream that passed admission: claims a stats slot and announces it.
    pub fn start(
        id: StreamIdentity,
        template_id: Option<String>,
        guard: StreamGuard,
        max_bitrate_kbps: u32,
        ctx: &Rc<CoreCtx>,
    ) -> Self {
        let now = crate::time::unix_ms();
        let table = &ctx.shared.table;
        let stats_slot = table.claim_stats_slot();
        let key = ChannelKey {
            app_id: id.app_id.clone(),
            channel: id.channel.clone(),
        };
        ctx.shared.webrtc.directory.add(
            key.clone(),
            LiveEntry {
                uid: id.uid.clone(),
                sid: id.sid.clone(),
                core: ctx.id,
                protocol: id.protocol.into(),
                ..Default::default()
            },
        );
        // The key's own template wins; else the app's default template applies.
        let template_id =
            template_id.or_else(|| table.app(&id.app_id).and_then(|a| a.default_template));
        let transcode_audio = crate::webrtc::template_transcodes_audio(
            template_id
                .as_deref()
                .and_then(|t| table.template(&id.app_id, t))
                .map(|t| t.settings_json)
                .as_deref(),
        );
        let listing = Listing {
            directory: ctx.shared.webrtc.directory.clone(),
            key,
            sid: id.sid.clone(),
            webrtc: ctx.webrtc.clone(),
        };
        let mut s = Stream {
            sid: id.sid.clone(),
            app_id: id.app_id.clone(),
            id,
            template_id,
            begin_at_ms: now,
            core: ctx.mesh_id as u32,
            guard,
            stats_slot,
            video: None,
            audio: None,
            gop: GopCache::default(),
            gop_cap: ctx.shared.cfg.gop_cache_max_bytes,
            forwarders: Vec::new(),
            packet_buf: Vec::with_capacity(64),
            bytes_in_video: 0,
            bytes_in_audio: 0,
            bytes_out_video: 0,
            bytes_out_audio: 0,
            frames_video: 0,
            window_bytes: 0,
            window_frames: 0,
            window_start_ms: now,
            bitrate_kbps: 0,
            fps: 0,
            last_keyframe_pts: None,
            gop_ms: 0,
            bframes: false,
            over_bitrate_since: None,
            max_bitrate_kbps,
            last_media_ms: now,
            ingest_arrival_ns: None,
            media_timeout_ms: ctx.shared.cfg.media_timeout_ms,
            profile_announced: false,
            audio_muted: false,
            video_muted: false,
            kick_seq: None,
            close: None,
            closing_normal: false,
            listing,
            viewers: 0,
            transcode_audio,
            opus_offered: false,
            aac_to_opus: None,
            opus_rtp: None,
            ingest_fd: None,
            close_signalled: false,
        };
        tracing::info!(sid = %s.sid, app = %s.app_id, channel = %s.id.channel, uid = %s.id.uid,
            key = %mask_key(&s.id.key), protocol = s.id.protocol, core = ctx.mesh_id, "stream started");
        s.push_event(table, EventKind::Connected, None, false);
        s.publish_stats(now, table);
        // Forwarders may have been configured before this core saw the stream.
        s.apply_forwarders(&table.forwarders());
        if let Some(cmd) = table.commands().iter().find(|c| c.sid == s.sid) {
            s.apply_command(cmd);
        }
        s
    }

    /// Handles one demuxed media event from the ingest session.
    pub fn on_media(&mut self, ev: MediaEvent, ctx: &CoreCtx) {
        let now = crate::time::unix_ms();
        self.last_media_ms = now;
        match ev {
            MediaEvent::VideoConfig(mut cfg) => {
                // Kept for the stream's life: copied out of the receive buffer (see
                // `VideoConfig::detach`).
                cfg.detach();
                crate::packetize::complete_video_config(&mut cfg);
                self.video = VideoRtp::new(cfg, ctx.shared.cfg.rtp_payload_mtu);
                self.profile_announced = false;
                self.announce_webrtc_codecs();
            }
            MediaEvent::AudioConfig(mut cfg) => {
                cfg.detach();
                self.aac_to_opus = None;
                self.opus_rtp = None;
                self.opus_offered = cfg.codec == AudioCodec::Aac
                    && self.transcode_audio
                    && match sluice_transcode::check_input(&aac_input(&cfg)) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(sid = %self.sid, error = %e,
                                "AAC audio not transcoded for WebRTC");
                            false
                        }
                    };
                self.audio = AudioRtp::new(cfg, ctx.shared.cfg.rtp_payload_mtu);
                self.profile_announced = false;
                self.announce_webrtc_codecs();
            }
            MediaEvent::Video(frame) => {
                let len = frame.len() as u64;
                self.bytes_in_video += len;
                self.window_bytes += len;
                self.window_frames += 1;
                self.frames_video += 1;
                if frame.pts != frame.dts {
                    // Presentation order differs from decode order: the encoder uses B-frames.
                    self.bframes = true;
                }
                if frame.keyframe {
                    if let Some(prev) = self.last_keyframe_pts {
                        let d = (frame.pts - prev).max(0) / 90;
                        self.gop_ms = u32::try_from(d).unwrap_or(u32::MAX);
                    }
                    self.last_keyframe_pts = Some(frame.pts);
                }
                if !self.profile_announced && self.video.is_some() {
                    self.profile_announced = true;
                    self.push_event(&ctx.shared.table, EventKind::ProfileUpdated, None, true);
                }
                let Some(v) = self.video.as_mut() else { return };
                self.packet_buf.clear();
                v.packetize(&frame, &mut self.packet_buf);
                if frame.keyframe {
                    self.gop.packets.clear();
                    self.gop.bytes = 0;
                    self.gop.overflowed = false;
                    self.gop.starts_on_keyframe = true;
                }
                let packets = std::mem::take(&mut self.packet_buf);
                self.cache_and_send(Track::Video, &packets, frame.keyframe, ctx);
                self.packet_buf = packets;
            }
            MediaEvent::Audio(frame) => {
                let len = frame.data.len() as u64;
                self.bytes_in_audio += len;
                self.window_bytes += len;
                // Transcode only while someone watches over WebRTC (here or, for a
                // channel-level session, on another core): the Opus is for WebRTC alone, and
                // decoding and encoding every stream's audio with nobody listening was most
                // of the dataplane's CPU in the load runs. A viewer that joins starts getting
                // Opus from the next AAC frame.
                // The transcoder (decoder and encoder state, ~60 kB) is opened when the first
                // viewer wants audio and closed when the last one leaves (`on_tick`).
                if self.opus_offered && ctx.webrtc.has_viewers(&self.sid) {
                    if self.aac_to_opus.is_none()
                        && let Some(cfg) = self.audio.as_ref().map(|a| a.config().clone())
                    {
                        self.start_transcoder(&cfg, ctx);
                    }
                    if let Some(t) = &self.aac_to_opus {
                        // Never blocks: a full transcoder queue drops the frame and counts it.
                        t.push(frame.pts, frame.data.clone());
                    }
                }
                self.drain_transcoded(ctx);
                let Some(a) = self.audio.as_mut() else { return };
                self.packet_buf.clear();
                a.packetize(&frame, &mut self.packet_buf);
                if self.video.is_none() && self.gop.packets.len() >= AUDIO_ONLY_CACHE_PACKETS {
                    let e = self.gop.packets.remove(0);
                    self.gop.bytes -= e.packet.len();
                }
                let packets = std::mem::take(&mut self.packet_buf);
                self.cache_and_send(Track::Audio, &packets, false, ctx);
                self.packet_buf = packets;
            }
        }
    }

    /// The egress seam: caches a frame's packets for late joiners and hands them to every
    /// receiver (forwarders here, WebRTC viewers through this core's WebRTC egress).
    fn cache_and_send(
        &mut self,
        track: Track,
        packets: &[RtpPacket],
        keyframe: bool,
        ctx: &CoreCtx,
    ) {
        // Where this frame's packets start in the GOP cache, if they were cached.
        let mut cached_at = None;
        if !self.gop.overflowed {
            let add: usize = packets.iter().map(RtpPacket::len).sum();
            if self.gop.bytes + add > self.gop_cap {
                self.gop.overflowed = true;
                self.gop.packets.clear();
                self.gop.bytes = 0;
            } else {
                self.gop.bytes += add;
                cached_at = Some(self.gop.packets.len());
                // Cloning a packet descriptor bumps the payload's reference count; no bytes are copied.
                self.gop
                    .packets
                    .extend(packets.iter().map(|p| GopEntry::new(track, p.clone())));
            }
        }
        let muted = match track {
            Track::Video => self.video_muted,
            Track::Audio => self.audio_muted,
        };
        if muted {
            return;
        }
        let clock = match track {
            Track::Video => self.video.as_ref().map(|v| v.rtp_state()),
            Track::Audio => self.audio.as_ref().map(|a| a.rtp_state()),
        };
        let Some(state) = clock else { return };
        let forwarded = !self.forwarders.is_empty();
        for f in &mut self.forwarders {
            let sent = f.send(track, packets, &state, &ctx.egress_socket);
            if sent.dropped > 0 {
                ctx.shared
                    .count(sluice_table::Counter::EgressDrops, sent.dropped);
            }
            match track {
                Track::Video => self.bytes_out_video += sent.bytes,
                Track::Audio => self.bytes_out_audio += sent.bytes,
            }
        }
        // Audio goes to WebRTC as it is only when it is Opus already; transcoded AAC takes
        // its own path (`drain_transcoded`).
        let webrtc_ok = match track {
            Track::Video => self.webrtc_video().is_some(),
            Track::Audio => self
                .audio
                .as_ref()
                .is_some_and(|a| audio_send_codec(a.config().codec).is_some()),
        };
        if let Some(at) = self.ingest_arrival_ns.filter(|_| forwarded) {
            let lat = &ctx.shared.latency;
            lat.record(Egress::Rtp, ctx.id, at, crate::time::unix_ns());
        }
        if webrtc_ok && ctx.webrtc.has_viewers(&self.sid) {
            // The WebRTC payloads live in the GOP cache, so viewers that join during this
            // GOP share them instead of copying the cached packets each. Made only for
            // viewers on this core (a core with subscribers elsewhere makes its own).
            let payloads: Option<Vec<Arc<[u8]>>> = cached_at
                .filter(|_| ctx.webrtc.viewer_count(&self.sid) > 0)
                .map(|start| {
                    self.gop.packets[start..]
                        .iter()
                        .map(GopEntry::webrtc_payload)
                        .collect()
                });
            ctx.webrtc.fanout(
                &self.sid,
                track,
                packets,
                payloads.as_deref(),
                keyframe,
                &ctx.shared.webrtc,
            );
            if let Some(at) = self.ingest_arrival_ns {
                let lat = &ctx.shared.latency;
                lat.record(Egress::Webrtc, ctx.id, at, crate::time::unix_ns());
            }
        }
    }

    fn start_transcoder(&mut self, cfg: &sluice_proto::media::AudioConfig, ctx: &CoreCtx) {
        match crate::webrtc::transcode_pool().open(aac_input(cfg)) {
            Ok(t) => {
                self.aac_to_opus = Some(t);
                self.opus_rtp = AudioRtp::new(
                    sluice_proto::media::AudioConfig {
                        codec: AudioCodec::Opus,
                        sample_rate: sluice_transcode::OPUS_RATE,
                        channels: 2,
                        specific_config: bytes::Bytes::new(),
                    },
                    ctx.shared.cfg.rtp_payload_mtu,
                );
            }
            Err(e) => {
                // Checked when the track was configured; only a stopped pool gets here.
                self.opus_offered = false;
                tracing::warn!(sid = %self.sid, error = %e, "AAC audio not transcoded for WebRTC");
            }
        }
    }

    /// Packetizes the Opus frames the transcoder finished and hands them to WebRTC viewers.
    fn drain_transcoded(&mut self, ctx: &CoreCtx) {
        let (Some(t), Some(rtp)) = (&self.aac_to_opus, self.opus_rtp.as_mut()) else {
            return;
        };
        let mut packets = Vec::new();
        while let Some(f) = t.poll() {
            let frame = sluice_proto::media::AudioFrame {
                pts: f.pts,
                data: f.data,
            };
            rtp.packetize(&frame, &mut packets);
        }
        if packets.is_empty() || self.audio_muted || !ctx.webrtc.has_viewers(&self.sid) {
            return;
        }
        ctx.webrtc.fanout(
            &self.sid,
            Track::Audio,
            &packets,
            None,
            false,
            &ctx.shared.webrtc,
        );
    }

    /// The cached GOP (reference-counted packet descriptors) and whether it begins on a
    /// keyframe, for a WebRTC viewer that just connected or asked for a keyframe.
    /// Cached audio is included only when it goes to WebRTC as it is (Opus): cached AAC
    /// packets are not what a viewer's Opus track carries.
    /// Each packet comes with its WebRTC payload, made once per stream and GOP and shared by
    /// every viewer that joins during it.
    pub fn gop_snapshot(&self) -> (Vec<GopPacket>, bool) {
        let audio_as_is = self
            .audio
            .as_ref()
            .is_some_and(|a| audio_send_codec(a.config().codec).is_some());
        let packets = self
            .gop
            .packets
            .iter()
            .filter(|e| e.track == Track::Video || audio_as_is)
            .map(|e| GopPacket {
                track: e.track,
                packet: e.packet.clone(),
                payload: e.webrtc_payload(),
            })
            .collect();
        (packets, self.gop.starts_on_keyframe)
    }

    /// Tells the directory at once what the stream can send to WebRTC, so a channel-level
    /// session on another core can include it without waiting for the next stats second.
    fn announce_webrtc_codecs(&self) {
        let (v, a) = (self.webrtc_video(), self.webrtc_audio());
        self.listing
            .directory
            .update(&self.listing.key, &self.sid, |e| {
                e.send_video = v;
                e.send_audio = a;
            });
    }

    /// Duration of the last complete GOP in milliseconds (0 before the second keyframe).
    pub fn gop_ms(&self) -> u32 {
        self.gop_ms
    }

    /// What this stream's video can be sent to WebRTC as.
    pub fn webrtc_video(&self) -> Option<SendCodec> {
        let cfg = self.video.as_ref()?.config();
        video_send_codec(cfg.codec, cfg.profile)
    }

    /// What this stream's audio can be sent to WebRTC as: Opus passed through, or AAC
    /// transcoded to Opus.
    pub fn webrtc_audio(&self) -> Option<SendCodec> {
        if self.opus_offered {
            return Some(SendCodec::Opus);
        }
        audio_send_codec(self.audio.as_ref()?.config().codec)
    }

    /// Attaches forwarders configured for this stream and detaches removed ones.
    pub fn apply_forwarders(&mut self, records: &[ForwarderRecord]) {
        let mine: Vec<&ForwarderRecord> = records
            .iter()
            .filter(|r| r.sid == self.sid && r.app_id == self.app_id)
            .collect();
        self.forwarders
            .retain(|f| mine.iter().any(|r| r.id == f.id));
        for r in mine {
            if self.forwarders.iter().any(|f| f.id == r.id) {
                continue;
            }
            tracing::info!(sid = %self.sid, forwarder = %r.id, host = %r.host, video = r.video_port,
                audio = r.audio_port, "forwarder attached");
            self.forwarders.push(Forwarder::new(r));
        }
    }

    /// Applies kick and mute commands.
    pub fn apply_command(&mut self, cmd: &StreamCommand) {
        self.audio_muted = cmd.audio_muted;
        self.video_muted = cmd.video_muted;
        match self.kick_seq {
            // The first command seen sets the baseline only if it carries no kick.
            None if cmd.kick_seq == 0 => self.kick_seq = Some(0),
            Some(seen) if seen >= cmd.kick_seq => {}
            _ => {
                self.kick_seq = Some(cmd.kick_seq);
                if self.close.is_none() {
                    self.closing_normal = true;
                    self.close = Some(Refusal {
                        code: AbortCode::Internal,
                        reason: "force disconnected through the REST API".into(),
                    });
                }
            }
        }
    }

    /// Periodic work: GOP-cache primed sends, rates, timeouts, RTCP sender reports.
    pub fn on_tick(&mut self, now_ms: u64, ctx: &CoreCtx) {
        self.viewers = ctx.webrtc.viewer_count(&self.sid);
        self.drain_transcoded(ctx);
        if self.aac_to_opus.is_some() && !ctx.webrtc.has_viewers(&self.sid) {
            // The last viewer left: release the transcoder's state (reopened on demand).
            self.aac_to_opus = None;
            self.opus_rtp = None;
        }
        // Newly attached forwarders start from the cached GOP.
        for f in &mut self.forwarders {
            if !f.primed {
                f.primed = true;
                let (v, a) = (
                    self.video.as_ref().map(|v| v.rtp_state()),
                    self.audio.as_ref().map(|a| a.rtp_state()),
                );
                // Consecutive packets of one track go out together, so the cached GOP's
                // fragments are sent with GSO like live frames.
                let mut run: Vec<RtpPacket> = Vec::new();
                let mut flush = |track: Track, run: &mut Vec<RtpPacket>| {
                    let state = match track {
                        Track::Video => v.as_ref(),
                        Track::Audio => a.as_ref(),
                    };
                    if let Some(state) = state {
                        f.send(track, run, state, &ctx.egress_socket);
                    }
                    run.clear();
                };
                let mut run_track = Track::Video;
                for e in &self.gop.packets {
                    if e.track != run_track && !run.is_empty() {
                        flush(run_track, &mut run);
                    }
                    run_track = e.track;
                    // A descriptor clone: a reference-count bump, no payload copy.
                    run.push(e.packet.clone());
                }
                if !run.is_empty() {
                    flush(run_track, &mut run);
                }
            }
            f.maybe_send_reports(now_ms, &ctx.egress_socket);
        }
        let elapsed = now_ms.saturating_sub(self.window_start_ms);
        if elapsed >= 1000 {
            self.bitrate_kbps = u32::try_from(self.window_bytes * 8 / elapsed).unwrap_or(u32::MAX);
            self.fps =
                u32::try_from((self.window_frames * 1000 + elapsed / 2) / elapsed).unwrap_or(0);
            self.window_bytes = 0;
            self.window_frames = 0;
            self.window_start_ms = now_ms;
            if self.max_bitrate_kbps != 0 && self.bitrate_kbps > self.max_bitrate_kbps {
                let since = *self.over_bitrate_since.get_or_insert(now_ms);
                // A few seconds over the limit, so one large keyframe does not end a stream.
                if now_ms - since >= 5000 && self.close.is_none() {
                    self.close = Some(Refusal {
                        code: AbortCode::BitrateOverLimit,
                        reason: format!(
                            "bitrate {} kbps over the limit of {} kbps",
                            self.bitrate_kbps, self.max_bitrate_kbps
                        ),
                    });
                }
            } else {
                self.over_bitrate_since = None;
            }
        }
        if now_ms.saturating_sub(self.last_media_ms) > self.media_timeout_ms && self.close.is_none()
        {
            self.close = Some(Refusal {
                code: AbortCode::NoMedia,
                reason: format!("no audio or video for {} s", self.media_timeout_ms / 1000),
            });
        }
    }

    /// Names the socket of the RTMP connection feeding this stream (see [`Stream::signal_close`]).
    pub fn set_ingest_fd(&mut self, fd: std::os::fd::RawFd) {
        self.ingest_fd = Some(fd);
    }

    /// Wakes the connection feeding this stream when it must close (kick, replacement,
    /// media timeout, bitrate): shuts its socket down once, so its pending read returns and
    /// the connection ends with [`Stream::should_close`]'s reason. Returns whether it did.
    pub fn signal_close(&mut self) -> bool {
        if self.close_signalled || self.should_close().is_none() {
            return false;
        }
        let Some(fd) = self.ingest_fd else {
            return false;
        };
        self.close_signalled = true;
        // SAFETY: shutdown(2) has no memory-safety preconditions; `fd` is the open socket of
        // the connection feeding this stream (it removes the stream before closing it).
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        true
    }

    /// Why the connection should be closed now, if it should.
    pub fn should_close(&self) -> Option<String> {
        if self.guard.kicked.load(Ordering::Acquire) {
            return Some("replaced by a new publisher of the same channel and uid".into());
        }
        self.close.as_ref().map(|r| r.reason.clone())
    }

    /// The abort to report when the stream ends, if it ended abnormally.
    pub fn close_reason(&self) -> Option<Refusal> {
        if self.closing_normal {
            return None;
        }
        if self.guard.kicked.load(Ordering::Acquire) {
            return Some(Refusal {
                code: AbortCode::Conflict,
                reason: "replaced by a new publisher".into(),
            });
        }
        self.close.clone()
    }

    /// Ends the stream: events, stats slot, forwarders.
    pub fn finish(&mut self, abort: Option<Refusal>, table: &Table) {
        if let Some(r) = &abort {
            self.push_event(table, EventKind::Aborted, Some(r), false);
        }
        self.push_event(table, EventKind::Disconnected, None, true);
        if let Some(slot) = self.stats_slot.take() {
            table.release_stats_slot(slot);
        }
        tracing::info!(sid = %self.sid, bytes_in = self.bytes_in_video + self.bytes_in_audio,
            aborted = abort.is_some(), "stream ended");
    }

    /// Current stats record.
    pub fn stats(&self, now_ms: u64) -> StreamStats {
        let video = self.video.as_ref().map(|v| {
            let cfg = v.config();
            VideoStats {
                codec: match cfg.codec {
                    VideoCodec::H264 => "H.264",
                    VideoCodec::H265 => "H.265",
                    VideoCodec::Av1 => "AV1",
                }
                .into(),
                width: cfg.width,
                height: cfg.height,
                fps: self.fps,
                bitrate_kbps: self.bitrate_kbps,
                gop_ms: self.gop_ms,
                bframes: self.bframes,
                profile_level_id: format!(
                    "{:02x}{:02x}{:02x}",
                    cfg.profile, cfg.constraints, cfg.level
                ),
            }
        });
        let audio = self.audio.as_ref().map(|a| {
            let cfg = a.config();
            AudioStats {
                codec: match cfg.codec {
                    AudioCodec::Aac => "AAC",
                    AudioCodec::Opus => "OPUS",
                }
                .into(),
                channels: u32::from(cfg.channels),
                sample_rate: cfg.sample_rate,
                bitrate_kbps: 0,
            }
        });
        let running = self.frames_video > 0 || self.bytes_in_audio > 0;
        StreamStats {
            sid: self.sid.clone(),
            app_id: self.app_id.clone(),
            channel: self.id.channel.clone(),
            uid: self.id.uid.clone(),
            url: self.id.url.clone(),
            domain: self.id.domain.clone(),
            protocol: self.id.protocol.into(),
            status: if running {
                StreamStatus::Running
            } else {
                StreamStatus::Started
            },
            begin_at_ms: self.begin_at_ms,
            core: self.core,
            video,
            audio,
            bytes_in_video: self.bytes_in_video,
            bytes_in_audio: self.bytes_in_audio,
            bytes_out_video: self.bytes_out_video,
            bytes_out_audio: self.bytes_out_audio,
            forwarders: self.forwarders.len() as u32,
            viewers: self.viewers,
            updated_ms: now_ms,
            video_params: self
                .video
                .as_ref()
                .map(|v| v.parameter_sets())
                .unwrap_or_default(),
            audio_config: self
                .audio
                .as_ref()
                .map(|a| a.config().specific_config.to_vec())
                .unwrap_or_default(),
        }
    }

    /// Writes the stats record into this stream's slot.
    pub fn publish_stats(&mut self, now_ms: u64, table: &Table) {
        let summary = self.stats(now_ms);
        let (viewers, bframes) = (self.viewers, self.bframes);
        let (send_video, send_audio) = (self.webrtc_video(), self.webrtc_audio());
        let webrtc_audio = if self.webrtc_audio().is_some() {
            "opus"
        } else {
            "none"
        };
        self.listing
            .directory
            .update(&self.listing.key, &self.sid, |e| {
                if let Some(v) = &summary.video {
                    e.video_codec = v.codec.clone();
                    e.width = v.width;
                    e.height = v.height;
                    e.fps = v.fps;
                    e.bitrate_kbps = v.bitrate_kbps;
                }
                e.audio_codec = summary
                    .audio
                    .as_ref()
                    .map(|a| a.codec.clone())
                    .unwrap_or_default();
                e.webrtc_audio = webrtc_audio.into();
                e.bframes = bframes;
                e.viewers = viewers;
                e.send_video = send_video;
                e.send_audio = send_audio;
            });
        if let Some(slot) = self.stats_slot {
            let s = summary;
            if let Err(e) = table.write_stats(slot, &s) {
                tracing::warn!(sid = %self.sid, error = %e, "stats record does not fit its slot");
            }
        }
    }

    fn push_event(
        &self,
        table: &Table,
        kind: EventKind,
        abort: Option<&Refusal>,
        with_stats: bool,
    ) {
        let now = crate::time::unix_ms();
        let e = Event {
            kind,
            at_ms: now,
            sid: self.sid.clone(),
            app_id: self.app_id.clone(),
            channel: self.id.channel.clone(),
            uid: self.id.uid.clone(),
            stream_key: self.id.key.clone(),
            domain: self.id.domain.clone(),
            protocol: self.id.protocol.into(),
            begin_at_ms: self.begin_at_ms,
            error_code: abort.map(|r| r.code as u32).unwrap_or(0),
            reason: abort.map(|r| r.reason.clone()).unwrap_or_default(),
            stats: with_stats.then(|| self.stats(now)),
        };
        let _ = self.template_id;
        if kind == EventKind::Aborted {
            table.add_counter(sluice_table::Counter::for_abort_code(e.error_code), 1);
        }
        if let Err(err) = table.push_event(&e) {
            tracing::warn!(error = %err, "event does not fit the event ring slot");
        }
    }
}

/// Records a refused publish in the event ring (abort event with no preceding connect).
pub fn push_abort(table: &Table, id: &StreamIdentity, refusal: &Refusal) {
    tracing::info!(key = %mask_key(&id.key), code = refusal.code as u32, reason = %refusal.reason,
        peer = ?id.peer, "publish refused");
    let now = crate::time::unix_ms();
    let e = Event {
        kind: EventKind::Aborted,
        at_ms: now,
        sid: id.sid.clone(),
        app_id: id.app_id.clone(),
        channel: id.channel.clone(),
        uid: id.uid.clone(),
        stream_key: id.key.clone(),
        domain: id.domain.clone(),
        protocol: id.protocol.into(),
        begin_at_ms: now,
        error_code: refusal.code as u32,
        reason: refusal.reason.clone(),
        stats: None,
    };
    table.add_counter(sluice_table::Counter::for_abort_code(e.error_code), 1);
    let _ = table.push_event(&e);
}

/// A stream key shortened for logs: enough to recognise it, not enough to use it.
pub fn mask_key(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let head: String = key.chars().take(4).collect();
    let tail: String = key.chars().skip(n - 3).collect();
    format!("{head}****{tail}")
}

/// The transcoder's view of an AAC track configuration.
fn aac_input(cfg: &sluice_proto::media::AudioConfig) -> sluice_transcode::AacInput {
    sluice_transcode::AacInput {
        specific_config: cfg.specific_config.clone(),
        sample_rate: cfg.sample_rate,
        channels: cfg.channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opus_packet(bytes: &[u8]) -> RtpPacket {
        let cfg = sluice_proto::media::AudioConfig {
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            channels: 2,
            specific_config: bytes::Bytes::new(),
        };
        let mut rtp = AudioRtp::new(cfg, 1200).expect("Opus packetizer");
        let mut out = Vec::new();
        let frame = sluice_proto::media::AudioFrame {
            pts: 0,
            data: bytes::Bytes::copy_from_slice(bytes),
        };
        rtp.packetize(&frame, &mut out);
        out.pop().expect("one packet")
    }

    #[test]
    fn a_cached_packet_makes_its_webrtc_payload_once_for_every_viewer() {
        let entry = GopEntry::new(Track::Audio, opus_packet(&[0xfc, 1, 2, 3]));
        let first = entry.webrtc_payload();
        let second = entry.webrtc_payload();
        // Live fan-out and every later join get the same allocation, not a copy each.
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(&first[..], &[0xfc, 1, 2, 3]);
    }
}
