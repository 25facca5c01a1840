//! A sans-IO SRT caller (sender side, live mode, no encryption) for the load tool, built on
//! `sluice_proto::srt`'s packet and handshake codecs.
//!
//! What it does, and no more: the HSv5 caller handshake (induction, then conclusion with
//! HSREQ and the stream id), data packets with µs timestamps and message numbers, ACKACK for
//! every full ACK, retransmission on NAK from a bounded send buffer, keep-alives when idle,
//! and SHUTDOWN. No congestion control (live mode paces at the input's rate, which the
//! caller's owner does), no encryption, no rendezvous.
//!
//! Like the gateway's own state machines it owns no socket and reads no clock: the owner
//! passes each received datagram and the current time (µs on any monotonic clock), and sends
//! what [`SrtCaller::poll_output`] returns.

use std::collections::VecDeque;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use sluice_proto::srt::handshake::{
    Handshake, HandshakeType, RejectReason, SRT_MAGIC, SRT_VERSION, SrtFlags, encode_stream_id,
    ext_flags, ext_type, peer_ip_bytes,
};
use sluice_proto::srt::packet::{
    Ack, Control, ControlPacket, DataPacket, KeyFlags, LossEntry, MsgNo, Packet, PacketPosition,
    SeqNo, SocketId, Timestamp,
};

/// Largest payload of one data packet: a 1500-byte MTU less IPv4 (20), UDP (8) and SRT (16)
/// headers (libsrt's `SRTO_PAYLOADSIZE` limit for live mode is 1456).
pub const MAX_PAYLOAD: usize = 1456;
/// Handshake packets are resent this often until answered, µs.
const HANDSHAKE_RESEND_US: u64 = 250_000;
/// The handshake gives up after this long, µs.
const HANDSHAKE_TIMEOUT_US: u64 = 5_000_000;
/// A keep-alive goes out after this long without sending anything, µs (libsrt: 1 s).
const KEEPALIVE_US: u64 = 1_000_000;
/// Cap on the sequence numbers one NAK entry may name: a hostile range cannot make the caller
/// loop over 2^31 numbers (anything past the send buffer is unavailable anyway).
const MAX_NAK_RANGE: u32 = 8192;
/// Cap on queued output datagrams; beyond it the oldest retransmissions would be pointless.
const MAX_OUTPUT: usize = 4096;

/// Settings of one caller.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// Our socket id (non-zero, unique per caller in the process).
    pub socket_id: u32,
    /// Initial sequence number (31 bits).
    pub isn: u32,
    /// Stream id sent in the SID extension (empty: none).
    pub stream_id: Vec<u8>,
    /// Latency we propose, ms (both directions).
    pub latency_ms: u16,
    /// The listener's IP, for the handshake's peer-address field.
    pub peer_ip: IpAddr,
    /// Data packets kept for retransmission (the oldest is evicted when full).
    pub send_buffer: usize,
}

impl Default for CallerConfig {
    fn default() -> Self {
        Self {
            socket_id: 1,
            isn: 0,
            stream_id: Vec::new(),
            latency_ms: 120,
            peer_ip: IpAddr::from([127, 0, 0, 1]),
            send_buffer: 512,
        }
    }
}

/// Why a caller stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The listener rejected the conclusion.
    Rejected(RejectReason),
    /// No handshake answer in time.
    Timeout,
    /// The peer sent SHUTDOWN.
    PeerShutdown,
    /// We closed.
    Local,
}

/// Connection phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerState {
    /// Induction sent, waiting for the cookie.
    Induction,
    /// Conclusion sent, waiting for the response.
    Conclusion,
    /// Data may flow.
    Connected,
    /// Done; nothing more is sent.
    Closed(CloseReason),
}

/// Errors of [`SrtCaller::send`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// Data before the handshake finished, or after close.
    #[error("not connected ({0:?})")]
    NotConnected(CallerState),
    /// The payload exceeds [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes over {MAX_PAYLOAD}")]
    TooLarge(usize),
}

/// Counters of one caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerStats {
    /// Data packets sent for the first time.
    pub packets: u64,
    /// Payload bytes sent for the first time.
    pub payload_bytes: u64,
    /// Data packets resent on NAK.
    pub retransmitted: u64,
    /// NAK packets received.
    pub naks: u64,
    /// Sequence numbers a NAK asked for that the send buffer no longer held.
    pub nak_unavailable: u64,
    /// ACKs received.
    pub acks: u64,
    /// ACKACKs sent.
    pub ackacks: u64,
    /// Packets evicted from a full send buffer before being acknowledged.
    pub evicted: u64,
    /// Datagrams that did not parse, or came from another socket (dropped).
    pub ignored: u64,
    /// Output datagrams dropped because the output queue was full.
    pub output_dropped: u64,
}

struct Sent {
    seq: SeqNo,
    msg: MsgNo,
    timestamp: Timestamp,
    payload: Bytes,
}

/// The caller state machine.
pub struct SrtCaller {
    cfg: CallerConfig,
    state: CallerState,
    start_us: u64,
    hs_started_us: u64,
    hs_sent_us: u64,
    last_sent_us: u64,
    cookie: u32,
    peer: SocketId,
    next_seq: SeqNo,
    next_msg: u32,
    /// Unacknowledged data packets, in sequence order.
    buffer: VecDeque<Sent>,
    out: VecDeque<Bytes>,
    stats: CallerStats,
}

impl SrtCaller {
    /// A caller that starts its handshake at `now_us` (the induction is queued at once).
    pub fn new(cfg: CallerConfig, now_us: u64) -> Self {
        let mut c = Self {
            next_seq: SeqNo::new(cfg.isn),
            cfg,
            state: CallerState::Induction,
            start_us: now_us,
            hs_started_us: now_us,
            hs_sent_us: now_us,
            last_sent_us: now_us,
            cookie: 0,
            peer: SocketId(0),
            next_msg: 1,
            buffer: VecDeque::new(),
            out: VecDeque::new(),
            stats: CallerStats::default(),
        };
        c.send_handshake(now_us);
        c
    }

    /// Current phase.
    pub fn state(&self) -> CallerState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> CallerStats {
        self.stats
    }

    /// The listener's socket id for this connection (0 until connected).
    pub fn peer_socket(&self) -> SocketId {
        self.peer
    }

    /// The next datagram to send, if any.
    pub fn poll_output(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Timestamp field for `now_us`: µs since the caller started, wrapping at 32 bits.
    fn ts(&self, now_us: u64) -> Timestamp {
        Timestamp(now_us.saturating_sub(self.start_us) as u32)
    }

    fn push_out(&mut self, d: Bytes, now_us: u64) {
        if self.out.len() >= MAX_OUTPUT {
            self.stats.output_dropped += 1;
            return;
        }
        self.out.push_back(d);
        self.last_sent_us = now_us;
    }

    fn emit_control(&mut self, control: Control, now_us: u64) {
        let p = ControlPacket {
            timestamp: self.ts(now_us),
            dest: self.peer,
            control,
        };
        let mut b = BytesMut::zeroed(p.len());
        if let Ok(n) = p.emit(&mut b) {
            b.truncate(n);
            self.push_out(b.freeze(), now_us);
        }
    }

    fn send_handshake(&mut self, now_us: u64) {
        let conclusion = self.state == CallerState::Conclusion;
        let mut exts = Vec::new();
        if conclusion {
            // HSREQ: we send with TSBPD and also accept TSBPD data, drop too-late packets,
            // honour periodic NAKs and use the retransmission flag (libsrt's defaults).
            let flags = SrtFlags::TSBPDSND
                | SrtFlags::TSBPDRCV
                | SrtFlags::TLPKTDROP
                | SrtFlags::PERIODICNAK
                | SrtFlags::REXMITFLG;
            let lat = u32::from(self.cfg.latency_ms);
            push_ext(
                &mut exts,
                ext_type::HSREQ,
                &[SRT_VERSION, flags, (lat << 16) | lat],
            );
            if !self.cfg.stream_id.is_empty() {
                let sid = encode_stream_id(&self.cfg.stream_id);
                exts.extend_from_slice(
                    &((u32::from(ext_type::SID) << 16) | (sid.len() / 4) as u32).to_be_bytes(),
                );
                exts.extend_from_slice(&sid);
            }
        }
        let hs = Handshake {
            version: if conclusion { 5 } else { 4 },
            encryption: 0,
            // Induction: 2 (the value HSv5 callers send, see libsrt); conclusion: the
            // extensions present.
            extension: if !conclusion {
                2
            } else if self.cfg.stream_id.is_empty() {
                ext_flags::HSREQ
            } else {
                ext_flags::HSREQ | ext_flags::CONFIG
            },
            isn: SeqNo::new(self.cfg.isn),
            mtu: 1500,
            flow_window: 8192,
            hs_type: if conclusion {
                HandshakeType::Conclusion
            } else {
                HandshakeType::Induction
            },
            socket_id: SocketId(self.cfg.socket_id),
            cookie: if conclusion { self.cookie } else { 0 },
            peer_ip: peer_ip_bytes(self.cfg.peer_ip),
            extensions: Bytes::from(exts),
        };
        let mut cif = vec![0u8; hs.len()];
        if hs.emit(&mut cif).is_err() {
            return;
        }
        // Both handshake phases go to socket 0, the listener's.
        let p = ControlPacket {
            timestamp: self.ts(now_us),
            dest: SocketId(0),
            control: Control::Handshake(Bytes::from(cif)),
        };
        let mut b = BytesMut::zeroed(p.len());
        if let Ok(n) = p.emit(&mut b) {
            b.truncate(n);
            self.push_out(b.freeze(), now_us);
        }
        self.hs_sent_us = now_us;
    }

    /// Handles one received datagram.
    pub fn handle(&mut self, datagram: Bytes, now_us: u64) {
        if matches!(self.state, CallerState::Closed(_)) {
            return;
        }
        let Ok(Packet::Control(c)) = Packet::parse(datagram) else {
            // A caller receives no data packets; anything unparsable is counted and dropped.
            self.stats.ignored += 1;
            return;
        };
        if c.dest != SocketId(self.cfg.socket_id) {
            self.stats.ignored += 1;
            return;
        }
        match c.control {
            Control::Handshake(cif) => self.on_handshake(cif, now_us),
            Control::Ack(a) if self.state == CallerState::Connected => self.on_ack(a, now_us),
            Control::Nak(list) if self.state == CallerState::Connected => {
                self.stats.naks += 1;
                let mut want = Vec::new();
                for e in list.iter() {
                    let (a, b) = match e {
                        Ok(LossEntry::Single(s)) => (s, s),
                        Ok(LossEntry::Range(a, b)) => (a, b),
                        Err(_) => break,
                    };
                    let n = (b.distance(a).max(0) as u32).min(MAX_NAK_RANGE);
                    want.extend((0..=n).map(|k| a.add(k)));
                }
                for s in want {
                    self.retransmit(s, now_us);
                }
            }
            Control::Shutdown => self.state = CallerState::Closed(CloseReason::PeerShutdown),
            _ => {}
        }
    }

    fn on_handshake(&mut self, cif: Bytes, now_us: u64) {
        let Ok(hs) = Handshake::parse(cif) else {
            self.stats.ignored += 1;
            return;
        };
        match (self.state, hs.hs_type) {
            (_, HandshakeType::Rejection(r)) => {
                self.state = CallerState::Closed(CloseReason::Rejected(r));
            }
            (CallerState::Induction, HandshakeType::Induction)
                if hs.version == 5 && hs.extension == SRT_MAGIC =>
            {
                self.cookie = hs.cookie;
                self.state = CallerState::Conclusion;
                self.send_handshake(now_us);
            }
            (CallerState::Conclusion, HandshakeType::Conclusion) => {
                self.peer = hs.socket_id;
                self.state = CallerState::Connected;
            }
            // Repeats of answers already taken (our resends crossed them).
            _ => {}
        }
    }

    fn on_ack(&mut self, a: Ack, now_us: u64) {
        self.stats.acks += 1;
        // Everything before `last_ack` arrived.
        while self
            .buffer
            .front()
            .is_some_and(|s| s.seq.distance(a.last_ack) < 0)
        {
            self.buffer.pop_front();
        }
        // Full ACKs carry a number the receiver wants echoed (its RTT measurement); light
        // ACKs (no info) do not.
        if a.info.is_some() && a.ack_number != 0 {
            self.stats.ackacks += 1;
            self.emit_control(
                Control::AckAck {
                    ack_number: a.ack_number,
                },
                now_us,
            );
        }
    }

    fn retransmit(&mut self, seq: SeqNo, now_us: u64) {
        let Some(front) = self.buffer.front() else {
            self.stats.nak_unavailable += 1;
            return;
        };
        let off = seq.distance(front.seq);
        let Some(s) = usize::try_from(off).ok().and_then(|i| self.buffer.get(i)) else {
            self.stats.nak_unavailable += 1;
            return;
        };
        let p = DataPacket {
            seq: s.seq,
            position: PacketPosition::Only,
            in_order: false,
            key: KeyFlags::None,
            retransmitted: true,
            msg: s.msg,
            timestamp: s.timestamp,
            dest: self.peer,
            payload: s.payload.clone(),
        };
        self.stats.retransmitted += 1;
        self.emit_data(&p, now_us);
    }

    fn emit_data(&mut self, p: &DataPacket, now_us: u64) {
        // Copy: header and payload must be one contiguous datagram for `send` (no iovec
        // sends in the tool's socket API); 1316 bytes per packet.
        let mut b = BytesMut::zeroed(p.len());
        if let Ok(n) = p.emit(&mut b) {
            b.truncate(n);
            self.push_out(b.freeze(), now_us);
        }
    }

    /// Sends one payload (one message, one packet) stamped `now_us`.
    pub fn send(&mut self, payload: Bytes, now_us: u64) -> Result<(), CallerError> {
        if self.state != CallerState::Connected {
            return Err(CallerError::NotConnected(self.state));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(CallerError::TooLarge(payload.len()));
        }
        let seq = self.next_seq;
        self.next_seq = seq.next();
        let msg = MsgNo::new(self.next_msg);
        self.next_msg = (self.next_msg % (MsgNo::MODULUS - 1)) + 1;
        let p = DataPacket {
            seq,
            position: PacketPosition::Only,
            in_order: false,
            key: KeyFlags::None,
            retransmitted: false,
            msg,
            timestamp: self.ts(now_us),
            dest: self.peer,
            payload,
        };
        self.stats.packets += 1;
        self.stats.payload_bytes += p.payload.len() as u64;
        self.emit_data(&p, now_us);
        if self.cfg.send_buffer > 0 {
            if self.buffer.len() >= self.cfg.send_buffer {
                self.buffer.pop_front();
                self.stats.evicted += 1;
            }
            self.buffer.push_back(Sent {
                seq,
                msg,
                timestamp: p.timestamp,
                payload: p.payload,
            });
        }
        Ok(())
    }

    /// Timers: handshake resends and timeout, keep-alives. Call every few tens of ms.
    pub fn tick(&mut self, now_us: u64) {
        match self.state {
            CallerState::Induction | CallerState::Conclusion => {
                if now_us.saturating_sub(self.hs_started_us) >= HANDSHAKE_TIMEOUT_US {
                    self.state = CallerState::Closed(CloseReason::Timeout);
                } else if now_us.saturating_sub(self.hs_sent_us) >= HANDSHAKE_RESEND_US {
                    self.send_handshake(now_us);
                }
            }
            CallerState::Connected => {
                if now_us.saturating_sub(self.last_sent_us) >= KEEPALIVE_US {
                    self.emit_control(Control::KeepAlive, now_us);
                }
            }
            CallerState::Closed(_) => {}
        }
    }

    /// Queues SHUTDOWN (when connected) and closes.
    pub fn close(&mut self, now_us: u64) {
        if self.state == CallerState::Connected {
            self.emit_control(Control::Shutdown, now_us);
        }
        if !matches!(self.state, CallerState::Closed(_)) {
            self.state = CallerState::Closed(CloseReason::Local);
        }
    }
}

/// Appends one extension block of 32-bit words.
fn push_ext(out: &mut Vec<u8>, ty: u16, words: &[u32]) {
    out.extend_from_slice(&((u32::from(ty) << 16) | words.len() as u32).to_be_bytes());
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::srt::handshake::{Listener, ListenerConfig, ListenerEvent};
    use sluice_proto::srt::packet::{AckInfo, LossList};
    use std::time::Duration;

    fn control(d: &Bytes) -> ControlPacket {
        match Packet::parse(d.clone()).unwrap() {
            Packet::Control(c) => c,
            Packet::Data(_) => panic!("data packet"),
        }
    }

    /// Drives a caller through sluice-proto's own listener: the handshake must produce the
    /// stream id and HSREQ the listener validates.
    fn connected(send_buffer: usize) -> SrtCaller {
        let listener = Listener::new(ListenerConfig {
            cookie_secret: b"test".to_vec(),
            listener_socket: SocketId(99),
            ..ListenerConfig::default()
        });
        let mut c = SrtCaller::new(
            CallerConfig {
                socket_id: 7,
                isn: 1000,
                stream_id: b"#!::r=live/key1,m=publish".to_vec(),
                latency_ms: 200,
                send_buffer,
                ..CallerConfig::default()
            },
            0,
        );
        let ind = control(&c.poll_output().unwrap());
        let mut buf = [0u8; 1500];
        let ListenerEvent::InductionReply(n) = listener
            .handle(&ind, b"peer", [0; 16], 5, &mut buf)
            .unwrap()
        else {
            panic!("no induction reply")
        };
        c.handle(Bytes::copy_from_slice(&buf[..n]), 1000);
        assert_eq!(c.state(), CallerState::Conclusion);
        let conc = control(&c.poll_output().unwrap());
        let ListenerEvent::Conclusion(req) = listener
            .handle(&conc, b"peer", [0; 16], 5, &mut buf)
            .unwrap()
        else {
            panic!("conclusion not accepted")
        };
        assert_eq!(req.stream_id, b"#!::r=live/key1,m=publish");
        assert_eq!(req.hsreq.send_latency_ms, 200);
        assert_eq!(req.handshake.isn, SeqNo::new(1000));
        let acc = listener
            .accept(&req, SocketId(99), None, 0, &mut buf)
            .unwrap();
        assert_eq!(acc.latency, Duration::from_millis(200));
        c.handle(Bytes::copy_from_slice(&buf[..acc.len]), 2000);
        assert_eq!(c.state(), CallerState::Connected);
        assert_eq!(c.peer_socket(), SocketId(99));
        c
    }

    #[test]
    fn handshake_with_sluice_proto_listener() {
        let c = connected(8);
        assert_eq!(c.stats().ignored, 0);
    }

    #[test]
    fn data_packets_carry_sequence_timestamp_and_destination() {
        let mut c = connected(8);
        c.send(Bytes::from_static(&[0x47; 1316]), 10_000).unwrap();
        c.send(Bytes::from_static(&[0x47; 188]), 20_000).unwrap();
        let a = c.poll_output().unwrap();
        let b = c.poll_output().unwrap();
        let (Ok(Packet::Data(a)), Ok(Packet::Data(b))) = (Packet::parse(a), Packet::parse(b))
        else {
            panic!("not data")
        };
        assert_eq!((a.seq, b.seq), (SeqNo::new(1000), SeqNo::new(1001)));
        assert_eq!(
            (a.timestamp, b.timestamp),
            (Timestamp(10_000), Timestamp(20_000))
        );
        assert_eq!(a.dest, SocketId(99));
        assert_eq!(a.position, PacketPosition::Only);
        assert_eq!(a.payload.len(), 1316);
        assert!(!a.retransmitted);
        assert_ne!(a.msg, b.msg);
        assert_eq!(
            c.send(Bytes::from(vec![0; MAX_PAYLOAD + 1]), 0),
            Err(CallerError::TooLarge(MAX_PAYLOAD + 1))
        );
    }

    fn to_caller(control: Control) -> Bytes {
        let p = ControlPacket {
            timestamp: Timestamp(0),
            dest: SocketId(7),
            control,
        };
        let mut b = vec![0; p.len()];
        p.emit(&mut b).unwrap();
        Bytes::from(b)
    }

    #[test]
    fn full_ack_is_answered_and_frees_the_buffer_nak_resends() {
        let mut c = connected(8);
        for i in 0..4u8 {
            c.send(Bytes::from(vec![i; 100]), 0).unwrap();
        }
        while c.poll_output().is_some() {}
        // ACK up to 1002: 1000 and 1001 leave the buffer.
        let info = AckInfo {
            rtt: 100,
            rtt_var: 50,
            buffer_available: 100,
            rates: None,
        };
        c.handle(
            to_caller(Control::Ack(Ack {
                ack_number: 5,
                last_ack: SeqNo::new(1002),
                info: Some(info),
            })),
            0,
        );
        let ackack = control(&c.poll_output().unwrap());
        assert_eq!(ackack.control, Control::AckAck { ack_number: 5 });
        // A light ACK is not answered.
        c.handle(
            to_caller(Control::Ack(Ack {
                ack_number: 0,
                last_ack: SeqNo::new(1002),
                info: None,
            })),
            0,
        );
        assert!(c.poll_output().is_none());
        // NAK 1001..=1003: 1001 is gone (acknowledged), 1002 and 1003 are resent.
        let list = LossList::from_entries(&[LossEntry::Range(SeqNo::new(1001), SeqNo::new(1003))]);
        c.handle(to_caller(Control::Nak(list)), 0);
        let mut resent = Vec::new();
        while let Some(d) = c.poll_output() {
            let Ok(Packet::Data(p)) = Packet::parse(d) else {
                panic!("not data")
            };
            assert!(p.retransmitted);
            resent.push((p.seq.get(), p.payload[0]));
        }
        assert_eq!(resent, vec![(1002, 2), (1003, 3)]);
        assert_eq!(c.stats().nak_unavailable, 1);
        assert_eq!(c.stats().retransmitted, 2);
    }

    #[test]
    fn hostile_nak_range_is_capped() {
        let mut c = connected(4);
        c.send(Bytes::from_static(b"x"), 0).unwrap();
        while c.poll_output().is_some() {}
        // A range of 2^30 numbers around the one packet held: only MAX_NAK_RANGE are looked at.
        let list =
            LossList::from_entries(&[LossEntry::Range(SeqNo::new(0), SeqNo::new(0x3FFF_FFFF))]);
        c.handle(to_caller(Control::Nak(list)), 0);
        assert!(c.stats().nak_unavailable <= u64::from(MAX_NAK_RANGE) + 1);
        assert_eq!(c.stats().retransmitted, 1);
    }

    #[test]
    fn send_buffer_evicts_oldest() {
        let mut c = connected(2);
        for _ in 0..3 {
            c.send(Bytes::from_static(b"x"), 0).unwrap();
        }
        assert_eq!(c.stats().evicted, 1);
    }

    #[test]
    fn handshake_resends_then_times_out_and_rejection_closes() {
        let mut c = SrtCaller::new(CallerConfig::default(), 0);
        assert!(c.poll_output().is_some());
        c.tick(100_000);
        assert!(c.poll_output().is_none());
        c.tick(HANDSHAKE_RESEND_US);
        assert!(c.poll_output().is_some());
        c.tick(HANDSHAKE_TIMEOUT_US);
        assert_eq!(c.state(), CallerState::Closed(CloseReason::Timeout));
        assert_eq!(
            c.send(Bytes::from_static(b"x"), 0),
            Err(CallerError::NotConnected(CallerState::Closed(
                CloseReason::Timeout
            )))
        );
    }

    #[test]
    fn garbage_and_foreign_packets_are_counted() {
        let mut c = connected(2);
        c.handle(Bytes::from_static(b"\x80\x00"), 0);
        let p = ControlPacket {
            timestamp: Timestamp(0),
            dest: SocketId(8),
            control: Control::Shutdown,
        };
        let mut b = vec![0; p.len()];
        p.emit(&mut b).unwrap();
        c.handle(Bytes::from(b), 0);
        assert_eq!(c.stats().ignored, 2);
        assert_eq!(c.state(), CallerState::Connected);
        c.handle(to_caller(Control::Shutdown), 0);
        assert_eq!(c.state(), CallerState::Closed(CloseReason::PeerShutdown));
    }

    #[test]
    fn keepalive_when_idle() {
        let mut c = connected(2);
        while c.poll_output().is_some() {}
        c.tick(2000 + KEEPALIVE_US);
        let k = control(&c.poll_output().unwrap());
        assert_eq!(k.control, Control::KeepAlive);
        assert_eq!(k.dest, SocketId(99));
    }
}
