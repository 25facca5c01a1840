//! RTMP ingest: one task per TCP connection.
//!
//! Bytes are read into a large `BytesMut`; each read is split off and frozen into a `Bytes`
//! that the sans-IO session (`sluice_proto::rtmp`) slices into messages and NAL units without
//! copying. The allocation is freed when the last slice referring to it is dropped (after the
//! packetizer and the GOP cache are done with it).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use sluice_proto::rtmp::session::{ServerSession, SessionConfig, SessionEvent};

use crate::admission::{self, AbortCode};
use crate::core::CoreCtx;
use crate::stream::{Stream, StreamIdentity};

/// Size of each receive allocation. Large reads mean few syscalls; the buffer is shared by
/// every message sliced out of it.
const RECV_BUFFER: usize = 64 * 1024;
/// How often a blocked read wakes up to check kicks and timeouts.
const READ_POLL: Duration = Duration::from_millis(250);

/// Serves one RTMP connection to completion.
pub async fn serve(conn: TcpStream, ctx: Rc<CoreCtx>) {
    let peer = conn.peer_addr().ok();
    let Some(_ip_guard) = peer.and_then(|p| {
        ctx.shared
            .registry
            .connect_ip(p.ip(), ctx.shared.cfg.max_connections_per_ip)
    }) else {
        ctx.shared
            .counters
            .refused_per_ip
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            ?peer,
            "refusing RTMP connection: too many from this address"
        );
        return;
    };
    let _ = conn.set_nodelay(true);
    if let Err(e) = run(conn, peer, &ctx).await {
        tracing::info!(?peer, reason = %e, "RTMP connection closed");
    }
}

async fn run(
    mut conn: TcpStream,
    peer: Option<SocketAddr>,
    ctx: &Rc<CoreCtx>,
) -> anyhow::Result<()> {
    let mut random = [0u8; 1528];
    for chunk in random.chunks_mut(8) {
        let r: u64 = rand::random();
        chunk.copy_from_slice(&r.to_le_bytes()[..chunk.len()]);
    }
    let mut session = ServerSession::new(SessionConfig::default(), random);
    conn.set_read_timeout(Some(READ_POLL))
        .map_err(|e| anyhow::anyhow!("set_read_timeout: {e}"))?;
    let handshake_deadline =
        Instant::now() + Duration::from_millis(ctx.shared.cfg.handshake_timeout_ms);
    let mut stream: Option<Rc<RefCell<Stream>>> = None;
    let mut rx = BytesMut::new();

    let result: anyhow::Result<()> = async {
        loop {
            if rx.capacity() < 4096 {
                rx = BytesMut::with_capacity(RECV_BUFFER);
                // glommio's read wants an initialised slice; zeroing once per allocation is
                // far cheaper than a copy per message.
                rx.resize(RECV_BUFFER, 0);
            }
            if rx.len() < rx.capacity() {
                let cap = rx.capacity();
                rx.resize(cap, 0);
            }
            let n = match conn.read(&mut rx[..]).await {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    if let Some(s) = &stream {
                        let s = s.borrow();
                        if let Some(why) = s.should_close() {
                            anyhow::bail!("{why}");
                        }
                    } else if Instant::now() > handshake_deadline {
                        ctx.shared
                            .counters
                            .handshake_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        anyhow::bail!("handshake/publish not completed in time");
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let data = rx.split_to(n).freeze();
            if let Err(e) = session.handle_input(data) {
                ctx.shared
                    .counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                anyhow::bail!("protocol error from peer: {e}");
            }
            while let Some(out) = session.poll_transmit() {
                conn.write_all(&out).await?;
            }
            while let Some(ev) = session.poll_event() {
                match ev {
                    SessionEvent::PublishRequested {
                        stream_key,
                        app,
                        tc_url,
                        ..
                    } => {
                        if stream.is_some() {
                            anyhow::bail!("second publish on one connection");
                        }
                        let host = tc_url.as_deref().and_then(host_of_tc_url);
                        let url = format!(
                            "{}/{}/{}",
                            host.clone().unwrap_or_default(),
                            app,
                            stream_key
                        );
                        match admit(ctx, &stream_key, host.as_deref(), &url, peer, "rtmp") {
                            Ok(s) => {
                                session.accept_publish();
                                stream = Some(s);
                            }
                            Err(refusal) => {
                                ctx.shared
                                    .counters
                                    .refused_publishes
                                    .fetch_add(1, Ordering::Relaxed);
                                session
                                    .reject_publish("NetStream.Publish.BadName", &refusal.reason);
                                while let Some(out) = session.poll_transmit() {
                                    conn.write_all(&out).await?;
                                }
                                conn.flush().await?;
                                anyhow::bail!(
                                    "publish refused ({}): {}",
                                    refusal.code as u32,
                                    refusal.reason
                                );
                            }
                        }
                        while let Some(out) = session.poll_transmit() {
                            conn.write_all(&out).await?;
                        }
                    }
                    SessionEvent::Media(m) => {
                        if let Some(s) = &stream {
                            s.borrow_mut().on_media(m, ctx);
                        }
                    }
                    SessionEvent::Unpublished => return Ok(()),
                    _ => {}
                }
            }
            if let Some(s) = &stream
                && let Some(why) = s.borrow().should_close()
            {
                anyhow::bail!("{why}");
            }
        }
    }
    .await;

    if let Some(s) = stream.take() {
        let (sid, reason) = {
            let s = s.borrow();
            (s.sid.clone(), s.close_reason())
        };
        ctx.streams.borrow_mut().remove(&sid);
        s.borrow_mut().finish(reason, &ctx.shared.table);
    }
    result
}

/// Runs admission and, when it passes, registers and starts the stream on this core.
pub fn admit(
    ctx: &Rc<CoreCtx>,
    key: &str,
    host: Option<&str>,
    url: &str,
    peer: Option<SocketAddr>,
    protocol: &'static str,
) -> Result<Rc<RefCell<Stream>>, admission::Refusal> {
    let table = &ctx.shared.table;
    let sid = ctx.new_sid();
    let identity_base = |channel: String, uid: String, app_id: String| StreamIdentity {
        sid: sid.clone(),
        app_id,
        channel,
        uid,
        key: key.to_string(),
        url: url.to_string(),
        domain: host.unwrap_or_default().to_string(),
        protocol,
        peer,
    };
    let admitted = match admission::admit(table.as_ref(), key, host, crate::time::unix_s()) {
        Ok(a) => a,
        Err(refusal) => {
            let id = identity_base(String::new(), String::new(), String::new());
            crate::stream::push_abort(table, &id, &refusal);
            return Err(refusal);
        }
    };
    let id = identity_base(
        admitted.channel.clone(),
        admitted.uid.clone(),
        admitted.app.id.clone(),
    );
    let replace = matches!(
        admitted.app.duplicate_policy,
        sluice_table::DuplicatePolicy::ReplaceOld
    );
    let guard = match ctx.shared.registry.register(
        crate::registry::ChannelUid {
            app_id: admitted.app.id.clone(),
            channel: admitted.channel.clone(),
            uid: admitted.uid.clone(),
        },
        &sid,
        ctx.shared.cfg.max_streams,
        admitted.app.max_streams,
        replace,
    ) {
        Ok(g) => g,
        Err(e) => {
            let refusal = match e {
                crate::registry::RegisterError::Quota => admission::Refusal {
                    code: AbortCode::Quota,
                    reason: "concurrent stream quota exceeded".into(),
                },
                crate::registry::RegisterError::Conflict => admission::Refusal {
                    code: AbortCode::Conflict,
                    reason: "this channel and uid are already being published".into(),
                },
            };
            crate::stream::push_abort(table, &id, &refusal);
            return Err(refusal);
        }
    };
    let max_bitrate = if admitted.app.max_bitrate_kbps != 0 {
        admitted.app.max_bitrate_kbps
    } else {
        ctx.shared.cfg.max_bitrate_kbps
    };
    let stream = Stream::start(id, admitted.template_id.clone(), guard, max_bitrate, ctx);
    let stream = Rc::new(RefCell::new(stream));
    ctx.streams.borrow_mut().insert(sid, stream.clone());
    Ok(stream)
}

/// The host part of an RTMP tcUrl (`rtmp://host[:port]/app`), lowercased.
pub fn host_of_tc_url(tc_url: &str) -> Option<String> {
    let rest = tc_url.split_once("://").map(|(_, r)| r).unwrap_or(tc_url);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::host_of_tc_url;

    #[test]
    fn tc_url_hosts() {
        assert_eq!(
            host_of_tc_url("rtmp://Ingest.Example.com:1935/live").as_deref(),
            Some("ingest.example.com")
        );
        assert_eq!(
            host_of_tc_url("rtmp://127.0.0.1/live").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            host_of_tc_url("rtmp://[::1]:1935/live").as_deref(),
            Some("::1")
        );
        assert_eq!(host_of_tc_url("rtmp:///live"), None);
    }
}
