//! The sans-IO MPEG-TS demuxer: bytes in (any split), programs and PES frames out.
//!
//! It follows the first program of the PAT (§2.4.4.3), tracks its PMT (§2.4.4.8) including
//! version changes, and reassembles the PES (§2.4.3.6) of every elementary stream listed.
//! Damage is counted, never fatal: a continuity error (§2.4.3.3) drops the PES in flight on
//! that PID, a bad CRC drops the section, and the demuxer carries on with the next unit.
//! The first program listed is followed; others are ignored (SRT ingest carries one).
//! Run loop: [`Demuxer::push`] the received bytes, then [`Demuxer::poll`] until `None`; at the
//! end of the input, [`Demuxer::flush`] completes the unbounded PES still open and poll again.
//!
//! ```
//! use bytes::Bytes;
//! use sluice_proto::ts::demux::{DemuxEvent, Demuxer};
//!
//! let mut demux = Demuxer::new();
//! demux.push(Bytes::from_static(&[0x47; 10])); // not enough for a packet yet
//! while let Some(event) = demux.poll() {
//!     if let DemuxEvent::Pes(frame) = event {
//!         println!("{} bytes on {}", frame.data.len(), frame.pid);
//!     }
//! }
//! ```

use std::collections::VecDeque;

use bytes::Bytes;

use super::packet::{
    CONTINUATION_MASK, CcTracker, CcVerdict, CompactHeader, FINGERPRINT_LEN, Framer, PACKET_SIZE,
    Pid, SYNC_BYTE, continuation_header,
};
use super::pes::{Pes, PesAssembler, PesError, split_opus_packets};
use super::psi::{EsCodec, Pat, Pmt, PsiError, Section, SectionAssembler, StreamType};

/// One elementary stream of the followed program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElementaryStream {
    /// Its PID.
    pub pid: Pid,
    /// `stream_type` from the PMT.
    pub stream_type: StreamType,
    /// The codec resolved from the stream type and descriptors.
    pub codec: EsCodec,
}

/// One complete PES of an elementary stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesFrame {
    /// The PID it arrived on.
    pub pid: Pid,
    /// The stream type of that PID.
    pub stream_type: StreamType,
    /// The codec of that PID.
    pub codec: EsCodec,
    /// Presentation time stamp: raw 33-bit value at 90 kHz (unwrap with
    /// [`super::pes::PtsUnwrapper`]).
    pub pts: Option<u64>,
    /// Decoding time stamp: raw 33-bit value at 90 kHz.
    pub dts: Option<u64>,
    /// The adaptation field's random access indicator on the packet that started the PES.
    pub random_access: bool,
    /// The PES payload: a slice of the pushed bytes when it fit one TS packet.
    pub data: Bytes,
}

/// What the demuxer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// The followed program's stream list is new or its PMT changed.
    ProgramChanged {
        /// The elementary streams, in PMT order.
        streams: Vec<ElementaryStream>,
    },
    /// A complete PES of a non-Opus stream.
    Pes(PesFrame),
    /// The Opus packets of one PES, split at their control headers.
    OpusPackets {
        /// The PID.
        pid: Pid,
        /// PTS of the first packet (raw 33-bit, 90 kHz).
        pts: Option<u64>,
        /// The Opus packets, slices of the PES payload.
        packets: Vec<Bytes>,
    },
}

/// Demuxer counters. Every drop is counted somewhere here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Packets cut from the byte stream.
    pub packets: u64,
    /// Times a locked stream lost sync.
    pub sync_losses: u64,
    /// Bytes skipped while searching for sync.
    pub skipped_bytes: u64,
    /// Packets copied because they straddled pushed buffers.
    pub straddled_packets: u64,
    /// Packets rejected by [`super::packet::PacketHeader::parse`] (bad adaptation field).
    pub malformed_packets: u64,
    /// Packets with the transport error indicator set (dropped).
    pub transport_errors: u64,
    /// Scrambled packets on followed PIDs (dropped: no descrambling).
    pub scrambled_packets: u64,
    /// Continuity counter errors on followed PIDs.
    pub cc_errors: u64,
    /// Duplicate packets dropped (§2.4.3.3).
    pub duplicates: u64,
    /// PES frames emitted (Opus PES included).
    pub pes_frames: u64,
    /// PES discarded for exceeding [`super::pes::MAX_PES_SIZE`].
    pub pes_overflows: u64,
    /// PES discarded because a continuity error damaged them.
    pub pes_discarded: u64,
    /// PES discarded as truncated or with a malformed header or Opus framing.
    pub pes_errors: u64,
    /// PSI sections with a bad CRC_32.
    pub crc_errors: u64,
    /// Other PSI errors (pointer, length, table syntax).
    pub psi_errors: u64,
}

#[derive(Debug, Default)]
struct PsiPid {
    pid: Option<Pid>,
    cc: CcTracker,
    cc_errors: u64,
    sections: SectionAssembler,
    version: Option<u8>,
}

impl PsiPid {
    fn follow(&mut self, pid: Pid) {
        *self = PsiPid {
            pid: Some(pid),
            ..PsiPid::default()
        };
    }
}

#[derive(Debug)]
struct EsState {
    stream: ElementaryStream,
    cc: CcTracker,
    cc_errors: u64,
    pes: PesAssembler,
}

impl EsState {
    /// The batch loop: takes the packets of `run` from offset `at` on that only continue
    /// this stream's PES, and returns the offset of the first packet it left for the general
    /// path ([`Demuxer::handle_packet`]).
    ///
    /// A packet is taken when its masked header equals [`continuation_header`] for this PID
    /// and the next counter (one compare covers validation, PID, scrambling, PUSI and the
    /// continuity check) and the PES has room for its whole payload without completing:
    /// exactly the packets for which the general path would find the counter in sequence
    /// and [`PesAssembler::append_continuation`] would accept the payload, so the output is
    /// the same. The continuity tracker records only the last packet taken: every check it
    /// makes compares against the previous packet alone.
    #[inline]
    fn append_run(&mut self, run: &[u8], at: usize) -> usize {
        const PAYLOAD: usize = PACKET_SIZE - 4;
        let Some(mut cc) = self.cc.last() else {
            return at;
        };
        let max = self.pes.continuation_room() / PAYLOAD;
        if max == 0 {
            return at;
        }
        let pid = self.stream.pid;
        let rest = run.get(at..).unwrap_or_default();
        let mut n = 0;
        for raw in rest.chunks_exact(PACKET_SIZE).take(max) {
            let next = (cc + 1) & 0x0f;
            let Some(head) = raw.first_chunk::<4>() else {
                break;
            };
            if u32::from_be_bytes(*head) & CONTINUATION_MASK != continuation_header(pid, next) {
                break;
            }
            cc = next;
            n += 1;
        }
        if n == 0 {
            return at;
        }
        let taken = rest.get(..n * PACKET_SIZE).unwrap_or_default();
        self.pes.append_within_room(
            taken
                .chunks_exact(PACKET_SIZE)
                .map(|p| p.get(4..).unwrap_or_default()),
            n * PAYLOAD,
        );
        if let Some(tail) = taken.last_chunk::<FINGERPRINT_LEN>() {
            self.cc.record_in_sequence(cc, tail);
        }
        at + taken.len()
    }
}

/// The MPEG-TS demuxer. See the module docs for the run loop.
#[derive(Debug)]
pub struct Demuxer {
    framer: Framer,
    pat: PsiPid,
    pmt: PsiPid,
    program_number: Option<u16>,
    /// Streams of the followed program. A PMT lists at most ~800 (section size cap / 5 bytes),
    /// usually 2, so a linear scan beats hashing.
    streams: Vec<EsState>,
    events: VecDeque<DemuxEvent>,
    stats: DemuxStats,
    section_scratch: Vec<Result<Bytes, PsiError>>,
    pes_scratch: Vec<Result<Pes, PesError>>,
    /// Index in `streams` of the elementary stream of the last packet handled, whose next
    /// packets [`EsState::append_run`] tries first. Cleared by every packet that is not on
    /// an elementary stream, so by every PMT that rebuilds `streams`.
    batch_stream: Option<usize>,
    /// Tests switch the batch loop off to compare with the general path alone.
    #[cfg(test)]
    batching: bool,
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer::new()
    }
}

impl Demuxer {
    /// A demuxer waiting for sync and a PAT.
    pub fn new() -> Demuxer {
        let mut pat = PsiPid::default();
        pat.follow(Pid::PAT);
        Demuxer {
            framer: Framer::new(),
            pat,
            pmt: PsiPid::default(),
            program_number: None,
            streams: Vec::new(),
            events: VecDeque::new(),
            stats: DemuxStats::default(),
            section_scratch: Vec::new(),
            pes_scratch: Vec::new(),
            batch_stream: None,
            #[cfg(test)]
            batching: true,
        }
    }

    /// Feeds received bytes, split anywhere. Every complete packet is processed now; the
    /// resulting events wait in a queue for [`Demuxer::poll`], so poll after each push.
    ///
    /// Sync is trusted only after [`super::packet::SYNC_CONFIRM_PACKETS`] sync bytes at
    /// 188-byte spacing, so the first packets (and those after a sync loss) come out once
    /// two more packets have arrived; a stream shorter than that yields nothing.
    pub fn push(&mut self, data: Bytes) {
        if let Some(run) = self.framer.push_or_take(data) {
            // Its packets' sync bytes are unchecked: hand back from the first without one.
            if let Some(at) = self.handle_run(&run) {
                self.framer.give_back(run.slice(at..));
            }
        }
        while let Some(run) = self.framer.next_run() {
            self.handle_run(&run);
        }
    }

    /// Handles a run of packets from the framer. Stops at a packet without the sync byte
    /// (only a run from [`Framer::push_or_take`] can hold one) and returns its offset.
    #[inline]
    fn handle_run(&mut self, run: &Bytes) -> Option<usize> {
        let mut at = 0;
        loop {
            // The packets after one on an elementary stream (in this run or at the end
            // of the previous one) are usually more of the same PES: take them in one
            // batch, and the first that is not through the general path.
            if let Some(s) = self.batch_stream.and_then(|i| self.streams.get_mut(i)) {
                at = s.append_run(run, at);
            }
            // The end of the run (any tail short of a packet cannot occur: runs are whole).
            let raw = run
                .get(at..at + PACKET_SIZE)
                .and_then(|r| <&[u8; PACKET_SIZE]>::try_from(r).ok())?;
            // The batch loop stops at a packet without the sync byte too (its header
            // compare includes it), so this is the one check needed.
            if raw[0] != SYNC_BYTE {
                return Some(at);
            }
            self.batch_stream = self.handle_packet(run, raw, at);
            #[cfg(test)]
            if !self.batching {
                self.batch_stream = None;
            }
            at += PACKET_SIZE;
        }
    }

    /// The next event, if any.
    pub fn poll(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// Ends the input: completes every PES in progress (an unbounded PES otherwise waits for
    /// the next payload unit start). Bytes short of a packet are dropped.
    pub fn flush(&mut self) {
        for i in 0..self.streams.len() {
            let r = self.streams.get_mut(i).and_then(|s| s.pes.flush());
            if let Some(r) = r {
                self.emit_pes(i, r);
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> DemuxStats {
        let f = self.framer.stats();
        DemuxStats {
            packets: f.packets,
            sync_losses: f.sync_losses,
            skipped_bytes: f.skipped_bytes,
            straddled_packets: f.straddled_packets,
            ..self.stats
        }
    }

    /// Continuity errors counted on one followed PID (PAT, PMT or elementary stream).
    pub fn pid_cc_errors(&self, pid: Pid) -> u64 {
        if self.pat.pid == Some(pid) {
            return self.pat.cc_errors;
        }
        if self.pmt.pid == Some(pid) {
            return self.pmt.cc_errors;
        }
        self.streams
            .iter()
            .find(|s| s.stream.pid == pid)
            .map_or(0, |s| s.cc_errors)
    }

    /// The elementary streams of the followed program, as of the last PMT.
    pub fn streams(&self) -> Vec<ElementaryStream> {
        self.streams.iter().map(|s| s.stream).collect()
    }

    /// Handles the packet `raw`, which is `run[at..at + PACKET_SIZE]`. Returns the index of
    /// its elementary stream when it was on one (whatever became of it), so the caller can
    /// try [`EsState::append_run`] on the packets that follow.
    #[inline]
    fn handle_packet(&mut self, run: &Bytes, raw: &[u8; PACKET_SIZE], at: usize) -> Option<usize> {
        let p = match CompactHeader::parse(raw) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed_packets += 1;
                return None;
            }
        };
        if p.tei() {
            self.stats.transport_errors += 1;
            return None;
        }
        let pid = p.pid();
        let is_pat = self.pat.pid == Some(pid);
        let is_pmt = !is_pat && self.pmt.pid == Some(pid);
        if is_pat || is_pmt {
            self.handle_psi_packet(&p, is_pat, run, raw, at);
            return None;
        }
        let i = self.streams.iter().position(|s| s.stream.pid == pid)?;
        if p.scrambled() {
            self.stats.scrambled_packets += 1;
            return Some(i);
        }
        let s = self.streams.get_mut(i)?;
        match s.cc.check_compact(&p, raw) {
            CcVerdict::Ok => {}
            CcVerdict::Duplicate => {
                self.stats.duplicates += 1;
                return Some(i);
            }
            CcVerdict::Discontinuity => {
                s.cc_errors += 1;
                self.stats.cc_errors += 1;
                if s.pes.discard() {
                    self.stats.pes_discarded += 1;
                }
            }
        }
        let Some(offset) = p.payload_offset() else {
            return Some(i);
        };
        // The common case, a packet continuing a PES, needs nothing else.
        if !p.pusi()
            && s.pes
                .append_continuation(raw.get(offset..).unwrap_or_default())
        {
            return Some(i);
        }
        let payload = at + offset..at + PACKET_SIZE;
        self.handle_pes_payload(i, p.pusi(), p.random_access(), run, payload);
        Some(i)
    }

    /// The rest of [`Demuxer::handle_packet`] for a packet on the PAT or PMT PID.
    #[cold]
    fn handle_psi_packet(
        &mut self,
        p: &CompactHeader,
        is_pat: bool,
        run: &Bytes,
        raw: &[u8; PACKET_SIZE],
        at: usize,
    ) {
        if p.scrambled() {
            self.stats.scrambled_packets += 1;
            return;
        }
        let psi = if is_pat { &mut self.pat } else { &mut self.pmt };
        match psi.cc.check_compact(p, raw) {
            CcVerdict::Ok => {}
            CcVerdict::Duplicate => {
                self.stats.duplicates += 1;
                return;
            }
            CcVerdict::Discontinuity => {
                psi.cc_errors += 1;
                self.stats.cc_errors += 1;
                psi.sections.reset();
            }
        }
        let Some(offset) = p.payload_offset() else {
            return;
        };
        self.handle_psi_payload(is_pat, p.pusi(), run.slice(at + offset..at + PACKET_SIZE));
    }

    /// Feeds a PES payload, `run[payload]`, through the general path of the stream's
    /// assembler and emits what completes.
    #[inline(never)]
    fn handle_pes_payload(
        &mut self,
        i: usize,
        pusi: bool,
        ra: bool,
        run: &Bytes,
        payload: std::ops::Range<usize>,
    ) {
        let Some(s) = self.streams.get_mut(i) else {
            return;
        };
        s.pes.push(pusi, ra, run, payload, &mut self.pes_scratch);
        if self.pes_scratch.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut self.pes_scratch);
        for r in out.drain(..) {
            self.emit_pes(i, r);
        }
        self.pes_scratch = out;
    }

    fn emit_pes(&mut self, i: usize, r: Result<Pes, PesError>) {
        let Some(stream) = self.streams.get(i).map(|s| s.stream) else {
            return;
        };
        let pes = match r {
            Ok(p) => p,
            Err(PesError::Overflow) => {
                self.stats.pes_overflows += 1;
                return;
            }
            Err(_) => {
                self.stats.pes_errors += 1;
                return;
            }
        };
        if let EsCodec::Opus { .. } = stream.codec {
            match split_opus_packets(&pes.payload) {
                Ok(packets) => {
                    self.stats.pes_frames += 1;
                    self.events.push_back(DemuxEvent::OpusPackets {
                        pid: stream.pid,
                        pts: pes.header.pts,
                        packets,
                    });
                }
                Err(_) => self.stats.pes_errors += 1,
            }
            return;
        }
        self.stats.pes_frames += 1;
        self.events.push_back(DemuxEvent::Pes(PesFrame {
            pid: stream.pid,
            stream_type: stream.stream_type,
            codec: stream.codec,
            pts: pes.header.pts,
            dts: pes.header.dts,
            random_access: pes.random_access,
            data: pes.payload,
        }));
    }

    fn handle_psi_payload(&mut self, is_pat: bool, pusi: bool, payload: Bytes) {
        let mut out = std::mem::take(&mut self.section_scratch);
        if is_pat {
            self.pat.sections.push(pusi, payload, &mut out);
        } else {
            self.pmt.sections.push(pusi, payload, &mut out);
        }
        for r in out.drain(..) {
            let section = r.and_then(Section::parse);
            match section {
                Ok(s) if !s.current_next => {}
                Ok(s) if is_pat => self.handle_pat(&s),
                Ok(s) => self.handle_pmt(&s),
                Err(PsiError::BadCrc) => self.stats.crc_errors += 1,
                Err(_) => self.stats.psi_errors += 1,
            }
        }
        self.section_scratch = out;
    }

    fn handle_pat(&mut self, s: &Section) {
        let pat = match Pat::from_section(s) {
            Ok(p) => p,
            Err(_) => {
                self.stats.psi_errors += 1;
                return;
            }
        };
        if self.pat.version == Some(pat.version) && self.pmt.pid.is_some() {
            return;
        }
        self.pat.version = Some(pat.version);
        // Follow the first real program (program 0 is the network PID).
        let Some(program) = pat.programs.iter().find(|p| p.program_number != 0) else {
            return;
        };
        if self.pmt.pid != Some(program.pid) || self.program_number != Some(program.program_number)
        {
            self.pmt.follow(program.pid);
            self.program_number = Some(program.program_number);
        }
    }

    fn handle_pmt(&mut self, s: &Section) {
        let pmt = match Pmt::from_section(s) {
            Ok(p) => p,
            Err(_) => {
                self.stats.psi_errors += 1;
                return;
            }
        };
        if Some(pmt.program_number) != self.program_number {
            return;
        }
        let streams: Vec<ElementaryStream> = pmt
            .streams
            .iter()
            .map(|s| ElementaryStream {
                pid: s.pid,
                stream_type: s.stream_type,
                codec: s.codec(),
            })
            .collect();
        let unchanged = self.pmt.version == Some(pmt.version)
            && streams.len() == self.streams.len()
            && streams
                .iter()
                .zip(&self.streams)
                .all(|(a, b)| *a == b.stream);
        if unchanged {
            return;
        }
        self.pmt.version = Some(pmt.version);
        self.batch_stream = None;
        // Streams that keep their PID and type keep their state, so a PMT version bump does
        // not cut the PES in flight.
        let mut old = std::mem::take(&mut self.streams);
        for es in &streams {
            let kept = old
                .iter()
                .position(|o| o.stream == *es)
                .map(|i| old.swap_remove(i));
            self.streams.push(kept.unwrap_or(EsState {
                stream: *es,
                cc: CcTracker::new(),
                cc_errors: 0,
                pes: PesAssembler::new(),
            }));
        }
        self.events
            .push_back(DemuxEvent::ProgramChanged { streams });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::testmux::{MuxPes, MuxStream, TestMuxer};
    use proptest::prelude::*;

    const VIDEO: Pid = Pid::new(0x100);
    const AUDIO: Pid = Pid::new(0x101);

    /// Video (unbounded PES, 1..30 packets) and AAC-like audio (bounded, 1..4 packets)
    /// interleaved, PSI every 8 frames.
    fn stream(frames: u32) -> Vec<u8> {
        let mut mux = TestMuxer::new(
            Pid::new(0x1000),
            vec![
                MuxStream {
                    pid: VIDEO,
                    stream_type: 0x1b,
                    descriptors: vec![],
                },
                MuxStream {
                    pid: AUDIO,
                    stream_type: 0x0f,
                    descriptors: vec![],
                },
            ],
        );
        let mut out = Vec::new();
        for f in 0..frames {
            if f % 8 == 0 {
                mux.write_psi(&mut out);
            }
            let len = 50 + (f as usize * 1237) % 5000;
            let v: Vec<u8> = (0..len).map(|i| (i as u32 ^ f) as u8).collect();
            let pts = u64::from(f) * 3600;
            mux.write_pes(
                &MuxPes {
                    pid: VIDEO,
                    stream_id: 0xe0,
                    pts: Some(pts + 3600),
                    dts: Some(pts),
                    random_access: f % 8 == 0,
                    bounded: false,
                    data: &v,
                },
                &mut out,
            );
            let a: Vec<u8> = (0..100 + (f as usize * 97) % 500)
                .map(|i| i as u8)
                .collect();
            mux.write_pes(
                &MuxPes {
                    pid: AUDIO,
                    stream_id: 0xc0,
                    pts: Some(pts),
                    dts: None,
                    random_access: false,
                    bounded: true,
                    data: &a,
                },
                &mut out,
            );
        }
        out
    }

    fn demux(chunks: &[Bytes], batching: bool) -> (Vec<DemuxEvent>, DemuxStats, [u64; 2]) {
        let mut d = Demuxer::new();
        d.batching = batching;
        let mut ev = Vec::new();
        for c in chunks {
            d.push(c.clone());
            ev.extend(std::iter::from_fn(|| d.poll()));
        }
        d.flush();
        ev.extend(std::iter::from_fn(|| d.poll()));
        let cc = [d.pid_cc_errors(VIDEO), d.pid_cc_errors(AUDIO)];
        (ev, d.stats(), cc)
    }

    /// One way to damage a packet of the stream.
    #[derive(Debug, Clone, Copy)]
    enum Damage {
        Drop,
        Duplicate,
        /// XOR a header byte (1..4) with a mask.
        Header(usize, u8),
        /// Drop the packet and the next 14 packets of its PID (same counter 15 later).
        DropFifteen,
        /// Insert this many bytes of garbage before the packet (sync loss, realignment).
        Garbage(usize),
    }

    fn damage() -> impl Strategy<Value = (usize, Damage)> {
        (
            0usize..2000,
            prop_oneof![
                Just(Damage::Drop),
                Just(Damage::Duplicate),
                (0usize..4, any::<u8>()).prop_map(|(i, m)| Damage::Header(i, m)),
                (1usize..400).prop_map(Damage::Garbage),
                Just(Damage::Header(1, 0x20)), // transport_priority only
                Just(Damage::DropFifteen),
            ],
        )
    }

    fn apply(raw: &[u8], damages: &[(usize, Damage)]) -> Vec<u8> {
        let mut packets: Vec<Vec<u8>> = raw.chunks(PACKET_SIZE).map(<[u8]>::to_vec).collect();
        for &(at, d) in damages {
            let n = packets.len();
            if n == 0 {
                break;
            }
            let i = at % n;
            match d {
                Damage::Drop => {
                    packets.remove(i);
                }
                Damage::Duplicate => {
                    let p = packets[i].clone();
                    packets.insert(i, p);
                }
                Damage::Header(b, mask) => {
                    if let Some(byte) = packets[i].get_mut(b) {
                        *byte ^= mask;
                    }
                }
                Damage::Garbage(len) => packets.insert(i, vec![0x47; len]),
                Damage::DropFifteen => {
                    // Garbage pieces shorter than a header have no PID.
                    let pid = |p: &[u8]| match p {
                        [_, b1, b2, ..] => Some(u16::from_be_bytes([b1 & 0x1f, *b2])),
                        _ => None,
                    };
                    let want = pid(&packets[i]);
                    let mut dropped = 0;
                    packets.retain(|p| {
                        let hit = dropped < 15 && pid(p) == want;
                        dropped += usize::from(hit);
                        !hit
                    });
                }
            }
        }
        packets.concat()
    }

    fn pieces(all: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (all.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([all.len()]) {
            out.push(all.slice(prev..c));
            prev = c;
        }
        out
    }

    #[test]
    fn batch_loop_takes_most_packets_and_matches_the_general_path() {
        let all = Bytes::from(stream(40));
        let (batched, stats, cc) = demux(std::slice::from_ref(&all), true);
        let (reference, ref_stats, ref_cc) = demux(std::slice::from_ref(&all), false);
        assert_eq!(batched, reference);
        assert_eq!((stats, cc), (ref_stats, ref_cc));
        assert_eq!(stats.pes_frames, 80);
        assert_eq!(stats.cc_errors, 0);
    }

    #[test]
    fn batch_loop_stops_at_a_bounded_pes_end_and_at_the_size_cap() {
        // A bounded PES whose last byte falls at the end of a full packet: the batch must
        // leave that packet to the general path, which completes the PES.
        let mut mux = TestMuxer::new(
            Pid::new(0x1000),
            vec![MuxStream {
                pid: AUDIO,
                stream_type: 0x0f,
                descriptors: vec![],
            }],
        );
        let mut out = Vec::new();
        mux.write_psi(&mut out);
        for f in 0..6u64 {
            // 14-byte header + data = 184 * 4 bytes: four full packets, no stuffing.
            let data = vec![f as u8; 184 * 4 - 14];
            mux.write_pes(
                &MuxPes {
                    pid: AUDIO,
                    stream_id: 0xc0,
                    pts: Some(f * 1920),
                    dts: None,
                    random_access: false,
                    bounded: true,
                    data: &data,
                },
                &mut out,
            );
        }
        let all = Bytes::from(out);
        let (ev, stats, _) = demux(std::slice::from_ref(&all), true);
        let (reference, _, _) = demux(std::slice::from_ref(&all), false);
        assert_eq!(ev, reference);
        assert_eq!(stats.pes_frames, 6);
        assert_eq!(stats.pes_errors, 0);
        for e in &ev {
            if let DemuxEvent::Pes(f) = e {
                assert_eq!(f.data.len(), 184 * 4 - 14);
            }
        }

        // An unbounded PES over the cap: discarded and counted the same way either path.
        let mut mux = TestMuxer::new(
            Pid::new(0x1000),
            vec![MuxStream {
                pid: VIDEO,
                stream_type: 0x1b,
                descriptors: vec![],
            }],
        );
        let mut out = Vec::new();
        mux.write_psi(&mut out);
        let big = vec![0x41u8; super::super::pes::MAX_PES_SIZE + 1000];
        for f in 0..2u64 {
            mux.write_pes(
                &MuxPes {
                    pid: VIDEO,
                    stream_id: 0xe0,
                    pts: Some(f * 3600),
                    dts: None,
                    random_access: false,
                    bounded: false,
                    data: if f == 0 { &big } else { &big[..100] },
                },
                &mut out,
            );
        }
        let all = Bytes::from(out);
        let chunks = pieces(&all, &[1316 * 1000, 65536 * 40]);
        let (ev, stats, _) = demux(&chunks, true);
        let (reference, ref_stats, _) = demux(&chunks, false);
        assert_eq!(ev, reference);
        assert_eq!(stats, ref_stats);
        assert_eq!(stats.pes_overflows, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// On damaged input in any split, the batch loop changes nothing: same events, same
        /// counters, same per-PID continuity errors as the general path alone.
        #[test]
        fn batch_loop_matches_the_general_path_on_damaged_input(
            damages in prop::collection::vec(damage(), 0..12),
            cuts in prop::collection::vec(0usize..200_000, 0..12),
        ) {
            let raw = apply(&stream(24), &damages);
            let all = Bytes::from(raw);
            let chunks = pieces(&all, &cuts);
            let (batched, stats, cc) = demux(&chunks, true);
            let (reference, ref_stats, ref_cc) = demux(&chunks, false);
            prop_assert_eq!(batched, reference);
            prop_assert_eq!(stats, ref_stats);
            prop_assert_eq!(cc, ref_cc);
        }

        /// Pushes of whole packets go straight from the framer to the batch loop, sync
        /// bytes unchecked until then: on damaged input (sync bytes hit, garbage inserted)
        /// the result is that of pushes the framer must queue and check, without batching.
        #[test]
        fn direct_runs_match_queued_runs_on_damaged_input(
            damages in prop::collection::vec(damage(), 0..12),
            packets_per_push in 1usize..12,
        ) {
            let raw = apply(&stream(24), &damages);
            let all = Bytes::from(raw);
            let size = packets_per_push * PACKET_SIZE;
            let direct: Vec<Bytes> = (0..all.len())
                .step_by(size)
                .map(|i| all.slice(i..(i + size).min(all.len())))
                .collect();
            let queued: Vec<Bytes> = (0..all.len())
                .step_by(1000)
                .map(|i| all.slice(i..(i + 1000).min(all.len())))
                .collect();
            let (a, a_stats, a_cc) = demux(&direct, true);
            let (b, b_stats, b_cc) = demux(&queued, false);
            prop_assert_eq!(a, b);
            // The 1000-byte pushes straddle packets, which only that counter sees.
            prop_assert!(b_stats.straddled_packets > 0);
            prop_assert_eq!(
                DemuxStats { straddled_packets: 0, ..a_stats },
                DemuxStats { straddled_packets: 0, ..b_stats }
            );
            prop_assert_eq!(a_cc, b_cc);
        }
    }
}
