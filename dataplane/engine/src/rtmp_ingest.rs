//! RTMP ingest: one task per TCP connection.
//!
//! Bytes are read into the core's shared receive arena ([`crate::recv`]); each read comes out
//! as a frozen `Bytes` that the sans-IO session (`sluice_proto::rtmp`) slices into messages
//! and NAL units without copying. An arena chunk is freed when the last slice referring to it
//! is dropped (after the packetizer and the GOP cache are done with it). A connection holds
//! no receive buffer of its own while it waits.
//!
//! A connection arrives on whichever core the kernel picked. Once its publish is admitted, the
//! stream's owner core is known (see [`crate::ingest::owner_of`]); when that is another core,
//! the connection moves there: its socket (duplicated, then the original closed), the session
//! state and any bytes already read travel through the executors' channel mesh, and the owner
//! carries on reading. From then on everything about the stream happens on one core.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use sluice_proto::rtmp::session::{ServerSession, SessionConfig, SessionEvent};

use crate::core::CoreCtx;
use crate::ingest::{self, AdmittedStream};
use crate::readiness::Registration;
use crate::registry::IpGuard;
use crate::stream::Stream;

/// How often a blocked read wakes up to check the handshake deadline, until the publish is
/// admitted. A publishing connection reads without a timeout: arming and cancelling a timer
/// around every read cost more than the read itself; housekeeping shuts the socket down when
/// the stream must close (`Stream::signal_close`).
const READ_POLL: Duration = Duration::from_millis(250);

/// An RTMP connection moving to the core that owns its stream.
pub struct Handoff {
    fd: OwnedFd,
    session: ServerSession,
    peer: Option<SocketAddr>,
    ip_guard: IpGuard,
    admitted: AdmittedStream,
}

/// Connection state that moves with a handoff.
struct Conn {
    /// Set once publishing: the socket's place in the core's epoll set (see
    /// [`crate::readiness`]). Declared before `conn` so it drops first, while the socket is
    /// still open.
    reg: Option<Registration>,
    conn: TcpStream,
    session: ServerSession,
    peer: Option<SocketAddr>,
    ip_guard: IpGuard,
}

/// Serves one RTMP connection accepted on this core.
pub async fn serve(conn: TcpStream, ctx: Rc<CoreCtx>) {
    let peer = conn.peer_addr().ok();
    let Some(ip_guard) = peer.and_then(|p| {
        ctx.shared
            .registry
            .connect_ip(p.ip(), ctx.shared.cfg.max_connections_per_ip)
    }) else {
        ctx.shared.count(sluice_table::Counter::RefusedPerIp, 1);
        tracing::warn!(
            ?peer,
            "refusing RTMP connection: too many from this address"
        );
        return;
    };
    let _ = conn.set_nodelay(true);
    if let Err(e) = conn.set_read_timeout(Some(READ_POLL)) {
        tracing::warn!(error = %e, "set_read_timeout failed");
        return;
    }
    let mut random = [0u8; 1528];
    for chunk in random.chunks_mut(8) {
        let r: u64 = rand::random();
        chunk.copy_from_slice(&r.to_le_bytes()[..chunk.len()]);
    }
    let session = ServerSession::new(SessionConfig::default(), random);
    let c = Conn {
        reg: None,
        conn,
        session,
        peer,
        ip_guard,
    };
    drive(c, None, &ctx).await;
}

/// Resumes a connection handed over by another core, as the owner of its stream.
pub async fn resume(h: Handoff, ctx: Rc<CoreCtx>) {
    // SAFETY: the descriptor was duplicated for this handoff and is owned by nothing else.
    let conn = unsafe { TcpStream::from_raw_fd(h.fd.into_raw_fd()) };
    let stream = ingest::start_stream(&ctx, h.admitted);
    let reg = publishing(&conn, &stream, &ctx);
    let c = Conn {
        reg,
        conn,
        session: h.session,
        peer: h.peer,
        ip_guard: h.ip_guard,
    };
    drive(c, Some(stream), &ctx).await;
}

/// What the read loop ended with.
enum Exit {
    /// The connection is finished (closed, refused or failed), with the reason if abnormal.
    Closed(anyhow::Result<()>),
    /// The publish was admitted for a stream owned by another core.
    Move(Box<AdmittedStream>, usize),
}

async fn drive(mut c: Conn, mut stream: Option<Rc<RefCell<Stream>>>, ctx: &Rc<CoreCtx>) {
    let exit = pump(&mut c, &mut stream, ctx).await;
    if let Some(s) = stream.take() {
        let (sid, reason) = {
            let s = s.borrow();
            (s.sid.clone(), s.close_reason())
        };
        ctx.streams.borrow_mut().remove(&sid);
        s.borrow_mut().finish(reason, &ctx.shared.table);
    }
    match exit {
        Exit::Closed(Ok(())) => {}
        Exit::Closed(Err(e)) => {
            tracing::info!(peer = ?c.peer, reason = %e, "RTMP connection closed")
        }
        Exit::Move(admitted, owner) => {
            let Some(tx) = ctx.handoff.as_ref() else {
                return;
            };
            // The duplicate keeps the socket open when this core's handle is dropped; no
            // read is in flight on it, so the owner core sees every byte the session has not.
            let fd = match rustix_dup(c.conn.as_raw_fd()) {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!(error = %e, "dup failed; dropping connection");
                    return;
                }
            };
            let Conn {
                reg,
                conn,
                session,
                peer,
                ip_guard,
            } = c;
            drop(reg);
            drop(conn);
            let h = Handoff {
                fd,
                session,
                peer,
                ip_guard,
                admitted: *admitted,
            };
            if tx.send_to(owner, h).await.is_err() {
                tracing::warn!(owner, "owner core unreachable; connection dropped");
            }
        }
    }
}

fn rustix_dup(fd: std::os::fd::RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: `fd` is a valid open descriptor for the duration of this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned()
}

async fn pump(c: &mut Conn, stream: &mut Option<Rc<RefCell<Stream>>>, ctx: &Rc<CoreCtx>) -> Exit {
    let handshake_deadline =
        Instant::now() + Duration::from_millis(ctx.shared.cfg.handshake_timeout_ms);
    // Events may already be queued (a handoff carries the session as it was).
    if let Some(exit) = handle_events(c, stream, ctx).await {
        return exit;
    }
    loop {
        let read = match c.reg.as_ref() {
            Some(reg) => reg.read_stamped(&ctx.recv).await,
            None => ctx.recv.read(&mut c.conn).await.map(|d| (d, None)),
        };
        let (read, arrival_ns) = match read {
            Ok((d, at)) => (Ok(d), at),
            Err(e) => (Err(e), None),
        };
        let data = match read {
            Ok(d) if d.is_empty() => {
                // Housekeeping shuts the socket down to end a stream: say why.
                if let Some(why) = stream.as_ref().and_then(|s| s.borrow().should_close()) {
                    return Exit::Closed(Err(anyhow::anyhow!("{why}")));
                }
                return Exit::Closed(Ok(()));
            }
            Ok(d) => d,
            Err(e)
                if e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                if let Some(s) = stream.as_ref() {
                    if let Some(why) = s.borrow().should_close() {
                        return Exit::Closed(Err(anyhow::anyhow!("{why}")));
                    }
                } else if Instant::now() > handshake_deadline {
                    ctx.shared
                        .count(sluice_table::Counter::HandshakeTimeouts, 1);
                    return Exit::Closed(Err(anyhow::anyhow!(
                        "handshake/publish not completed in time"
                    )));
                }
                continue;
            }
            Err(e) => return Exit::Closed(Err(e.into())),
        };
        if let Err(e) = c.session.handle_input(data) {
            ctx.shared.count(sluice_table::Counter::ProtocolErrors, 1);
            return Exit::Closed(Err(anyhow::anyhow!("protocol error from peer: {e}")));
        }
        // Media units completed by this read arrived when its last segment did; the stream
        // records their latency at egress.
        if let Some(s) = stream.as_ref() {
            s.borrow_mut().ingest_arrival_ns = arrival_ns;
        }
        if let Some(exit) = handle_events(c, stream, ctx).await {
            return exit;
        }
        if let Some(s) = stream.as_ref()
            && let Some(why) = s.borrow().should_close()
        {
            return Exit::Closed(Err(anyhow::anyhow!("{why}")));
        }
    }
}

/// The connection now feeds `stream`: reads wait without a timeout, in the core's epoll set
/// (glommio's per-read poll if the socket cannot join it), and the stream knows the socket
/// to shut down when it must close.
fn publishing(
    conn: &TcpStream,
    stream: &Rc<RefCell<Stream>>,
    ctx: &CoreCtx,
) -> Option<Registration> {
    if let Err(e) = conn.set_read_timeout(None) {
        tracing::warn!(error = %e, "set_read_timeout failed");
    }
    stream.borrow_mut().set_ingest_fd(conn.as_raw_fd());
    if let Err(e) = crate::latency::enable_rx_timestamps(conn.as_raw_fd()) {
        tracing::debug!(error = %e, "no receive timestamps: ingest latency not recorded");
    }
    match ctx.readiness.register(conn.as_raw_fd()) {
        Ok(reg) => Some(reg),
        Err(e) => {
            tracing::warn!(error = %e, "epoll registration failed; reading through glommio");
            None
        }
    }
}

async fn flush(c: &mut Conn) -> std::io::Result<()> {
    while let Some(out) = c.session.poll_transmit() {
        c.conn.write_all(&out).await?;
    }
    Ok(())
}

/// Sends what the session wants to send and acts on its events. `Some` ends the loop.
async fn handle_events(
    c: &mut Conn,
    stream: &mut Option<Rc<RefCell<Stream>>>,
    ctx: &Rc<CoreCtx>,
) -> Option<Exit> {
    if let Err(e) = flush(c).await {
        return Some(Exit::Closed(Err(e.into())));
    }
    while let Some(ev) = c.session.poll_event() {
        match ev {
            SessionEvent::PublishRequested {
                stream_key,
                app,
                tc_url,
                ..
            } => {
                if stream.is_some() {
                    return Some(Exit::Closed(Err(anyhow::anyhow!(
                        "second publish on one connection"
                    ))));
                }
                let host = tc_url.as_deref().and_then(host_of_tc_url);
                let url = format!(
                    "{}/{}/{}",
                    host.clone().unwrap_or_default(),
                    app,
                    stream_key
                );
                match ingest::admit(ctx, &stream_key, host.as_deref(), &url, c.peer, "rtmp") {
                    Ok(admitted) => {
                        c.session.accept_publish();
                        if let Err(e) = flush(c).await {
                            return Some(Exit::Closed(Err(e.into())));
                        }
                        let owner = admitted.owner(ctx.mesh_peers);
                        if owner != ctx.mesh_id && ctx.handoff.is_some() {
                            return Some(Exit::Move(Box::new(admitted), owner));
                        }
                        let s = ingest::start_stream(ctx, admitted);
                        c.reg = publishing(&c.conn, &s, ctx);
                        *stream = Some(s);
                    }
                    Err(refusal) => {
                        c.session
                            .reject_publish("NetStream.Publish.BadName", &refusal.reason);
                        let _ = flush(c).await;
                        let _ = c.conn.flush().await;
                        return Some(Exit::Closed(Err(anyhow::anyhow!(
                            "publish refused ({}): {}",
                            refusal.code as u32,
                            refusal.reason
                        ))));
                    }
                }
            }
            SessionEvent::Media(m) => {
                if let Some(s) = stream.as_ref() {
                    s.borrow_mut().on_media(m, ctx);
                }
            }
            SessionEvent::Unpublished => return Some(Exit::Closed(Ok(()))),
            _ => {}
        }
    }
    if let Err(e) = flush(c).await {
        return Some(Exit::Closed(Err(e.into())));
    }
    None
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
