//! MPEG-TS (ISO/IEC 13818-1, Rec. ITU-T H.222.0) demultiplexing for SRT ingest.
//!
//! Layers, bottom up:
//! - [`packet`]: 188-byte packets (§2.4.3.2), adaptation fields (§2.4.3.4), sync acquisition
//!   and continuity counters (§2.4.3.3);
//! - [`psi`]: PSI sections (§2.4.4), CRC-32/MPEG-2, PAT and PMT;
//! - [`pes`]: PES headers and timestamps (§2.4.3.6, §2.4.3.7), Opus control headers;
//! - [`demux`]: the sans-IO [`demux::Demuxer`] that takes bytes in any split and yields
//!   programs and complete PES frames;
//! - [`media`]: PES to codec-neutral [`crate::media::MediaEvent`]s (Annex-B split, ADTS, Opus);
//! - [`testmux`]: a minimal muxer that writes what the demuxer reads, for tests and benches.
//!
//! Payloads are [`bytes::Bytes`] slices of the pushed buffers. The only copies are those the
//! format forces, each named where it happens: a packet straddling two pushed buffers, a PSI
//! section or a PES spanning several packets.

pub mod demux;
pub mod media;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod testmux;

pub use demux::{DemuxEvent, DemuxStats, Demuxer, ElementaryStream, PesFrame};
pub use packet::Pid;
pub use pes::PtsUnwrapper;
pub use psi::{EsCodec, StreamType};
