//! SRT receiver driven by an arbitrary sequence of data packets, control packets and time
//! steps: the buffer stays within its cap, payloads come out in sequence order and each at
//! most once, and every packet it sends parses back as a control packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_proto::srt::packet::*;
use sluice_proto::srt::receiver::*;
use std::time::{Duration, Instant};

const ISN: u32 = SeqNo::MODULUS - 300;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut cfg = ReceiverConfig::new(SocketId(7), SeqNo::new(ISN));
    cfg.buffer_packets = 512;
    let mut rx = Receiver::new(cfg, now);
    let mut last: Option<SeqNo> = None;
    let mut buf = [0u8; MIN_TRANSMIT_BUF];
    let mut it = data.chunks(5);
    while let Some(op) = it.next() {
        let [kind, a, b, c, d] = <[u8; 5]>::try_from(op).unwrap_or([op[0], 0, 0, 0, 0]);
        match kind % 4 {
            0 => {
                // Data packet near the window: seq offset from the ISN, timestamp in ms.
                let seq = SeqNo::new(ISN).add(u32::from(u16::from_be_bytes([a, b])) % 1200);
                let p = DataPacket {
                    seq,
                    position: PacketPosition::Only,
                    in_order: false,
                    key: KeyFlags::None,
                    retransmitted: c & 1 == 1,
                    msg: MsgNo::new(1),
                    timestamp: Timestamp(u32::from(u16::from_be_bytes([c, d])).wrapping_mul(1000)),
                    dest: SocketId(1),
                    payload: Bytes::copy_from_slice(&seq.get().to_be_bytes()),
                };
                rx.handle_data(now, p);
            }
            1 => {
                // A control packet from the next `a % 32` raw bytes after a header.
                let mut raw = vec![0x80, b & 0x7, 0, 0, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                for _ in 0..(a % 8) {
                    if let Some(w) = it.next() {
                        raw.extend_from_slice(&w[..w.len().min(4)]);
                    }
                }
                if let Ok(p) = Packet::parse(Bytes::from(raw)) {
                    rx.handle_packet(now, p);
                }
            }
            2 => {
                now +=
                    Duration::from_micros(u64::from(u32::from_be_bytes([a, b, c, d]) % 2_000_000))
            }
            _ => {
                if let Some(t) = rx.poll_timeout() {
                    now = now.max(t);
                }
            }
        }
        assert!(rx.buffered() <= 512);
        while let Some(n) = rx.poll_transmit(now, &mut buf) {
            assert!(n <= MIN_TRANSMIT_BUF);
            assert!(matches!(
                Packet::parse(Bytes::copy_from_slice(&buf[..n])),
                Ok(Packet::Control(_))
            ));
        }
        while let Some(p) = rx.poll_output(now) {
            let seq = SeqNo::new(u32::from_be_bytes(p[..4].try_into().unwrap()));
            if let Some(prev) = last {
                assert!(seq > prev, "out of order: {seq:?} after {prev:?}");
            }
            last = Some(seq);
        }
    }
});
