//! The viewer HTTP server on `http_listen` (default 8081): WHEP (RFC 9725) and the watch page.
//!
//! Every core accepts on the port (SO_REUSEPORT); a WHEP offer is forwarded to the core that
//! owns the stream. Requests are HTTP/1.1, one per connection (`Connection: close`): viewers
//! make few requests, and this keeps the server a short, bounded loop. The request head is
//! parsed by `httparse`; the head and the body are capped by named constants.
//!
//! Routes:
//! - `POST /whep/{appId}/{channel}/{uid}`: SDP offer in, 201 + SDP answer + Location out.
//! - `POST /whep/{appId}/{channel}`: every publisher of the channel, each as its own tracks
//!   (the `X-Sluice-Tracks` header maps m-lines to uids).
//! - `DELETE /whep/session/{id}`: ends the session. `PATCH` (trickle ICE) answers 405: the
//!   server is ICE-lite and its candidates are all in the answer.
//! - `GET /watch/{appId}/{channel}`: the watch page; `GET /watch/assets/{file}` its assets.
//! - `GET /api/live/{appId}/{channel}`: the channel's live uids and media summary (JSON).
//! - `GET /api/webrtc-stats`: WebRTC counters (JSON).
//! - `GET /api/latency`: ingest-to-egress latency percentiles (JSON); `DELETE` empties them.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::core::CoreCtx;
use crate::webrtc::directory::ChannelKey;
use crate::webrtc::{MAX_OFFER_BYTES, Target, WhepError};

/// Largest request head (request line and headers): guards the head buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers parsed in a request head.
const MAX_HEADERS: usize = 32;
/// A connection must deliver its whole request within this time (slow-loris guard).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const WATCH_HTML: &str = include_str!("../assets/watch.html");
const WATCH_JS: &str = include_str!("../assets/watch.js");

/// A parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// A response to write.
struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    fn json(status: u16, v: &serde_json::Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: v.to_string().into_bytes(),
        }
    }
}

/// Starts this core's HTTP listener.
pub fn spawn(ctx: Rc<CoreCtx>) -> anyhow::Result<()> {
    let addr = ctx.shared.cfg.http_listen;
    let listener = TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("binding viewer HTTP listener {addr}: {e}"))?;
    if ctx.id == 0 {
        tracing::info!(%addr, "viewer HTTP (WHEP, watch page) listening");
    }
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(conn) => {
                    glommio::spawn_local(serve(conn, ctx.clone())).detach();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "viewer HTTP accept failed");
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .detach();
    Ok(())
}

async fn serve(mut conn: TcpStream, ctx: Rc<CoreCtx>) {
    let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
    let resp = match read_request(&mut conn).await {
        Ok(Some(req)) => route(req, &ctx).await,
        Ok(None) => return,
        Err(resp) => resp,
    };
    let _ = write_response(&mut conn, resp).await;
    let _ = conn.close().await;
}

/// Reads one request; `Err` carries the error response to send.
async fn read_request(conn: &mut TcpStream) -> Result<Option<Request>, Response> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    loop {
        if len == buf.len() {
            if buf.len() >= MAX_HEAD_BYTES + MAX_OFFER_BYTES {
                return Err(Response::text(413, "request too large"));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = match conn.read(buf.get_mut(len..).unwrap_or_default()).await {
            Ok(0) if len == 0 => return Ok(None),
            Ok(0) => return Err(Response::text(400, "incomplete request")),
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        len += n;
        let data = buf.get(..len).unwrap_or_default();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(data) {
            Ok(httparse::Status::Complete(h)) => h,
            Ok(httparse::Status::Partial) => {
                if len > MAX_HEAD_BYTES {
                    return Err(Response::text(431, "request head too large"));
                }
                continue;
            }
            Err(e) => return Err(Response::text(400, format!("bad request: {e}"))),
        };
        let mut content_length = 0usize;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                content_length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| Response::text(400, "bad Content-Length"))?;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Response::text(411, "send a Content-Length"));
            }
        }
        if content_length > MAX_OFFER_BYTES {
            return Err(Response::text(413, "body too large"));
        }
        let total = head_len.saturating_add(content_length);
        if len < total {
            if buf.len() < total {
                buf.resize(total, 0);
            }
            continue;
        }
        let method = req.method.unwrap_or_default().to_string();
        let path = req.path.unwrap_or_default().to_string();
        let body = data.get(head_len..total).unwrap_or_default().to_vec();
        return Ok(Some(Request { method, path, body }));
    }
}

async fn write_response(conn: &mut TcpStream, r: Response) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Access-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: GET, POST, DELETE, PATCH, OPTIONS\r\n\
         Access-Control-Allow-Headers: Content-Type, Authorization\r\n\
         Access-Control-Expose-Headers: Location, X-Sluice-Tracks, X-Sluice-Notes\r\n\
         Cache-Control: no-store\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&r.body).await?;
    conn.flush().await
}

/// Path segments, percent-decoding refused (ids are plain ASCII in this API).
fn segments(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~!$&()*+,;=:@".contains(&b))
}

async fn route(req: Request, ctx: &Rc<CoreCtx>) -> Response {
    let segs = segments(&req.path);
    if req.method == "OPTIONS" {
        return Response::text(204, "");
    }
    if segs.iter().any(|s| !valid_id(s)) {
        return Response::text(400, "invalid path segment");
    }
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["whep", "session", ..]) => Response::text(405, "POST a new offer to /whep/..."),
        ("POST", ["whep", app, channel, uid]) => {
            let key = channel_key(app, channel);
            whep_offer(
                ctx,
                Target::Uid {
                    key,
                    uid: (*uid).to_string(),
                },
                req.body,
            )
            .await
        }
        ("POST", ["whep", app, channel]) => {
            let key = channel_key(app, channel);
            whep_offer(ctx, Target::Channel { key }, req.body).await
        }
        ("DELETE", ["whep", "session", id]) => {
            if ctx.shared.webrtc.delete(id).await {
                Response::text(200, "")
            } else {
                Response::text(404, "no such session")
            }
        }
        ("PATCH", ["whep", "session", _]) => {
            let mut r = Response::text(
                405,
                "trickle ICE is not needed: the server is ICE-lite and lists its candidates in the answer",
            );
            r.headers.push(("Allow".into(), "DELETE".into()));
            r
        }
        ("GET", ["watch", "assets", "watch.js"]) => Response {
            status: 200,
            content_type: "text/javascript; charset=utf-8",
            headers: Vec::new(),
            body: WATCH_JS.as_bytes().to_vec(),
        },
        ("GET", ["watch", _app, _channel]) => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: WATCH_HTML.as_bytes().to_vec(),
        },
        ("GET", ["api", "live", app, channel]) => {
            let key = channel_key(app, channel);
            let list = ctx.shared.webrtc.directory.channel(&key);
            let viewers = ctx.shared.webrtc.directory.viewers(&key);
            let streams: Vec<serde_json::Value> = list
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "uid": e.uid,
                        "protocol": e.protocol,
                        "video": {
                            "codec": e.video_codec, "width": e.width, "height": e.height,
                            "fps": e.fps, "bitrateKbps": e.bitrate_kbps, "bframes": e.bframes,
                        },
                        "audio": { "codec": e.audio_codec, "webrtc": e.webrtc_audio },
                        "viewers": e.viewers,
                    })
                })
                .collect();
            Response::json(
                200,
                &serde_json::json!({
                    "appId": key.app_id, "channel": key.channel,
                    "viewers": viewers, "streams": streams,
                }),
            )
        }
        ("GET", ["api", "webrtc-stats"]) => {
            let c = &ctx.shared.webrtc.counters;
            let t = crate::webrtc::transcode_pool().counters();
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            Response::json(
                200,
                &serde_json::json!({
                    "sessionsCreated": g(&c.sessions_created),
                    "sessionsDeleted": g(&c.sessions_deleted),
                    "sessionsTimedOut": g(&c.sessions_timed_out),
                    "refusedViewerLimit": g(&c.refused_viewer_limit),
                    "badOffers": g(&c.bad_offers),
                    "noCommonCodec": g(&c.no_common_codec),
                    "unknownDatagrams": g(&c.unknown_datagrams),
                    "rtcErrors": g(&c.rtc_errors),
                    "sendDrops": g(&c.send_drops),
                    "keyframeRequests": g(&c.keyframe_requests),
                    "keyframeAnswers": g(&c.keyframe_answers),
                    "keyframeRequestsLimited": g(&c.keyframe_requests_limited),
                    "udpGso": crate::gso::enabled(),
                    "gsoSends": g(&crate::gso::STATS.gso_sends),
                    "gsoDatagrams": g(&crate::gso::STATS.gso_datagrams),
                    "singleSends": g(&crate::gso::STATS.single_sends),
                    "gsoFallbacks": g(&crate::gso::STATS.fallbacks),
                    "remoteFrames": g(&c.remote_frames),
                    "remoteFrameDrops": g(&c.remote_frame_drops),
                    "audioTranscodeDropped": g(&t.dropped),
                    "audioDecodeErrors": g(&t.decode_errors),
                    "audioOpusFrames": g(&t.encoded),
                    "audioOutputOverflow": g(&t.output_overflow),
                }),
            )
        }
        ("GET", ["api", "latency"]) => {
            use crate::latency::{Egress, Summary};
            let j = |s: Summary| {
                serde_json::json!({
                    "count": s.count, "p50Us": s.p50_us, "p90Us": s.p90_us,
                    "p99Us": s.p99_us, "p999Us": s.p999_us, "maxUs": s.max_us,
                })
            };
            let l = &ctx.shared.latency;
            Response::json(
                200,
                &serde_json::json!({
                    "rtmpToRtp": j(l.summary(Egress::Rtp)),
                    "rtmpToWebrtc": j(l.summary(Egress::Webrtc)),
                }),
            )
        }
        ("DELETE", ["api", "latency"]) => {
            ctx.shared.latency.reset();
            Response::text(204, "")
        }
        (_, ["whep", ..]) => {
            let mut r = Response::text(405, "method not allowed");
            r.headers
                .push(("Allow".into(), "POST, DELETE, OPTIONS".into()));
            r
        }
        _ => Response::text(404, "not found"),
    }
}

fn channel_key(app: &str, channel: &str) -> ChannelKey {
    ChannelKey {
        app_id: app.to_string(),
        channel: channel.to_string(),
    }
}

async fn whep_offer(ctx: &Rc<CoreCtx>, target: Target, body: Vec<u8>) -> Response {
    let Ok(offer) = String::from_utf8(body) else {
        return Response::text(400, "the offer is not UTF-8 text");
    };
    if offer.trim().is_empty() {
        return Response::text(400, "empty body: POST an SDP offer (application/sdp)");
    }
    match ctx.shared.webrtc.offer(target, offer).await {
        Ok(a) => {
            let tracks = a
                .tracks
                .iter()
                .map(|(mid, uid, kind)| format!("{mid}={uid}:{kind}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut headers = vec![
                (
                    "Location".to_string(),
                    format!("/whep/session/{}", a.session),
                ),
                ("X-Sluice-Tracks".to_string(), tracks),
            ];
            if !a.notes.is_empty() {
                headers.push(("X-Sluice-Notes".to_string(), a.notes.join("; ")));
            }
            Response {
                status: 201,
                content_type: "application/sdp",
                headers,
                body: a.sdp.into_bytes(),
            }
        }
        Err(e) => {
            let status = match &e {
                WhepError::BadOffer(_) => 400,
                WhepError::NoCodec(_) => 406,
                WhepError::NotLive(_) => 404,
                WhepError::ViewerLimit(_) => 503,
                WhepError::Internal(_) => 500,
            };
            Response::text(status, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(segments("/whep/a/b/c?x=1"), ["whep", "a", "b", "c"]);
        assert_eq!(segments("//watch//a/"), ["watch", "a"]);
        assert!(valid_id("demo-app_1"));
        assert!(!valid_id("a b"));
        assert!(!valid_id("%2e%2e"));
        assert!(!valid_id(&"x".repeat(129)));
    }
}
