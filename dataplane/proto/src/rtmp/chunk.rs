//! RTMP chunk streams: decoding chunks into messages and encoding messages into chunks.
//!
//! Spec: RTMP 1.0 section 5.3 (chunking): basic header (5.3.1.1, chunk stream ids 2..65599 in
//! 1, 2 or 3 bytes), message header formats 0-3 (5.3.1.2), extended timestamp (5.3.1.3), and
//! the protocol control messages the chunk layer itself obeys: Set Chunk Size (5.4.1) and
//! Abort (5.4.2).
//!
//! Choices where the spec is silent or loose, following ffmpeg and nginx-rtmp:
//! - A format 3 chunk carries the 4-byte extended timestamp whenever the last format 0/1/2
//!   header of its chunk stream did (ffmpeg and librtmp write it on continuation chunks).
//! - A format 3 chunk that starts a new message advances the timestamp by the last delta; after
//!   a format 0 header that delta is 0.
//! - A format 0/1/2 header on a chunk stream whose message is incomplete is a protocol error.
//!
//! Zero copy: the decoder queues the `Bytes` it is given. A message that arrives in a single
//! chunk inside a single input buffer is handed out as a slice of that buffer. A message split
//! over several chunks (or over two input buffers) is copied into one reassembly buffer: the
//! copy the chunk framing forces, since the chunk headers sit inside the message bytes.
//! Payload bytes are consumed as they arrive, so after [`ChunkDecoder::poll_message`] returns
//! `Ok(None)` the decoder holds at most one incomplete chunk header (< 18 bytes) of input plus
//! the reassembly buffers, which [`ChunkLimits`] caps.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Chunk size both sides use until a Set Chunk Size message says otherwise (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Largest chunk size accepted from a peer. The protocol allows up to 0x7FFFFFFF; the cap
/// guards against a peer announcing a size that lets one chunk pin huge buffers. 16 MiB is
/// above the largest message length (24-bit) so it never limits a real encoder.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Largest message accepted (the wire allows 16 MiB - 1). Guards the reassembly buffer of one
/// chunk stream; an 8 MiB cap still fits a 4K intra frame at a high bitrate.
pub const MAX_MESSAGE_LEN: u32 = 8 * 1024 * 1024;

/// Most chunk streams whose message is partially assembled at once. Encoders use 3-6 chunk
/// streams; the cap guards against a peer opening thousands of half-sent messages.
pub const MAX_PARTIAL_STREAMS: usize = 16;

/// Most distinct chunk stream ids a peer may use on one connection. Guards the per-stream
/// header state map (each id costs a map entry).
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Most bytes held in reassembly buffers across all chunk streams of one connection. Guards
/// total memory per connection against many large partial messages.
pub const MAX_REASSEMBLY_BYTES: usize = 32 * 1024 * 1024;

/// Largest chunk header: 3-byte basic header, 11-byte message header, 4-byte extended
/// timestamp.
const MAX_HEADER_LEN: usize = 18;

/// Initial reassembly allocation; the buffer grows with the bytes that actually arrive, never
/// by the declared message length alone.
const INITIAL_REASSEMBLY_CAPACITY: usize = 64 * 1024;

/// Type id of Set Chunk Size (spec 5.4.1).
const SET_CHUNK_SIZE: u8 = 1;
/// Type id of Abort (spec 5.4.2).
const ABORT: u8 = 2;

/// A chunk stream id (spec 5.3.1.1): 2..=65599; 2 is reserved for protocol control messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkStreamId(u32);

impl ChunkStreamId {
    /// Chunk stream of protocol control and user control messages.
    pub const CONTROL: ChunkStreamId = ChunkStreamId(2);
    /// Lowest id.
    pub const MIN: u32 = 2;
    /// Highest id expressible in a 3-byte basic header.
    pub const MAX: u32 = 65599;

    /// The id, if within 2..=65599.
    pub const fn new(id: u32) -> Option<Self> {
        if id >= Self::MIN && id <= Self::MAX {
            Some(Self(id))
        } else {
            None
        }
    }

    /// The numeric id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A message stream id (spec 5.3.1.2.1): 0 for the connection, then one per `createStream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageStreamId(pub u32);

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: ChunkStreamId,
    /// Timestamp in milliseconds (32-bit, wrapping).
    pub timestamp: u32,
    /// Message type id (see [`super::message::MessageType`]).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: MessageStreamId,
    /// The body: a slice of the input when it came in one chunk, else a reassembled buffer.
    pub payload: Bytes,
}

/// Resource caps of a [`ChunkDecoder`]; the defaults are the module's constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// See [`MAX_CHUNK_SIZE`].
    pub max_chunk_size: u32,
    /// See [`MAX_MESSAGE_LEN`].
    pub max_message_len: u32,
    /// See [`MAX_PARTIAL_STREAMS`].
    pub max_partial_streams: usize,
    /// See [`MAX_CHUNK_STREAMS`].
    pub max_chunk_streams: usize,
    /// See [`MAX_REASSEMBLY_BYTES`].
    pub max_reassembly_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_chunk_size: MAX_CHUNK_SIZE,
            max_message_len: MAX_MESSAGE_LEN,
            max_partial_streams: MAX_PARTIAL_STREAMS,
            max_chunk_streams: MAX_CHUNK_STREAMS,
            max_reassembly_bytes: MAX_REASSEMBLY_BYTES,
        }
    }
}

/// Why the chunk stream was refused. `Limit*` variants are the peer exceeding a cap; the
/// others are protocol violations by the peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// A format 1, 2 or 3 chunk on a chunk stream that never had a format 0 header.
    #[error("chunk stream {0} continues a message header it never sent")]
    NoPreviousHeader(u32),
    /// A new message header on a chunk stream whose previous message is incomplete.
    #[error("new message header on chunk stream {0} before its message completed")]
    InterruptedMessage(u32),
    /// Set Chunk Size of 0, or with a malformed body.
    #[error("invalid Set Chunk Size message")]
    InvalidChunkSize,
    /// Abort message with a malformed body.
    #[error("invalid Abort message")]
    InvalidAbort,
    /// Chunk size above the configured cap.
    #[error("chunk size {0} above the limit")]
    LimitChunkSize(u32),
    /// Message length above the configured cap.
    #[error("message length {0} above the limit")]
    LimitMessageLen(u32),
    /// Too many chunk streams with partial messages.
    #[error("too many partially assembled chunk streams")]
    LimitPartialStreams,
    /// Too many chunk stream ids in use.
    #[error("too many chunk streams")]
    LimitChunkStreams,
    /// Too many bytes held in reassembly.
    #[error("reassembly buffers over the limit")]
    LimitReassemblyBytes,
}

#[derive(Debug, Default)]
struct StreamState {
    csid: u32,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last format 0/1/2 header used the extended timestamp field.
    extended: bool,
    /// The incomplete message; its length is the bytes received so far.
    partial: Option<BytesMut>,
}

/// Chunk stream decoder: push input with [`push`](Self::push), then call
/// [`poll_message`](Self::poll_message) until it returns `Ok(None)`.
///
/// Set Chunk Size and Abort messages take effect inside the decoder as soon as they are
/// decoded (they are still returned, so the caller sees them).
#[derive(Debug)]
pub struct ChunkDecoder {
    input: VecDeque<Bytes>,
    chunk_size: u32,
    /// Header state per chunk stream, looked up by a linear scan: publishers use a handful of
    /// chunk streams (at most [`ChunkLimits::max_chunk_streams`]), where a scan beats hashing.
    streams: Vec<StreamState>,
    /// The chunk whose payload is being read: chunk stream and payload bytes left.
    current: Option<(u32, u32)>,
    held: usize,
    partials: usize,
    limits: ChunkLimits,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

struct Header {
    len: usize,
    fmt: u8,
    csid: u32,
    /// Timestamp or delta field, extended value substituted (formats 0-2).
    ts_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

impl ChunkDecoder {
    /// A decoder with chunk size 128 and the given caps.
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            input: VecDeque::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            current: None,
            held: 0,
            partials: 0,
            limits,
        }
    }

    fn stream(&self, csid: u32) -> Option<&StreamState> {
        self.streams.iter().find(|st| st.csid == csid)
    }

    fn stream_mut(&mut self, csid: u32) -> Option<&mut StreamState> {
        self.streams.iter_mut().find(|st| st.csid == csid)
    }

    /// Queues bytes received from the peer (any split).
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.input.push_back(data);
        }
    }

    /// The chunk size the peer is using.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes held in reassembly buffers.
    pub fn reassembly_bytes(&self) -> usize {
        self.held
    }

    /// Input bytes queued but not yet decoded.
    pub fn queued_input(&self) -> usize {
        self.input.iter().map(Bytes::len).sum()
    }

    /// The next complete message, `Ok(None)` when more input is needed.
    pub fn poll_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            if let Some((csid, remaining)) = self.current {
                if self.input.is_empty() {
                    return Ok(None);
                }
                if let Some(msg) = self.read_payload(csid, remaining)? {
                    self.apply_control(&msg)?;
                    return Ok(Some(msg));
                }
                continue;
            }
            // A header that lies whole in the front buffer is parsed in place; only one that
            // may straddle two input buffers goes through the peek copy.
            let header = match self.input.front() {
                Some(front) if front.len() >= MAX_HEADER_LEN => self.parse_header(front)?,
                _ => {
                    let mut peek = [0u8; MAX_HEADER_LEN];
                    let n = self.peek(&mut peek);
                    self.parse_header(peek.get(..n).unwrap_or_default())?
                }
            };
            let Some(header) = header else {
                return Ok(None);
            };
            self.consume(header.len);
            if let Some(msg) = self.start_chunk(header)? {
                self.apply_control(&msg)?;
                return Ok(Some(msg));
            }
        }
    }

    fn peek(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut n = 0;
        for b in &self.input {
            let take = (MAX_HEADER_LEN - n).min(b.len());
            out[n..n + take].copy_from_slice(&b[..take]);
            n += take;
            if n == MAX_HEADER_LEN {
                break;
            }
        }
        n
    }

    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.input.front_mut() else {
                return;
            };
            let take = n.min(front.len());
            front.advance(take);
            n -= take;
            if front.is_empty() {
                self.input.pop_front();
            }
        }
    }

    /// Parses a header at the start of `buf` (bytes past the header are ignored); `Ok(None)`
    /// if it needs more bytes.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, ChunkError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let prev = self.stream(csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        let mh_len = [11usize, 7, 3, 0][usize::from(fmt)];
        let Some(mh) = buf.get(pos..pos + mh_len) else {
            return Ok(None);
        };
        pos += mh_len;
        let u24 = |s: &[u8]| u32::from(s[0]) << 16 | u32::from(s[1]) << 8 | u32::from(s[2]);
        let (mut ts_field, mut length, mut type_id, mut stream_id) = (0, 0, 0, 0);
        if let Some(p) = prev {
            (length, type_id, stream_id) = (p.length, p.type_id, p.stream_id);
        }
        if fmt <= 2 {
            ts_field = u24(&mh[0..3]);
        }
        if fmt <= 1 {
            length = u24(&mh[3..6]);
            type_id = mh[6];
        }
        if fmt == 0 {
            stream_id = u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]);
        }
        let extended = if fmt <= 2 {
            ts_field == 0xFF_FFFF
        } else {
            prev.is_some_and(|p| p.extended)
        };
        if extended {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            if fmt <= 2 {
                ts_field = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            }
        }
        Ok(Some(Header {
            len: pos,
            fmt,
            csid,
            ts_field,
            extended,
            length,
            type_id,
            stream_id,
        }))
    }

    /// Applies a parsed header; returns a message if it is complete already (length 0).
    fn start_chunk(&mut self, h: Header) -> Result<Option<Message>, ChunkError> {
        let idx = match self.streams.iter().position(|st| st.csid == h.csid) {
            Some(i) => i,
            None => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::LimitChunkStreams);
                }
                self.streams.push(StreamState {
                    csid: h.csid,
                    ..StreamState::default()
                });
                self.streams.len() - 1
            }
        };
        let Some(st) = self.streams.get_mut(idx) else {
            return Ok(None);
        };
        let continuing = st.partial.is_some();
        if continuing && h.fmt != 3 {
            return Err(ChunkError::InterruptedMessage(h.csid));
        }
        if !continuing {
            if h.length > self.limits.max_message_len {
                return Err(ChunkError::LimitMessageLen(h.length));
            }
            match h.fmt {
                0 => {
                    st.timestamp = h.ts_field;
                    st.delta = 0;
                }
                1 | 2 => {
                    st.delta = h.ts_field;
                    st.timestamp = st.timestamp.wrapping_add(h.ts_field);
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            if h.fmt <= 2 {
                st.extended = h.extended;
            }
            st.length = h.length;
            st.type_id = h.type_id;
            st.stream_id = h.stream_id;
        }
        let received = st.partial.as_ref().map_or(0, |p| p.len());
        let left = usize::try_from(st.length)
            .unwrap_or(usize::MAX)
            .saturating_sub(received);
        let in_chunk = left.min(self.chunk_size as usize);
        if in_chunk == 0 {
            // A zero-length message is complete with its header.
            let csid = ChunkStreamId(h.csid);
            return Ok(Some(Message {
                csid,
                timestamp: st.timestamp,
                type_id: st.type_id,
                stream_id: MessageStreamId(st.stream_id),
                payload: Bytes::new(),
            }));
        }
        self.current = Some((h.csid, in_chunk as u32));
        Ok(None)
    }

    /// Reads the current chunk's payload from the front input buffer; returns a message when
    /// one completes.
    ///
    /// Fast path: while the chunk just read leaves its message incomplete and the same buffer
    /// holds the next chunk of the same stream whole behind a one-byte format 3 header (the
    /// steady state of a large message at a small chunk size), that chunk is read here
    /// directly, skipping the general header parse. It makes exactly the decisions the
    /// general path would (`start_chunk` on a continuing format 3 header changes no state).
    fn read_payload(&mut self, csid: u32, remaining: u32) -> Result<Option<Message>, ChunkError> {
        let chunk_size = self.chunk_size as usize;
        let Some(front) = self.input.front_mut() else {
            return Ok(None);
        };
        let Some(st) = self.streams.iter_mut().find(|st| st.csid == csid) else {
            // Unreachable: `current` is only set for a stream in the map.
            self.current = None;
            return Ok(None);
        };
        let mut remaining = remaining as usize;
        let mut take = remaining.min(front.len());
        let message = |st: &StreamState, payload: Bytes| Message {
            csid: ChunkStreamId(csid),
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: MessageStreamId(st.stream_id),
            payload,
        };
        if st.partial.is_none() && remaining == st.length as usize && take == remaining {
            // Whole message in one chunk in one input buffer: zero copy.
            self.current = None;
            let msg = message(st, front.split_to(take));
            if front.is_empty() {
                self.input.pop_front();
            }
            return Ok(Some(msg));
        }
        if st.partial.is_none() {
            if self.partials >= self.limits.max_partial_streams {
                return Err(ChunkError::LimitPartialStreams);
            }
            self.partials += 1;
            st.partial = Some(BytesMut::with_capacity(
                (st.length as usize).min(INITIAL_REASSEMBLY_CAPACITY),
            ));
        }
        let Some(buf) = st.partial.as_mut() else {
            return Ok(None);
        };
        // The one-byte basic header of a format 3 chunk on this stream, when it has one.
        let fmt3 = u8::try_from(csid)
            .ok()
            .filter(|&c| c < 64 && !st.extended)
            .map(|c| 0xC0 | c);
        loop {
            if self.held.saturating_add(take) > self.limits.max_reassembly_bytes {
                return Err(ChunkError::LimitReassemblyBytes);
            }
            // The copy chunk framing forces: this message spans chunks or input buffers.
            buf.extend_from_slice(front.get(..take).unwrap_or_default());
            front.advance(take);
            self.held += take;
            remaining -= take;
            if remaining > 0 {
                // The input buffer ran out inside the chunk.
                self.current = Some((csid, remaining as u32));
                self.input.pop_front();
                return Ok(None);
            }
            let msg_left = (st.length as usize).saturating_sub(buf.len());
            if msg_left == 0 {
                break;
            }
            let next = msg_left.min(chunk_size);
            if fmt3.is_some() && front.first().copied() == fmt3 && front.len() > next {
                front.advance(1);
                take = next;
                remaining = next;
                continue;
            }
            self.current = None;
            if front.is_empty() {
                self.input.pop_front();
            }
            return Ok(None);
        }
        self.current = None;
        if front.is_empty() {
            self.input.pop_front();
        }
        let payload = st.partial.take().unwrap_or_default().freeze();
        self.held -= payload.len();
        self.partials -= 1;
        Ok(Some(message(st, payload)))
    }

    /// Set Chunk Size and Abort act on the decoder itself.
    fn apply_control(&mut self, msg: &Message) -> Result<(), ChunkError> {
        match msg.type_id {
            SET_CHUNK_SIZE => {
                let b: [u8; 4] = msg
                    .payload
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(ChunkError::InvalidChunkSize)?;
                // The top bit must be 0 (spec 5.4.1); mask it like ffmpeg rather than refuse.
                let size = u32::from_be_bytes(b) & 0x7FFF_FFFF;
                if size == 0 {
                    return Err(ChunkError::InvalidChunkSize);
                }
                if size > self.limits.max_chunk_size {
                    return Err(ChunkError::LimitChunkSize(size));
                }
                self.chunk_size = size;
            }
            ABORT => {
                let b: [u8; 4] = msg
                    .payload
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(ChunkError::InvalidAbort)?;
                let csid = u32::from_be_bytes(b);
                if let Some(p) = self.stream_mut(csid).and_then(|st| st.partial.take()) {
                    self.held -= p.len();
                    self.partials -= 1;
                    if self.current.is_some_and(|(c, _)| c == csid) {
                        self.current = None;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct LastSent {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// The value written in the last timestamp/delta field (repeated in format 3 headers).
    ts_field: u32,
    /// Whether a format 1 or 2 header set the delta. Decoders disagree on the delta a format 3
    /// header implies right after a format 0 one (nginx-rtmp and this decoder: 0; ffmpeg: the
    /// absolute timestamp), so the encoder only relies on a delta it sent explicitly.
    explicit_delta: bool,
}

/// Chunk stream encoder: picks the smallest header format that every common decoder
/// reconstructs identically (format 3 for a new message only after an explicit delta).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    last: HashMap<u32, LastSent>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder with chunk size 128.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            last: HashMap::new(),
        }
    }

    /// Uses `size` for the following messages (after sending Set Chunk Size to the peer).
    /// Clamped to 1..=[`MAX_CHUNK_SIZE`].
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// The chunk size in use.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `payload` as one message to `out`, split into chunks. The payload is copied
    /// into `out` (interleaving chunk headers forces it). Payloads longer than the 24-bit
    /// length field allows are truncated to 16 MiB - 1 bytes.
    pub fn encode(
        &mut self,
        csid: ChunkStreamId,
        timestamp: u32,
        type_id: u8,
        stream_id: MessageStreamId,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        let payload = payload.get(..0xFF_FFFF).unwrap_or(payload);
        let length = payload.len() as u32;
        let id = csid.get();
        let prev = self.last.get(&id).copied();
        let delta = prev.map(|p| timestamp.wrapping_sub(p.timestamp));
        let fmt = match (prev, delta) {
            (Some(p), Some(d)) if p.stream_id == stream_id.0 && d < 0x8000_0000 => {
                if p.length != length || p.type_id != type_id {
                    1
                } else if p.delta != d || !p.explicit_delta {
                    2
                } else {
                    3
                }
            }
            _ => 0,
        };
        let (ts_field, extended) = match fmt {
            0 => (timestamp, timestamp >= 0xFF_FFFF),
            1 | 2 => {
                let d = delta.unwrap_or(0);
                (d, d >= 0xFF_FFFF)
            }
            _ => prev.map_or((0, false), |p| (p.ts_field, p.extended)),
        };
        let state = LastSent {
            timestamp,
            delta: if fmt == 0 { 0 } else { delta.unwrap_or(0) },
            length,
            type_id,
            stream_id: stream_id.0,
            extended,
            ts_field,
            explicit_delta: fmt != 0,
        };
        self.last.insert(id, state);

        let chunk_size = self.chunk_size as usize;
        out.reserve(payload.len() + MAX_HEADER_LEN + payload.len() / chunk_size * 7);
        write_basic_header(out, fmt, id);
        let field = if extended { 0xFF_FFFF } else { ts_field };
        if fmt <= 2 {
            out.put_uint(u64::from(field), 3);
        }
        if fmt <= 1 {
            out.put_uint(u64::from(length), 3);
            out.put_u8(type_id);
        }
        if fmt == 0 {
            out.put_u32_le(stream_id.0);
        }
        if extended {
            out.put_u32(ts_field);
        }
        let mut chunks = payload.chunks(chunk_size);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            write_basic_header(out, 3, id);
            if extended {
                out.put_u32(ts_field);
            }
            out.put_slice(chunk);
        }
    }
}

fn write_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let v = csid - 64;
            out.put_u8(fmt | 1);
            out.put_u8(v as u8);
            out.put_u8((v >> 8) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(dec: &mut ChunkDecoder) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = dec.poll_message().unwrap() {
            out.push(m);
        }
        out
    }

    /// Messages at the default chunk size on one-byte, extended-timestamp and two-byte chunk
    /// streams, interleaved, as one buffer.
    fn fast_path_wire() -> (Bytes, Vec<(u32, u32, Vec<u8>)>) {
        let mut enc = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        let mut expect = vec![];
        let specs: [(u32, u32, usize); 6] = [
            (6, 0, 1000),
            (4, 5, 200),
            (6, 0x0100_0000, 700),
            (70, 40, 400),
            (6, 0x0100_0021, 129),
            (6, 0x0100_0042, 128),
        ];
        for (i, (csid, ts, len)) in specs.into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            let id = ChunkStreamId::new(csid).unwrap();
            enc.encode(id, ts, 9, MessageStreamId(1), &payload, &mut wire);
            expect.push((csid, ts, payload));
        }
        (wire.freeze(), expect)
    }

    #[test]
    fn format3_fast_path_matches_byte_by_byte_decoding() {
        let (wire, expect) = fast_path_wire();
        let mut whole = ChunkDecoder::default();
        whole.push(wire.clone());
        let fast = decode_all(&mut whole);
        let mut slow_dec = ChunkDecoder::default();
        let mut slow = vec![];
        for i in 0..wire.len() {
            slow_dec.push(wire.slice(i..i + 1));
            slow.extend(decode_all(&mut slow_dec));
        }
        assert_eq!(fast, slow);
        let got: Vec<(u32, u32, Vec<u8>)> = fast
            .iter()
            .map(|m| (m.csid.get(), m.timestamp, m.payload.to_vec()))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(whole.reassembly_bytes(), 0);
        assert_eq!(whole.queued_input(), 0);
    }

    #[test]
    fn format3_fast_path_enforces_the_reassembly_cap() {
        let mut enc = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        let id = ChunkStreamId::new(6).unwrap();
        enc.encode(id, 0, 9, MessageStreamId(1), &[1; 5000], &mut wire);
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_reassembly_bytes: 1000,
            ..ChunkLimits::default()
        });
        dec.push(wire.freeze());
        assert_eq!(dec.poll_message(), Err(ChunkError::LimitReassemblyBytes));
    }

    #[test]
    fn spec_example_audio_fmt0_fmt2_fmt3() {
        // RTMP 1.0 section 5.3.2.1: four audio messages on csid 3, stream 12345, 32 bytes,
        // timestamps 1000, 1020, 1040, 1060: format 0, 2, 3, 3.
        let mut wire = vec![
            0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0, 0,
        ];
        wire.extend_from_slice(&[1; 32]);
        wire.extend_from_slice(&[0x83, 0x00, 0x00, 0x14]);
        wire.extend_from_slice(&[2; 32]);
        wire.push(0xC3);
        wire.extend_from_slice(&[3; 32]);
        wire.push(0xC3);
        wire.extend_from_slice(&[4; 32]);
        // Emit: the encoder picks the same header formats as the spec example.
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for (i, ts) in [1000, 1020, 1040, 1060].into_iter().enumerate() {
            let payload = [i as u8 + 1; 32];
            enc.encode(
                ChunkStreamId(3),
                ts,
                8,
                MessageStreamId(12345),
                &payload,
                &mut out,
            );
        }
        assert_eq!(&out[..], &wire[..]);

        let mut dec = ChunkDecoder::default();
        dec.push(Bytes::from(wire));
        let msgs = decode_all(&mut dec);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [1000, 1020, 1040, 1060]);
        assert!(msgs.iter().all(|m| m.stream_id == MessageStreamId(12345)
            && m.type_id == 8
            && m.payload.len() == 32));
        assert_eq!(msgs[3].payload[0], 4);
    }

    #[test]
    fn spec_example_video_split_in_chunks() {
        // Section 5.3.2.2: a 307-byte video message at chunk size 128: format 0 + 2x format 3.
        let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(
            ChunkStreamId::new(4).unwrap(),
            1000,
            9,
            MessageStreamId(12346),
            &payload,
            &mut out,
        );
        assert_eq!(out.len(), 12 + 307 + 2);
        assert_eq!(out[12 + 128], 0xC4);
        let mut dec = ChunkDecoder::default();
        dec.push(out.freeze());
        let msgs = decode_all(&mut dec);
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0].payload[..], &payload[..]);
        assert_eq!(msgs[0].timestamp, 1000);
    }

    #[test]
    fn single_chunk_message_is_zero_copy() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(
            ChunkStreamId::CONTROL,
            0,
            20,
            MessageStreamId(0),
            b"hello",
            &mut out,
        );
        let input = out.freeze();
        let base = input.as_ptr() as usize;
        let mut dec = ChunkDecoder::default();
        dec.push(input.clone());
        let m = dec.poll_message().unwrap().unwrap();
        assert_eq!(m.payload.as_ptr() as usize, base + 12);
    }

    #[test]
    fn basic_header_sizes_and_extended_timestamps() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        let ids = [2u32, 63, 64, 319, 320, 65599];
        for (i, &id) in ids.iter().enumerate() {
            let ts = 0xFF_FFF0 + i as u32 * 0x10; // crosses the extended threshold
            enc.encode(
                ChunkStreamId::new(id).unwrap(),
                ts,
                9,
                MessageStreamId(1),
                &vec![i as u8; 300],
                &mut out,
            );
            // Same csid again with a large delta: format 1/2 with an extended delta.
            enc.encode(
                ChunkStreamId::new(id).unwrap(),
                ts.wrapping_add(0x100_0000),
                9,
                MessageStreamId(1),
                &vec![i as u8; 300],
                &mut out,
            );
        }
        let mut dec = ChunkDecoder::default();
        dec.push(out.freeze());
        let msgs = decode_all(&mut dec);
        assert_eq!(msgs.len(), 12);
        for (i, &id) in ids.iter().enumerate() {
            let ts = 0xFF_FFF0 + i as u32 * 0x10;
            assert_eq!(msgs[2 * i].csid.get(), id);
            assert_eq!(msgs[2 * i].timestamp, ts);
            assert_eq!(msgs[2 * i + 1].timestamp, ts.wrapping_add(0x100_0000));
            assert_eq!(msgs[2 * i + 1].payload.len(), 300);
        }
    }

    #[test]
    fn set_chunk_size_and_abort_apply() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(
            ChunkStreamId::CONTROL,
            0,
            1,
            MessageStreamId(0),
            &4096u32.to_be_bytes(),
            &mut out,
        );
        enc.set_chunk_size(4096);
        enc.encode(
            ChunkStreamId::new(6).unwrap(),
            5,
            9,
            MessageStreamId(1),
            &[7; 3000],
            &mut out,
        );
        let mut dec = ChunkDecoder::default();
        dec.push(out.freeze());
        let msgs = decode_all(&mut dec);
        assert_eq!(dec.chunk_size(), 4096);
        assert_eq!(msgs[1].payload.len(), 3000);

        // Abort drops a partial message.
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(
            ChunkStreamId::new(6).unwrap(),
            5,
            9,
            MessageStreamId(1),
            &[7; 200],
            &mut out,
        );
        out.truncate(12 + 128);
        enc.encode(
            ChunkStreamId::CONTROL,
            0,
            2,
            MessageStreamId(0),
            &6u32.to_be_bytes(),
            &mut out,
        );
        let mut dec = ChunkDecoder::default();
        dec.push(out.freeze());
        let msgs = decode_all(&mut dec);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].type_id, 2);
        assert_eq!(dec.reassembly_bytes(), 0);
    }

    #[test]
    fn rejects_bad_streams() {
        let mut dec = ChunkDecoder::default();
        dec.push(Bytes::from_static(&[0x43, 0, 0, 0]));
        assert_eq!(dec.poll_message(), Err(ChunkError::NoPreviousHeader(3)));

        let mut dec = ChunkDecoder::default();
        dec.push(Bytes::from_static(&[
            0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ]));
        assert_eq!(dec.poll_message(), Err(ChunkError::InvalidChunkSize));

        let mut dec = ChunkDecoder::default();
        dec.push(Bytes::from_static(&[
            0x03, 0, 0, 0, 0x90, 0, 0, 9, 1, 0, 0, 0,
        ]));
        assert_eq!(
            dec.poll_message(),
            Err(ChunkError::LimitMessageLen(0x90_0000))
        );

        // Interrupting a partial message with a new format 0 header.
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(
            ChunkStreamId::new(3).unwrap(),
            0,
            9,
            MessageStreamId(1),
            &[0; 200],
            &mut out,
        );
        out.truncate(12 + 128);
        out.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
        let mut dec = ChunkDecoder::default();
        dec.push(out.freeze());
        assert_eq!(dec.poll_message(), Err(ChunkError::InterruptedMessage(3)));
    }

    #[test]
    fn partial_stream_cap() {
        let limits = ChunkLimits {
            max_partial_streams: 2,
            ..ChunkLimits::default()
        };
        let mut wire = BytesMut::new();
        let mut enc = ChunkEncoder::new();
        for id in 3..6 {
            let mut one = BytesMut::new();
            enc.encode(
                ChunkStreamId::new(id).unwrap(),
                0,
                9,
                MessageStreamId(1),
                &[0; 200],
                &mut one,
            );
            wire.extend_from_slice(&one[..12 + 128]);
        }
        let mut dec = ChunkDecoder::new(limits);
        dec.push(wire.freeze());
        assert_eq!(dec.poll_message(), Err(ChunkError::LimitPartialStreams));
    }

    /// (csid, timestamp step, type, stream, payload length).
    type MsgSpec = (u32, u32, u8, u32, usize);

    /// Messages and the chunk size to send them with.
    fn arb_messages() -> impl Strategy<Value = (Vec<MsgSpec>, u32)> {
        let msg = (
            prop_oneof![
                Just(3u32),
                Just(4),
                Just(63),
                Just(64),
                Just(320),
                Just(65599)
            ],
            prop_oneof![0u32..100, Just(0xFF_FFFF), any::<u32>()],
            prop_oneof![Just(8u8), Just(9), Just(20)],
            0u32..3,
            0usize..700,
        );
        (
            prop::collection::vec(msg, 1..24),
            prop_oneof![Just(128u32), 1u32..300, Just(4096)],
        )
    }

    proptest! {
        /// Encode arbitrary messages (timestamps wrap freely), split the bytes at arbitrary
        /// points, decode: the same messages come out, whatever the split.
        #[test]
        fn round_trip_any_split((msgs, chunk_size) in arb_messages(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let mut enc = ChunkEncoder::new();
            let mut wire = BytesMut::new();
            enc.encode(ChunkStreamId::CONTROL, 0, 1, MessageStreamId(0), &chunk_size.to_be_bytes(), &mut wire);
            enc.set_chunk_size(chunk_size);
            let mut ts = 0u32;
            let mut expected = Vec::new();
            for (i, &(csid, step, type_id, stream, len)) in msgs.iter().enumerate() {
                ts = ts.wrapping_add(step);
                let payload: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                let csid = ChunkStreamId::new(csid).unwrap();
                enc.encode(csid, ts, type_id, MessageStreamId(stream), &payload, &mut wire);
                expected.push((csid, ts, type_id, stream, payload));
            }
            let wire = wire.freeze();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            let mut dec = ChunkDecoder::default();
            let mut got = Vec::new();
            for w in points.windows(2) {
                dec.push(wire.slice(w[0]..w[1]));
                while let Some(m) = dec.poll_message().unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got.len(), expected.len() + 1);
            for (m, e) in got[1..].iter().zip(&expected) {
                prop_assert_eq!((m.csid, m.timestamp, m.type_id, m.stream_id.0, &m.payload[..]), (e.0, e.1, e.2, e.3, &e.4[..]));
            }
            prop_assert_eq!(dec.reassembly_bytes(), 0);
            prop_assert_eq!(dec.queued_input(), 0);
        }
    }

    #[test]
    fn truncated_header_waits() {
        let mut dec = ChunkDecoder::default();
        for b in [0x03u8, 0, 0, 1, 0, 0, 1, 8, 1, 0, 0] {
            dec.push(Bytes::copy_from_slice(&[b]));
            assert_eq!(dec.poll_message(), Ok(None));
        }
        dec.push(Bytes::from_static(&[0, 0xAA]));
        let m = dec.poll_message().unwrap().unwrap();
        assert_eq!(&m.payload[..], &[0xAA]);
        assert_eq!(dec.queued_input(), 0);
    }
}
