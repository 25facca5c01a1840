//! # sluice-perf
//!
//! Load generation and measurement for the Sluice media gateway (and the servers it is compared
//! with): RTMP publishers and players, RTP forwarder receivers, in-stream latency markers,
//! process cost from `/proc`, and a deterministic UDP impairment proxy.
//!
//! The protocol pieces are sans-IO like the gateway's own: [`rtmp_client`] is a state machine
//! fed with bytes, and so is [`srt_caller`]; [`sei`] builds and finds latency markers; [`rtp_rx`] counts RTP packets;
//! [`procstat`] parses `/proc` text. The [`load`] module is the one place with sockets and a
//! clock: one thread, one tokio current-thread runtime (epoll), however many connections.

pub mod impair;
pub mod load;
pub mod plot;
pub mod procstat;
pub mod rtmp_client;
pub mod rtp_rx;
pub mod sei;
pub mod srt_caller;
pub mod whep;
