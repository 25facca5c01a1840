//! # sluice-proto
//!
//! Sans-IO wire formats and protocol state machines for the Sluice media gateway.
//!
//! Nothing in this crate opens a socket, reads a clock or spawns a task: every state machine
//! takes bytes (as [`bytes::Bytes`], so parsed payloads are reference-counted slices of the
//! caller's receive buffer) and the current time as arguments, and hands back events and bytes
//! to send. That keeps the code deterministic, fuzzable and testable in virtual time.
//!
//! Module map, following the data flow:
//! - ingest protocols: [`rtmp`] (with [`amf0`]) carrying [`flv`] tags; [`srt`] carrying [`ts`];
//! - [`media`]: the codec-neutral access units and track configurations every ingest produces;
//! - [`codec`]: H.264, H.265, AAC and Opus bitstream helpers;
//! - [`rtp`]: RTP packetizers and SDP for egress;
//! - [`streamkey`]: the locally generated stream-key codec.

pub mod amf0;
pub mod codec;
pub mod flv;
pub mod media;
pub mod rtmp;
pub mod rtp;
pub mod srt;
pub mod streamkey;
pub mod stun;
pub mod ts;
