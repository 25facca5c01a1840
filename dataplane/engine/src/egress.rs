//! RTP forwarding: a stream's packets, sent as they are to UDP destinations (video and audio on
//! their own ports, RTCP sender reports on port + 1), as a receiver such as
//! `ffmpeg -i stream.sdp` expects.
//!
//! Sends are non-blocking: when a destination's socket buffer is full the packet is dropped and
//! counted, so a slow or vanished receiver never stalls the publisher or anyone else. The
//! packets of one access unit for one destination go out in as few `sendmsg` calls as UDP
//! GSO allows (one per run of equal-sized packets, see [`crate::gso`]).

use std::net::{SocketAddr, UdpSocket};

use sluice_proto::rtp::{RtpHeader, RtpPacket};
use sluice_table::ForwarderRecord;
use socket2::SockAddr;

use crate::gso;

use crate::packetize::{RtpState, Track};

/// Interval between RTCP sender reports per track.
const SR_INTERVAL_MS: u64 = 1000;

/// Outcome of sending a batch to one destination.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Bytes handed to the kernel.
    pub bytes: u64,
    /// Packets dropped because the socket buffer was full.
    pub dropped: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct TrackCounters {
    packets: u32,
    octets: u32,
    last: Option<RtpState>,
    last_sr_ms: u64,
}

/// One RTP destination of a stream.
#[derive(Debug)]
pub struct Forwarder {
    /// Forwarder id from the table.
    pub id: String,
    video: Option<(SocketAddr, SockAddr)>,
    audio: Option<(SocketAddr, SockAddr)>,
    /// Whether the cached GOP was sent to it yet.
    pub primed: bool,
    video_counters: TrackCounters,
    audio_counters: TrackCounters,
}

impl Forwarder {
    /// A forwarder for a table record.
    pub fn new(r: &ForwarderRecord) -> Self {
        let addr = |port: u16| {
            (port != 0).then(|| {
                let a = SocketAddr::new(r.host, port);
                (a, SockAddr::from(a))
            })
        };
        Forwarder {
            id: r.id.clone(),
            video: addr(r.video_port),
            audio: addr(r.audio_port),
            primed: false,
            video_counters: TrackCounters::default(),
            audio_counters: TrackCounters::default(),
        }
    }

    /// Sends packets of one track.
    pub fn send(
        &mut self,
        track: Track,
        packets: &[RtpPacket],
        state: &RtpState,
        socket: &UdpSocket,
    ) -> Sent {
        let (dest, counters) = match track {
            Track::Video => (&self.video, &mut self.video_counters),
            Track::Audio => (&self.audio, &mut self.audio_counters),
        };
        let Some((_, dest)) = dest.as_ref() else {
            return Sent::default();
        };
        // Header, inline prefix and the payload slice go to the kernel as three iovecs per
        // packet: the NAL bytes are not copied on their way from the ingest buffer to the
        // socket. With GSO a whole run of equal-sized packets (FU-A fragments of one access
        // unit) goes in one `sendmsg`; the kernel accepts the 3 iovecs per packet, so GSO
        // forces no copy into a contiguous buffer either (see `crate::gso`).
        let headers: Vec<[u8; RtpHeader::LEN]> =
            packets.iter().map(|p| p.header.to_bytes()).collect();
        let parts: Vec<gso::Parts<'_, 3>> = packets
            .iter()
            .zip(&headers)
            .map(|(p, h)| [&h[..], p.prefix(), &p.payload[..]])
            .collect();
        let r = gso::send_batch(socket, dest, &parts, gso::enabled());
        let sent = Sent {
            bytes: r.bytes,
            dropped: r.dropped,
        };
        counters.packets = counters.packets.wrapping_add(r.sent as u32);
        // The octet count excludes the 12-byte fixed headers (RFC 3550 §6.4.1).
        counters.octets = counters
            .octets
            .wrapping_add(r.bytes.saturating_sub(r.sent * RtpHeader::LEN as u64) as u32);
        counters.last = Some(*state);
        sent
    }

    /// Sends an RTCP sender report per track when one is due.
    pub fn maybe_send_reports(&mut self, now_ms: u64, socket: &UdpSocket) {
        for (dest, c) in [
            (&self.video, &mut self.video_counters),
            (&self.audio, &mut self.audio_counters),
        ] {
            let (Some((dest, _)), Some(state)) = (dest, c.last) else {
                continue;
            };
            if now_ms.saturating_sub(c.last_sr_ms) < SR_INTERVAL_MS {
                continue;
            }
            c.last_sr_ms = now_ms;
            let sr = sender_report(&state, now_ms, c.packets, c.octets);
            let rtcp = SocketAddr::new(dest.ip(), dest.port().wrapping_add(1));
            let _ = socket.send_to(&sr, rtcp);
        }
    }
}

/// Builds an RTCP sender report (RFC 3550 §6.4.1) with no report blocks, mapping `now_ms` to
/// the RTP clock by extrapolating from the last packetized timestamp.
pub fn sender_report(state: &RtpState, now_ms: u64, packets: u32, octets: u32) -> [u8; 28] {
    let elapsed_ms = now_ms.saturating_sub(state.wall_ms);
    let rtp_ts = state
        .rtp_ts
        .wrapping_add((elapsed_ms.saturating_mul(u64::from(state.clock_rate)) / 1000) as u32);
    // NTP time: seconds since 1900 and a 32-bit fraction.
    let ntp_secs = now_ms / 1000 + 2_208_988_800;
    let ntp_frac = ((now_ms % 1000) << 32) / 1000;
    let mut b = [0u8; 28];
    b[0] = 0x80; // V=2, P=0, RC=0
    b[1] = 200; // SR
    b[2..4].copy_from_slice(&6u16.to_be_bytes()); // length in 32-bit words minus one
    b[4..8].copy_from_slice(&state.ssrc.to_be_bytes());
    b[8..12].copy_from_slice(&(ntp_secs as u32).to_be_bytes());
    b[12..16].copy_from_slice(&(ntp_frac as u32).to_be_bytes());
    b[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    b[20..24].copy_from_slice(&packets.to_be_bytes());
    b[24..28].copy_from_slice(&octets.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_proto::media::VideoFrame;
    use sluice_proto::rtp::{H264Packetizer, PacketizerConfig, RtpTimestamp, SeqNo, Ssrc};
    use std::time::Duration;

    /// One access unit: an SEI (single NAL packet), then a 30 kB IDR slice split into FU-A
    /// fragments of two sizes (the packetizer spreads the remainder), so a GSO sender must
    /// cut the frame into several runs.
    fn access_unit() -> Vec<RtpPacket> {
        let mut cfg = PacketizerConfig::new(Ssrc(0x1234), 96, SeqNo(65_530), RtpTimestamp(7));
        cfg.max_payload = 1200;
        let mut pk = H264Packetizer::new(cfg, None).unwrap();
        let sei = Bytes::from(vec![0x06u8; 40]);
        let mut idr = vec![0x65u8];
        idr.extend((0..30_001u32).map(|i| (i % 251) as u8));
        let frame = VideoFrame {
            pts: 0,
            dts: 0,
            keyframe: false,
            nalus: vec![sei, Bytes::from(idr)],
        };
        let mut out = Vec::new();
        pk.packetize(&frame, &mut out);
        out
    }

    fn forward_and_receive(gso_on: bool) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let mut f = Forwarder::new(&ForwarderRecord {
            id: "f".into(),
            app_id: "a".into(),
            sid: "s".into(),
            host: "127.0.0.1".parse().unwrap(),
            video_port: rx.local_addr().unwrap().port(),
            audio_port: 0,
        });
        let packets = access_unit();
        let sizes: std::collections::BTreeSet<usize> = packets.iter().map(RtpPacket::len).collect();
        assert!(
            sizes.len() >= 3,
            "single, and FU-A fragments of two sizes: {sizes:?}"
        );
        let state = RtpState {
            ssrc: 0x1234,
            clock_rate: 90_000,
            rtp_ts: 7,
            wall_ms: 0,
        };
        let before = gso::STATS
            .gso_datagrams
            .load(std::sync::atomic::Ordering::Relaxed);
        let sent = if gso_on {
            f.send(Track::Video, &packets, &state, &tx)
        } else {
            // The per-packet path, as with GSO off.
            let dest = f.video.as_ref().unwrap().1.clone();
            let headers: Vec<_> = packets.iter().map(|p| p.header.to_bytes()).collect();
            let parts: Vec<gso::Parts<'_, 3>> = packets
                .iter()
                .zip(&headers)
                .map(|(p, h)| [&h[..], p.prefix(), &p.payload[..]])
                .collect();
            let r = gso::send_batch(&tx, &dest, &parts, false);
            assert_eq!(r.syscalls, packets.len() as u64);
            Sent {
                bytes: r.bytes,
                dropped: r.dropped,
            }
        };
        assert_eq!(sent.dropped, 0);
        let total: usize = packets.iter().map(RtpPacket::len).sum();
        assert_eq!(sent.bytes, total as u64);
        if gso_on && gso::enabled() {
            let after = gso::STATS
                .gso_datagrams
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                after - before >= packets.len() as u64 - 2,
                "the fragments went by GSO"
            );
        }
        // The receiver sees each packet as its own datagram: same bytes, consecutive
        // sequence numbers (across the 16-bit wrap), the marker on the last one only.
        let mut buf = vec![0u8; 70_000];
        for (i, p) in packets.iter().enumerate() {
            let n = rx.recv(&mut buf).expect("datagram");
            assert_eq!(n, p.len(), "datagram {i} size");
            assert_eq!(&buf[..n], &p.to_vec()[..], "datagram {i} bytes");
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            assert_eq!(seq, 65_530u16.wrapping_add(i as u16));
            assert_eq!(buf[1] & 0x80 != 0, i == packets.len() - 1, "marker of {i}");
        }
    }

    #[test]
    fn forwarder_gso_send_splits_into_the_original_packets() {
        forward_and_receive(true);
    }

    #[test]
    fn per_packet_fallback_sends_the_same_datagrams() {
        forward_and_receive(false);
    }

    #[test]
    fn sender_report_layout() {
        let st = RtpState {
            ssrc: 0x0102_0304,
            clock_rate: 90_000,
            rtp_ts: 1000,
            wall_ms: 5_000,
        };
        let sr = sender_report(&st, 6_000, 7, 700);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[4..8], &[1, 2, 3, 4]);
        // One second later at 90 kHz.
        assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), 91_000);
        assert_eq!(u32::from_be_bytes(sr[20..24].try_into().unwrap()), 7);
        assert_eq!(u32::from_be_bytes(sr[24..28].try_into().unwrap()), 700);
    }
}
