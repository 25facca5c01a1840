//! RTMP: handshake, chunk streams, messages and the publisher-side server session.
//!
//! Spec: Adobe "Real-Time Messaging Protocol (RTMP) specification" 1.0 (December 2012):
//! section 5.2 (handshake), 5.3 (chunking), 5.4 (protocol control messages), 6.2 (user control
//! messages), 7 (command messages). The digest handshake that Flash Player, ffmpeg and OBS use
//! is not in that document; [`handshake`] documents it.
//!
//! Layers, bottom up, each usable alone:
//! - [`handshake`]: C0/C1/C2 in, S0/S1/S2 out;
//! - [`chunk`]: chunk stream decoder (reassembles messages) and encoder;
//! - [`message`]: protocol control, user control and AMF0 command messages;
//! - [`session`]: the server-side publisher state machine tying them together with
//!   [`crate::flv`] (media) and [`crate::amf0`] (commands).
//!
//! All of it is sans-IO: the caller feeds bytes received from TCP and writes out the bytes the
//! state machine hands back.

pub mod chunk;
pub mod handshake;
pub mod message;
pub mod session;
