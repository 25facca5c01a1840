//! A minimal MPEG-TS muxer for tests, benchmarks and fuzz seeds: PAT, one PMT, and PES
//! packetized per ISO/IEC 13818-1 §2.4.3 with adaptation-field stuffing. It writes what the
//! demuxer reads; it is not a production muxer (no PCR pacing, no T-STD buffer model).

use super::packet::{PACKET_SIZE, Pid, SYNC_BYTE};
use super::pes::write_timestamp;
use super::psi::{TABLE_ID_PAT, TABLE_ID_PMT, build_section};

/// One elementary stream to announce in the PMT.
#[derive(Debug, Clone)]
pub struct MuxStream {
    /// Its PID.
    pub pid: Pid,
    /// `stream_type`.
    pub stream_type: u8,
    /// Raw ES_info descriptor bytes (tag, length, body, ...).
    pub descriptors: Vec<u8>,
}

/// One PES to write.
#[derive(Debug, Clone, Copy)]
pub struct MuxPes<'a> {
    /// PID to write it on.
    pub pid: Pid,
    /// `stream_id` (0xE0 video, 0xC0 audio, 0xBD private).
    pub stream_id: u8,
    /// PTS, 33 bits.
    pub pts: Option<u64>,
    /// DTS, 33 bits (only written with a PTS).
    pub dts: Option<u64>,
    /// Set the random access indicator on the first packet.
    pub random_access: bool,
    /// Write PES_packet_length (false gives an unbounded PES, as for video). Ignored (written
    /// as 0) when the PES is longer than the 16-bit field allows.
    pub bounded: bool,
    /// The elementary stream bytes.
    pub data: &'a [u8],
}

/// The muxer state: continuity counters and the program layout.
#[derive(Debug, Clone)]
pub struct TestMuxer {
    pmt_pid: Pid,
    program_number: u16,
    pmt_version: u8,
    streams: Vec<MuxStream>,
    cc: Vec<(Pid, u8)>,
}

impl TestMuxer {
    /// A muxer for one program on `pmt_pid` with `streams`.
    pub fn new(pmt_pid: Pid, streams: Vec<MuxStream>) -> TestMuxer {
        TestMuxer {
            pmt_pid,
            program_number: 1,
            pmt_version: 0,
            streams,
            cc: Vec::new(),
        }
    }

    /// Replaces the stream list and bumps the PMT version.
    pub fn set_streams(&mut self, streams: Vec<MuxStream>) {
        self.streams = streams;
        self.pmt_version = (self.pmt_version + 1) & 0x1f;
    }

    fn next_cc(&mut self, pid: Pid) -> u8 {
        match self.cc.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, cc)) => {
                *cc = (*cc + 1) & 0x0f;
                *cc
            }
            None => {
                self.cc.push((pid, 0));
                0
            }
        }
    }

    /// The PAT section bytes (for PSI tests).
    pub fn pat_section(&self) -> Vec<u8> {
        let mut body = self.program_number.to_be_bytes().to_vec();
        body.extend_from_slice(&(0xe000 | self.pmt_pid.value()).to_be_bytes());
        build_section(TABLE_ID_PAT, 1, 0, &body)
    }

    /// The PMT section bytes (for PSI tests).
    pub fn pmt_section(&self) -> Vec<u8> {
        let pcr = self.streams.first().map_or(Pid::NULL, |s| s.pid);
        let mut body = (0xe000 | pcr.value()).to_be_bytes().to_vec();
        body.extend_from_slice(&[0xf0, 0x00]);
        for s in &self.streams {
            body.push(s.stream_type);
            body.extend_from_slice(&(0xe000 | s.pid.value()).to_be_bytes());
            body.extend_from_slice(&(0xf000 | s.descriptors.len() as u16).to_be_bytes());
            body.extend_from_slice(&s.descriptors);
        }
        build_section(TABLE_ID_PMT, self.program_number, self.pmt_version, &body)
    }

    /// Packets carrying the PAT and the PMT.
    pub fn write_psi(&mut self, out: &mut Vec<u8>) {
        let pat = self.pat_section();
        let pmt = self.pmt_section();
        self.write_section(Pid::PAT, &pat, out);
        let pid = self.pmt_pid;
        self.write_section(pid, &pmt, out);
    }

    /// Packets carrying one section (pointer_field 0, 0xFF stuffing after it).
    pub fn write_section(&mut self, pid: Pid, section: &[u8], out: &mut Vec<u8>) {
        let mut payload = vec![0u8];
        payload.extend_from_slice(section);
        for (i, chunk) in payload.chunks(PACKET_SIZE - 4).enumerate() {
            let cc = self.next_cc(pid);
            let start = out.len();
            out.push(SYNC_BYTE);
            let flags = if i == 0 { 0x40 } else { 0 };
            out.push(flags | (pid.value() >> 8) as u8);
            out.push(pid.value() as u8);
            out.push(0x10 | cc);
            out.extend_from_slice(chunk);
            out.resize(start + PACKET_SIZE, 0xff);
        }
    }

    /// Packets carrying one PES.
    pub fn write_pes(&mut self, pes: &MuxPes<'_>, out: &mut Vec<u8>) {
        let mut opt = Vec::with_capacity(10);
        let pts_flags = match (pes.pts, pes.dts) {
            (Some(p), Some(d)) => {
                opt.extend_from_slice(&write_timestamp(3, p));
                opt.extend_from_slice(&write_timestamp(1, d));
                0xc0
            }
            (Some(p), None) => {
                opt.extend_from_slice(&write_timestamp(2, p));
                0x80
            }
            _ => 0,
        };
        let len = 3 + opt.len() + pes.data.len();
        let len_field = if pes.bounded && len <= usize::from(u16::MAX) {
            len as u16
        } else {
            0
        };
        let mut head = vec![0, 0, 1, pes.stream_id];
        head.extend_from_slice(&len_field.to_be_bytes());
        head.extend_from_slice(&[0x84, pts_flags, opt.len() as u8]);
        head.extend_from_slice(&opt);
        let total = head.len() + pes.data.len();
        let mut written = 0;
        let mut first = true;
        while written < total {
            let cc = self.next_cc(pes.pid);
            let start = out.len();
            let pid = pes.pid.value();
            out.push(SYNC_BYTE);
            out.push(if first { 0x40 } else { 0 } | (pid >> 8) as u8);
            out.push(pid as u8);
            let ra = first && pes.random_access;
            let room_plain = PACKET_SIZE - 4;
            let remaining = total - written;
            let need_af = ra || remaining < room_plain;
            let room = if need_af {
                let af_min = if ra { 2 } else { 1 };
                let room = PACKET_SIZE - 4 - af_min;
                let take = remaining.min(room);
                let af_len = PACKET_SIZE - 4 - 1 - take;
                out.push(0x30 | cc);
                out.push(af_len as u8);
                if af_len > 0 {
                    out.push(if ra { 0x40 } else { 0 });
                    out.resize(out.len() + af_len - 1, 0xff);
                }
                take
            } else {
                out.push(0x10 | cc);
                room_plain
            };
            let mut left = room;
            while left > 0 && written < total {
                let (src, off) = if written < head.len() {
                    (&head[..], written)
                } else {
                    (pes.data, written - head.len())
                };
                let n = (src.len() - off).min(left);
                out.extend_from_slice(&src[off..off + n]);
                written += n;
                left -= n;
            }
            debug_assert_eq!(out.len(), start + PACKET_SIZE);
            first = false;
        }
    }
}

/// The ES_info descriptors ffmpeg writes for an Opus stream with `channels` channels.
pub fn opus_descriptors(channels: u8) -> Vec<u8> {
    vec![
        0x05, 0x04, b'O', b'p', b'u', b's', 0x7f, 0x02, 0x80, channels,
    ]
}

/// Frames Opus packets with control headers (no trims) into one PES payload.
pub fn opus_pes_payload(packets: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in packets {
        v.extend_from_slice(&[0x7f, 0xe0]);
        let mut n = p.len();
        while n >= 255 {
            v.push(0xff);
            n -= 255;
        }
        v.push(n as u8);
        v.extend_from_slice(p);
    }
    v
}
