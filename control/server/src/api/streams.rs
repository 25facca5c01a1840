//! Online streams (api-digest §1.4: v1 list and query with `data` an array, v2 with
//! input/output objects, force disconnect, mute on both documented paths) and Sluice's
//! additions: RTP forwarders and recent events.

use super::body::{self, invalid};
use super::{
    ApiError, ApiResult, AppState, PathParams, QueryParams, Scope, db, msg, ok, ok_data, scope,
};
use crate::store::ForwarderRow;
use crate::table::{ConfigChange, StreamCommand, StreamInfo, StreamStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;

/// Longest SID accepted in a path.
pub const MAX_SID_LEN: usize = 64;
/// Forwarders per stream: each one is a copy of the stream's packets on the dataplane.
pub const MAX_FORWARDERS_PER_STREAM: usize = 16;
/// Default number of events returned.
pub const EVENTS_DEFAULT: usize = 50;
/// Most events returned per call.
pub const EVENTS_MAX: usize = 500;

/// RTP payload type the dataplane uses for forwarded video (see the engine's `packetize`).
pub const FORWARD_VIDEO_PT: u8 = 96;
/// RTP payload type the dataplane uses for forwarded audio.
pub const FORWARD_AUDIO_PT: u8 = 97;

/// The SDP describing a forwarder's RTP output, for the create answer: `None` until the
/// dataplane has reported the stream's parameter sets (video) or audio configuration.
pub fn forwarder_sdp(stats: &StreamInfo, record: &ForwarderRow) -> Option<String> {
    use sluice_proto::media::{AudioCodec, AudioConfig, VideoCodec, VideoConfig};
    use sluice_proto::rtp::sdp::{AudioMedia, ForwardingSdp, VideoMedia};

    let video_cfg = stats.video.as_ref().and_then(|v| {
        let codec = match v.codec.as_str() {
            "H.264" => VideoCodec::H264,
            "H.265" => VideoCodec::H265,
            _ => return None,
        };
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for nal in &stats.video_params {
            let Some(&first) = nal.first() else { continue };
            let list = match codec {
                VideoCodec::H264 => match first & 0x1f {
                    7 => &mut sps,
                    8 => &mut pps,
                    _ => continue,
                },
                _ => match (first >> 1) & 0x3f {
                    32 => &mut vps,
                    33 => &mut sps,
                    34 => &mut pps,
                    _ => continue,
                },
            };
            list.push(bytes::Bytes::copy_from_slice(nal));
        }
        if sps.is_empty() {
            return None;
        }
        let mut cfg = VideoConfig {
            codec,
            vps,
            sps,
            pps,
            width: v.width,
            height: v.height,
            profile: 0,
            constraints: 0,
            level: 0,
            frame_rate: None,
        };
        if let Ok(parsed) = sluice_proto::codec::video_config_from_parameter_sets(
            codec, &cfg.vps, &cfg.sps, &cfg.pps,
        ) {
            cfg.profile = parsed.profile;
            cfg.constraints = parsed.constraints;
            cfg.level = parsed.level;
        }
        Some(cfg)
    });
    let audio_cfg = stats.audio.as_ref().and_then(|a| {
        let codec = match a.codec.as_str() {
            "AAC" if !stats.audio_config.is_empty() => AudioCodec::Aac,
            "OPUS" => AudioCodec::Opus,
            _ => return None,
        };
        Some(AudioConfig {
            codec,
            sample_rate: a.sample_rate,
            channels: u8::try_from(a.channels).unwrap_or(2),
            specific_config: bytes::Bytes::copy_from_slice(&stats.audio_config),
        })
    });
    let want_video = record.video_port != 0;
    let want_audio = record.audio_port != 0;
    // Every requested track must be describable, or the receiver would miss one.
    if (want_video && video_cfg.is_none()) || (want_audio && audio_cfg.is_none()) {
        return None;
    }
    let sdp = ForwardingSdp {
        session_id: record.created_at,
        session_version: 1,
        session_name: "Sluice RTP forward",
        origin: record.host,
        connection: record.host,
        video: video_cfg
            .as_ref()
            .filter(|_| want_video)
            .map(|config| VideoMedia {
                port: record.video_port,
                payload_type: FORWARD_VIDEO_PT,
                config,
            }),
        audio: audio_cfg
            .as_ref()
            .filter(|_| want_audio)
            .map(|config| AudioMedia {
                port: record.audio_port,
                payload_type: FORWARD_AUDIO_PT,
                config,
            }),
    };
    sdp.render().ok()
}

fn check_sid(sid: &str) -> Result<(), ApiError> {
    if sid.is_empty() {
        return Err(ApiError::bad(msg::SID_MISSING));
    }
    if sid.len() > MAX_SID_LEN
        || !sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad(
            "Invalid SID: expected 1..64 letters, digits, '-' or '_'.",
        ));
    }
    Ok(())
}

fn status_text(s: StreamStatus) -> &'static str {
    match s {
        StreamStatus::Started => "Started",
        StreamStatus::Running => "Running",
    }
}

fn item_v1(s: &StreamInfo) -> Value {
    let bitrate = s
        .video
        .as_ref()
        .map(|v| v.bitrate_kbps)
        .unwrap_or(0)
        .saturating_add(s.audio.as_ref().map(|a| a.bitrate_kbps).unwrap_or(0));
    let mut o = json!({
        "sid": s.sid, "channel": s.channel, "uid": s.uid, "url": s.url,
        "status": status_text(s.status),
        "beginAt": crate::time::format_begin_at(s.begin_at_ms),
        "bitrate": bitrate,
    });
    if s.status == StreamStatus::Running {
        if let Some(v) = &s.video {
            o["video"] = json!({"width": v.width, "height": v.height, "fps": v.fps});
        }
        if let Some(a) = &s.audio {
            o["audio"] = json!({"channels": a.channels, "sampleRate": a.sample_rate});
        }
    }
    o
}

/// What the channel gets of a stream's audio: Opus transcoded from the source (the
/// documented default for AAC), or the source itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioOut {
    /// AAC decoded and re-encoded to Opus 48 kHz (at most 2 channels, 32 kbps each, as the
    /// dataplane's transcoder does).
    Opus,
    /// Passed through (Opus from SRT, or transcoding turned off by the template).
    PassThrough,
}

/// Opus bitrate per channel of the dataplane's AAC transcoder (kbps).
const OPUS_KBPS_PER_CHANNEL: u32 = 32;

/// Whether the stream's template (the key's own, else the app's default) leaves audio
/// transcoding on; the dataplane applies the same rule when the stream starts.
fn template_transcodes_audio(
    store: &dyn crate::store::Store,
    app: &crate::store::AppRow,
    s: &StreamInfo,
) -> crate::store::StoreResult<bool> {
    let key = s.url.rsplit('/').next().unwrap_or_default();
    let bound = match store.key(&app.id, key)? {
        Some(k) => k.template_id,
        None => crate::localkey::decode(&app.certificate_hex, key)
            .ok()
            .and_then(|c| c.template_id),
    };
    let template = match bound {
        Some(t) => Some(t),
        None => store.app_settings(&app.id)?.default_template,
    };
    let Some(id) = template else {
        return Ok(true);
    };
    Ok(store
        .template(&app.id, &id)?
        .and_then(|t| serde_json::from_str::<Value>(&t.settings_json).ok())
        .and_then(|v| v["transcoding"]["audio"]["enabled"].as_bool())
        .unwrap_or(true))
}

/// The audio output of each stream, in order (store reads, so off the executor).
async fn audio_outputs(
    st: &Arc<AppState>,
    app: &crate::store::AppRow,
    streams: &[StreamInfo],
) -> Result<Vec<AudioOut>, ApiError> {
    let (app, streams) = (app.clone(), streams.to_vec());
    db(st, move |store| {
        streams
            .iter()
            .map(|s| {
                let aac = s.audio.as_ref().is_some_and(|a| a.codec.contains("AAC"));
                Ok(if aac && template_transcodes_audio(store, &app, s)? {
                    AudioOut::Opus
                } else {
                    AudioOut::PassThrough
                })
            })
            .collect()
    })
    .await
}

fn item_v2(s: &StreamInfo, audio_out: AudioOut) -> Value {
    let mut o = json!({
        "sid": s.sid, "channel": s.channel, "uid": s.uid, "url": s.url,
        "status": status_text(s.status),
        "beginAt": crate::time::format_begin_at(s.begin_at_ms),
    });
    let mut input = json!({});
    let mut output = json!({});
    if let Some(v) = &s.video {
        input["video"] = json!({"codec": v.codec, "bitrate": v.bitrate_kbps, "width": v.width,
            "height": v.height, "fps": v.fps, "gop": v.gop_ms});
        // Sluice passes video through unless a transcoder layer is configured.
        output["video"] = json!({"codec": "NONE", "bitrate": v.bitrate_kbps, "width": v.width,
            "height": v.height, "fps": v.fps, "gop": v.gop_ms});
    }
    if let Some(a) = &s.audio {
        input["audio"] = json!({"codec": a.codec, "channels": a.channels,
            "sampleRate": a.sample_rate, "bitrate": a.bitrate_kbps});
        output["audio"] = match audio_out {
            AudioOut::Opus => {
                // As documented, the output bitrate is the encoder's target, not a measure.
                let ch = a.channels.clamp(1, 2);
                json!({"codec": "OPUS", "channels": ch, "sampleRate": 48_000,
                    "bitrate": ch * OPUS_KBPS_PER_CHANNEL})
            }
            AudioOut::PassThrough => json!({"codec": "NONE", "channels": a.channels,
                "sampleRate": a.sample_rate, "bitrate": a.bitrate_kbps}),
        };
    }
    o["input"] = input;
    o["output"] = output;
    o
}

/// The stream `sid` of the scope's app: 404 (empty message) if unknown, 403 if another app's.
fn find_stream(st: &AppState, app: &str, sid: &str) -> Result<StreamInfo, ApiError> {
    check_sid(sid)?;
    let s = st
        .stats
        .streams()
        .into_iter()
        .find(|s| s.sid == sid)
        .ok_or_else(|| ApiError::not_found(msg::NO_SUCH_STREAM))?;
    if s.app_id != app {
        return Err(ApiError::new(StatusCode::FORBIDDEN, msg::NOT_THIS_APP));
    }
    Ok(s)
}

/// `GET /{region}/{v1|v2}/.../online-streams[?channel=]`.
pub async fn list(State(st): State<Arc<AppState>>, p: PathParams, q: QueryParams) -> ApiResult {
    let Scope { app, version } = scope(&st, &p, &["v1", "v2"])?;
    let channel = q.0.get("channel");
    let streams: Vec<StreamInfo> = st
        .stats
        .streams()
        .into_iter()
        .filter(|s| s.app_id == app.id && channel.is_none_or(|c| &s.channel == c))
        .collect();
    let items: Vec<Value> = if version == "v2" {
        let outs = audio_outputs(&st, &app, &streams).await?;
        streams
            .iter()
            .zip(outs)
            .map(|(s, a)| item_v2(s, a))
            .collect()
    } else {
        streams.iter().map(item_v1).collect()
    };
    ok_data(Value::Array(items))
}

/// `GET /{region}/{v1|v2}/.../online-streams/{sid}`: `data` is a one-element array.
pub async fn query(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, version } = scope(&st, &p, &["v1", "v2"])?;
    let s = find_stream(&st, &app.id, p.get("sid"))?;
    let item = if version == "v2" {
        let outs = audio_outputs(&st, &app, std::slice::from_ref(&s)).await?;
        item_v2(&s, outs.first().copied().unwrap_or(AudioOut::PassThrough))
    } else {
        item_v1(&s)
    };
    ok_data(json!([item]))
}

fn update_command(st: &AppState, app: &str, sid: &str, f: impl FnOnce(&mut StreamCommand)) {
    let live: std::collections::HashSet<(String, String)> = st
        .stats
        .streams()
        .into_iter()
        .map(|s| (s.app_id, s.sid))
        .collect();
    let (cmd, gone) = {
        let Ok(mut map) = st.commands.lock() else {
            return;
        };
        // Commands of streams that ended are dropped, so the map (and the table's command
        // region) holds at most one entry per live stream.
        let gone: Vec<(String, String)> =
            map.keys().filter(|k| !live.contains(*k)).cloned().collect();
        for k in &gone {
            map.remove(k);
        }
        let c = map
            .entry((app.to_string(), sid.to_string()))
            .or_insert_with(|| StreamCommand {
                app_id: app.to_string(),
                sid: sid.to_string(),
                kick_seq: 0,
                audio_muted: false,
                video_muted: false,
            });
        f(c);
        (c.clone(), gone)
    };
    for (a, s) in gone {
        st.publish(ConfigChange::RemoveCommand(a, s));
    }
    st.publish(ConfigChange::PutCommand(cmd));
}

/// `DELETE /{region}/v1/.../online-streams/{sid}`: force disconnect.
pub async fn kick(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let s = find_stream(&st, &app.id, p.get("sid"))?;
    update_command(&st, &app.id, &s.sid, |c| {
        c.kick_seq = c.kick_seq.wrapping_add(1)
    });
    ok()
}

/// `POST .../online-streams/mute/{sid}` and `.../online-streams/{sid}/mute`.
pub async fn mute(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let v = body::parse_json(&b)?;
    let s = body::settings(&v)?;
    let video = s
        .bool("videoMuted")?
        .ok_or_else(|| invalid("videoMuted", "is required"))?;
    let audio = s
        .bool("audioMuted")?
        .ok_or_else(|| invalid("audioMuted", "is required"))?;
    let stream = find_stream(&st, &app.id, p.get("sid"))?;
    update_command(&st, &app.id, &stream.sid, |c| {
        c.video_muted = video;
        c.audio_muted = audio;
    });
    ok()
}

fn forwarder_json(f: &ForwarderRow, sdp: Option<String>) -> Value {
    json!({"id": f.id, "sid": f.sid, "host": f.host.to_string(), "videoPort": f.video_port,
        "audioPort": f.audio_port, "createdAt": f.created_at.to_string(), "sdp": sdp})
}

/// `POST .../online-streams/{sid}/forwarders` with `{"host","videoPort","audioPort"}`.
pub async fn add_forwarder(State(st): State<Arc<AppState>>, p: PathParams, b: Bytes) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let stream = find_stream(&st, &app.id, p.get("sid"))?;
    let v = body::parse_json(&b)?;
    let o = body::root(&v)?;
    let host: IpAddr = o
        .str("host")?
        .ok_or_else(|| invalid("host", "is required"))?
        .parse()
        .map_err(|_| invalid("host", "must be an IPv4 or IPv6 address"))?;
    if host.is_unspecified() || host.is_multicast() {
        return Err(invalid("host", "must be a unicast address"));
    }
    let vp = o.int("videoPort", 0, 65535)?.unwrap_or(0);
    let ap = o.int("audioPort", 0, 65535)?.unwrap_or(0);
    if vp == 0 && ap == 0 {
        return Err(invalid("videoPort", "or audioPort must be set"));
    }
    if vp != 0 && vp == ap {
        return Err(invalid("audioPort", "must differ from videoPort"));
    }
    let id_bytes: [u8; 6] = rand::random();
    let row = ForwarderRow {
        id: id_bytes.iter().map(|b| format!("{b:02x}")).collect(),
        app_id: app.id.clone(),
        sid: stream.sid.clone(),
        host,
        video_port: u16::try_from(vp).unwrap_or(0),
        audio_port: u16::try_from(ap).unwrap_or(0),
        created_at: crate::time::now_unix(),
    };
    let r = row.clone();
    db(&st, move |s| {
        let existing = s.forwarders(&r.app_id, &r.sid)?;
        if existing.iter().any(|f| {
            f.host == r.host && f.video_port == r.video_port && f.audio_port == r.audio_port
        }) {
            return Err(crate::store::StoreError::Conflict);
        }
        if existing.len() >= MAX_FORWARDERS_PER_STREAM {
            return Err(crate::store::StoreError::Backend(String::new()));
        }
        s.insert_forwarder(&r)
    })
    .await
    .map_err(|e| {
        if e.status == StatusCode::INTERNAL_SERVER_ERROR {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Resources quota limit exceeded. At most {MAX_FORWARDERS_PER_STREAM} forwarders per stream."),
            )
        } else {
            e
        }
    })?;
    st.publish(ConfigChange::PutForwarder(row.clone()));
    let sdp = forwarder_sdp(&stream, &row);
    ok_data(forwarder_json(&row, sdp))
}

/// `GET .../online-streams/{sid}/forwarders`.
pub async fn list_forwarders(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let sid = p.get("sid").to_string();
    check_sid(&sid)?;
    let a = app.id.clone();
    let rows = db(&st, move |s| s.forwarders(&a, &sid)).await?;
    ok_data(Value::Array(
        rows.iter().map(|f| forwarder_json(f, None)).collect(),
    ))
}

/// `DELETE .../online-streams/{sid}/forwarders/{forwarderId}`.
pub async fn delete_forwarder(State(st): State<Arc<AppState>>, p: PathParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let sid = p.get("sid").to_string();
    check_sid(&sid)?;
    let id = p.get("forwarderId").to_string();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad("Invalid forwarder ID."));
    }
    let (a, s2, i) = (app.id.clone(), sid.clone(), id.clone());
    if !db(&st, move |s| s.delete_forwarder(&a, &s2, &i)).await? {
        return Err(ApiError::not_found(msg::NOT_FOUND));
    }
    st.publish(ConfigChange::RemoveForwarder(app.id, id));
    ok()
}

/// `GET .../events[?limit=]`: the app's recent dataplane events, newest first.
pub async fn events(State(st): State<Arc<AppState>>, p: PathParams, q: QueryParams) -> ApiResult {
    let Scope { app, .. } = scope(&st, &p, &["v1"])?;
    let limit = match q.0.get("limit").map(String::as_str) {
        None | Some("") => EVENTS_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(EVENTS_MAX),
            _ => {
                return Err(ApiError::bad(
                    "Invalid query: \"limit\" must be a positive integer.",
                ));
            }
        },
    };
    st.pump_events();
    let items: Vec<Value> = st
        .events
        .lock()
        .map_err(ApiError::internal)?
        .iter()
        .rev()
        .filter(|e| e.app_id == app.id)
        .take(limit)
        .map(|e| {
            json!({"eventType": e.kind.code(), "event": e.kind.name(), "notifyMs": e.at_ms,
                "sid": e.sid, "channel": e.channel, "uid": e.uid,
                "errorCode": e.error_code, "reason": e.reason})
        })
        .collect();
    ok_data(Value::Array(items))
}
