//! One WHEP viewer: a str0m `Rtc` in RTP mode (ICE-lite, DTLS-SRTP) and the tracks it sends.
//!
//! Packets arrive already packetized by the stream's owner (once per stream); the viewer only
//! rewrites what is per-receiver (SSRC, payload type, the extended sequence number str0m
//! wants) and lets str0m protect them with this viewer's SRTP keys. The payload is an
//! `Arc<[u8]>` shared by every viewer of the stream and by their NACK caches.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_proto::rtp::RtpPacket;
use socket2::SockAddr;
use str0m::format::Codec;
use str0m::media::{KeyframeRequest, Mid, Pt};
use str0m::net::Transmit;
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

use super::WebrtcCounters;
use super::directory::ChannelKey;
use crate::gso;
use crate::packetize::Track;

/// A viewer that has not completed ICE and DTLS within this time is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Extends 16-bit RTP sequence numbers to the 64-bit counter str0m's SRTP index needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqExtender {
    last: Option<(u16, u64)>,
}

impl SeqExtender {
    /// The extended number of `seq`: the closest extension to the previous one, never below
    /// zero (the first number seen starts the count, so no rollover needs signalling).
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => u64::from(seq),
            Some((prev, prev_ext)) => {
                let delta = i64::from(seq.wrapping_sub(prev) as i16);
                prev_ext.saturating_add_signed(delta)
            }
        };
        // Keep the newest as the reference, so reordering does not move the window back.
        match self.last {
            Some((_, prev_ext)) if ext < prev_ext => {}
            _ => self.last = Some((seq, ext)),
        }
        ext
    }
}

/// One sending track of a viewer: which stream and track feed it, and how it is negotiated.
#[derive(Debug)]
pub struct TrackOut {
    /// Session id of the stream that feeds it.
    pub stream_sid: String,
    /// Which of the stream's tracks.
    pub track: Track,
    /// Publisher uid (for the client's track map).
    pub uid: String,
    /// The m-line.
    pub mid: Mid,
    /// SSRC str0m allocated for this m-line.
    pub ssrc: Ssrc,
    /// Negotiated payload type.
    pub pt: Pt,
    seq: SeqExtender,
    /// Whether media flows yet (video waits for a keyframe).
    pub started: bool,
    /// Packets written.
    pub packets: u64,
}

impl TrackOut {
    /// A track of `stream_sid` on `mid`.
    pub fn new(
        stream_sid: String,
        track: Track,
        uid: String,
        mid: Mid,
        ssrc: Ssrc,
        pt: Pt,
    ) -> Self {
        TrackOut {
            stream_sid,
            track,
            uid,
            mid,
            ssrc,
            pt,
            seq: SeqExtender::default(),
            started: false,
            packets: 0,
        }
    }
}

/// What driving a viewer produced that its core must act on.
#[derive(Debug, Default)]
pub struct Drive {
    /// The viewer just completed ICE and DTLS: send it the cached GOP now.
    pub connected: bool,
    /// Keyframe requests (PLI/FIR) for these m-lines.
    pub keyframe_requests: Vec<Mid>,
    /// The session ended (DTLS closed, ICE gone, or an error).
    pub dead: bool,
}

/// One viewer session.
pub struct Viewer {
    /// Session id (also the Location path segment).
    pub id: String,
    /// Channel, for the viewer count.
    pub channel: ChannelKey,
    /// The WebRTC state machine.
    pub rtc: Rtc,
    /// Local ICE ufrag, for steering first-contact STUN.
    pub ufrag: String,
    /// Sending tracks.
    pub tracks: Vec<TrackOut>,
    /// Remote address seen in the last datagram.
    pub remote: Option<SocketAddr>,
    /// When the session was created.
    pub created: Instant,
    /// When str0m next wants a timeout input.
    pub timeout: Instant,
    /// ICE and DTLS are done; media may flow.
    pub connected: bool,
    /// The cached GOP was sent.
    pub primed: bool,
    /// Last keyframe-request answer, to rate-limit them.
    pub last_pli_answer: Option<Instant>,
}

impl Viewer {
    /// Writes one packet of track `idx`. Video waits for a keyframe (`starts_keyframe`) unless
    /// already started; nothing is written before DTLS completes.
    pub fn write(
        &mut self,
        idx: usize,
        pkt: &RtpPacket,
        payload: &Arc<[u8]>,
        starts_keyframe: bool,
        now: Instant,
    ) {
        if !self.connected {
            return;
        }
        let Some(t) = self.tracks.get_mut(idx) else {
            return;
        };
        if !t.started {
            if t.track == Track::Video && !starts_keyframe {
                return;
            }
            t.started = true;
        }
        let seq = t.seq.extend(pkt.header.sequence.0);
        t.packets += 1;
        let (ssrc, pt, video) = (t.ssrc, t.pt, t.track == Track::Video);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx(&ssrc) else {
            return;
        };
        tx.write_rtp(
            RtpWrite::new(
                pt,
                SeqNo::from(seq),
                pkt.header.timestamp.0,
                now,
                // A reference-count bump: the bytes are shared with every other viewer.
                payload.clone(),
            )
            .marker(pkt.header.marker)
            // Video losses are repaired from str0m's per-SSRC cache of these shared payloads.
            .nackable(video),
        );
    }

    /// Drains str0m's output: sends datagrams, collects events. Must follow every mutation
    /// (input, timeout, write).
    pub fn drive(&mut self, socket: &UdpSocket, counters: &WebrtcCounters) -> Drive {
        let mut out = Drive::default();
        let mut transmits: Vec<Transmit> = Vec::new();
        // Packets just written wait in str0m's send queue until a timeout is handled (str0m
        // stamps them then): a timeout already due is handled here, so a frame's packets
        // leave in this drive rather than on the core's next WebRTC tick. Bounded, in case
        // str0m keeps asking.
        let mut due_handled = 0;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if t <= now && due_handled < 2 {
                        due_handled += 1;
                        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                            tracing::debug!(viewer = %self.id, error = %e, "WebRTC timeout failed");
                            counters.rtc_errors.fetch_add(1, Ordering::Relaxed);
                            out.dead = true;
                            break;
                        }
                        continue;
                    }
                    self.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    // Collected, then sent together below: one drive after a frame's writes
                    // yields all its SRTP packets, which go out in GSO runs.
                    transmits.push(t);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        out.connected = true;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        out.dead = true;
                    }
                    Event::KeyframeRequest(KeyframeRequest { mid, .. }) => {
                        out.keyframe_requests.push(mid);
                    }
                    Event::Closed => out.dead = true,
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(viewer = %self.id, error = %e, "WebRTC session failed");
                    counters.rtc_errors.fetch_add(1, Ordering::Relaxed);
                    out.dead = true;
                    break;
                }
            }
        }
        send_transmits(socket, &transmits, counters);
        if !self.rtc.is_alive() {
            out.dead = true;
        }
        out
    }

    /// Whether the session should be reaped at `now` for never connecting.
    pub fn connect_timed_out(&self, now: Instant) -> bool {
        !self.connected && now.saturating_duration_since(self.created) > CONNECT_TIMEOUT
    }
}

/// Sends str0m's datagrams: consecutive ones to the same address in GSO runs of equal size
/// (a frame's SRTP packets, FU-A fragments being mostly of one size), the others alone.
/// Non-blocking: a full socket buffer drops datagrams (SRTP and the viewer's NACKs cope) and
/// counts them in `send_drops`, never stalls the core. str0m owns each datagram's buffer;
/// they are handed to the kernel as one iovec each, so batching copies nothing.
pub fn send_transmits(socket: &UdpSocket, transmits: &[Transmit], counters: &WebrtcCounters) {
    let gso_on = gso::enabled();
    let mut start = 0;
    while let Some(first) = transmits.get(start) {
        let dest = first.destination;
        let end = transmits
            .iter()
            .skip(start)
            .position(|t| t.destination != dest)
            .map_or(transmits.len(), |n| start + n);
        let parts: Vec<gso::Parts<'_, 1>> = transmits
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|t| [&t.contents[..]])
            .collect();
        let r = gso::send_batch(socket, &SockAddr::from(dest), &parts, gso_on);
        if r.dropped > 0 {
            counters.send_drops.fetch_add(r.dropped, Ordering::Relaxed);
        }
        start = end;
    }
}

/// What the stream can send on each kind of m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendCodec {
    /// H.264 with this profile_idc.
    H264 {
        /// profile_idc of the stream's SPS (66 baseline, 77 main, 100 high…).
        profile: u8,
    },
    /// H.265.
    H265,
    /// Opus 48 kHz.
    Opus,
}

impl SendCodec {
    /// Name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            SendCodec::H264 { .. } => "H264 (packetization-mode=1)",
            SendCodec::H265 => "H265",
            SendCodec::Opus => "opus/48000/2",
        }
    }
}

/// A negotiated payload type, as seen by [`choose_pt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// Payload type.
    pub pt: Pt,
    /// Codec.
    pub codec: Codec,
    /// H.264 packetization-mode.
    pub packetization_mode: Option<u8>,
    /// H.264 profile-level-id.
    pub profile_level_id: Option<u32>,
}

/// Picks the payload type to send `want` with among what the remote accepts (in the remote's
/// order of preference): for H.264, packetization-mode 1 is required (FU-A and STAP-A are
/// used), and a matching profile is preferred; browsers decode any profile they list.
pub fn choose_pt(want: SendCodec, offered: &[Offered]) -> Option<Pt> {
    match want {
        SendCodec::H264 { profile } => {
            let usable = || {
                offered
                    .iter()
                    .filter(|o| o.codec == Codec::H264 && o.packetization_mode == Some(1))
            };
            usable()
                .find(|o| o.profile_level_id.map(|p| (p >> 16) as u8) == Some(profile))
                .or_else(|| usable().next())
                .map(|o| o.pt)
        }
        SendCodec::H265 => offered
            .iter()
            .find(|o| o.codec == Codec::H265)
            .map(|o| o.pt),
        SendCodec::Opus => offered
            .iter()
            .find(|o| o.codec == Codec::Opus)
            .map(|o| o.pt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h264(pt: u8, pm: u8, plid: u32) -> Offered {
        Offered {
            pt: Pt::from(pt),
            codec: Codec::H264,
            packetization_mode: Some(pm),
            profile_level_id: Some(plid),
        }
    }

    #[test]
    fn prefers_matching_profile_with_mode_1() {
        let offered = [
            Offered {
                pt: Pt::from(96),
                codec: Codec::Vp8,
                packetization_mode: None,
                profile_level_id: None,
            },
            h264(102, 1, 0x42001f),
            h264(104, 0, 0x64001f),
            h264(106, 1, 0x64001f),
        ];
        assert_eq!(
            choose_pt(SendCodec::H264 { profile: 100 }, &offered),
            Some(Pt::from(106))
        );
        // No main profile offered: the first mode-1 entry.
        assert_eq!(
            choose_pt(SendCodec::H264 { profile: 77 }, &offered),
            Some(Pt::from(102))
        );
        assert_eq!(choose_pt(SendCodec::Opus, &offered), None);
        assert_eq!(choose_pt(SendCodec::H265, &offered), None);
        // Only mode 0: unusable, FU-A needs mode 1.
        assert_eq!(
            choose_pt(SendCodec::H264 { profile: 66 }, &[h264(97, 0, 0x42e01f)]),
            None
        );
    }

    #[test]
    fn seq_extension_across_wrap_and_reorder() {
        let mut s = SeqExtender::default();
        assert_eq!(s.extend(65534), 65534);
        assert_eq!(s.extend(65535), 65535);
        assert_eq!(s.extend(0), 65536);
        assert_eq!(s.extend(65535), 65535); // late packet from before the wrap
        assert_eq!(s.extend(1), 65537);
    }

    /// A viewer's transmits after a frame: runs to one address go out with GSO where it is
    /// supported, and each receiver gets exactly its datagrams, in order.
    #[test]
    fn transmits_are_sent_in_runs_per_destination() {
        use std::time::Duration;
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let src = tx.local_addr().unwrap();
        let mk = |dest: SocketAddr, len: usize, tag: u8| Transmit {
            proto: str0m::net::Protocol::Udp,
            source: src,
            destination: dest,
            contents: vec![tag; len].into(),
        };
        let (da, db) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut list: Vec<Transmit> = (0..8u8).map(|i| mk(da, 1100, i)).collect();
        list.push(mk(da, 300, 8));
        list.push(mk(db, 200, 9));
        list.push(mk(da, 1100, 10));
        let counters = WebrtcCounters::default();
        let before = gso::STATS.gso_sends.load(Ordering::Relaxed);
        send_transmits(&tx, &list, &counters);
        assert_eq!(counters.send_drops.load(Ordering::Relaxed), 0);
        if gso::enabled() {
            assert!(gso::STATS.gso_sends.load(Ordering::Relaxed) > before);
        }
        let mut buf = [0u8; 2048];
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        for t in &list {
            let s = if t.destination == da { &a } else { &b };
            let n = s.recv(&mut buf).expect("datagram");
            assert_eq!(&buf[..n], &t.contents[..]);
        }
    }

    proptest! {
        /// A stream advancing by small steps (with wraps) extends to a strictly increasing
        /// counter whose low 16 bits are the wire number.
        #[test]
        fn seq_extension_monotonic(start in any::<u16>(), steps in prop::collection::vec(1u16..1000, 1..400)) {
            let mut s = SeqExtender::default();
            let mut wire = start;
            let mut prev = s.extend(wire);
            prop_assert_eq!(prev as u16, wire);
            for d in steps {
                wire = wire.wrapping_add(d);
                let e = s.extend(wire);
                prop_assert_eq!(e as u16, wire);
                prop_assert_eq!(e - prev, u64::from(d));
                prev = e;
            }
        }
    }
}
