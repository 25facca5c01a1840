//! WebRTC egress for WHEP viewers (RFC 9725, WebRTC-HTTP Egress Protocol).
//!
//! Steering: each core binds its own UDP socket (`webrtc_port_base + core`, or an ephemeral
//! port) and advertises it as the only ICE host candidate of the sessions it owns, so every
//! datagram of a viewer reaches the core that holds its state; no cross-core hop per packet.
//! A viewer's session lives on the core that owns the stream it watches (the directory says
//! which), and the HTTP request that creates it is forwarded there through a per-core inbox.
//!
//! The WebRTC stack is str0m in RTP mode with ICE-lite: sans-IO, so this module owns the
//! sockets and the clock, and feeds it datagrams and timeouts. See `docs/webrtc.md`.

pub mod directory;
pub mod viewer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_proto::media::{AudioCodec, VideoCodec};
use sluice_proto::rtp::RtpPacket;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, IceCreds, Input, Output, Rtc};
use thiserror::Error;

use crate::config::DataplaneConfig;
use crate::core::CoreCtx;
use crate::packetize::Track;
use directory::{ChannelKey, Directory};
use viewer::{Offered, SendCodec, TrackOut, Viewer, choose_pt};

/// Largest SDP offer accepted, in bytes: guards the HTTP body buffer and the SDP parser
/// (a browser offer for a few tracks is 4 to 10 KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// Largest datagram read from the WebRTC socket (ICE, DTLS and RTCP from viewers are small).
const RECV_BUFFER: usize = 2048;
/// How often the WebRTC socket wakes up with nothing received, to run timers.
const TICK: Duration = Duration::from_millis(10);
/// The socket's read timeout while this core has no viewer session.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// Frames queued from other cores' streams to one core's remote viewers before new ones are
/// dropped and counted (a stalled core must not hold an unbounded backlog of packets).
const REMOTE_MEDIA_QUEUE: usize = 1024;
/// How often a core checks that the remote streams its viewers watch are still live.
const REMOTE_LIVENESS_CHECK: Duration = Duration::from_secs(1);
/// How long an HTTP task waits for the owner core to answer.
const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Keyframe requests are answered at most once per GOP duration per viewer (each answer
/// resends the cached GOP, so answering more often would only repeat the same packets);
/// this is the interval when the GOP duration is not known yet, and the bounds applied to it.
const PLI_ANSWER_DEFAULT: Duration = Duration::from_millis(1000);
const PLI_ANSWER_MIN: Duration = Duration::from_millis(250);
const PLI_ANSWER_MAX: Duration = Duration::from_secs(10);

/// WebRTC counters, gateway-wide.
#[derive(Default, Debug)]
pub struct WebrtcCounters {
    /// Sessions created.
    pub sessions_created: AtomicU64,
    /// Sessions ended by DELETE.
    pub sessions_deleted: AtomicU64,
    /// Sessions reaped: ICE consent lost, never connected, or DTLS closed.
    pub sessions_timed_out: AtomicU64,
    /// Offers refused for the per-channel viewer limit.
    pub refused_viewer_limit: AtomicU64,
    /// Offers that were not valid SDP.
    pub bad_offers: AtomicU64,
    /// Offers with no codec Sluice can send.
    pub no_common_codec: AtomicU64,
    /// Datagrams from unknown sources or that no session accepted (STUN floods, garbage).
    pub unknown_datagrams: AtomicU64,
    /// Sessions that failed inside the WebRTC stack (DTLS garbage, protocol errors).
    pub rtc_errors: AtomicU64,
    /// Datagrams dropped because the socket buffer was full.
    pub send_drops: AtomicU64,
    /// Keyframe requests (PLI/FIR) received.
    pub keyframe_requests: AtomicU64,
    /// Keyframe requests answered by resending the cached GOP.
    pub keyframe_answers: AtomicU64,
    /// Keyframe requests not answered: the viewer's last answer is less than a GOP old.
    pub keyframe_requests_limited: AtomicU64,
    /// Frames forwarded to another core for its viewers of a channel-level session.
    pub remote_frames: AtomicU64,
    /// Frames for another core dropped because its queue was full.
    pub remote_frame_drops: AtomicU64,
}

/// A request forwarded to the core that owns a stream.
pub enum CoreRequest {
    /// Create a session for an offer.
    Offer {
        /// What to watch.
        target: Target,
        /// SDP offer text.
        offer: String,
        /// Where the answer goes.
        reply: flume::Sender<Result<Answer, WhepError>>,
    },
    /// A core starts (`on`) or stops forwarding a stream's packets to core `core`, whose
    /// channel-level viewers watch it.
    Subscribe {
        /// Stream session id.
        sid: String,
        /// The viewers' core.
        core: usize,
        /// Start or stop.
        on: bool,
    },
    /// End a session.
    Delete {
        /// Session id.
        session: String,
        /// Whether it existed.
        reply: flume::Sender<bool>,
    },
}

/// What a WHEP request asks to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One publisher.
    Uid {
        /// Channel.
        key: ChannelKey,
        /// Publisher uid.
        uid: String,
    },
    /// Every publisher of the channel (the session lives on the core owning most of them;
    /// the other publishers' packets are forwarded to it).
    Channel {
        /// Channel.
        key: ChannelKey,
    },
}

impl Target {
    /// The channel.
    pub fn key(&self) -> &ChannelKey {
        match self {
            Target::Uid { key, .. } | Target::Channel { key } => key,
        }
    }
}

/// A created session.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Session id, the last segment of the Location.
    pub session: String,
    /// SDP answer.
    pub sdp: String,
    /// Which uid each m-line carries: `(mid, uid, kind)`.
    pub tracks: Vec<(String, String, &'static str)>,
    /// Warnings for the viewer (B-frames, no audio).
    pub notes: Vec<String>,
}

/// Why a WHEP request failed, and whose fault it is.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WhepError {
    /// The offer is not valid SDP, or not an offer we can answer (the viewer's fault).
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// The offer has no codec Sluice can send for this stream (incompatible viewer).
    #[error("no common codec: {0}")]
    NoCodec(String),
    /// Nothing is being published there.
    #[error("no live stream for {0}")]
    NotLive(String),
    /// The channel has as many viewers as allowed.
    #[error("channel viewer limit of {0} reached")]
    ViewerLimit(u32),
    /// A fault on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The WebRTC state every core shares.
pub struct WebrtcShared {
    /// Live publishers and viewer counts.
    pub directory: Directory,
    /// Counters.
    pub counters: WebrtcCounters,
    inboxes: Vec<flume::Sender<CoreRequest>>,
    receivers: Mutex<Vec<Option<flume::Receiver<CoreRequest>>>>,
    media: Vec<flume::Sender<RemoteFrame>>,
    media_receivers: Mutex<Vec<Option<flume::Receiver<RemoteFrame>>>>,
}

/// One frame's packets of a stream, sent by its owner core to a core whose viewers watch it.
/// The packets are descriptors: the payload bytes are reference-counted slices of the
/// owner's ingest buffers, so crossing cores copies no media.
pub struct RemoteFrame {
    /// Stream session id.
    pub sid: String,
    /// Which track.
    pub track: Track,
    /// The frame's packets.
    pub packets: Vec<RtpPacket>,
    /// Whether the frame is a keyframe (video waits for one).
    pub keyframe: bool,
}

impl WebrtcShared {
    /// State for `cores` executors.
    pub fn new(cores: usize) -> Self {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..cores).map(|_| flume::unbounded()).unzip();
        let (mtx, mrx): (Vec<_>, Vec<_>) = (0..cores)
            .map(|_| flume::bounded(REMOTE_MEDIA_QUEUE))
            .unzip();
        WebrtcShared {
            directory: Directory::default(),
            counters: WebrtcCounters::default(),
            inboxes: tx,
            receivers: Mutex::new(rx.into_iter().map(Some).collect()),
            media: mtx,
            media_receivers: Mutex::new(mrx.into_iter().map(Some).collect()),
        }
    }

    /// Sends a request to core `core`'s inbox.
    pub fn send_to_core(&self, core: usize, req: CoreRequest) -> bool {
        self.inboxes
            .get(core)
            .is_some_and(|tx| tx.send(req).is_ok())
    }

    fn take_receiver(&self, core: usize) -> Option<flume::Receiver<CoreRequest>> {
        let mut g = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        g.get_mut(core).and_then(Option::take)
    }

    fn take_media_receiver(&self, core: usize) -> Option<flume::Receiver<RemoteFrame>> {
        let mut g = self
            .media_receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.get_mut(core).and_then(Option::take)
    }

    /// Routes an offer to the owner core and waits for its answer.
    pub async fn offer(&self, target: Target, offer: String) -> Result<Answer, WhepError> {
        let core = match &target {
            Target::Uid { key, uid } => {
                self.directory
                    .find(key, uid)
                    .map(|e| e.core)
                    .ok_or_else(|| {
                        WhepError::NotLive(format!("{}/{}/{uid}", key.app_id, key.channel))
                    })?
            }
            Target::Channel { key } => {
                let live = self.directory.channel(key);
                busiest_core(live.iter().map(|e| e.core))
                    .ok_or_else(|| WhepError::NotLive(format!("{}/{}", key.app_id, key.channel)))?
            }
        };
        let (tx, rx) = flume::bounded(1);
        if !self.send_to_core(
            core,
            CoreRequest::Offer {
                target,
                offer,
                reply: tx,
            },
        ) {
            return Err(WhepError::Internal("owner core unavailable".into()));
        }
        match futures_lite::future::or(async { rx.recv_async().await.ok() }, async {
            glommio::timer::sleep(CORE_REPLY_TIMEOUT).await;
            None
        })
        .await
        {
            Some(r) => r,
            None => Err(WhepError::Internal("owner core did not answer".into())),
        }
    }

    /// Routes a DELETE to the core named in the session id.
    pub async fn delete(&self, session: &str) -> bool {
        let Some(core) = core_of_session(session) else {
            return false;
        };
        let (tx, rx) = flume::bounded(1);
        if !self.send_to_core(
            core,
            CoreRequest::Delete {
                session: session.to_string(),
                reply: tx,
            },
        ) {
            return false;
        }
        rx.recv_async().await.unwrap_or(false)
    }
}

/// The core with most entries (lowest index on ties).
fn busiest_core(cores: impl Iterator<Item = usize>) -> Option<usize> {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for c in cores {
        *counts.entry(c).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(c, _)| c)
}

/// Session ids are `{core}-{random}`, so any core can route a DELETE.
pub fn core_of_session(session: &str) -> Option<usize> {
    let (core, rest) = session.split_once('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    core.parse().ok()
}

#[derive(Default)]
struct State {
    /// This core's index (for subscriptions sent to other cores).
    core: usize,
    viewers: HashMap<String, Viewer>,
    by_addr: HashMap<SocketAddr, String>,
    by_ufrag: HashMap<String, String>,
    by_stream: HashMap<String, Vec<String>>,
    ended_streams: Vec<String>,
    next_tick: Option<Instant>,
    /// Streams owned by other cores that this core's viewers watch: sid to owner core.
    remote_sources: HashMap<String, usize>,
    /// Streams owned here that other cores' viewers watch: sid to those cores.
    remote_subscribers: HashMap<String, Vec<usize>>,
    next_liveness_check: Option<Instant>,
}

/// One core's WebRTC egress: its socket and the viewer sessions it owns.
pub struct CoreWebrtc {
    core: usize,
    send: UdpSocket,
    port: u16,
    candidates: Vec<SocketAddr>,
    public_ip: Option<IpAddr>,
    cert: DtlsCert,
    state: RefCell<State>,
    recv: RefCell<Option<glommio::net::UdpSocket>>,
}

impl CoreWebrtc {
    /// Binds this core's WebRTC socket.
    pub fn bind(core: usize, cfg: &DataplaneConfig) -> anyhow::Result<Self> {
        let port = if cfg.webrtc_port_base == 0 {
            0
        } else {
            u16::try_from(usize::from(cfg.webrtc_port_base) + core)
                .map_err(|_| anyhow::anyhow!("webrtc_port_base + core exceeds 65535"))?
        };
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        sock.set_nonblocking(true)?;
        // Many viewers share one socket: room for bursts (keyframes fan out at once).
        let _ = sock.set_send_buffer_size(4 << 20);
        let _ = sock.set_recv_buffer_size(1 << 20);
        sock.bind(&addr.into())
            .map_err(|e| anyhow::anyhow!("binding WebRTC UDP {addr}: {e}"))?;
        let port = sock
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| anyhow::anyhow!("WebRTC socket has no address"))?;
        let send: UdpSocket = sock.try_clone()?.into();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(sock);
        // SAFETY: `fd` is an open UDP socket we own (just released by `into_raw_fd`), and
        // ownership passes to the glommio socket, which closes it once.
        let recv = unsafe { <glommio::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut candidates = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)];
        let mut public_ip = cfg.webrtc_public_ip;
        if public_ip.is_none() {
            let ip = cfg.http_listen.ip();
            if !ip.is_unspecified() && !ip.is_loopback() {
                public_ip = Some(ip);
            }
        }
        if let Some(ip) = public_ip
            && ip.is_ipv4()
        {
            candidates.push(SocketAddr::new(ip, port));
        }
        // Probe UDP GSO now, so the log says at start which send path is active.
        let _ = crate::gso::enabled();
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| anyhow::anyhow!("generating the DTLS certificate failed"))?;
        Ok(CoreWebrtc {
            core,
            send,
            port,
            candidates,
            public_ip,
            cert,
            state: RefCell::new(State {
                core,
                ..State::default()
            }),
            recv: RefCell::new(Some(recv)),
        })
    }

    /// Viewer sessions on this core, connected or not (1 while the state is borrowed, so a
    /// caller never mistakes a busy core for an idle one).
    pub fn session_count(&self) -> usize {
        self.state.try_borrow().map_or(1, |s| s.viewers.len())
    }

    /// Viewers currently attached to a stream.
    pub fn viewer_count(&self, sid: &str) -> u32 {
        self.state
            .try_borrow()
            .ok()
            .and_then(|s| s.by_stream.get(sid).map(|v| v.len() as u32))
            .unwrap_or(0)
    }

    /// Whether any viewer, here or on another core, watches the stream (the fan-out skips
    /// all work otherwise).
    pub fn has_viewers(&self, sid: &str) -> bool {
        self.viewer_count(sid) > 0
            || self
                .state
                .try_borrow()
                .is_ok_and(|s| s.remote_subscribers.contains_key(sid))
    }

    /// A stream ended: its viewers are detached on the next tick (viewers on other cores
    /// notice through the directory, see `check_remote_sources`).
    pub fn stream_ended(&self, sid: &str) {
        if let Ok(mut s) = self.state.try_borrow_mut() {
            s.remote_subscribers.remove(sid);
            s.ended_streams.push(sid.to_string());
            s.next_tick = None;
        }
    }

    /// The egress seam: a stream's freshly packetized packets for one track (one frame).
    pub fn fanout(
        &self,
        sid: &str,
        track: Track,
        packets: &[RtpPacket],
        payloads: Option<&[Arc<[u8]>]>,
        keyframe: bool,
        shared: &WebrtcShared,
    ) {
        let Ok(mut guard) = self.state.try_borrow_mut() else {
            return;
        };
        let st = &mut *guard;
        if let Some(cores) = st.remote_subscribers.get(sid) {
            for &core in cores {
                // Descriptor clones: reference-count bumps, the payload bytes stay shared.
                let frame = RemoteFrame {
                    sid: sid.to_string(),
                    track,
                    packets: packets.to_vec(),
                    keyframe,
                };
                let sent = shared
                    .media
                    .get(core)
                    .is_some_and(|tx| tx.try_send(frame).is_ok());
                let c = if sent {
                    &shared.counters.remote_frames
                } else {
                    &shared.counters.remote_frame_drops
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(ids) = st.by_stream.get(sid) else {
            return;
        };
        if ids.is_empty() || packets.is_empty() {
            return;
        }
        // The one copy WebRTC forces before SRTP: str0m takes the payload as `Arc<[u8]>`.
        // It is made once per packet and shared by every viewer (and their NACK caches); the
        // owner core passes the ones its GOP cache keeps for late joiners.
        let made: Vec<Arc<[u8]>>;
        let payloads = match payloads {
            Some(p) if p.len() == packets.len() => p,
            _ => {
                made = packets.iter().map(payload_arc).collect();
                &made
            }
        };
        let now = Instant::now();
        let mut dead = Vec::new();
        for id in ids {
            let Some(v) = st.viewers.get_mut(id) else {
                continue;
            };
            let mut wrote = false;
            for idx in 0..v.tracks.len() {
                let matches = v
                    .tracks
                    .get(idx)
                    .is_some_and(|t| t.stream_sid == sid && t.track == track);
                if !matches {
                    continue;
                }
                for (p, payload) in packets.iter().zip(payloads.iter()) {
                    v.write(idx, p, payload, keyframe, now);
                    wrote = true;
                }
            }
            if wrote {
                let d = v.drive(&self.send, &shared.counters);
                // Keyframe requests come from RTCP input, never from a write, so only the
                // end of the session matters here.
                if d.dead {
                    dead.push(id.clone());
                }
            }
        }
        for id in dead {
            remove_viewer(st, &id, shared, false);
        }
    }

    /// Starts or stops forwarding stream `sid` to core `core` (on the stream's owner core).
    fn subscribe(&self, sid: String, core: usize, on: bool) {
        let mut st = self.state.borrow_mut();
        if on {
            let list = st.remote_subscribers.entry(sid).or_default();
            if !list.contains(&core) {
                list.push(core);
            }
        } else if let Some(list) = st.remote_subscribers.get_mut(&sid) {
            list.retain(|c| *c != core);
            if list.is_empty() {
                st.remote_subscribers.remove(&sid);
            }
        }
    }

    /// Viewers of remote streams that ended lose those tracks (and the session, if nothing
    /// is left): the owner core cannot reach them, the directory tells.
    fn check_remote_sources(&self, st: &mut State, shared: &WebrtcShared, now: Instant) {
        if st.next_liveness_check.is_some_and(|t| now < t) {
            return;
        }
        st.next_liveness_check = Some(now + REMOTE_LIVENESS_CHECK);
        let mut gone = Vec::new();
        for sid in st.remote_sources.keys() {
            let key = st
                .by_stream
                .get(sid)
                .and_then(|ids| ids.first())
                .and_then(|id| st.viewers.get(id))
                .map(|v| v.channel.clone());
            if key.is_none_or(|k| !shared.directory.is_live(&k, sid)) {
                gone.push(sid.clone());
            }
        }
        for sid in gone {
            st.remote_sources.remove(&sid);
            st.ended_streams.push(sid);
        }
    }

    /// Creates a session for an offer (on the owner core).
    pub fn create_session(
        &self,
        ctx: &CoreCtx,
        target: &Target,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<Answer, WhepError> {
        let shared = &ctx.shared.webrtc;
        let key = target.key().clone();
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| {
            shared.counters.bad_offers.fetch_add(1, Ordering::Relaxed);
            WhepError::BadOffer(e.to_string())
        })?;
        let entries: Vec<directory::LiveEntry> = match target {
            Target::Uid { uid, .. } => shared
                .directory
                .find(&key, uid)
                .into_iter()
                .filter(|e| e.core == self.core)
                .collect(),
            // Every publisher of the channel: those on other cores are forwarded here.
            Target::Channel { .. } => shared.directory.channel(&key),
        };
        // The sources this core can serve, with what each can send.
        let mut sources = Vec::new();
        {
            let streams = ctx.streams.borrow();
            for e in &entries {
                let (video, audio) = if e.core == self.core {
                    let Some(s) = streams.get(&e.sid) else {
                        continue;
                    };
                    let s = s.borrow();
                    (s.webrtc_video(), s.webrtc_audio())
                } else {
                    // Another core's stream: what its last summary in the directory says.
                    (e.send_video, e.send_audio)
                };
                sources.push(Source {
                    sid: e.sid.clone(),
                    uid: e.uid.clone(),
                    owner: e.core,
                    video,
                    audio,
                    bframes: e.bframes,
                    source_audio: e.audio_codec.clone(),
                });
            }
        }
        if sources.is_empty() {
            return Err(WhepError::NotLive(format!(
                "{}/{}",
                key.app_id, key.channel
            )));
        }
        shared
            .directory
            .add_viewer(&key, ctx.shared.cfg.max_viewers_per_channel)
            .map_err(|l| {
                shared
                    .counters
                    .refused_viewer_limit
                    .fetch_add(1, Ordering::Relaxed);
                WhepError::ViewerLimit(l.limit)
            })?;
        match self.build_session(key.clone(), offer, offer_sdp, &sources, now, shared) {
            Ok((viewer, answer)) => {
                let mut st = self.state.borrow_mut();
                for t in &viewer.tracks {
                    let list = st.by_stream.entry(t.stream_sid.clone()).or_default();
                    if !list.contains(&viewer.id) {
                        list.push(viewer.id.clone());
                    }
                    let owner = sources
                        .iter()
                        .find(|s| s.sid == t.stream_sid)
                        .map_or(self.core, |s| s.owner);
                    if owner != self.core && !st.remote_sources.contains_key(&t.stream_sid) {
                        st.remote_sources.insert(t.stream_sid.clone(), owner);
                        shared.send_to_core(
                            owner,
                            CoreRequest::Subscribe {
                                sid: t.stream_sid.clone(),
                                core: self.core,
                                on: true,
                            },
                        );
                    }
                }
                st.by_ufrag.insert(viewer.ufrag.clone(), viewer.id.clone());
                st.viewers.insert(viewer.id.clone(), viewer);
                st.next_tick = None;
                shared
                    .counters
                    .sessions_created
                    .fetch_add(1, Ordering::Relaxed);
                Ok(answer)
            }
            Err(e) => {
                shared.directory.remove_viewer(&key);
                Err(e)
            }
        }
    }

    fn build_session(
        &self,
        key: ChannelKey,
        offer: SdpOffer,
        offer_text: &str,
        sources: &[Source],
        now: Instant,
        shared: &WebrtcShared,
    ) -> Result<(Viewer, Answer), WhepError> {
        let creds = IceCreds::new();
        let want_h265 = sources
            .iter()
            .any(|s| matches!(s.video, Some(SendCodec::H265)));
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_h265(want_h265)
            .enable_opus(true, false)
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(creds.clone())
            .set_stats_interval(None)
            .set_extension_map(send_extensions())
            .build(now);
        for c in &self.candidates {
            match Candidate::host(*c, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => return Err(WhepError::Internal(format!("candidate {c}: {e}"))),
            }
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
            shared.counters.bad_offers.fetch_add(1, Ordering::Relaxed);
            WhepError::BadOffer(e.to_string())
        })?;
        let answer_sdp = answer.to_sdp_string();
        // The m-lines in order, from the answer (which mirrors the offer's order); only those
        // we send on (the viewer receives) can carry a track.
        let mlines: Vec<(Mid, MediaKind)> = mids_in_sdp(&answer_sdp)
            .into_iter()
            .filter_map(|mid| {
                let m = rtc.media(mid)?;
                m.direction().is_sending().then(|| (mid, m.kind()))
            })
            .collect();
        // Settle the engine after the mutation (the single-mutation rule of str0m).
        loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(_)) => break,
                Ok(_) => {}
                Err(e) => return Err(WhepError::BadOffer(e.to_string())),
            }
        }
        let mut tracks = Vec::new();
        let offered_names = codecs_in_sdp(offer_text);
        let mut wanted: Vec<&'static str> = Vec::new();
        let mut video_sources = sources.iter().filter_map(|s| s.video.map(|c| (s, c)));
        let mut audio_sources = sources.iter().filter_map(|s| s.audio.map(|c| (s, c)));
        for (mid, kind) in &mlines {
            let offered = offered_on(&rtc, *mid);
            let next = match kind {
                MediaKind::Video => video_sources.next(),
                MediaKind::Audio => audio_sources.next(),
            };
            let Some((src, codec)) = next else {
                continue;
            };
            if !wanted.contains(&codec.name()) {
                wanted.push(codec.name());
            }
            let Some(pt) = choose_pt(codec, &offered) else {
                continue;
            };
            let Some(ssrc) = rtc.direct_api().stream_tx_by_mid(*mid, None).map(|s| {
                // Losses are repaired within a second or not at all (the viewer's jitter
                // buffer has moved on): str0m's default keeps 3 s and up to 2,000 packets per
                // stream, most of a viewer's memory.
                s.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, RTX_RATIO_CAP);
                s.ssrc()
            }) else {
                continue;
            };
            let track = match kind {
                MediaKind::Video => Track::Video,
                MediaKind::Audio => Track::Audio,
            };
            tracks.push(TrackOut::new(
                src.sid.clone(),
                track,
                src.uid.clone(),
                *mid,
                ssrc,
                pt,
            ));
        }
        if tracks.is_empty() {
            shared
                .counters
                .no_common_codec
                .fetch_add(1, Ordering::Relaxed);
            let can = if wanted.is_empty() {
                sources
                    .iter()
                    .flat_map(|s| s.video.iter().chain(s.audio.iter()))
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
            } else {
                wanted
            };
            return Err(WhepError::NoCodec(format!(
                "Sluice can send {} for this stream; the offer's receiving m-lines have: {}",
                if can.is_empty() {
                    "nothing yet (no configured track)".to_string()
                } else {
                    can.join(", ")
                },
                if offered_names.is_empty() {
                    "no codec".to_string()
                } else {
                    offered_names.join(", ")
                }
            )));
        }
        let mut notes = Vec::new();
        for s in sources {
            if s.bframes {
                notes.push(format!(
                    "uid {}: the encoder uses B-frames; browsers may stutter",
                    s.uid
                ));
            }
            if s.audio.is_none() && !s.source_audio.is_empty() {
                notes.push(format!(
                    "uid {}: {} audio is not sent to WebRTC (transcoding off)",
                    s.uid, s.source_audio
                ));
            }
        }
        let id = format!("{}-{:016x}", self.core, rand::random::<u64>());
        let answer = Answer {
            session: id.clone(),
            sdp: answer_sdp,
            tracks: tracks
                .iter()
                .map(|t| {
                    (
                        t.mid.to_string(),
                        t.uid.clone(),
                        match t.track {
                            Track::Video => "video",
                            Track::Audio => "audio",
                        },
                    )
                })
                .collect(),
            notes,
        };
        let viewer = Viewer {
            id,
            channel: key,
            rtc,
            ufrag: creds.ufrag,
            tracks,
            remote: None,
            created: now,
            timeout: now,
            connected: false,
            primed: false,
            last_pli_answer: None,
        };
        Ok((viewer, answer))
    }

    /// Ends a session on request (WHEP DELETE).
    pub fn delete(&self, session: &str, shared: &WebrtcShared) -> bool {
        let mut st = self.state.borrow_mut();
        let Some(v) = st.viewers.get_mut(session) else {
            return false;
        };
        v.rtc.disconnect();
        let _ = v.drive(&self.send, &shared.counters);
        remove_viewer(&mut st, session, shared, true);
        true
    }

    fn local_for(&self, src: SocketAddr) -> SocketAddr {
        match self.public_ip {
            Some(ip) if !src.ip().is_loopback() => SocketAddr::new(ip, self.port),
            _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port),
        }
    }

    /// Handles one datagram from a viewer.
    fn on_datagram(&self, ctx: &CoreCtx, buf: &[u8], src: SocketAddr, now: Instant) {
        let shared = &ctx.shared.webrtc;
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let id = match st.by_addr.get(&src) {
            Some(id) => id.clone(),
            None => {
                // First contact must be an ICE Binding request naming one of our ufrags; a
                // bounded parse and one hash lookup, so floods cost little.
                let known = buf
                    .first()
                    .is_some_and(|b| sluice_proto::stun::is_stun_first_byte(*b))
                    .then(|| sluice_proto::stun::parse(buf).ok())
                    .flatten()
                    .filter(|v| v.is_binding_request())
                    .and_then(|v| v.local_ufrag())
                    .and_then(|u| std::str::from_utf8(u).ok())
                    .and_then(|u| st.by_ufrag.get(u).cloned());
                match known {
                    Some(id) => id,
                    None => {
                        shared
                            .counters
                            .unknown_datagrams
                            .fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        };
        let Some(v) = st.viewers.get_mut(&id) else {
            st.by_addr.remove(&src);
            return;
        };
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.local_for(src), buf) else {
            shared
                .counters
                .unknown_datagrams
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(now, recv);
        if !v.rtc.accepts(&input) {
            shared
                .counters
                .unknown_datagrams
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(e) = v.rtc.handle_input(input) {
            tracing::debug!(viewer = %id, error = %e, "viewer input rejected");
            shared.counters.rtc_errors.fetch_add(1, Ordering::Relaxed);
            remove_viewer(st, &id, shared, false);
            return;
        }
        if v.remote != Some(src) {
            if let Some(old) = v.remote.replace(src) {
                st.by_addr.remove(&old);
            }
            st.by_addr.insert(src, id.clone());
        }
        self.after_drive(ctx, st, &id, now);
    }

    /// Drives a viewer after a mutation and acts on what came out.
    fn after_drive(&self, ctx: &CoreCtx, st: &mut State, id: &str, now: Instant) {
        let shared = &ctx.shared.webrtc;
        let Some(v) = st.viewers.get_mut(id) else {
            return;
        };
        let d = v.drive(&self.send, &shared.counters);
        if d.dead {
            remove_viewer(st, id, shared, false);
            return;
        }
        let mut resend = false;
        if !d.keyframe_requests.is_empty() {
            shared
                .counters
                .keyframe_requests
                .fetch_add(d.keyframe_requests.len() as u64, Ordering::Relaxed);
            let interval = pli_answer_interval(ctx, v);
            resend = v.primed
                && v.last_pli_answer
                    .is_none_or(|t| now.saturating_duration_since(t) >= interval);
            if !resend {
                shared
                    .counters
                    .keyframe_requests_limited
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if (d.connected && !v.primed) || resend {
            if resend {
                v.last_pli_answer = Some(now);
                shared
                    .counters
                    .keyframe_answers
                    .fetch_add(1, Ordering::Relaxed);
            }
            v.primed = true;
            let dead = prime_from_gop(ctx, v, now, resend, &self.send, &shared.counters);
            let d = v.drive(&self.send, &shared.counters);
            if dead || d.dead {
                remove_viewer(st, id, shared, false);
            }
        }
    }

    /// Timers, reaping, ended streams; cheap when nothing is due.
    fn tick(&self, ctx: &CoreCtx, now: Instant) {
        let shared = &ctx.shared.webrtc;
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        self.check_remote_sources(st, shared, now);
        if st.next_tick.is_some_and(|t| now < t) && st.ended_streams.is_empty() {
            return;
        }
        for sid in std::mem::take(&mut st.ended_streams) {
            let ids = st.by_stream.remove(&sid).unwrap_or_default();
            for id in ids {
                let Some(v) = st.viewers.get_mut(&id) else {
                    continue;
                };
                v.tracks.retain(|t| t.stream_sid != sid);
                if v.tracks.is_empty() {
                    v.rtc.disconnect();
                    let _ = v.drive(&self.send, &shared.counters);
                    remove_viewer(st, &id, shared, false);
                }
            }
        }
        let due: Vec<String> = st
            .viewers
            .values()
            .filter(|v| now >= v.timeout || v.connect_timed_out(now))
            .map(|v| v.id.clone())
            .collect();
        for id in due {
            let Some(v) = st.viewers.get_mut(&id) else {
                continue;
            };
            if v.connect_timed_out(now) {
                remove_viewer(st, &id, shared, false);
                continue;
            }
            if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(viewer = %id, error = %e, "viewer timeout handling failed");
                shared.counters.rtc_errors.fetch_add(1, Ordering::Relaxed);
                remove_viewer(st, &id, shared, false);
                continue;
            }
            self.after_drive(ctx, st, &id, now);
        }
        let next = st
            .viewers
            .values()
            .map(|v| v.timeout)
            .min()
            .unwrap_or(now + TICK)
            .min(now + Duration::from_millis(100));
        st.next_tick = Some(next);
    }
}

/// Most packets a viewer's video track keeps for NACK repair, and for how long.
const RTX_CACHE_PACKETS: usize = 256;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// Retransmissions may add at most this share to a track's bitrate (str0m's default).
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

/// The RTP header extensions offered to viewers: str0m's standard set without
/// transport-wide congestion control. Sluice sends what the publisher sends (no bandwidth
/// estimation), so TWCC feedback would go unused, while registering every sent packet for it
/// kept a 1,000-entry history per viewer.
fn send_extensions() -> str0m::rtp::ExtensionMap {
    use str0m::rtp::{Extension, ExtensionMap};
    let mut exts = ExtensionMap::empty();
    exts.set(1, Extension::AudioLevel);
    exts.set(2, Extension::AbsoluteSendTime);
    exts.set(4, Extension::RtpMid);
    exts.set(10, Extension::RtpStreamId);
    exts.set(11, Extension::RepairedRtpStreamId);
    exts.set(13, Extension::VideoOrientation);
    exts
}

/// A stream a session can carry, and what it can send.
struct Source {
    sid: String,
    uid: String,
    /// The core that owns the stream.
    owner: usize,
    video: Option<SendCodec>,
    audio: Option<SendCodec>,
    bframes: bool,
    source_audio: String,
}

/// Codec names of an SDP's `a=rtpmap` lines, without duplicates, for error messages.
fn codecs_in_sdp(sdp: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for l in sdp.lines() {
        let Some(rest) = l.trim_end().strip_prefix("a=rtpmap:") else {
            continue;
        };
        let Some(name) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|e| e.split('/').next())
        else {
            continue;
        };
        let name = name.chars().take(32).collect::<String>();
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) && names.len() < 16 {
            names.push(name);
        }
    }
    names
}

/// The `a=mid:` values of an SDP, in m-line order.
fn mids_in_sdp(sdp: &str) -> Vec<Mid> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(Mid::from)
        .collect()
}

/// The payload types the remote accepts on `mid`, in its order of preference.
fn offered_on(rtc: &Rtc, mid: Mid) -> Vec<Offered> {
    let Some(media) = rtc.media(mid) else {
        return Vec::new();
    };
    let params = rtc.codec_config().params();
    media
        .remote_pts()
        .iter()
        .filter_map(|pt| params.iter().find(|p| p.pt() == *pt))
        .map(|p| {
            let spec = p.spec();
            Offered {
                pt: p.pt(),
                codec: spec.codec,
                packetization_mode: spec.format.packetization_mode,
                profile_level_id: spec.format.profile_level_id,
            }
        })
        .filter(|o| o.codec != Codec::Rtx)
        .collect()
}

/// RTP payload bytes (inline prefix, then the shared payload slice) as one allocation.
pub(crate) fn payload_arc(p: &RtpPacket) -> Arc<[u8]> {
    let mut v = Vec::with_capacity(p.payload_len());
    v.extend_from_slice(p.prefix());
    v.extend_from_slice(&p.payload);
    v.into()
}

/// How long after answering a keyframe request the viewer must wait for the next answer:
/// the longest GOP among the local streams its video tracks carry, within bounds.
fn pli_answer_interval(ctx: &CoreCtx, v: &Viewer) -> Duration {
    let streams = ctx.streams.borrow();
    let gop_ms = v
        .tracks
        .iter()
        .filter(|t| t.track == Track::Video)
        .filter_map(|t| streams.get(&t.stream_sid))
        .filter_map(|s| s.try_borrow().ok().map(|s| s.gop_ms()))
        .max()
        .unwrap_or(0);
    if gop_ms == 0 {
        return PLI_ANSWER_DEFAULT;
    }
    Duration::from_millis(u64::from(gop_ms)).clamp(PLI_ANSWER_MIN, PLI_ANSWER_MAX)
}

/// Packets of a GOP replay written to a viewer between two drives. str0m queues what is
/// written until the next drive sends it, in a `VecDeque` that never shrinks: writing a whole
/// cached GOP at once (a few hundred packets) left every viewer a send queue sized for that
/// burst for the rest of the session (heaptrack: ~138 kB per viewer, most of its memory).
const PRIME_CHUNK: usize = 16;

/// Sends the cached GOP to a viewer that just connected, or again to answer a keyframe
/// request (the encoder cannot be asked for one), [`PRIME_CHUNK`] packets per drive. True
/// when the session ended meanwhile.
fn prime_from_gop(
    ctx: &CoreCtx,
    v: &mut Viewer,
    now: Instant,
    resend: bool,
    send: &UdpSocket,
    counters: &WebrtcCounters,
) -> bool {
    let mut written = 0usize;
    let sids: Vec<String> = v.tracks.iter().map(|t| t.stream_sid.clone()).collect();
    for sid in sids {
        let Some(stream) = ctx.streams.borrow().get(&sid).cloned() else {
            continue;
        };
        let Ok(s) = stream.try_borrow() else {
            continue;
        };
        let (packets, starts_on_keyframe) = s.gop_snapshot();
        drop(s);
        for idx in 0..v.tracks.len() {
            let Some(t) = v.tracks.get(idx) else {
                continue;
            };
            if t.stream_sid != sid || (resend && t.track != Track::Video) {
                continue;
            }
            let track = t.track;
            for p in &packets {
                if p.track != track {
                    continue;
                }
                // The payload is the stream's own shared copy: no per-viewer copy at join.
                v.write(idx, &p.packet, &p.payload, starts_on_keyframe, now);
                written += 1;
                if written.is_multiple_of(PRIME_CHUNK) && v.drive(send, counters).dead {
                    return true;
                }
            }
        }
    }
    false
}

fn remove_viewer(st: &mut State, id: &str, shared: &WebrtcShared, deleted: bool) {
    let Some(v) = st.viewers.remove(id) else {
        return;
    };
    if let Some(a) = v.remote {
        st.by_addr.remove(&a);
    }
    st.by_ufrag.remove(&v.ufrag);
    for t in &v.tracks {
        if let Some(list) = st.by_stream.get_mut(&t.stream_sid) {
            list.retain(|x| x != id);
            if list.is_empty() {
                st.by_stream.remove(&t.stream_sid);
                if let Some(owner) = st.remote_sources.remove(&t.stream_sid) {
                    shared.send_to_core(
                        owner,
                        CoreRequest::Subscribe {
                            sid: t.stream_sid.clone(),
                            core: st.core,
                            on: false,
                        },
                    );
                }
            }
        }
    }
    shared.directory.remove_viewer(&v.channel);
    let c = if deleted {
        &shared.counters.sessions_deleted
    } else {
        &shared.counters.sessions_timed_out
    };
    c.fetch_add(1, Ordering::Relaxed);
    tracing::info!(viewer = %id, connected = v.connected, deleted, "viewer session ended");
}

/// What the stream can send to WebRTC, from its track configuration.
pub fn video_send_codec(codec: VideoCodec, profile: u8) -> Option<SendCodec> {
    match codec {
        VideoCodec::H264 => Some(SendCodec::H264 { profile }),
        VideoCodec::H265 => Some(SendCodec::H265),
        VideoCodec::Av1 => None,
    }
}

/// Audio sendable as it is: Opus only (AAC goes through the transcoder).
pub fn audio_send_codec(codec: AudioCodec) -> Option<SendCodec> {
    match codec {
        AudioCodec::Opus => Some(SendCodec::Opus),
        AudioCodec::Aac => None,
    }
}

/// Worker threads of the audio transcoder (AAC to Opus is light: one thread serves many
/// streams; the queue bounds what a stalled worker can hold).
const TRANSCODE_WORKERS: usize = 1;
/// Frames queued per transcoder worker before new ones are dropped and counted.
const TRANSCODE_QUEUE: usize = 1024;

/// The process's audio transcoder pool, started on first use, off the reactor threads.
pub fn transcode_pool() -> &'static Arc<sluice_transcode::Pool> {
    static POOL: std::sync::OnceLock<Arc<sluice_transcode::Pool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| sluice_transcode::Pool::start(TRANSCODE_WORKERS, TRANSCODE_QUEUE))
}

/// Whether a stream template leaves audio transcoding on (the documented default); a
/// template whose settings (as control stores them: the body's `settings` object) say
/// `"transcoding": {"audio": {"enabled": false}}` turns it off.
pub fn template_transcodes_audio(settings_json: Option<&str>) -> bool {
    let Some(text) = settings_json else {
        return true;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return true;
    };
    v.get("transcoding")
        .and_then(|t| t.get("audio"))
        .and_then(|a| a.get("enabled"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}

/// Starts this core's WebRTC tasks: the socket loop and the request inbox.
pub fn spawn(ctx: Rc<CoreCtx>) {
    let Some(sock) = ctx.webrtc.recv.borrow_mut().take() else {
        return;
    };
    if ctx.id == 0 {
        tracing::info!(port = ctx.webrtc.port, candidates = ?ctx.webrtc.candidates, "WebRTC egress ready");
    }
    glommio::spawn_local(socket_loop(ctx.clone(), sock)).detach();
    if let Some(rx) = ctx.shared.webrtc.take_media_receiver(ctx.id) {
        glommio::spawn_local(remote_media_loop(ctx.clone(), rx)).detach();
    }
    if let Some(rx) = ctx.shared.webrtc.take_receiver(ctx.id) {
        glommio::spawn_local(inbox_loop(ctx, rx)).detach();
    }
}

/// Frames of other cores' streams, for this core's channel-level viewers.
async fn remote_media_loop(ctx: Rc<CoreCtx>, rx: flume::Receiver<RemoteFrame>) {
    while let Ok(f) = rx.recv_async().await {
        ctx.webrtc.fanout(
            &f.sid,
            f.track,
            &f.packets,
            None,
            f.keyframe,
            &ctx.shared.webrtc,
        );
    }
}

async fn socket_loop(ctx: Rc<CoreCtx>, sock: glommio::net::UdpSocket) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut idle = None;
    loop {
        // No session on this core: nothing has a timer, so wake rarely (an idle gateway
        // should not wake 100 times a second). A new session's first STUN request wakes the
        // loop, after which it ticks every `TICK` again.
        let now_idle = ctx.webrtc.session_count() == 0;
        if idle != Some(now_idle) {
            idle = Some(now_idle);
            let t = if now_idle { IDLE_TICK } else { TICK };
            if let Err(e) = sock.set_read_timeout(Some(t)) {
                tracing::warn!(error = %e, "WebRTC socket read timeout");
            }
        }
        let r = sock.recv_from(&mut buf).await.map_err(std::io::Error::from);
        let now = Instant::now();
        match r {
            Ok((n, src)) => {
                if let Some(data) = buf.get(..n) {
                    ctx.webrtc.on_datagram(&ctx, data, src, now);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                // ICMP errors from vanished viewers surface here; they are not fatal.
                tracing::debug!(error = %e, "WebRTC socket receive error");
            }
        }
        ctx.webrtc.tick(&ctx, now);
    }
}

async fn inbox_loop(ctx: Rc<CoreCtx>, rx: flume::Receiver<CoreRequest>) {
    while let Ok(req) = rx.recv_async().await {
        match req {
            CoreRequest::Offer {
                target,
                offer,
                reply,
            } => {
                let r = ctx
                    .webrtc
                    .create_session(&ctx, &target, &offer, Instant::now());
                let _ = reply.send(r);
            }
            CoreRequest::Subscribe { sid, core, on } => {
                // A subscription that arrives after the stream ended would never be removed.
                if !on || ctx.streams.borrow().contains_key(&sid) {
                    ctx.webrtc.subscribe(sid, core, on);
                }
            }
            CoreRequest::Delete { session, reply } => {
                let _ = reply.send(ctx.webrtc.delete(&session, &ctx.shared.webrtc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_route_to_their_core() {
        assert_eq!(core_of_session("3-00ff00ff00ff00ff"), Some(3));
        assert_eq!(core_of_session("0-a"), Some(0));
        assert_eq!(core_of_session("x-a"), None);
        assert_eq!(core_of_session("1-"), None);
        assert_eq!(core_of_session("1-zz"), None);
        assert_eq!(core_of_session("nodash"), None);
    }

    #[test]
    fn codec_names_for_errors() {
        let sdp = "m=video 9 X 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:98 vp8/90000\r\na=rtpmap:bad\r\n";
        assert_eq!(codecs_in_sdp(sdp), ["VP8", "rtx"]);
        let mids = mids_in_sdp("a=mid:0\r\nx\r\na=mid:v1\r\n");
        assert_eq!(mids, [Mid::from("0"), Mid::from("v1")]);
    }

    #[test]
    fn template_audio_switch() {
        assert!(template_transcodes_audio(None));
        assert!(template_transcodes_audio(Some("{}")));
        assert!(template_transcodes_audio(Some("not json")));
        assert!(template_transcodes_audio(Some(
            r#"{"transcoding":{"audio":{"enabled":true}}}"#
        )));
        assert!(!template_transcodes_audio(Some(
            r#"{"transcoding":{"video":{"enabled":true},"audio":{"enabled":false}},"jitterBuffer":{"size":500}}"#
        )));
        // The switch lives under "transcoding"; a stray top-level "audio" is not it.
        assert!(template_transcodes_audio(Some(
            r#"{"audio":{"enabled":false}}"#
        )));
    }

    #[test]
    fn busiest_core_breaks_ties_low() {
        assert_eq!(busiest_core([1, 0, 1].into_iter()), Some(1));
        assert_eq!(busiest_core([1, 0].into_iter()), Some(0));
        assert_eq!(busiest_core(std::iter::empty()), None);
    }
}
