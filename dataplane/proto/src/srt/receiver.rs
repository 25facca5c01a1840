//! The receiving side of one SRT live connection, as a sans-IO state machine.
//!
//! Spec: draft-sharabayko-srt-01 section 4 ("SRT Data Transmission and Control"): 4.5 TSBPD
//! (delivery at sender start + timestamp + latency, with drift tracking, 4.7), 4.6
//! too-late packet drop, 4.8 ACK and ACKACK (4.8.1 full ACK every 10 ms, 4.10 RTT
//! estimation), 4.8.2 NAK (immediate on detected loss, periodic), 3.2.3 keep-alive,
//! 3.2.7 shutdown, 3.2.9 drop request.
//!
//! Run loop (the engine's side):
//! 1. feed every packet: [`Receiver::handle_data`] / [`Receiver::handle_control`] (or
//!    [`Receiver::handle_packet`]);
//! 2. drain [`Receiver::poll_transmit`] into the socket until it returns `None`;
//! 3. drain [`Receiver::poll_output`] (payloads in order, at their TSBPD time);
//! 4. sleep until [`Receiver::poll_timeout`] or the next datagram, then repeat.
//!
//! Invariants: the buffer never holds more than `buffer_packets` (at most
//! [`RECV_BUFFER_CAP`]) slots; payloads come out in sequence order, each at most once.
//! Live mode only: every packet is a whole message (PP is not used for reassembly).

use super::crypto::{KeyMaterial, Passphrase, SessionKeys};
use super::handshake::{Accepted, SrtFlags};
use super::packet::{
    Ack, AckInfo, AckRates, Control, ControlPacket, DataPacket, KeyFlags, LossEntry, LossList,
    Packet, SeqNo, SocketId, Timestamp, control_type,
};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Hard cap on the receive buffer, packets. Guards memory against a peer that sends far
/// ahead of the delivery point: 8192 packets of 1316 bytes is about 10 MiB, over a second
/// of 80 Mbit/s video.
pub const RECV_BUFFER_CAP: usize = 8192;
/// Full ACK period (spec 4.8.1: SYN interval).
pub const ACK_INTERVAL: Duration = Duration::from_millis(10);
/// Floor of the periodic NAK interval.
pub const MIN_NAK_INTERVAL: Duration = Duration::from_millis(20);
/// Send a keep-alive after this long without sending anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default idle timeout (libsrt's `SRTO_PEERIDLETIMEO`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Sent ACKs remembered for RTT measurement; bounds the ACK history.
pub const ACK_HISTORY_CAP: usize = 64;
/// Most loss entries in one NAK (16-byte header plus 8 bytes each stays under 1500 bytes).
pub const MAX_NAK_ENTRIES: usize = 160;
/// Smallest buffer [`Receiver::poll_transmit`] needs.
pub const MIN_TRANSMIT_BUF: usize = 16 + 8 * MAX_NAK_ENTRIES;
/// Arrival samples averaged before the TSBPD base is corrected for drift.
pub const DRIFT_SAMPLES: u32 = 1000;
/// Average drift tolerated before the TSBPD base is shifted.
pub const DRIFT_TOLERANCE: Duration = Duration::from_millis(5);
const INITIAL_RTT_US: u64 = 100_000;
const INITIAL_RTT_VAR_US: u64 = 50_000;
/// KM state word sent in a KMRSP when a key refresh cannot be unwrapped (`SRT_KM_S_BADSECRET`).
const KM_STATE_BADSECRET: u32 = 4;
/// Subtypes of user-defined control packets carrying HSv5 key refresh (`SRT_CMD_KMREQ/RSP`).
const SUBTYPE_KMREQ: u16 = 3;
const SUBTYPE_KMRSP: u16 = 4;

/// Settings of one receiving connection, mostly from [`super::handshake::Accepted`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The peer's socket id: destination of everything this receiver sends.
    pub peer_socket: SocketId,
    /// The peer's initial sequence number.
    pub isn: SeqNo,
    /// Negotiated TSBPD latency.
    pub latency: Duration,
    /// Drop packets that missed their delivery time (TLPKTDROP).
    pub too_late_drop: bool,
    /// Close after this long without any packet from the peer.
    pub idle_timeout: Duration,
    /// Receive buffer size, packets (clamped to [`RECV_BUFFER_CAP`]).
    pub buffer_packets: usize,
    /// Session keys when the stream is encrypted.
    pub keys: Option<SessionKeys>,
    /// Passphrase for key refreshes (KMREQ in user-defined control packets).
    pub passphrase: Option<Passphrase>,
}

impl ReceiverConfig {
    /// Defaults for a peer socket and initial sequence number: 120 ms latency, drop on,
    /// 5 s idle timeout, full buffer, no encryption.
    pub fn new(peer_socket: SocketId, isn: SeqNo) -> Self {
        Self {
            peer_socket,
            isn,
            latency: Duration::from_millis(120),
            too_late_drop: true,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            buffer_packets: RECV_BUFFER_CAP,
            keys: None,
            passphrase: None,
        }
    }

    /// The configuration an accepted handshake negotiated: peer socket, ISN, latency, keys,
    /// and too-late drop when the caller asked for it. `passphrase` serves key refreshes.
    pub fn from_accepted(acc: &Accepted, passphrase: Option<Passphrase>) -> Self {
        Self {
            latency: acc.latency,
            too_late_drop: acc.peer_flags.has(SrtFlags::TLPKTDROP),
            keys: acc.keys.clone(),
            passphrase,
            ..Self::new(acc.peer_socket, acc.peer_isn)
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent SHUTDOWN.
    PeerShutdown,
    /// Nothing heard from the peer for the idle timeout.
    IdleTimeout,
    /// [`Receiver::close`] was called.
    Local,
}

/// Counters of one receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Data packets received (including duplicates).
    pub packets_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Payloads handed out by [`Receiver::poll_output`].
    pub packets_delivered: u64,
    /// Retransmitted packets received (R flag).
    pub retransmitted: u64,
    /// Packets received twice, or after their slot was delivered or dropped.
    pub duplicates: u64,
    /// Sequence numbers detected missing (a reordered packet counts here too, before it
    /// arrives late).
    pub lost: u64,
    /// Missing packets given up at their delivery time (TLPKTDROP).
    pub dropped_too_late: u64,
    /// Packets too far ahead of the delivery point for the buffer.
    pub dropped_beyond_window: u64,
    /// Sequence numbers the sender told us to drop (DROPREQ).
    pub dropped_by_sender: u64,
    /// Encrypted packets that could not be decrypted (key not exchanged).
    pub undecryptable: u64,
    /// Full ACKs sent.
    pub acks_sent: u64,
    /// NAKs sent.
    pub naks_sent: u64,
    /// Key refreshes rejected (bad key material or passphrase).
    pub key_refresh_failures: u64,
}

#[derive(Debug, Clone)]
enum Slot {
    Missing,
    Dropped,
    Ready { ts: i64, payload: Bytes },
}

#[derive(Debug, Clone, Copy)]
struct SentAck {
    number: u32,
    at: Instant,
    seq: SeqNo,
}

/// TSBPD clock: maps extended sender timestamps to local instants.
#[derive(Debug, Clone, Copy)]
struct TsbpdBase {
    /// Local instant matching sender time `ts0`.
    at: Instant,
    ts0: i64,
    drift_sum: i64,
    drift_count: u32,
}

/// The receiving state machine of one connection.
#[derive(Debug)]
pub struct Receiver {
    cfg: ReceiverConfig,
    start: Instant,
    head: SeqNo,
    buf: VecDeque<Slot>,
    /// Count of `Slot::Missing` in `buf`, so timers need not scan the buffer.
    missing: usize,
    base: Option<TsbpdBase>,
    last_ts: Option<(Timestamp, i64)>,
    rtt_us: u64,
    rtt_var_us: u64,
    ack_number: u32,
    acks: VecDeque<SentAck>,
    last_ack_seq: Option<SeqNo>,
    last_ackacked: Option<SeqNo>,
    next_ack: Instant,
    next_nak: Instant,
    pending_nak: Vec<LossEntry>,
    pending_kmrsp: Option<Bytes>,
    shutdown_due: bool,
    keepalive_due: bool,
    last_sent: Instant,
    last_recv: Instant,
    rate_start: Instant,
    rate_pkts: u32,
    rate_bytes: u64,
    pps: u32,
    bps: u32,
    closed: Option<CloseReason>,
    stats: ReceiverStats,
}

fn shift(at: Instant, micros: i64) -> Instant {
    let d = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        at.checked_add(d).unwrap_or(at)
    } else {
        at.checked_sub(d).unwrap_or(at)
    }
}

fn micros_between(later: Instant, earlier: Instant) -> i64 {
    if later >= earlier {
        i64::try_from(later.duration_since(earlier).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(earlier.duration_since(later).as_micros()).unwrap_or(i64::MAX)
    }
}

impl Receiver {
    /// A receiver for a connection established at `now` (its control timestamps count from
    /// there).
    pub fn new(mut cfg: ReceiverConfig, now: Instant) -> Self {
        cfg.buffer_packets = cfg.buffer_packets.clamp(1, RECV_BUFFER_CAP);
        Self {
            head: cfg.isn,
            cfg,
            start: now,
            buf: VecDeque::new(),
            missing: 0,
            base: None,
            last_ts: None,
            rtt_us: INITIAL_RTT_US,
            rtt_var_us: INITIAL_RTT_VAR_US,
            ack_number: 0,
            acks: VecDeque::new(),
            last_ack_seq: None,
            last_ackacked: None,
            next_ack: now + ACK_INTERVAL,
            next_nak: now + MIN_NAK_INTERVAL,
            pending_nak: Vec::new(),
            pending_kmrsp: None,
            shutdown_due: false,
            keepalive_due: false,
            last_sent: now,
            last_recv: now,
            rate_start: now,
            rate_pkts: 0,
            rate_bytes: 0,
            pps: 0,
            bps: 0,
            closed: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Smoothed RTT and its variance.
    pub fn rtt(&self) -> (Duration, Duration) {
        (
            Duration::from_micros(self.rtt_us),
            Duration::from_micros(self.rtt_var_us),
        )
    }

    /// `Some` once the connection is closed. After a peer SHUTDOWN, `poll_output` still
    /// drains what was received (at once, in order); after an idle timeout or a local close
    /// it gives nothing more.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Packets held in the receive buffer (always at most the configured size).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next sequence number to deliver.
    pub fn next_seq(&self) -> SeqNo {
        self.head
    }

    /// Closes locally: a SHUTDOWN is queued for [`Receiver::poll_transmit`].
    pub fn close(&mut self) {
        if self.closed.is_none() {
            self.closed = Some(CloseReason::Local);
            self.shutdown_due = true;
        }
    }

    /// Feeds any parsed packet.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        match packet {
            Packet::Data(d) => self.handle_data(now, d),
            Packet::Control(c) => self.handle_control(now, &c),
        }
    }

    fn extend_ts(&mut self, ts: Timestamp) -> i64 {
        match self.last_ts {
            None => {
                let ext = i64::from(ts.0);
                self.last_ts = Some((ts, ext));
                ext
            }
            Some((last, last_ext)) => {
                let ext = last_ext.saturating_add(ts.distance(last));
                if ext > last_ext {
                    self.last_ts = Some((ts, ext));
                }
                ext
            }
        }
    }

    /// Feeds a data packet.
    pub fn handle_data(&mut self, now: Instant, packet: DataPacket) {
        if self.closed.is_some() {
            return;
        }
        self.last_recv = now;
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.payload.len() as u64;
        self.rate_pkts = self.rate_pkts.saturating_add(1);
        self.rate_bytes = self.rate_bytes.saturating_add(packet.payload.len() as u64);
        if packet.retransmitted {
            self.stats.retransmitted += 1;
        }
        let off = packet.seq.distance(self.head);
        if off < 0 {
            self.stats.duplicates += 1;
            return;
        }
        let off = off as usize;
        if off >= self.cfg.buffer_packets {
            self.stats.dropped_beyond_window += 1;
            return;
        }
        if matches!(self.buf.get(off), Some(Slot::Ready { .. } | Slot::Dropped)) {
            self.stats.duplicates += 1;
            return;
        }
        let payload = match (&self.cfg.keys, packet.key) {
            (_, KeyFlags::None) => packet.payload.clone(),
            (Some(keys), kk) if keys.has(kk) => match keys.decrypt(&packet) {
                Ok(p) => p,
                Err(_) => {
                    self.stats.undecryptable += 1;
                    return;
                }
            },
            _ => {
                self.stats.undecryptable += 1;
                return;
            }
        };
        let ts = self.extend_ts(packet.timestamp);
        match &mut self.base {
            None => {
                self.base = Some(TsbpdBase {
                    at: now,
                    ts0: ts,
                    drift_sum: 0,
                    drift_count: 0,
                })
            }
            Some(b) if !packet.retransmitted => {
                // Drift tracking (spec 4.7): how much later than the base predicts did this
                // packet arrive? Averaged, then folded into the base.
                let expected = shift(b.at, ts.saturating_sub(b.ts0));
                b.drift_sum = b.drift_sum.saturating_add(micros_between(now, expected));
                b.drift_count += 1;
                if b.drift_count >= DRIFT_SAMPLES {
                    let avg = b.drift_sum / i64::from(b.drift_count);
                    if avg.unsigned_abs() > DRIFT_TOLERANCE.as_micros() as u64 {
                        b.at = shift(b.at, avg);
                    }
                    b.drift_sum = 0;
                    b.drift_count = 0;
                }
            }
            Some(_) => {}
        }
        if off >= self.buf.len() {
            let first_missing = self.head.add(self.buf.len() as u32);
            let missing = off - self.buf.len();
            if missing > 0 {
                self.stats.lost += missing as u64;
                let last = packet.seq.sub(1);
                if self.pending_nak.len() < MAX_NAK_ENTRIES {
                    self.pending_nak.push(if missing == 1 {
                        LossEntry::Single(first_missing)
                    } else {
                        LossEntry::Range(first_missing, last)
                    });
                }
            }
            self.missing += missing;
            self.buf.resize(off, Slot::Missing);
            self.buf.push_back(Slot::Ready { ts, payload });
        } else if let Some(slot) = self.buf.get_mut(off) {
            // Only a Missing slot gets here (Ready and Dropped returned above).
            *slot = Slot::Ready { ts, payload };
            self.missing = self.missing.saturating_sub(1);
        }
    }

    /// Feeds a control packet.
    pub fn handle_control(&mut self, now: Instant, packet: &ControlPacket) {
        if self.closed.is_some() {
            return;
        }
        self.last_recv = now;
        match &packet.control {
            Control::AckAck { ack_number } => {
                if let Some(i) = self.acks.iter().position(|a| a.number == *ack_number) {
                    let a = self.acks[i];
                    self.acks.drain(..=i);
                    let sample = now.saturating_duration_since(a.at).as_micros() as u64;
                    let diff = self.rtt_us.abs_diff(sample);
                    self.rtt_var_us = (3 * self.rtt_var_us + diff) / 4;
                    self.rtt_us = (7 * self.rtt_us + sample) / 8;
                    self.last_ackacked = Some(a.seq);
                }
            }
            // Answer unless something went out recently, so two receivers answering each
            // other cannot ping-pong faster than every half interval.
            Control::KeepAlive
                if now.saturating_duration_since(self.last_sent) >= KEEPALIVE_INTERVAL / 2 =>
            {
                self.keepalive_due = true;
            }
            Control::Shutdown => self.closed = Some(CloseReason::PeerShutdown),
            Control::DropReq { first, last, .. } => self.drop_range(*first, *last),
            Control::Unknown {
                control_type: control_type::USER,
                subtype: SUBTYPE_KMREQ,
                cif,
                ..
            } => self.key_refresh(cif),
            _ => {}
        }
    }

    fn drop_range(&mut self, first: SeqNo, last: SeqNo) {
        let span = last.distance(first);
        if span < 0 {
            return;
        }
        let start = first.distance(self.head).max(0);
        let end = last.distance(self.head);
        if end < 0 {
            return;
        }
        let start = start as usize;
        let end = (end as usize).min(self.cfg.buffer_packets - 1);
        if start > end {
            // The whole range lies beyond the window.
            return;
        }
        if end >= self.buf.len() {
            self.missing += end + 1 - self.buf.len();
            self.buf.resize(end + 1, Slot::Missing);
        }
        for slot in self.buf.range_mut(start..=end) {
            if matches!(slot, Slot::Missing) {
                *slot = Slot::Dropped;
                self.missing = self.missing.saturating_sub(1);
                self.stats.dropped_by_sender += 1;
            }
        }
    }

    fn key_refresh(&mut self, cif: &Bytes) {
        let refreshed = match (&self.cfg.passphrase, &mut self.cfg.keys) {
            (Some(pass), Some(keys)) => KeyMaterial::parse(cif.clone())
                .and_then(|km| km.unwrap_keys(pass.as_bytes(), 0))
                .map(|newer| keys.refresh(newer))
                .is_ok(),
            _ => false,
        };
        if refreshed {
            self.pending_kmrsp = Some(cif.clone());
        } else {
            self.stats.key_refresh_failures += 1;
            self.pending_kmrsp = Some(Bytes::copy_from_slice(&KM_STATE_BADSECRET.to_be_bytes()));
        }
    }

    fn check_idle(&mut self, now: Instant) {
        if self.closed.is_none()
            && now.saturating_duration_since(self.last_recv) >= self.cfg.idle_timeout
        {
            self.closed = Some(CloseReason::IdleTimeout);
        }
    }

    fn delivery_time(&self, ts: i64) -> Option<Instant> {
        let b = self.base?;
        Some(shift(b.at, ts.saturating_sub(b.ts0)) + self.cfg.latency)
    }

    /// The first packet present in the buffer: (index, its delivery time).
    fn first_ready(&self) -> Option<(usize, Instant)> {
        self.buf.iter().enumerate().find_map(|(i, s)| match s {
            Slot::Ready { ts, .. } => self.delivery_time(*ts).map(|t| (i, t)),
            _ => None,
        })
    }

    /// The next payload due at `now`, in sequence order; skips (and counts) missing packets
    /// whose successors are due when too-late drop is on.
    pub fn poll_output(&mut self, now: Instant) -> Option<Bytes> {
        debug_assert_eq!(
            self.missing,
            self.buf
                .iter()
                .filter(|s| matches!(s, Slot::Missing))
                .count(),
            "missing-slot counter out of step"
        );
        debug_assert!(self.buf.len() <= self.cfg.buffer_packets);
        self.check_idle(now);
        match self.closed {
            None => {}
            // The sender finished cleanly: nothing more will arrive, so what was received
            // is handed out at once, in order, without waiting for TSBPD or for holes.
            Some(CloseReason::PeerShutdown) => {
                while let Some(slot) = self.pop_head() {
                    if let Slot::Ready { payload, .. } = slot {
                        self.stats.packets_delivered += 1;
                        return Some(payload);
                    }
                }
                return None;
            }
            Some(_) => return None,
        }
        loop {
            match self.buf.front()? {
                Slot::Dropped => {
                    self.pop_head();
                }
                Slot::Ready { ts, .. } => {
                    if self.delivery_time(*ts)? > now {
                        return None;
                    }
                    let Some(Slot::Ready { payload, .. }) = self.pop_head() else {
                        return None;
                    };
                    self.stats.packets_delivered += 1;
                    return Some(payload);
                }
                Slot::Missing => {
                    if !self.cfg.too_late_drop {
                        return None;
                    }
                    let (i, due) = self.first_ready()?;
                    if due > now {
                        return None;
                    }
                    for _ in 0..i {
                        if let Some(Slot::Missing) = self.pop_head() {
                            self.stats.dropped_too_late += 1;
                        }
                    }
                }
            }
        }
    }

    fn pop_head(&mut self) -> Option<Slot> {
        let s = self.buf.pop_front()?;
        if matches!(s, Slot::Missing) {
            self.missing = self.missing.saturating_sub(1);
        }
        self.head = self.head.next();
        Some(s)
    }

    /// The sequence number up to which everything is received (exclusive).
    fn ack_seq(&self) -> SeqNo {
        let n = if self.missing == 0 {
            self.buf.len()
        } else {
            self.buf
                .iter()
                .position(|s| matches!(s, Slot::Missing))
                .unwrap_or(self.buf.len())
        };
        self.head.add(n as u32)
    }

    fn loss_list(&self) -> Vec<LossEntry> {
        let mut out = Vec::new();
        let mut run: Option<(usize, usize)> = None;
        let flush = |run: Option<(usize, usize)>, out: &mut Vec<LossEntry>| {
            if let Some((a, b)) = run {
                let (sa, sb) = (self.head.add(a as u32), self.head.add(b as u32));
                out.push(if a == b {
                    LossEntry::Single(sa)
                } else {
                    LossEntry::Range(sa, sb)
                });
            }
        };
        for (i, s) in self.buf.iter().enumerate() {
            if matches!(s, Slot::Missing) {
                run = Some(match run {
                    Some((a, _)) => (a, i),
                    None => (i, i),
                });
            } else if run.is_some() {
                flush(run.take(), &mut out);
                if out.len() >= MAX_NAK_ENTRIES {
                    return out;
                }
            }
        }
        flush(run, &mut out);
        out
    }

    fn nak_interval(&self) -> Duration {
        Duration::from_micros(self.rtt_us + 4 * self.rtt_var_us).max(MIN_NAK_INTERVAL)
    }

    fn control(&self, now: Instant, control: Control) -> ControlPacket {
        ControlPacket {
            timestamp: Timestamp::from_micros(
                now.saturating_duration_since(self.start).as_micros() as u64,
            ),
            dest: self.cfg.peer_socket,
            control,
        }
    }

    fn send(&mut self, now: Instant, control: Control, buf: &mut [u8]) -> Option<usize> {
        let n = self.control(now, control).emit(buf).ok()?;
        self.last_sent = now;
        Some(n)
    }

    fn nak(&mut self, now: Instant, entries: &[LossEntry], buf: &mut [u8]) -> Option<usize> {
        let entries = entries.get(..MAX_NAK_ENTRIES).unwrap_or(entries);
        self.stats.naks_sent += 1;
        self.send(now, Control::Nak(LossList::from_entries(entries)), buf)
    }

    /// The next control packet to send, written into `buf` (at least [`MIN_TRANSMIT_BUF`]
    /// bytes); `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.check_idle(now);
        if self.shutdown_due {
            self.shutdown_due = false;
            return self.send(now, Control::Shutdown, buf);
        }
        if self.closed.is_some() {
            return None;
        }
        if let Some(cif) = self.pending_kmrsp.take() {
            return self.send(
                now,
                Control::Unknown {
                    control_type: control_type::USER,
                    subtype: SUBTYPE_KMRSP,
                    type_info: 0,
                    cif,
                },
                buf,
            );
        }
        if !self.pending_nak.is_empty() {
            // The periodic NAK timer keeps running: under steady loss immediate NAKs would
            // otherwise postpone it forever, and a lost immediate NAK never be repeated.
            let entries = std::mem::take(&mut self.pending_nak);
            return self.nak(now, &entries, buf);
        }
        if now >= self.rate_start + Duration::from_secs(1) {
            let secs = now.duration_since(self.rate_start).as_secs_f64();
            self.pps = (f64::from(self.rate_pkts) / secs) as u32;
            self.bps = (self.rate_bytes as f64 / secs) as u32;
            self.rate_start = now;
            self.rate_pkts = 0;
            self.rate_bytes = 0;
        }
        if now >= self.next_ack {
            self.next_ack = now + ACK_INTERVAL;
            let seq = self.ack_seq();
            let unacked = self.last_ackacked != Some(seq)
                && self
                    .acks
                    .back()
                    .is_none_or(|a| now.saturating_duration_since(a.at) >= self.nak_interval());
            if self.base.is_some() && (self.last_ack_seq != Some(seq) || unacked) {
                self.ack_number = self.ack_number.wrapping_add(1).max(1);
                if self.acks.len() >= ACK_HISTORY_CAP {
                    self.acks.pop_front();
                }
                self.acks.push_back(SentAck {
                    number: self.ack_number,
                    at: now,
                    seq,
                });
                self.last_ack_seq = Some(seq);
                self.stats.acks_sent += 1;
                let ack = Ack {
                    ack_number: self.ack_number,
                    last_ack: seq,
                    info: Some(AckInfo {
                        rtt: self.rtt_us as u32,
                        rtt_var: self.rtt_var_us as u32,
                        buffer_available: self.cfg.buffer_packets.saturating_sub(self.buf.len())
                            as u32,
                        rates: Some(AckRates {
                            packets_per_sec: self.pps,
                            // No packet-pair probing here: report the receive rate.
                            link_capacity: self.pps,
                            bytes_per_sec: self.bps,
                        }),
                    }),
                };
                return self.send(now, Control::Ack(ack), buf);
            }
        }
        if now >= self.next_nak {
            self.next_nak = now + self.nak_interval();
            let list = self.loss_list();
            if !list.is_empty() {
                return self.nak(now, &list, buf);
            }
        }
        if self.keepalive_due || now.saturating_duration_since(self.last_sent) >= KEEPALIVE_INTERVAL
        {
            self.keepalive_due = false;
            return self.send(now, Control::KeepAlive, buf);
        }
        None
    }

    /// When the engine should call the `poll_*` functions next, absent new packets. The
    /// instant may already be past (something is due now); `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shutdown_due {
            return Some(self.start);
        }
        if self.closed.is_some() {
            return None;
        }
        let mut t = self.last_recv + self.cfg.idle_timeout;
        t = t.min(self.last_sent + KEEPALIVE_INTERVAL);
        if self.base.is_some() {
            t = t.min(self.next_ack);
        }
        if self.missing > 0 {
            t = t.min(self.next_nak);
        }
        let due = match self.buf.front() {
            Some(Slot::Ready { ts, .. }) => self.delivery_time(*ts),
            Some(Slot::Dropped) => Some(self.start),
            Some(Slot::Missing) if self.cfg.too_late_drop => self.first_ready().map(|(_, d)| d),
            _ => None,
        };
        Some(due.map_or(t, |d| d.min(t)))
    }
}
