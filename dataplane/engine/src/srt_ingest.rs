//! SRT ingest: one UDP socket and one task per executor, serving every SRT caller that the
//! kernel hashes to this core.
//!
//! # Sharding
//! Each executor binds `srt_listen` with SO_REUSEPORT (glommio's `UdpSocket::bind` sets it).
//! For UDP the kernel picks the socket of a datagram by hashing its 4-tuple, so every
//! datagram of one caller (one source address and port) reaches the same socket, and so the
//! same core, for the life of the connection: the handshake, the data and the control
//! packets of a connection never need to cross cores. (A caller that changes source port is
//! a new connection for SRT anyway.) The `e2e_srt` tests run several callers at once against
//! a multi-core gateway to check that each one is served end to end; `e2e_srt_sharding`
//! checks that each stream runs on its owner core (next section).
//!
//! # Owner core
//! The connection stays on the core the kernel steered it to (ARQ, ACK and TSBPD need its
//! datagrams, and a UDP flow cannot be handed over like a TCP descriptor), but the stream
//! belongs to its owner core ([`crate::ingest::owner_of`]). When that is another core, the
//! serving core demuxes the TS and sends each [`MediaEvent`] (its payload a reference-counted
//! slice of the receive buffer: nothing is copied) through the executors' SRT feed mesh
//! ([`SrtFeed`]); the owner runs the [`Stream`] (packetizers, GOP cache, forwarders, viewers,
//! stats). The owner's reasons to end the stream (kick, replacement, media timeout, bitrate)
//! come back through a [`FeedLink`]. A full queue to the owner drops the media unit and counts
//! it (`srt_feed_drops`): the serving core never waits on another core per packet.
//!
//! # Per connection
//! The sans-IO pieces of `sluice_proto::srt` do the protocol: the stateless
//! [`Listener`] answers inductions with a SYN cookie (keyed by a random secret per process)
//! and validates conclusions; the engine parses the stream id, runs the same admission as RTMP
//! (`ingest::admit`), accepts with the app's `srt_passphrase` or rejects with an SRT
//! reject reason ([`reject_reason_for`]); a [`Receiver`] per connection then does ACK/ACKACK,
//! NAK, TSBPD and decryption; released payloads go through a [`TsMediaReader`] into the
//! [`Stream`] the RTMP path uses.
//!
//! # Timers
//! While the core serves connections, the task wakes on a [`TICK`] (10 ms, the ACK period) and nothing
//! else: it drains every datagram queued on the socket with non-blocking reads, then
//! services the connections whose timers are due (ACK every 10 ms, periodic NAK, TSBPD
//! release, keep-alive, idle timeout) and checks stream state (kick, mute, media timeout,
//! bitrate). A kicked stream gets an SRT SHUTDOWN. Waking per datagram instead cost a
//! reactor round trip (tens of microseconds on glommio) for every 1316-byte packet; reading
//! on the tick costs each packet one `recvfrom`. What a datagram waits in the socket buffer
//! (at most a tick) is small next to the TSBPD latency every packet is held for anyway; ACK
//! and NAK timing keep the tick's precision, and the ACKACK round trip the sender sees grows
//! by half a tick on average. A drain that reaches [`DRAIN_MAX`] yields and drains again
//! without waiting, and the socket asks for a large receive buffer ([`RECV_BUFFER`]). With no
//! connection the task waits for a datagram instead, so an idle core wakes only every
//! [`IDLE_TICK`].
//!
//! # Bounds
//! [`MAX_CONNECTIONS_PER_CORE`] connections per core, `max_connections_per_ip` per source IP
//! (shared with RTMP), [`MAX_REJECTIONS`] remembered rejections. There is no pending
//! handshake state to bound: the SYN cookie carries it, and it expires after two minutes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::UdpSocket;
use sluice_proto::media::MediaEvent;
use sluice_proto::srt::crypto::{CryptoError, Passphrase};
use sluice_proto::srt::handshake::{
    AcceptError, ConclusionRequest, Listener, ListenerConfig, ListenerEvent, RejectReason,
    peer_ip_bytes,
};
use sluice_proto::srt::packet::{Packet, SocketId};
use sluice_proto::srt::receiver::{CloseReason, MIN_TRANSMIT_BUF, Receiver, ReceiverConfig};
use sluice_proto::ts::media::TsMediaReader;

use crate::admission::{self, AbortCode, Refusal};
use crate::core::CoreCtx;
use crate::ingest::AdmittedStream;
use crate::registry::IpGuard;
use crate::stream::Stream;

/// Capacity of each core-to-core SRT feed queue, in messages (one per media unit). About ten
/// seconds of one 30 fps stream with audio; the owner drains it every scheduling round, so
/// it fills only when the owner core is overloaded. Bounded so a stalled owner costs at most
/// this many queued slices per pair of cores.
pub const FEED_QUEUE: usize = 1024;

/// What the core serving an SRT connection sends to its stream's owner core.
pub enum SrtFeed {
    /// Start the admitted stream; later messages with this `feed` id are its media.
    Start {
        /// Feed id, unique on the sending core.
        feed: u64,
        /// The admitted stream (registry entry included).
        admitted: Box<AdmittedStream>,
        /// Where the owner posts its reason to close the connection.
        link: Arc<FeedLink>,
    },
    /// One demuxed media unit; its payload is a slice of the serving core's receive buffer.
    Media {
        /// Feed id.
        feed: u64,
        /// The unit.
        ev: MediaEvent,
    },
    /// The connection ended; `abort` is the transport's reason, if abnormal (the stream's own
    /// reason, if any, takes precedence on the owner).
    End {
        /// Feed id.
        feed: u64,
        /// Transport-level abort (idle timeout).
        abort: Option<Refusal>,
    },
}

/// The owner core's way back to the core serving the SRT connection of its stream.
#[derive(Default)]
pub struct FeedLink {
    requested: AtomicBool,
    why: Mutex<Option<String>>,
}

impl FeedLink {
    /// Asks the serving core to close the connection (the first reason is kept).
    pub fn request_close(&self, why: String) {
        if self.requested.load(Ordering::Acquire) {
            return;
        }
        let mut g = self.why.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(why);
        }
        self.requested.store(true, Ordering::Release);
    }

    /// The reason the owner asked to close, if it did.
    pub fn close_requested(&self) -> Option<String> {
        if !self.requested.load(Ordering::Acquire) {
            return None;
        }
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs the streams fed by one other core's SRT connections (on their owner, this core).
pub async fn serve_feed(receiver: ConnectedReceiver<SrtFeed>, ctx: Rc<CoreCtx>) {
    let mut feeds: HashMap<u64, Rc<RefCell<Stream>>> = HashMap::new();
    while let Some(msg) = receiver.recv().await {
        match msg {
            SrtFeed::Start {
                feed,
                admitted,
                link,
            } => {
                let stream = crate::ingest::start_stream(&ctx, *admitted);
                let sid = stream.borrow().sid.clone();
                ctx.srt_links.borrow_mut().insert(sid, link);
                feeds.insert(feed, stream);
            }
            SrtFeed::Media { feed, ev } => {
                if let Some(s) = feeds.get(&feed) {
                    s.borrow_mut().on_media(ev, &ctx);
                }
            }
            SrtFeed::End { feed, abort } => {
                if let Some(s) = feeds.remove(&feed) {
                    let sid = s.borrow().sid.clone();
                    ctx.srt_links.borrow_mut().remove(&sid);
                    ctx.streams.borrow_mut().remove(&sid);
                    let reason = s.borrow().close_reason().or(abort);
                    s.borrow_mut().finish(reason, &ctx.shared.table);
                }
            }
        }
    }
    // The sending core is gone (shutdown): end what it fed.
    for (_, s) in feeds {
        let sid = s.borrow().sid.clone();
        ctx.srt_links.borrow_mut().remove(&sid);
        ctx.streams.borrow_mut().remove(&sid);
        s.borrow_mut().finish(None, &ctx.shared.table);
    }
}

/// The owner core's index and the message that starts a stream there.
type RemoteStart = (usize, SrtFeed);

/// Where a connection's media goes.
enum Sink {
    /// The stream runs on this core (its owner, or the only core).
    Local(Rc<RefCell<Stream>>),
    /// The stream runs on core `owner`, fed through the SRT feed mesh.
    Remote {
        owner: usize,
        feed: u64,
        link: Arc<FeedLink>,
    },
}

impl Sink {
    fn should_close(&self) -> Option<String> {
        match self {
            Sink::Local(s) => s.borrow().should_close(),
            Sink::Remote { link, .. } => link.close_requested(),
        }
    }

    fn media(&self, ev: MediaEvent, ctx: &CoreCtx) {
        match self {
            Sink::Local(s) => s.borrow_mut().on_media(ev, ctx),
            Sink::Remote { owner, feed, .. } => {
                let sent = ctx
                    .srt_feed
                    .as_ref()
                    .map(|tx| tx.try_send_to(*owner, SrtFeed::Media { feed: *feed, ev }));
                if !matches!(sent, Some(Ok(()))) {
                    ctx.shared.count(sluice_table::Counter::SrtFeedDrops, 1);
                }
            }
        }
    }
}

/// The service period while the core serves SRT connections: the SRT ACK period (a full ACK
/// every 10 ms), so each tick sends the ACKs that are due. Every wake-up of a glommio reactor
/// costs several `io_uring_enter` calls (timers re-armed, rings flushed); at 5 ms the ticks
/// alone were most of the CPU of a few-stream run (8 streams: 48 to 64 CPU s per GB at 5 ms,
/// 34 to 39 at 10 ms).
pub const TICK: Duration = Duration::from_millis(10);
/// The read timeout while the core serves no SRT connection: nothing is then due but the
/// expiry of remembered rejections, and an idle gateway should not wake 200 times a second
/// (that idle wake-up was most of Sluice's CPU in a 20-stream RTMP run).
pub const IDLE_TICK: Duration = Duration::from_millis(250);
/// Most SRT connections one core serves; further callers are rejected with
/// `SRT_REJX_OVERLOAD`. Guards memory: each connection may buffer up to
/// `receiver::RECV_BUFFER_CAP` packets.
pub const MAX_CONNECTIONS_PER_CORE: usize = 4096;
/// Most rejections remembered (to answer a repeated conclusion identically without
/// re-running admission). Guards memory against a flood of conclusions with valid cookies.
pub const MAX_REJECTIONS: usize = 1024;
/// How long a rejection is remembered.
const REJECTION_TTL: Duration = Duration::from_secs(10);
/// Receive allocation; each datagram is split off it and frozen, so payload slices share it.
const RECV_CHUNK: usize = 256 * 1024;
/// Largest datagram read (above the 1500-byte MTU the listener negotiates).
const MAX_DATAGRAM: usize = 2048;
/// Most datagrams one drain handles before the task lets others run.
const DRAIN_MAX: usize = 512;
/// Requested socket receive buffer: datagrams wait in it for up to a tick. 8 MiB holds
/// about 40 ms of 1 Gbit/s.
const RECV_BUFFER: usize = 8 << 20;
/// Output buffer for handshakes and control packets.
const TX_BUF: usize = 1500;
const _: () = assert!(TX_BUF >= MIN_TRANSMIT_BUF);

/// Makes `rx` hold at least one zeroed datagram slot at its front (allocating a new
/// [`RECV_CHUNK`] when the old one is used up; slices of the old one live on).
fn fresh_slot(rx: &mut BytesMut) {
    if rx.capacity() < MAX_DATAGRAM {
        *rx = BytesMut::with_capacity(RECV_CHUNK);
    }
    // The read APIs want an initialised slice; zeroed once per datagram slot.
    rx.resize(MAX_DATAGRAM, 0);
}

/// Asks for a `bytes` receive buffer on `fd`: forced past `rmem_max` when the process is
/// allowed (CAP_NET_ADMIN), else as much as `rmem_max` grants.
fn set_receive_buffer(fd: std::os::fd::RawFd, bytes: usize) {
    let v = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `v` outlives the call; the length matches its type.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// A socket address from the kernel's representation (IPv4 and IPv6; `None` otherwise).
fn sockaddr_to_std(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The SYN cookie secret, one per process so that whatever core sees a caller's induction
/// and conclusion, the cookie checks out.
fn cookie_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(rand::random)
}

/// The SRT reject reason for an admission refusal (the libsrt codes an encoder shows:
/// `srt_getrejectreason()` returns them as they are here).
pub fn reject_reason_for(code: AbortCode) -> RejectReason {
    match code {
        // Bad, expired, revoked or foreign key: access denied.
        AbortCode::IllegalKey | AbortCode::ExpiredOrDeleted | AbortCode::DomainMismatch => {
            RejectReason::FORBIDDEN
        }
        AbortCode::Quota => RejectReason::OVERLOAD,
        AbortCode::Conflict => RejectReason::CONFLICT,
        AbortCode::BitrateOverLimit | AbortCode::NoMedia | AbortCode::Internal => RejectReason::ISE,
    }
}

/// The reason to send when the passphrases do not agree.
fn reject_reason_for_accept(e: &AcceptError) -> RejectReason {
    match e {
        AcceptError::Crypto(CryptoError::KeyLengthMismatch { .. }) => RejectReason::BADSECRET,
        other => other.reject_reason(),
    }
}

/// Whether an accept failure is the caller's encryption not meeting the app's requirements
/// (rather than a malformed or unsupported handshake).
fn is_encryption_refusal(e: &AcceptError) -> bool {
    matches!(
        e,
        AcceptError::Unsecure
            | AcceptError::Crypto(CryptoError::BadSecret | CryptoError::KeyLengthMismatch { .. })
    )
}

/// The cookie's notion of the caller: IP octets and port.
fn cookie_addr(peer: SocketAddr) -> Vec<u8> {
    let mut v = match peer.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&peer.port().to_be_bytes());
    v
}

struct Conn {
    peer: SocketAddr,
    peer_socket: SocketId,
    receiver: Receiver,
    reader: TsMediaReader,
    sink: Sink,
    /// The conclusion response, resent if the caller repeats its conclusion.
    response: Vec<u8>,
    _ip: IpGuard,
}

struct Core {
    ctx: Rc<CoreCtx>,
    socket: UdpSocket,
    listener: Listener,
    conns: HashMap<u32, Conn>,
    by_peer: HashMap<(SocketAddr, u32), u32>,
    rejected: HashMap<(SocketAddr, u32), (Vec<u8>, Instant)>,
    tx: Vec<u8>,
    /// Feed id sequence of this core.
    next_feed: u64,
}

/// Binds the SRT socket of this core and serves it forever.
pub async fn serve(ctx: Rc<CoreCtx>) {
    let addr = ctx.shared.cfg.srt_listen;
    let socket = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%addr, error = %e, "binding the SRT listener failed");
            return;
        }
    };
    if ctx.id == 0 {
        tracing::info!(%addr, "SRT listening");
    }
    let listener = Listener::new(ListenerConfig {
        cookie_secret: cookie_secret().to_vec(),
        listener_socket: SocketId(rand::random::<u32>() & 0x3fff_ffff | 1),
        ..ListenerConfig::default()
    });
    let mut core = Core {
        ctx,
        socket,
        listener,
        conns: HashMap::new(),
        by_peer: HashMap::new(),
        rejected: HashMap::new(),
        tx: vec![0; TX_BUF],
        next_feed: 0,
    };
    core.run().await;
}

impl Core {
    async fn run(&mut self) {
        let mut rx = BytesMut::new();
        let mut next_tick = Instant::now() + TICK;
        // Room for bursts between ticks (the kernel doubles it and caps it at `rmem_max`
        // unless the process may force it).
        set_receive_buffer(self.socket.as_raw_fd(), RECV_BUFFER);
        let _ = self.socket.set_read_timeout(Some(IDLE_TICK));
        let mut last_drain = 0;
        loop {
            if self.conns.is_empty() {
                // Nothing to serve: sleep until a datagram (a handshake) comes, or the idle
                // tick expires remembered rejections.
                fresh_slot(&mut rx);
                match self.socket.recv_from(&mut rx[..MAX_DATAGRAM]).await {
                    Ok((n, from)) => {
                        rx.truncate(n);
                        let datagram = rx.split().freeze();
                        self.on_datagram(datagram, from).await;
                    }
                    Err(e) => {
                        let e = std::io::Error::from(e);
                        rx.clear();
                        // A timeout is the tick; anything else is logged and paced.
                        if !matches!(
                            e.kind(),
                            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                        ) {
                            tracing::warn!(error = %e, "SRT receive failed");
                            glommio::timer::sleep(TICK).await;
                        }
                    }
                }
            } else if last_drain < DRAIN_MAX {
                // Serving: wake on the tick only, and take every datagram that came
                // meanwhile (see "Timers" above).
                let wait = next_tick.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    glommio::timer::sleep(wait).await;
                }
            } else {
                // The last drain stopped at its cap: more is queued. Let other tasks run.
                futures_lite::future::yield_now().await;
            }
            last_drain = self.drain(&mut rx).await;
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                self.service_all(now).await;
            }
        }
    }

    /// Handles the datagrams queued on the socket, up to [`DRAIN_MAX`], with non-blocking
    /// reads. Returns how many it handled.
    async fn drain(&mut self, rx: &mut BytesMut) -> usize {
        let fd = self.socket.as_raw_fd();
        let mut handled = 0;
        while handled < DRAIN_MAX {
            fresh_slot(rx);
            // SAFETY: `addr` and `len` describe a writable sockaddr_storage; the buffer is
            // MAX_DATAGRAM initialised, writable bytes owned by `rx`.
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut addr_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    rx.as_mut_ptr().cast(),
                    MAX_DATAGRAM,
                    libc::MSG_DONTWAIT,
                    (&mut addr as *mut libc::sockaddr_storage).cast(),
                    &mut addr_len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                rx.clear();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock => break,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => {
                        tracing::warn!(error = %e, "SRT receive failed");
                        break;
                    }
                }
            }
            handled += 1;
            let Some(from) = sockaddr_to_std(&addr) else {
                rx.clear();
                continue;
            };
            rx.truncate(n as usize);
            let datagram = rx.split().freeze();
            self.on_datagram(datagram, from).await;
        }
        handled
    }

    async fn send(&self, len: usize, to: SocketAddr) {
        if let Some(b) = self.tx.get(..len) {
            send_datagram(&self.socket, b, to).await;
        }
    }

    async fn on_datagram(&mut self, datagram: Bytes, from: SocketAddr) {
        let Ok(packet) = Packet::parse(datagram) else {
            return;
        };
        let dest = packet.dest();
        if dest.0 == 0 {
            if let Packet::Control(c) = &packet {
                self.on_handshake(c, from).await;
            }
            return;
        }
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(&dest.0) else {
            return;
        };
        if conn.peer != from {
            // Someone else guessing socket ids: ignore.
            return;
        }
        conn.receiver.handle_packet(now, packet);
        self.service(dest.0, now).await;
    }

    async fn on_handshake(
        &mut self,
        c: &sluice_proto::srt::packet::ControlPacket,
        from: SocketAddr,
    ) {
        let minute = (crate::time::unix_s() / 60) as u32;
        let ev = self.listener.handle(
            c,
            &cookie_addr(from),
            peer_ip_bytes(from.ip()),
            minute,
            &mut self.tx,
        );
        match ev {
            Ok(ListenerEvent::InductionReply(n)) => self.send(n, from).await,
            Ok(ListenerEvent::Rejected { error, reason, len }) => {
                self.ctx
                    .shared
                    .count(sluice_table::Counter::ProtocolErrors, 1);
                tracing::info!(peer = %from, %error, reason = reason.0, "SRT handshake rejected");
                self.send(len, from).await;
            }
            Ok(ListenerEvent::Conclusion(req)) => self.on_conclusion(&req, from).await,
            Err(e) => {
                self.ctx
                    .shared
                    .count(sluice_table::Counter::ProtocolErrors, 1);
                tracing::debug!(peer = %from, error = %e, "SRT handshake dropped");
            }
        }
    }

    async fn on_conclusion(&mut self, req: &ConclusionRequest, from: SocketAddr) {
        let key = (from, req.handshake.socket_id.0);
        // A repeated conclusion (our response was lost): answer the same way again.
        if let Some(local) = self.by_peer.get(&key)
            && let Some(conn) = self.conns.get(local)
        {
            let resp = conn.response.clone();
            send_datagram(&self.socket, &resp, from).await;
            return;
        }
        let now = Instant::now();
        if let Some((resp, at)) = self.rejected.get(&key)
            && now.duration_since(*at) < REJECTION_TTL
        {
            let resp = resp.clone();
            send_datagram(&self.socket, &resp, from).await;
            return;
        }
        match self.admit(req, from, now) {
            Ok((local, start)) => {
                if let Some((owner, msg)) = start {
                    // Before the caller hears of the acceptance, so the owner has the stream
                    // before its first media unit (the queue is FIFO per pair of cores).
                    let sent = match self.ctx.srt_feed.as_ref() {
                        Some(tx) => tx.send_to(owner, msg).await.is_ok(),
                        None => false,
                    };
                    if !sent {
                        tracing::warn!(owner, "owner core unreachable; SRT caller dropped");
                        if let Some(conn) = self.conns.remove(&local) {
                            self.by_peer.remove(&(conn.peer, conn.peer_socket.0));
                        }
                        return;
                    }
                }
                if let Some(conn) = self.conns.get(&local) {
                    let resp = conn.response.clone();
                    send_datagram(&self.socket, &resp, from).await;
                }
            }
            Err((reason, why)) => {
                tracing::info!(peer = %from, reason = reason.0, why = %why, "SRT caller rejected");
                let Ok(n) = self.listener.reject(req, reason, &mut self.tx) else {
                    return;
                };
                let resp = self.tx.get(..n).unwrap_or_default().to_vec();
                if self.rejected.len() >= MAX_REJECTIONS {
                    self.rejected
                        .retain(|_, (_, at)| now.duration_since(*at) < REJECTION_TTL);
                }
                if self.rejected.len() < MAX_REJECTIONS {
                    self.rejected.insert(key, (resp.clone(), now));
                }
                send_datagram(&self.socket, &resp, from).await;
            }
        }
    }

    /// Decides on a conclusion; on success the connection is in `conns` under the returned
    /// local socket id with its response ready, and, when its stream belongs to another core,
    /// the message that starts it there comes with the owner's index.
    fn admit(
        &mut self,
        req: &ConclusionRequest,
        from: SocketAddr,
        now: Instant,
    ) -> Result<(u32, Option<RemoteStart>), (RejectReason, String)> {
        let sid = req
            .stream_id()
            .map_err(|e| (RejectReason::BAD_REQUEST, format!("bad stream id: {e}")))?;
        // An ingest serves no player: only an explicit `m=request` is refused; a missing `m=`
        // (the convention's default is request) publishes, as the documented URL
        // `#!::r=KEY,h=HOST` does (see `sluice_proto::srt::streamid`).
        if !sid.is_publish() {
            return Err((
                RejectReason::BAD_MODE,
                "this gateway only ingests (m=publish)".into(),
            ));
        }
        if self.conns.len() >= MAX_CONNECTIONS_PER_CORE {
            return Err((RejectReason::OVERLOAD, "too many SRT connections".into()));
        }
        let shared = &self.ctx.shared;
        let ip_guard = shared
            .registry
            .connect_ip(from.ip(), shared.cfg.max_connections_per_ip)
            .ok_or_else(|| {
                // Counted like RTMP's per-IP refusals, so one metric covers both protocols.
                shared.count(sluice_table::Counter::RefusedPerIp, 1);
                (
                    RejectReason::OVERLOAD,
                    "too many connections from this address".to_string(),
                )
            })?;
        let host = sid.host.as_ref().map(|h| h.to_ascii_lowercase());
        // Find the app first (without registering anything), so a passphrase mismatch is
        // refused before the stream exists.
        let pre = admission::admit(
            shared.table.as_ref(),
            &sid.key,
            host.as_deref(),
            crate::time::unix_s(),
        );
        let pre = match pre {
            Ok(a) => a,
            Err(_) => {
                // The full admission records the documented aborted event (attributed to the
                // app of the `h=` host, or the only app) and gives the refusal.
                let url = format!("{}/{}", host.clone().unwrap_or_default(), sid.key);
                return match crate::ingest::admit(
                    &self.ctx,
                    &sid.key,
                    host.as_deref(),
                    &url,
                    Some(from),
                    "srt",
                ) {
                    // The table changed in between: refuse this attempt, the caller retries.
                    Ok(_) => Err((RejectReason::ISE, "admission raced a table update".into())),
                    Err(refusal) => Err((reject_reason_for(refusal.code), refusal.reason)),
                };
            }
        };
        let app = &pre.app;
        let passphrase = match app.srt_passphrase.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(Passphrase::new(p.as_bytes()).map_err(|e| {
                (
                    RejectReason::ISE,
                    format!("the app's srt_passphrase is unusable: {e}"),
                )
            })?),
            None => None,
        };
        let local = loop {
            let id = rand::random::<u32>() & 0x3fff_ffff;
            if id != 0 && !self.conns.contains_key(&id) {
                break id;
            }
        };
        let url = format!("{}/{}", host.clone().unwrap_or_default(), sid.key);
        let accepted = match self.listener.accept(
            req,
            SocketId(local),
            passphrase.as_ref().map(|p| p.as_bytes()),
            usize::from(app.srt_pbkeylen),
            &mut self.tx,
        ) {
            Ok(a) => a,
            Err(e) => {
                let reason = reject_reason_for_accept(&e);
                if is_encryption_refusal(&e) {
                    // The key was good; the caller's encryption does not meet the app's
                    // requirements: an aborted event under the key's channel and uid.
                    shared.count(sluice_table::Counter::SrtRefusedEncryption, 1);
                    let id = crate::ingest::refused_identity(
                        &self.ctx,
                        &pre,
                        &sid.key,
                        host.as_deref(),
                        &url,
                        Some(from),
                        "srt",
                    );
                    let refusal = Refusal {
                        code: AbortCode::DomainMismatch,
                        reason: format!("SRT encryption refused: {e}"),
                    };
                    crate::ingest::record_refusal(&self.ctx, &id, &refusal);
                }
                return Err((reason, e.to_string()));
            }
        };
        let response = self.tx.get(..accepted.len).unwrap_or_default().to_vec();
        let admitted = crate::ingest::admit(
            &self.ctx,
            &sid.key,
            host.as_deref(),
            &url,
            Some(from),
            "srt",
        )
        .map_err(|r| (reject_reason_for(r.code), r.reason))?;
        // The connection stays here (the kernel steers its datagrams to this core's socket);
        // the stream runs on its owner core, fed over the mesh when that is another core.
        let owner = admitted.owner(self.ctx.mesh_peers);
        let stream_sid = admitted.identity.sid.clone();
        let (sink, start) = if owner != self.ctx.mesh_id && self.ctx.srt_feed.is_some() {
            let feed = self.next_feed;
            self.next_feed += 1;
            let link = Arc::new(FeedLink::default());
            let msg = SrtFeed::Start {
                feed,
                admitted: Box::new(admitted),
                link: link.clone(),
            };
            (Sink::Remote { owner, feed, link }, Some((owner, msg)))
        } else {
            (
                Sink::Local(crate::ingest::start_stream(&self.ctx, admitted)),
                None,
            )
        };
        self.ctx
            .shared
            .count(sluice_table::Counter::SrtConnections, 1);
        let rcfg = ReceiverConfig::from_accepted(&accepted, passphrase);
        tracing::info!(peer = %from, latency_ms = accepted.latency.as_millis() as u64,
            encrypted = accepted.keys.is_some(), core = self.ctx.mesh_id, owner, sid = %stream_sid, "SRT caller accepted");
        self.conns.insert(
            local,
            Conn {
                peer: from,
                peer_socket: accepted.peer_socket,
                receiver: Receiver::new(rcfg, now),
                reader: TsMediaReader::new(),
                sink,
                response,
                _ip: ip_guard,
            },
        );
        self.by_peer.insert((from, accepted.peer_socket.0), local);
        Ok((local, start))
    }

    fn drop_stream(&self, s: &Rc<RefCell<Stream>>, abort: Option<admission::Refusal>) {
        let sid = s.borrow().sid.clone();
        self.ctx.streams.borrow_mut().remove(&sid);
        s.borrow_mut().finish(abort, &self.ctx.shared.table);
    }

    async fn service_all(&mut self, now: Instant) {
        let ids: Vec<u32> = self.conns.keys().copied().collect();
        for id in ids {
            self.service(id, now).await;
        }
        if !self.rejected.is_empty() {
            self.rejected
                .retain(|_, (_, at)| now.duration_since(*at) < REJECTION_TTL);
        }
    }

    /// Sends what the receiver has to send, delivers what is due, and closes the connection
    /// when it ended or its stream must stop.
    async fn service(&mut self, id: u32, now: Instant) {
        // Split borrows: the connection, the socket and the transmit buffer are used together.
        let Core {
            ctx,
            socket,
            conns,
            tx,
            ..
        } = self;
        let Some(conn) = conns.get_mut(&id) else {
            return;
        };
        // Kick, replacement, media timeout, bitrate: the stream decides (on its owner core).
        if conn.receiver.closed().is_none()
            && let Some(why) = conn.sink.should_close()
        {
            tracing::info!(peer = %conn.peer, reason = %why, "closing SRT connection");
            conn.receiver.close();
        }
        while let Some(payload) = conn.receiver.poll_output(now) {
            conn.reader.push(payload);
            while let Some(ev) = conn.reader.poll() {
                conn.sink.media(ev, ctx);
            }
        }
        while let Some(n) = conn.receiver.poll_transmit(now, tx) {
            if let Some(b) = tx.get(..n) {
                send_datagram(socket, b, conn.peer).await;
            }
        }
        if let Some(reason) = conn.receiver.closed() {
            self.close(id, reason).await;
        }
    }

    async fn close(&mut self, id: u32, reason: CloseReason) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        self.by_peer.remove(&(conn.peer, conn.peer_socket.0));
        if reason == CloseReason::PeerShutdown {
            conn.reader.flush();
            while let Some(ev) = conn.reader.poll() {
                conn.sink.media(ev, &self.ctx);
            }
        }
        let stats = *conn.receiver.stats();
        tracing::info!(peer = %conn.peer, ?reason, received = stats.packets_received,
            lost = stats.lost, retransmitted = stats.retransmitted,
            dropped_too_late = stats.dropped_too_late, "SRT connection closed");
        let transport = (reason == CloseReason::IdleTimeout).then(|| admission::Refusal {
            code: AbortCode::NoMedia,
            reason: "SRT peer went silent (idle timeout)".into(),
        });
        match conn.sink {
            Sink::Local(stream) => {
                let abort = stream.borrow().close_reason().or(transport);
                self.drop_stream(&stream, abort);
            }
            Sink::Remote { owner, feed, .. } => {
                // Waits for room if the queue is full: the end of a stream must not be lost
                // (it releases the stream's registry entry and stats slot on the owner).
                let end = SrtFeed::End {
                    feed,
                    abort: transport,
                };
                if let Some(tx) = self.ctx.srt_feed.as_ref()
                    && tx.send_to(owner, end).await.is_err()
                {
                    tracing::warn!(owner, "owner core unreachable; SRT stream end lost");
                }
            }
        }
    }
}

/// Sends one SRT datagram: a plain non-blocking `sendto` (a control packet goes out at once,
/// with no io_uring submission and completion of its own), falling back to glommio's
/// asynchronous send only when the socket buffer is full.
async fn send_datagram(socket: &UdpSocket, buf: &[u8], to: SocketAddr) {
    let addr = socket2::SockAddr::from(to);
    // SAFETY: `buf` and `addr` are valid for the duration of the call.
    let n = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            addr.as_ptr().cast(),
            addr.len(),
        )
    };
    if n >= 0 {
        return;
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        if let Err(e) = socket.send_to(buf, to).await {
            tracing::debug!(%to, error = %e, "SRT send failed");
        }
    } else {
        tracing::debug!(%to, error = %e, "SRT send failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_srt_reject_codes() {
        assert_eq!(reject_reason_for(AbortCode::IllegalKey).0, 1403);
        assert_eq!(reject_reason_for(AbortCode::ExpiredOrDeleted).0, 1403);
        assert_eq!(reject_reason_for(AbortCode::DomainMismatch).0, 1403);
        assert_eq!(reject_reason_for(AbortCode::Quota).0, 1402);
        assert_eq!(reject_reason_for(AbortCode::Conflict).0, 1409);
        assert_eq!(reject_reason_for(AbortCode::Internal).0, 1500);
        assert_eq!(
            reject_reason_for_accept(&AcceptError::Unsecure),
            RejectReason::UNSECURE
        );
        assert_eq!(
            reject_reason_for_accept(&AcceptError::Crypto(CryptoError::BadSecret)),
            RejectReason::BADSECRET
        );
        let short_key = AcceptError::Crypto(CryptoError::KeyLengthMismatch {
            configured: 32,
            peer: 16,
        });
        assert_eq!(
            reject_reason_for_accept(&short_key),
            RejectReason::BADSECRET
        );
        assert!(is_encryption_refusal(&short_key));
        assert!(is_encryption_refusal(&AcceptError::Unsecure));
        assert!(!is_encryption_refusal(&AcceptError::Crypto(
            CryptoError::Malformed("x")
        )));
    }

    #[test]
    fn cookie_address_includes_port() {
        let a = cookie_addr("10.0.0.1:5000".parse().unwrap());
        let b = cookie_addr("10.0.0.1:5001".parse().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn kernel_addresses_convert_to_std() {
        for text in ["192.0.2.7:6001", "[2001:db8::5]:40000", "[fe80::1%3]:9"] {
            let want: SocketAddr = text.parse().unwrap();
            let storage = socket2::SockAddr::from(want).as_storage();
            assert_eq!(sockaddr_to_std(&storage), Some(want), "{text}");
        }
        // SAFETY: an all-zero sockaddr_storage is valid (family AF_UNSPEC).
        let unspec: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(sockaddr_to_std(&unspec), None);
    }
}
