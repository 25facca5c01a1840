//! SRT (Secure Reliable Transport), listener side: packet formats, handshake, stream-id
//! grammar, receiver state machine and encryption.
//!
//! Spec: the IETF SRT Internet-Draft, draft-sharabayko-srt-01 (with libsrt's documentation
//! as a reference where the draft is silent). Everything here is sans-IO: the engine owns the
//! UDP socket and the clock, passes datagrams as [`bytes::Bytes`] and the current time as an
//! argument, and sends what the state machines write into its buffers.
//!
//! Flow of one connection:
//! 1. [`packet::Packet::parse`] every datagram; [`packet::peek_dest`] routes it (socket id 0
//!    goes to the listener).
//! 2. [`handshake::Listener`] answers the induction with a SYN cookie and, on a valid
//!    conclusion, gives a [`handshake::ConclusionRequest`] whose stream id
//!    ([`streamid::StreamId`]) the engine checks before calling `accept` or `reject`.
//! 3. A [`receiver::Receiver`] per connection takes data and control packets, emits ACK, NAK
//!    and keep-alive packets, and releases payloads (MPEG-TS) at their TSBPD time; encrypted
//!    payloads are decrypted with the keys from [`crypto`].
//! # Example
//!
//! A caller's induction answered, as the engine's receive path would do it:
//!
//! ```
//! use bytes::Bytes;
//! use sluice_proto::srt::handshake::{Listener, ListenerConfig, ListenerEvent};
//! use sluice_proto::srt::packet::{Packet, SocketId};
//!
//! let listener = Listener::new(ListenerConfig {
//!     cookie_secret: b"per-process random secret".to_vec(),
//!     ..ListenerConfig::default()
//! });
//! // An HSv5 caller's induction: header (control type 0, destination socket 0), then the
//! // CIF: version 4, extension field 2, ISN, MTU, flow window, type 1, socket id 7.
//! let mut dgram = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
//! for w in [4u32, 2, 1000, 1500, 8192, 1, 7, 0] {
//!     dgram.extend_from_slice(&w.to_be_bytes());
//! }
//! dgram.extend_from_slice(&[0; 16]);
//! let Ok(Packet::Control(c)) = Packet::parse(Bytes::from(dgram)) else { unreachable!() };
//! assert_eq!(c.dest, SocketId(0)); // socket 0: the listener's
//! let mut reply = [0u8; 1500];
//! let minute = 29_000_000; // the engine's clock, in minutes
//! let ev = listener.handle(&c, b"203.0.113.9:4000", [0; 16], minute, &mut reply).unwrap();
//! let ListenerEvent::InductionReply(n) = ev else { unreachable!() };
//! assert_eq!(n, 16 + 48); // send reply[..n] back to the caller
//! ```

pub mod crypto;
pub mod handshake;
pub mod packet;
pub mod receiver;
pub mod streamid;
