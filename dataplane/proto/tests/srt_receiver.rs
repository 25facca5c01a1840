//! Receiver scenarios in virtual time: a simple SRT live sender model talks to the
//! sans-IO receiver through a seeded channel that loses, delays, reorders and duplicates
//! packets in both directions.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_proto::srt::crypto::SessionKeys;
use sluice_proto::srt::packet::*;
use sluice_proto::srt::receiver::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

const RECEIVER_SOCKET: SocketId = SocketId(0x0000_0BBB);
const SENDER_SOCKET: SocketId = SocketId(0x0000_0AAA);

/// A lossy, jittery, duplicating channel in one direction.
struct Channel {
    rng: StdRng,
    loss: f64,
    dup: f64,
    delay: Duration,
    jitter: Duration,
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    n: u64,
}

impl Channel {
    fn new(seed: u64, loss: f64, dup: f64, delay_ms: u64, jitter_ms: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            loss,
            dup,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            queue: BinaryHeap::new(),
            n: 0,
        }
    }

    fn send(&mut self, now: Instant, bytes: &[u8]) {
        if self.rng.gen_bool(self.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let j = self.rng.gen_range(0..=self.jitter.as_micros() as u64);
            let at = now + self.delay + Duration::from_micros(j);
            self.n += 1;
            self.queue.push(Reverse((at, self.n, bytes.to_vec())));
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, ..))| *t)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_at()? <= now {
            self.queue.pop().map(|Reverse((_, _, b))| b)
        } else {
            None
        }
    }
}

/// Live sender model: one packet per interval, keeps unacknowledged packets until they are
/// acknowledged or too old, retransmits on NAK, answers ACK with ACKACK.
struct Sender {
    start: Instant,
    ts_offset: u32,
    clock_ppm: i64,
    next_seq: SeqNo,
    next_index: u64,
    interval: Duration,
    next_send: Instant,
    total: u64,
    keep: Duration,
    unacked: VecDeque<(SeqNo, Instant, DataPacket)>,
    keys: Option<SessionKeys>,
    send_times: Vec<Instant>,
}

impl Sender {
    /// The sender's clock: runs `clock_ppm` parts per million fast (or slow when negative).
    fn timestamp(&self, now: Instant) -> Timestamp {
        let real = now.duration_since(self.start).as_micros() as i64;
        let skewed = real + real * self.clock_ppm / 1_000_000;
        Timestamp::from_micros(skewed as u64).add_micros(self.ts_offset)
    }

    fn emit(p: &DataPacket) -> Vec<u8> {
        let mut buf = vec![0u8; p.len()];
        p.emit(&mut buf).unwrap();
        buf
    }

    fn poll_send(&mut self, now: Instant, ch: &mut Channel) {
        while self.next_index < self.total && self.next_send <= now {
            let mut payload = self.next_index.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0x47; 8]);
            let key = if let Some(k) = &self.keys {
                k.apply(KeyFlags::Even, self.next_seq, &mut payload)
                    .unwrap();
                KeyFlags::Even
            } else {
                KeyFlags::None
            };
            let p = DataPacket {
                seq: self.next_seq,
                position: PacketPosition::Only,
                in_order: false,
                key,
                retransmitted: false,
                msg: MsgNo::new(self.next_index as u32 + 1),
                timestamp: self.timestamp(self.next_send),
                dest: RECEIVER_SOCKET,
                payload: Bytes::from(payload),
            };
            ch.send(now, &Self::emit(&p));
            self.send_times.push(self.next_send);
            self.unacked.push_back((self.next_seq, self.next_send, p));
            self.next_seq = self.next_seq.next();
            self.next_index += 1;
            self.next_send += self.interval;
        }
        // Tail loss: with nothing sent after it, a lost last packet leaves no gap for the
        // receiver to NAK, so the sender probes by resending what is still unacknowledged
        // (libsrt's sender does the same on its retransmission timer).
        if self.next_index == self.total && now >= self.next_send + Duration::from_millis(200) {
            for (_, _, p) in &self.unacked {
                let mut r = p.clone();
                r.retransmitted = true;
                ch.send(now, &Self::emit(&r));
            }
            self.next_send = now;
        }
        while let Some((_, at, _)) = self.unacked.front() {
            if now.duration_since(*at) > self.keep {
                self.unacked.pop_front();
            } else {
                break;
            }
        }
    }

    fn handle(&mut self, now: Instant, bytes: Vec<u8>, ch: &mut Channel) {
        let Ok(Packet::Control(c)) = Packet::parse(Bytes::from(bytes)) else {
            panic!("receiver sent a non-control packet");
        };
        assert_eq!(c.dest, SENDER_SOCKET);
        match c.control {
            Control::Ack(a) => {
                while let Some((s, ..)) = self.unacked.front() {
                    if *s < a.last_ack {
                        self.unacked.pop_front();
                    } else {
                        break;
                    }
                }
                let ackack = ControlPacket {
                    timestamp: self.timestamp(now),
                    dest: RECEIVER_SOCKET,
                    control: Control::AckAck {
                        ack_number: a.ack_number,
                    },
                };
                let mut buf = [0u8; 64];
                let n = ackack.emit(&mut buf).unwrap();
                ch.send(now, &buf[..n]);
            }
            Control::Nak(list) => {
                for e in list.iter() {
                    let (a, b) = match e.unwrap() {
                        LossEntry::Single(s) => (s, s),
                        LossEntry::Range(a, b) => (a, b),
                    };
                    for (s, _, p) in &self.unacked {
                        if *s >= a && *s <= b {
                            let mut r = p.clone();
                            r.retransmitted = true;
                            ch.send(now, &Self::emit(&r));
                        }
                    }
                }
            }
            Control::KeepAlive | Control::Shutdown => {}
            other => panic!("unexpected control {other:?}"),
        }
    }
}

struct Outcome {
    delivered: Vec<(Instant, u64)>,
    send_times: Vec<Instant>,
    stats: ReceiverStats,
    max_buffered: usize,
    last_seq: SeqNo,
}

#[allow(clippy::too_many_arguments)]
fn run(
    seed: u64,
    loss: f64,
    total: u64,
    interval_ms: u64,
    latency_ms: u64,
    isn: SeqNo,
    ts_offset: u32,
    encrypt: bool,
    clock_ppm: i64,
) -> Outcome {
    let t0 = Instant::now();
    let latency = Duration::from_millis(latency_ms);
    let keys = encrypt.then(|| SessionKeys::from_raw(&[9; 16], Some(&[3; 16]), None).unwrap());
    let mut sender = Sender {
        start: t0,
        ts_offset,
        clock_ppm,
        next_seq: isn,
        next_index: 0,
        interval: Duration::from_millis(interval_ms),
        next_send: t0,
        total,
        keep: latency + Duration::from_secs(1),
        unacked: VecDeque::new(),
        keys: keys.clone(),
        send_times: Vec::new(),
    };
    let mut cfg = ReceiverConfig::new(SENDER_SOCKET, isn);
    cfg.latency = latency;
    cfg.keys = keys;
    let mut rx = Receiver::new(cfg, t0);
    let mut to_rx = Channel::new(seed, loss, 0.01, 20, 15);
    let mut to_tx = Channel::new(seed ^ 0xFFFF, loss, 0.01, 20, 15);
    let mut now = t0;
    let mut out = Vec::new();
    let mut max_buffered = 0;
    let mut buf = [0u8; MIN_TRANSMIT_BUF];
    let end = t0 + Duration::from_millis(interval_ms * total) + latency + Duration::from_secs(2);
    while now < end {
        sender.poll_send(now, &mut to_rx);
        while let Some(b) = to_rx.pop_due(now) {
            rx.handle_packet(now, Packet::parse(Bytes::from(b)).unwrap());
            max_buffered = max_buffered.max(rx.buffered());
        }
        while let Some(b) = to_tx.pop_due(now) {
            sender.handle(now, b, &mut to_rx);
        }
        while let Some(n) = rx.poll_transmit(now, &mut buf) {
            to_tx.send(now, &buf[..n]);
        }
        while let Some(p) = rx.poll_output(now) {
            let idx = u64::from_be_bytes(p[..8].try_into().unwrap());
            assert_eq!(&p[8..], &[0x47; 8], "payload intact (decrypted)");
            out.push((now, idx));
        }
        assert!(rx.closed().is_none(), "closed early at {:?}", now - t0);
        let mut next = end;
        if sender.next_index < sender.total {
            next = next.min(sender.next_send);
        }
        for t in [to_rx.next_at(), to_tx.next_at(), rx.poll_timeout()]
            .into_iter()
            .flatten()
        {
            next = next.min(t);
        }
        now = next.max(now + Duration::from_micros(1));
    }
    Outcome {
        delivered: out,
        send_times: sender.send_times,
        stats: *rx.stats(),
        max_buffered,
        last_seq: rx.next_seq(),
    }
}

fn check_all_in_order(o: &Outcome, total: u64, latency_ms: u64) {
    let idx: Vec<u64> = o.delivered.iter().map(|(_, i)| *i).collect();
    assert_eq!(idx.len() as u64, total, "stats {:?}", o.stats);
    assert!(idx.iter().copied().eq(0..total), "in order, exactly once");
    let latency = Duration::from_millis(latency_ms);
    for (at, i) in &o.delivered {
        let waited = at.duration_since(o.send_times[*i as usize]);
        // Delivery = send time + first packet's one-way delay + latency, nudged by drift
        // tracking: never earlier than the latency, never later than latency + max delay +
        // drift tolerance.
        assert!(waited >= latency, "packet {i} early: {waited:?}");
        assert!(
            waited <= latency + Duration::from_millis(35 + 6),
            "packet {i} late: {waited:?}"
        );
    }
    assert!(o.max_buffered <= RECV_BUFFER_CAP);
}

#[test]
fn lossy_reordering_channel_delivers_everything_in_order() {
    let total = 5000;
    let o = run(7, 0.05, total, 2, 400, SeqNo::new(12345), 0, false, 0);
    check_all_in_order(&o, total, 400);
    assert!(
        o.stats.lost > 100,
        "the channel lost packets: {:?}",
        o.stats
    );
    assert!(o.stats.retransmitted > 100);
    assert!(o.stats.duplicates > 0);
    assert_eq!(o.stats.dropped_too_late, 0);
    assert!(o.stats.naks_sent > 0 && o.stats.acks_sent > 0);
}

#[test]
fn encrypted_stream_over_lossy_channel() {
    let total = 2000;
    let o = run(11, 0.05, total, 2, 400, SeqNo::new(1), 0, true, 0);
    check_all_in_order(&o, total, 400);
    assert_eq!(o.stats.undecryptable, 0);
}

#[test]
fn sequence_and_timestamp_wrap_quickly() {
    // Starts 2 s before both wraps: 31-bit sequence and 32-bit µs timestamp.
    let total = 2000;
    let isn = SeqNo::new(SeqNo::MODULUS - 1000);
    let o = run(3, 0.05, total, 2, 400, isn, u32::MAX - 2_000_000, false, 0);
    check_all_in_order(&o, total, 400);
    assert_eq!(o.last_seq, isn.add(total as u32));
    assert!(o.last_seq.get() < 2000, "sequence wrapped");
}

#[test]
fn seventy_two_minutes_cross_timestamp_wrap() {
    // A real 72-minute virtual run at 20 packets/s: the sender's timestamps pass 2^32 µs
    // (71.6 min) and the sequence passes 2^31.
    let total = 72 * 60 * 20;
    let isn = SeqNo::new(SeqNo::MODULUS - 40_000);
    let o = run(5, 0.01, total, 50, 300, isn, 0, false, 0);
    check_all_in_order(&o, total, 300);
    assert_eq!(o.last_seq, isn.add(total as u32));
    let span = o.send_times[total as usize - 1].duration_since(o.send_times[0]);
    assert!(span.as_micros() > u128::from(u32::MAX));
}

#[test]
fn drift_tracking_follows_fast_and_slow_sender_clocks() {
    // 300 ppm over 10 minutes is 180 ms: without drift tracking a fast sender clock would
    // push delivery 180 ms late, and a slow one would make every packet too late to play.
    let total = 10 * 60 * 100;
    for ppm in [300, -300] {
        let o = run(13, 0.01, total, 10, 300, SeqNo::new(5), 0, false, ppm);
        check_all_in_order(&o, total, 300);
        assert_eq!(o.stats.dropped_too_late, 0, "ppm {ppm}");
    }
}

// --- Focused behaviours -------------------------------------------------------------

fn data(seq: u32, ts_us: u32, retrans: bool) -> DataPacket {
    DataPacket {
        seq: SeqNo::new(seq),
        position: PacketPosition::Only,
        in_order: false,
        key: KeyFlags::None,
        retransmitted: retrans,
        msg: MsgNo::new(1),
        timestamp: Timestamp(ts_us),
        dest: RECEIVER_SOCKET,
        payload: Bytes::copy_from_slice(&seq.to_be_bytes()),
    }
}

fn ctl(control: Control) -> ControlPacket {
    ControlPacket {
        timestamp: Timestamp(0),
        dest: RECEIVER_SOCKET,
        control,
    }
}

fn transmit_all(rx: &mut Receiver, now: Instant) -> Vec<Control> {
    let mut buf = [0u8; MIN_TRANSMIT_BUF];
    let mut v = Vec::new();
    while let Some(n) = rx.poll_transmit(now, &mut buf) {
        match Packet::parse(Bytes::copy_from_slice(&buf[..n])).unwrap() {
            Packet::Control(c) => {
                assert_eq!(c.dest, SENDER_SOCKET);
                v.push(c.control)
            }
            Packet::Data(_) => panic!("data from receiver"),
        }
    }
    v
}

fn rx_at(t0: Instant, latency_ms: u64) -> Receiver {
    let mut cfg = ReceiverConfig::new(SENDER_SOCKET, SeqNo::new(100));
    cfg.latency = Duration::from_millis(latency_ms);
    Receiver::new(cfg, t0)
}

#[test]
fn releases_at_tsbpd_time_and_counts_duplicates() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    rx.handle_data(t0, data(100, 1_000, false));
    rx.handle_data(t0 + Duration::from_millis(1), data(101, 2_000, false));
    rx.handle_data(t0 + Duration::from_millis(1), data(101, 2_000, false));
    assert_eq!(rx.stats().duplicates, 1);
    assert_eq!(rx.poll_output(t0 + Duration::from_millis(99)), None);
    assert_eq!(
        rx.poll_timeout(),
        Some(t0 + Duration::from_millis(10)),
        "first ACK due before delivery"
    );
    let p = rx.poll_output(t0 + Duration::from_millis(100)).unwrap();
    assert_eq!(&p[..], &100u32.to_be_bytes());
    assert_eq!(rx.poll_output(t0 + Duration::from_millis(100)), None);
    assert_eq!(
        &rx.poll_output(t0 + Duration::from_millis(101)).unwrap()[..],
        &101u32.to_be_bytes()
    );
    // Late copy of a delivered packet.
    rx.handle_data(t0 + Duration::from_millis(102), data(100, 1_000, true));
    assert_eq!(rx.stats().duplicates, 2);
    assert_eq!(rx.stats().packets_delivered, 2);
}

#[test]
fn gap_triggers_immediate_nak_then_periodic_and_too_late_drop() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    rx.handle_data(t0, data(100, 0, false));
    rx.handle_data(t0, data(104, 4_000, false));
    let sent = transmit_all(&mut rx, t0);
    let Some(Control::Nak(l)) = sent.first() else {
        panic!("{sent:?}")
    };
    assert_eq!(
        l.iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![LossEntry::Range(SeqNo::new(101), SeqNo::new(103))]
    );
    assert_eq!(rx.stats().lost, 3);
    // ACK at 10 ms acknowledges up to the first hole.
    let sent = transmit_all(&mut rx, t0 + Duration::from_millis(10));
    let Some(Control::Ack(a)) = sent.first() else {
        panic!("{sent:?}")
    };
    assert_eq!(a.last_ack, SeqNo::new(101));
    // Retransmission of 102 arrives; the periodic NAK lists what is still missing.
    rx.handle_data(t0 + Duration::from_millis(20), data(102, 2_000, true));
    let later = t0 + Duration::from_millis(400);
    let naks: Vec<_> = transmit_all(&mut rx, later)
        .into_iter()
        .filter_map(|c| match c {
            Control::Nak(l) => Some(l.iter().map(Result::unwrap).collect::<Vec<_>>()),
            _ => None,
        })
        .collect();
    assert_eq!(
        naks,
        vec![vec![
            LossEntry::Single(SeqNo::new(101)),
            LossEntry::Single(SeqNo::new(103))
        ]]
    );
    // At 104's delivery time 101 and 103 are given up.
    let mut got = Vec::new();
    while let Some(p) = rx.poll_output(t0 + Duration::from_millis(104)) {
        got.push(u32::from_be_bytes(p[..4].try_into().unwrap()));
    }
    assert_eq!(got, vec![100, 102, 104]);
    assert_eq!(rx.stats().dropped_too_late, 2);
}

#[test]
fn ackack_measures_rtt() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    rx.handle_data(t0, data(100, 0, false));
    let sent = transmit_all(&mut rx, t0 + Duration::from_millis(10));
    let Some(Control::Ack(a)) = sent.first() else {
        panic!("{sent:?}")
    };
    let info = a.info.unwrap();
    assert_eq!(info.rtt, 100_000);
    assert_eq!(info.buffer_available as usize, RECV_BUFFER_CAP - 1);
    rx.handle_control(
        t0 + Duration::from_millis(30),
        &ctl(Control::AckAck {
            ack_number: a.ack_number,
        }),
    );
    // RTT = 7/8 * 100 ms + 1/8 * 20 ms = 90 ms; RTTVar = 3/4 * 50 + 1/4 * 80 = 57.5 ms.
    assert_eq!(
        rx.rtt(),
        (Duration::from_micros(90_000), Duration::from_micros(57_500))
    );
}

#[test]
fn keepalive_answered_idle_times_out_shutdown_closes() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    rx.handle_control(t0 + Duration::from_millis(600), &ctl(Control::KeepAlive));
    assert_eq!(
        transmit_all(&mut rx, t0 + Duration::from_millis(600)),
        vec![Control::KeepAlive]
    );
    assert!(rx.poll_timeout().unwrap() <= t0 + Duration::from_millis(1600));
    assert_eq!(rx.poll_output(t0 + Duration::from_millis(5_599)), None);
    assert_eq!(rx.closed(), None);
    rx.poll_output(t0 + Duration::from_millis(5_600));
    assert_eq!(rx.closed(), Some(CloseReason::IdleTimeout));

    let mut rx = rx_at(t0, 100);
    rx.handle_data(t0, data(100, 0, false));
    rx.handle_data(t0, data(102, 2_000, false));
    rx.handle_control(t0, &ctl(Control::Shutdown));
    assert_eq!(rx.closed(), Some(CloseReason::PeerShutdown));
    // Drained at once, before TSBPD time, skipping the hole; nothing is accepted after.
    rx.handle_data(t0, data(101, 1_000, true));
    let got: Vec<_> = std::iter::from_fn(|| rx.poll_output(t0))
        .map(|p| p[3])
        .collect();
    assert_eq!(got, vec![100, 102]);
    assert_eq!(transmit_all(&mut rx, t0), vec![]);

    let mut rx = rx_at(t0, 100);
    rx.close();
    assert_eq!(transmit_all(&mut rx, t0), vec![Control::Shutdown]);
    assert_eq!(rx.closed(), Some(CloseReason::Local));
}

#[test]
fn dropreq_skips_and_window_is_bounded() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    rx.handle_data(t0, data(100, 0, false));
    rx.handle_data(t0, data(103, 3_000, false));
    rx.handle_control(
        t0,
        &ctl(Control::DropReq {
            msg: 2,
            first: SeqNo::new(101),
            last: SeqNo::new(102),
        }),
    );
    assert_eq!(rx.stats().dropped_by_sender, 2);
    let got: Vec<_> = std::iter::from_fn(|| rx.poll_output(t0 + Duration::from_millis(103)))
        .map(|p| p[3])
        .collect();
    assert_eq!(got, vec![100, 103]);
    assert_eq!(rx.stats().dropped_too_late, 0);
    rx.handle_data(t0, data(104 + RECV_BUFFER_CAP as u32, 0, false));
    assert_eq!(rx.stats().dropped_beyond_window, 1);
    rx.handle_data(t0, data(103 + RECV_BUFFER_CAP as u32, 0, false));
    assert_eq!(rx.buffered(), RECV_BUFFER_CAP);
    // A range wholly beyond the window is ignored (a fuzzer found this panicking).
    let far = rx.next_seq().add(RECV_BUFFER_CAP as u32 + 10);
    rx.handle_control(
        t0,
        &ctl(Control::DropReq {
            msg: 3,
            first: far,
            last: far.add(10),
        }),
    );
    assert_eq!(rx.stats().dropped_by_sender, 2);
    // A sender-side range far behind is ignored.
    rx.handle_control(
        t0,
        &ctl(Control::DropReq {
            msg: 2,
            first: SeqNo::new(1),
            last: SeqNo::new(2),
        }),
    );
    assert_eq!(rx.stats().dropped_by_sender, 2);
}

#[test]
fn encrypted_packet_without_key_is_counted() {
    let t0 = Instant::now();
    let mut rx = rx_at(t0, 100);
    let mut p = data(100, 0, false);
    p.key = KeyFlags::Odd;
    rx.handle_data(t0, p);
    assert_eq!(rx.stats().undecryptable, 1);
    assert_eq!(rx.buffered(), 0);
}

#[test]
fn key_refresh_switches_to_odd_key() {
    use sluice_proto::srt::crypto::{Passphrase, build_key_material};
    let t0 = Instant::now();
    let salt = [4u8; 16];
    let pass = b"refresh passphrase";
    let mut cfg = ReceiverConfig::new(SENDER_SOCKET, SeqNo::new(100));
    cfg.keys = Some(SessionKeys::from_raw(&salt, Some(&[1; 16]), None).unwrap());
    cfg.passphrase = Some(Passphrase::new(&pass[..]).unwrap());
    let mut rx = Receiver::new(cfg, t0);
    // The sender announces the odd key in a user-defined control packet (SRT_CMD_KMREQ).
    let km = build_key_material(pass, &salt, None, Some(&[2; 16])).unwrap();
    let mut km_bytes = vec![0u8; km.len()];
    km.emit(&mut km_bytes).unwrap();
    let kmreq = |cif: Vec<u8>| {
        ctl(Control::Unknown {
            control_type: control_type::USER,
            subtype: 3,
            type_info: 0,
            cif: Bytes::from(cif),
        })
    };
    rx.handle_control(t0, &kmreq(km_bytes.clone()));
    let sent = transmit_all(&mut rx, t0);
    assert_eq!(
        sent,
        vec![Control::Unknown {
            control_type: control_type::USER,
            subtype: 4,
            type_info: 0,
            cif: Bytes::from(km_bytes),
        }],
        "KMRSP echoes the key material"
    );
    let sender = SessionKeys::from_raw(&salt, Some(&[1; 16]), Some(&[2; 16])).unwrap();
    for (seq, kk) in [(100, KeyFlags::Even), (101, KeyFlags::Odd)] {
        let mut p = data(seq, 0, false);
        let mut body = p.payload.to_vec();
        sender.apply(kk, p.seq, &mut body).unwrap();
        p.payload = Bytes::from(body);
        p.key = kk;
        rx.handle_data(t0, p);
    }
    let got: Vec<_> =
        std::iter::from_fn(|| rx.poll_output(t0 + Duration::from_millis(120))).collect();
    assert_eq!(
        got,
        vec![
            Bytes::copy_from_slice(&100u32.to_be_bytes()),
            Bytes::copy_from_slice(&101u32.to_be_bytes())
        ]
    );
    // Key material under another passphrase: refused with a BADSECRET state word.
    let bad = build_key_material(b"other passphrase", &salt, None, Some(&[3; 16])).unwrap();
    let mut bad_bytes = vec![0u8; bad.len()];
    bad.emit(&mut bad_bytes).unwrap();
    rx.handle_control(t0, &kmreq(bad_bytes));
    let sent = transmit_all(&mut rx, t0 + Duration::from_millis(1));
    assert!(matches!(
        &sent[0],
        Control::Unknown { subtype: 4, cif, .. } if cif[..] == [0, 0, 0, 4]
    ));
    assert_eq!(rx.stats().key_refresh_failures, 1);
}
