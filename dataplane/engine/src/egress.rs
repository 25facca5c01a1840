//! RTP forwarding: a stream's packets, sent as they are to UDP destinations (video and audio on
//! their own ports, RTCP sender reports on port + 1), as a receiver such as
//! `ffmpeg -i stream.sdp` expects.
//!
//! Sends are non-blocking: when a destination's socket buffer is full the packet is dropped and
//! counted, so a slow or vanished receiver never stalls the publisher or anyone else.

use std::net::{SocketAddr, UdpSocket};

use std::io::IoSlice;

use sluice_proto::rtp::RtpPacket;
use sluice_table::ForwarderRecord;
use socket2::{SockAddr, SockRef};

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
        let sock = SockRef::from(socket);
        let mut sent = Sent::default();
        for p in packets {
            // Header, inline prefix and the payload slice go to the kernel as three iovecs:
            // the NAL bytes are not copied on their way from the ingest buffer to the socket.
            let header = p.header.to_bytes();
            let iov = [
                IoSlice::new(&header),
                IoSlice::new(p.prefix()),
                IoSlice::new(&p.payload),
            ];
            match sock.send_to_vectored(&iov, dest) {
                Ok(n) => {
                    sent.bytes += n as u64;
                    counters.packets = counters.packets.wrapping_add(1);
                    // The octet count excludes the 12-byte fixed header (RFC 3550 §6.4.1).
                    counters.octets = counters.octets.wrapping_add(n.saturating_sub(12) as u32);
                }
                // Full buffer, or nobody listening (ICMP port unreachable surfaces as
                // ConnectionRefused on the next send): drop and count, never wait.
                Err(_) => sent.dropped += 1,
            }
        }
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
