//! Program specific information, ISO/IEC 13818-1 §2.4.4: section reassembly across packets
//! (pointer_field, §2.4.4.2), the long section header and CRC_32 (§2.4.4.10, Annex A), the
//! Program Association Table (§2.4.4.3) and the Program Map Table (§2.4.4.8), with the
//! descriptors (§2.6) that identify Opus (registration descriptor, §2.6.8, plus the
//! extension descriptor of the Opus-in-TS mapping).

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use super::packet::Pid;

/// Largest section the assembler accepts, header and CRC included. The 12-bit
/// `section_length` allows 4095 + 3 bytes, but the spec caps private sections at 4096 bytes
/// total (PAT and PMT at 1024); this bounds the per-PID reassembly buffer.
pub const MAX_SECTION_SIZE: usize = 4096;

/// `table_id` of the Program Association Table.
pub const TABLE_ID_PAT: u8 = 0x00;
/// `table_id` of the Program Map Table.
pub const TABLE_ID_PMT: u8 = 0x02;
/// `table_id` value that marks the rest of a packet as stuffing.
const TABLE_ID_STUFFING: u8 = 0xff;

/// Descriptor tag of the registration descriptor (§2.6.8).
pub const DESCRIPTOR_REGISTRATION: u8 = 0x05;
/// Descriptor tag of the extension descriptor (§2.6.90).
pub const DESCRIPTOR_EXTENSION: u8 = 0x7f;
/// Extension descriptor tag the Opus-in-TS mapping uses for `channel_config_code`.
pub const EXTENSION_OPUS_AUDIO: u8 = 0x80;

/// Why a section or table was rejected. Every variant is the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PsiError {
    /// The pointer_field points past the end of the payload.
    #[error("pointer_field {0} past the end of the payload")]
    PointerOverrun(u8),
    /// A section announces more than [`MAX_SECTION_SIZE`] bytes.
    #[error("section of {0} bytes exceeds the cap")]
    SectionTooLong(usize),
    /// A new section started before the previous one was complete.
    #[error("section truncated by the next payload unit start")]
    Truncated,
    /// The CRC_32 does not match.
    #[error("section CRC_32 mismatch")]
    BadCrc,
    /// The section does not use the long (syntax indicator 1) form.
    #[error("section does not use the long form")]
    NotLongForm,
    /// The section is shorter than its fixed fields.
    #[error("section too short for its fields")]
    TooShort,
    /// A table or descriptor length points past the end of its section.
    #[error("table field length overruns the section")]
    FieldOverrun,
    /// The table_id is not the one the PID carries.
    #[error("unexpected table_id 0x{0:02x}")]
    UnexpectedTable(u8),
}

/// The MPEG-2 CRC-32 table (polynomial 0x04C11DB7, MSB first), built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/MPEG-2 (Annex A): initial value all ones, no reflection, no final xor. Running it
/// over a whole section including its CRC_32 field gives 0 for an intact section.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

/// Reassembles PSI sections of one PID from packet payloads.
///
/// A section that lies within one payload is handed out as a slice of it; one that spans
/// packets is copied into a buffer of at most [`MAX_SECTION_SIZE`] bytes (the copy is forced
/// by the packet headers interleaved with the section bytes).
#[derive(Debug, Default)]
pub struct SectionAssembler {
    partial: BytesMut,
    /// Total size of the section in `partial` once its 3-byte header is known.
    expected: Option<usize>,
    active: bool,
}

impl SectionAssembler {
    /// An assembler with no section in progress.
    pub fn new() -> SectionAssembler {
        SectionAssembler::default()
    }

    /// Drops any section in progress (after a continuity error).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.expected = None;
        self.active = false;
    }

    /// Feeds one packet payload; complete sections (raw bytes, header to CRC) and errors are
    /// appended to `out` in stream order.
    pub fn push(&mut self, pusi: bool, mut payload: Bytes, out: &mut Vec<Result<Bytes, PsiError>>) {
        if !pusi {
            if self.active {
                self.extend(&payload, out);
            }
            return;
        }
        let Some(&pointer) = payload.first() else {
            self.reset();
            out.push(Err(PsiError::PointerOverrun(0)));
            return;
        };
        payload.advance(1);
        if usize::from(pointer) > payload.len() {
            self.reset();
            out.push(Err(PsiError::PointerOverrun(pointer)));
            return;
        }
        let tail = payload.split_to(usize::from(pointer));
        if self.active {
            self.extend(&tail, out);
            if self.active {
                self.reset();
                out.push(Err(PsiError::Truncated));
            }
        }
        // New sections start here and follow each other until stuffing or the payload ends.
        while let Some(&table_id) = payload.first() {
            if table_id == TABLE_ID_STUFFING {
                break;
            }
            let Some(h) = payload.get(..3) else {
                self.start(&payload);
                break;
            };
            let total = section_total(h);
            if total > MAX_SECTION_SIZE {
                out.push(Err(PsiError::SectionTooLong(total)));
                break;
            }
            if payload.len() >= total {
                out.push(Ok(payload.split_to(total)));
            } else {
                self.start(&payload);
                break;
            }
        }
    }

    fn start(&mut self, bytes: &[u8]) {
        self.partial.clear();
        self.expected = None;
        self.active = true;
        self.partial.extend_from_slice(bytes);
        if let Some(h) = self.partial.get(..3) {
            self.expected = Some(section_total(h));
        }
    }

    fn extend(&mut self, bytes: &[u8], out: &mut Vec<Result<Bytes, PsiError>>) {
        if self.expected.is_none() {
            // At most 2 header bytes are buffered; take what completes the header.
            let need = 3usize.saturating_sub(self.partial.len()).min(bytes.len());
            self.partial
                .extend_from_slice(bytes.get(..need).unwrap_or_default());
            let Some(h) = self.partial.get(..3) else {
                return;
            };
            let total = section_total(h);
            if total > MAX_SECTION_SIZE {
                self.reset();
                out.push(Err(PsiError::SectionTooLong(total)));
                return;
            }
            self.expected = Some(total);
            return self.extend(bytes.get(need..).unwrap_or_default(), out);
        }
        let total = self.expected.unwrap_or(0);
        if total > MAX_SECTION_SIZE {
            self.reset();
            out.push(Err(PsiError::SectionTooLong(total)));
            return;
        }
        let want = total.saturating_sub(self.partial.len()).min(bytes.len());
        self.partial
            .extend_from_slice(bytes.get(..want).unwrap_or_default());
        if self.partial.len() >= total {
            out.push(Ok(self.partial.split().freeze()));
            self.reset();
        }
    }
}

/// Header plus body size of a section from its first three bytes.
fn section_total(h: &[u8]) -> usize {
    let len = match h {
        [_, a, b, ..] => usize::from(u16::from_be_bytes([*a, *b]) & 0x0fff),
        _ => 0,
    };
    3 + len
}

/// A long-form PSI section (§2.4.4.10) with its CRC verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `table_id`.
    pub table_id: u8,
    /// `transport_stream_id` (PAT) or `program_number` (PMT).
    pub table_id_extension: u16,
    /// `version_number`, 5 bits.
    pub version: u8,
    /// `current_next_indicator`: false means the table is not valid yet.
    pub current_next: bool,
    /// `section_number`.
    pub section_number: u8,
    /// `last_section_number`.
    pub last_section_number: u8,
    /// The table-specific bytes between the header and the CRC (a slice of the input).
    pub body: Bytes,
}

impl Section {
    /// Parses a complete section as handed out by [`SectionAssembler`] and checks its CRC.
    pub fn parse(raw: Bytes) -> Result<Section, PsiError> {
        let [table_id, b1, b2, e0, e1, v, sn, lsn] = *raw
            .get(..8)
            .and_then(|h| <&[u8; 8]>::try_from(h).ok())
            .ok_or(PsiError::TooShort)?;
        if b1 & 0x80 == 0 {
            return Err(PsiError::NotLongForm);
        }
        let total = section_total(&[table_id, b1, b2]);
        if raw.len() != total || total < 12 {
            return Err(PsiError::TooShort);
        }
        if crc32_mpeg2(&raw) != 0 {
            return Err(PsiError::BadCrc);
        }
        Ok(Section {
            table_id,
            table_id_extension: u16::from_be_bytes([e0, e1]),
            version: (v >> 1) & 0x1f,
            current_next: v & 1 != 0,
            section_number: sn,
            last_section_number: lsn,
            body: raw.slice(8..total - 4),
        })
    }
}

/// One program of a PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    /// `program_number` (0 designates the network PID).
    pub program_number: u16,
    /// The PMT PID of the program (or the network PID for program 0).
    pub pid: Pid,
}

/// A Program Association Table section (§2.4.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    /// `transport_stream_id`.
    pub transport_stream_id: u16,
    /// `version_number`.
    pub version: u8,
    /// The programs listed in this section. The count is bounded by [`MAX_SECTION_SIZE`] / 4.
    pub programs: Vec<PatEntry>,
}

impl Pat {
    /// Reads a PAT from a parsed section.
    pub fn from_section(s: &Section) -> Result<Pat, PsiError> {
        if s.table_id != TABLE_ID_PAT {
            return Err(PsiError::UnexpectedTable(s.table_id));
        }
        if !s.body.len().is_multiple_of(4) {
            return Err(PsiError::FieldOverrun);
        }
        let programs = s
            .body
            .chunks_exact(4)
            .map(|c| PatEntry {
                program_number: u16::from_be_bytes([c[0], c[1]]),
                pid: Pid::new(u16::from_be_bytes([c[2], c[3]])),
            })
            .collect();
        Ok(Pat {
            transport_stream_id: s.table_id_extension,
            version: s.version,
            programs,
        })
    }
}

/// A descriptor (§2.6): tag and a slice of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `descriptor_tag`.
    pub tag: u8,
    /// The descriptor body (after the length byte).
    pub data: Bytes,
}

/// Splits a descriptor loop. The count is bounded by the section size cap.
fn parse_descriptors(mut b: Bytes) -> Result<Vec<Descriptor>, PsiError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let [tag, len] = *b
            .get(..2)
            .and_then(|h| <&[u8; 2]>::try_from(h).ok())
            .ok_or(PsiError::FieldOverrun)?;
        b.advance(2);
        if usize::from(len) > b.len() {
            return Err(PsiError::FieldOverrun);
        }
        out.push(Descriptor {
            tag,
            data: b.split_to(usize::from(len)),
        });
    }
    Ok(out)
}

/// `stream_type` (§2.4.4.9, Table 2-34), open for values Sluice does not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// 0x0F: ISO/IEC 13818-7 audio with ADTS transport syntax (AAC).
    AdtsAac,
    /// 0x1B: AVC video (H.264).
    H264,
    /// 0x24: HEVC video (H.265).
    H265,
    /// 0x06: PES packets containing private data (Opus, with a registration descriptor).
    PrivatePes,
    /// Any other value.
    Unknown(u8),
}

impl StreamType {
    /// Maps the wire value.
    pub fn from_u8(v: u8) -> StreamType {
        match v {
            0x0f => StreamType::AdtsAac,
            0x1b => StreamType::H264,
            0x24 => StreamType::H265,
            0x06 => StreamType::PrivatePes,
            other => StreamType::Unknown(other),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            StreamType::AdtsAac => 0x0f,
            StreamType::H264 => 0x1b,
            StreamType::H265 => 0x24,
            StreamType::PrivatePes => 0x06,
            StreamType::Unknown(v) => v,
        }
    }
}

/// What an elementary stream carries, from its stream type and descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EsCodec {
    /// H.264 Annex-B byte stream.
    H264,
    /// H.265 Annex-B byte stream.
    H265,
    /// AAC in ADTS frames.
    AdtsAac,
    /// Opus with the TS control header framing.
    Opus {
        /// `channel_config_code` from the Opus extension descriptor, when present.
        channel_config: Option<u8>,
    },
    /// Something Sluice does not handle.
    Other,
}

/// One elementary stream listed in a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    /// `stream_type`.
    pub stream_type: StreamType,
    /// `elementary_PID`.
    pub pid: Pid,
    /// The ES_info descriptors.
    pub descriptors: Vec<Descriptor>,
}

impl PmtStream {
    /// Resolves the codec from the stream type and, for private PES, the descriptors.
    pub fn codec(&self) -> EsCodec {
        match self.stream_type {
            StreamType::H264 => EsCodec::H264,
            StreamType::H265 => EsCodec::H265,
            StreamType::AdtsAac => EsCodec::AdtsAac,
            StreamType::PrivatePes => {
                let opus = self
                    .descriptors
                    .iter()
                    .any(|d| d.tag == DESCRIPTOR_REGISTRATION && d.data.starts_with(b"Opus"));
                if !opus {
                    return EsCodec::Other;
                }
                let channel_config = self.descriptors.iter().find_map(|d| match d.data.as_ref() {
                    [EXTENSION_OPUS_AUDIO, code, ..] if d.tag == DESCRIPTOR_EXTENSION => {
                        Some(*code)
                    }
                    _ => None,
                });
                EsCodec::Opus { channel_config }
            }
            StreamType::Unknown(_) => EsCodec::Other,
        }
    }
}

/// A Program Map Table section (§2.4.4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    /// `program_number`.
    pub program_number: u16,
    /// `version_number`.
    pub version: u8,
    /// `PCR_PID`.
    pub pcr_pid: Pid,
    /// The program_info descriptors.
    pub program_info: Vec<Descriptor>,
    /// The elementary streams, in table order.
    pub streams: Vec<PmtStream>,
}

impl Pmt {
    /// Reads a PMT from a parsed section.
    pub fn from_section(s: &Section) -> Result<Pmt, PsiError> {
        if s.table_id != TABLE_ID_PMT {
            return Err(PsiError::UnexpectedTable(s.table_id));
        }
        let mut b = s.body.clone();
        let [p0, p1, l0, l1] = *b
            .get(..4)
            .and_then(|h| <&[u8; 4]>::try_from(h).ok())
            .ok_or(PsiError::TooShort)?;
        b.advance(4);
        let info_len = usize::from(u16::from_be_bytes([l0, l1]) & 0x0fff);
        if info_len > b.len() {
            return Err(PsiError::FieldOverrun);
        }
        let program_info = parse_descriptors(b.split_to(info_len))?;
        let mut streams = Vec::new();
        while !b.is_empty() {
            let [st, e0, e1, i0, i1] = *b
                .get(..5)
                .and_then(|h| <&[u8; 5]>::try_from(h).ok())
                .ok_or(PsiError::FieldOverrun)?;
            b.advance(5);
            let es_info_len = usize::from(u16::from_be_bytes([i0, i1]) & 0x0fff);
            if es_info_len > b.len() {
                return Err(PsiError::FieldOverrun);
            }
            streams.push(PmtStream {
                stream_type: StreamType::from_u8(st),
                pid: Pid::new(u16::from_be_bytes([e0, e1])),
                descriptors: parse_descriptors(b.split_to(es_info_len))?,
            });
        }
        Ok(Pmt {
            program_number: s.table_id_extension,
            version: s.version,
            pcr_pid: Pid::new(u16::from_be_bytes([p0, p1])),
            program_info,
            streams,
        })
    }
}

/// Builds a complete long-form section with a correct CRC (for tests, the bench's muxer and
/// fuzz seeds). `body` is the table-specific part; the result is at most
/// [`MAX_SECTION_SIZE`] bytes only if the caller keeps `body` small.
pub fn build_section(table_id: u8, table_id_extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut v = Vec::with_capacity(3 + section_length);
    v.push(table_id);
    // syntax indicator, '0', reserved '11', 12-bit length.
    v.extend_from_slice(&(0xb000 | (section_length as u16 & 0x0fff)).to_be_bytes());
    v.extend_from_slice(&table_id_extension.to_be_bytes());
    v.push(0xc0 | ((version & 0x1f) << 1) | 1);
    v.push(0); // section_number
    v.push(0); // last_section_number
    v.extend_from_slice(body);
    let crc = crc32_mpeg2(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PAT ffmpeg writes: transport_stream_id 1, program 1 on PMT PID 0x1000.
    const FFMPEG_PAT: [u8; 16] = [
        0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04,
        0xb2,
    ];

    #[test]
    fn crc_check_value() {
        // The CRC-32/MPEG-2 catalogue check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
        assert_eq!(crc32_mpeg2(&FFMPEG_PAT), 0);
    }

    #[test]
    fn parses_ffmpeg_pat() {
        let s = Section::parse(Bytes::from_static(&FFMPEG_PAT)).unwrap();
        let pat = Pat::from_section(&s).unwrap();
        assert_eq!(pat.transport_stream_id, 1);
        assert_eq!(pat.version, 0);
        assert_eq!(
            pat.programs,
            vec![PatEntry {
                program_number: 1,
                pid: Pid::new(0x1000)
            }]
        );
        let built = build_section(TABLE_ID_PAT, 1, 0, &[0x00, 0x01, 0xf0, 0x00]);
        assert_eq!(built, FFMPEG_PAT);
    }

    #[test]
    fn rejects_bad_crc_and_truncation() {
        let mut raw = FFMPEG_PAT;
        raw[9] ^= 1;
        assert_eq!(
            Section::parse(Bytes::copy_from_slice(&raw)),
            Err(PsiError::BadCrc)
        );
        for n in 0..FFMPEG_PAT.len() {
            assert!(Section::parse(Bytes::copy_from_slice(&FFMPEG_PAT[..n])).is_err());
        }
    }

    fn opus_pmt() -> Vec<u8> {
        let mut body = vec![0xe1, 0x00, 0xf0, 0x00]; // PCR PID 0x100, no program info
        body.extend_from_slice(&[0x1b, 0xe1, 0x00, 0xf0, 0x00]);
        body.extend_from_slice(&[0x06, 0xe1, 0x01, 0xf0, 0x0a]);
        body.extend_from_slice(&[0x05, 0x04, b'O', b'p', b'u', b's']);
        body.extend_from_slice(&[0x7f, 0x02, 0x80, 0x02]);
        build_section(TABLE_ID_PMT, 1, 3, &body)
    }

    #[test]
    fn parses_pmt_with_opus() {
        let s = Section::parse(Bytes::from(opus_pmt())).unwrap();
        let pmt = Pmt::from_section(&s).unwrap();
        assert_eq!(pmt.program_number, 1);
        assert_eq!(pmt.version, 3);
        assert_eq!(pmt.pcr_pid, Pid::new(0x100));
        assert_eq!(pmt.streams.len(), 2);
        assert_eq!(pmt.streams[0].codec(), EsCodec::H264);
        assert_eq!(pmt.streams[1].pid, Pid::new(0x101));
        assert_eq!(
            pmt.streams[1].codec(),
            EsCodec::Opus {
                channel_config: Some(2)
            }
        );
    }

    #[test]
    fn rejects_descriptor_overrun() {
        let mut body = vec![0xe1, 0x00, 0xf0, 0x00];
        body.extend_from_slice(&[0x06, 0xe1, 0x01, 0xf0, 0x03, 0x05, 0x04, b'O']);
        let s = Section::parse(Bytes::from(build_section(TABLE_ID_PMT, 1, 0, &body))).unwrap();
        assert_eq!(Pmt::from_section(&s), Err(PsiError::FieldOverrun));
    }

    #[test]
    fn assembles_sections_across_payloads() {
        let sec = opus_pmt();
        let mut out = vec![];
        let mut a = SectionAssembler::new();
        // Pointer 2 skips the tail of a section we never saw the start of.
        let mut first = vec![2, 0xaa, 0xbb];
        first.extend_from_slice(&sec[..10]);
        a.push(true, Bytes::from(first), &mut out);
        assert!(out.is_empty());
        a.push(false, Bytes::copy_from_slice(&sec[10..11]), &mut out);
        let mut last = sec[11..].to_vec();
        last.extend_from_slice(&[0xff; 20]);
        a.push(false, Bytes::from(last), &mut out);
        assert_eq!(out, vec![Ok(Bytes::from(sec.clone()))]);

        // Two sections in one payload, the second a zero-copy slice.
        out.clear();
        let mut both = vec![0];
        both.extend_from_slice(&FFMPEG_PAT);
        both.extend_from_slice(&FFMPEG_PAT);
        both.push(0xff);
        let both = Bytes::from(both);
        a.push(true, both.clone(), &mut out);
        assert_eq!(out.len(), 2);
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.as_ptr(), both[17..].as_ptr());
    }

    #[test]
    fn assembler_reports_errors() {
        let mut out = vec![];
        let mut a = SectionAssembler::new();
        a.push(true, Bytes::from_static(&[5, 1, 2]), &mut out);
        assert_eq!(out, vec![Err(PsiError::PointerOverrun(5))]);
        out.clear();
        a.push(true, Bytes::from_static(&[0, 0x02, 0xbf, 0xff]), &mut out);
        assert_eq!(out, vec![Err(PsiError::SectionTooLong(3 + 0xfff))]);
        out.clear();
        a.push(
            true,
            Bytes::copy_from_slice(&[&[0u8][..], &FFMPEG_PAT[..8]].concat()),
            &mut out,
        );
        a.push(true, Bytes::from_static(&[0, 0xff]), &mut out);
        assert_eq!(out, vec![Err(PsiError::Truncated)]);
    }
}
