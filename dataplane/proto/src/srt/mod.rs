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

pub mod crypto;
pub mod handshake;
pub mod packet;
pub mod receiver;
pub mod streamid;
