//! `sluice-transcode`: media coding work that must never run on a glommio reactor thread.
//!
//! Today: AAC (ISO/IEC 14496-3, AudioSpecificConfig §1.6.2.1) to Opus (RFC 6716) at 48 kHz,
//! so WebRTC viewers hear RTMP publishers (browsers have no AAC in WebRTC). Decoding uses
//! Symphonia's pure-Rust AAC-LC decoder, encoding uses libopus.
//!
//! Threads and queues: a [`Pool`] runs a fixed number of worker threads, each with a bounded
//! job queue. A stream opens an [`AacToOpus`] handle, sharded to one worker (which keeps the
//! stream's decoder and encoder state); the reactor hands it frames with
//! [`AacToOpus::push`], which never blocks: when the worker's queue is full the frame is
//! dropped and counted in [`Counters::dropped`], so a slow transcoder degrades its own audio
//! only. Encoded frames come back through a bounded per-stream queue the reactor drains with
//! [`AacToOpus::poll`].
//!
//! ```no_run
//! use sluice_transcode::{AacInput, Pool};
//! let pool = Pool::start(1, 256);
//! let asc = bytes::Bytes::from_static(&[0x11, 0x90]); // AAC-LC, 48 kHz, stereo
//! let t = pool.open(AacInput { specific_config: asc, sample_rate: 48_000, channels: 2 }).unwrap();
//! # let (pts, frame) = (0, bytes::Bytes::new());
//! t.push(pts, frame); // from the reactor: never blocks
//! while let Some(opus) = t.poll() { /* packetize opus.data at opus.pts */ }
//! ```

mod resample;
mod worker;

pub use resample::LinearResampler;
pub use worker::Transcoder;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use thiserror::Error;

/// Opus output sample rate (RFC 7587 §4.1: the RTP clock is always 48 kHz).
pub const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms Opus frame at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Encoded frames buffered per stream before the oldest are dropped: guards memory when the
/// reactor stops draining a stream (about one second of audio).
pub const MAX_PENDING_OUTPUT: usize = 50;
/// Largest AAC frame accepted (an AAC-LC frame is at most 768 bytes per channel, §4.5.3.2):
/// guards the decoder against oversized input.
pub const MAX_AAC_FRAME: usize = 6144;
/// Channels encoded at most (more are down-mixed to stereo).
pub const MAX_CHANNELS: u8 = 2;

/// What went wrong opening a transcoder.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TranscodeError {
    /// The AudioSpecificConfig or parameters are not something the decoder supports.
    #[error("unsupported audio input: {0}")]
    Unsupported(String),
    /// The worker pool is gone.
    #[error("transcoder pool stopped")]
    Stopped,
}

/// Pool-wide counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames dropped because a worker queue was full (the transcoder fell behind).
    pub dropped: AtomicU64,
    /// Frames the decoder rejected (corrupt or unsupported AAC).
    pub decode_errors: AtomicU64,
    /// Opus frames produced.
    pub encoded: AtomicU64,
    /// Encoded frames discarded because the stream did not drain its output.
    pub output_overflow: AtomicU64,
}

/// The AAC track to transcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacInput {
    /// AudioSpecificConfig bytes.
    pub specific_config: Bytes,
    /// Sampling rate from the container, in Hz.
    pub sample_rate: u32,
    /// Channels from the container.
    pub channels: u8,
}

/// One encoded Opus frame (20 ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusFrame {
    /// Presentation time in 90 kHz ticks (the media clock of `sluice_proto::media`).
    pub pts: i64,
    /// The Opus packet.
    pub data: Bytes,
}

pub(crate) enum Job {
    Open {
        id: u64,
        input: AacInput,
        out: Sender<OpusFrame>,
    },
    Frame {
        id: u64,
        pts: i64,
        data: Bytes,
    },
    Close {
        id: u64,
    },
}

/// Checks that a track can be transcoded (its AAC configuration is one the decoder takes),
/// without opening anything: a stream can say at once that it will offer Opus, and open the
/// transcoder only when a viewer wants it.
pub fn check_input(input: &AacInput) -> Result<(), TranscodeError> {
    worker::check_input(input)
}

/// The worker threads.
pub struct Pool {
    queues: Vec<Sender<Job>>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
}

impl Pool {
    /// Starts `workers` threads (at least one), each with a job queue of `queue` entries.
    pub fn start(workers: usize, queue: usize) -> Arc<Pool> {
        let counters = Arc::new(Counters::default());
        let queues = (0..workers.max(1))
            .map(|i| {
                let (tx, rx) = channel::bounded(queue.max(1));
                let c = counters.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("sluice-transcode-{i}"))
                    .spawn(move || worker::run(rx, c));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a transcoder thread");
                }
                tx
            })
            .collect();
        Arc::new(Pool {
            queues,
            counters,
            next_id: AtomicU64::new(0),
        })
    }

    /// Pool-wide counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Opens a transcoder for one AAC track. The configuration is checked here, on the
    /// caller's thread, so an unsupported track is refused at once.
    pub fn open(&self, input: AacInput) -> Result<AacToOpus, TranscodeError> {
        worker::check_input(&input)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shard = (id % self.queues.len() as u64) as usize;
        let queue = self
            .queues
            .get(shard)
            .ok_or(TranscodeError::Stopped)?
            .clone();
        let (out_tx, out_rx) = channel::bounded(MAX_PENDING_OUTPUT);
        // Opening waits for room: it happens once per track, never per frame.
        queue
            .send(Job::Open {
                id,
                input,
                out: out_tx,
            })
            .map_err(|_| TranscodeError::Stopped)?;
        Ok(AacToOpus {
            id,
            queue,
            out: out_rx,
            counters: self.counters.clone(),
        })
    }
}

/// A stream's AAC → Opus transcoder handle. Dropping it releases the worker's state.
pub struct AacToOpus {
    id: u64,
    queue: Sender<Job>,
    out: Receiver<OpusFrame>,
    counters: Arc<Counters>,
}

impl AacToOpus {
    /// Queues one AAC frame (pts in 90 kHz ticks). Never blocks; returns false when the
    /// frame was dropped (queue full, or the frame is larger than [`MAX_AAC_FRAME`]).
    pub fn push(&self, pts: i64, data: Bytes) -> bool {
        if data.len() > MAX_AAC_FRAME {
            self.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.queue.try_send(Job::Frame {
            id: self.id,
            pts,
            data,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The next encoded frame, if one is ready. Never blocks.
    pub fn poll(&self) -> Option<OpusFrame> {
        self.out.try_recv().ok()
    }
}

impl Drop for AacToOpus {
    fn drop(&mut self) {
        // If the queue is full the worker still notices: its output sender fails once this
        // handle's receiver is gone, and it drops the state then.
        let _ = self.queue.try_send(Job::Close { id: self.id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing found frames on which Symphonia's AAC decoder panics (index out of bounds in
    /// its ICS parser); the transcoder contains the panic, reports the frame as undecodable
    /// and keeps working.
    #[test]
    fn decoder_panic_is_contained() {
        const INPUT: &[u8] = &[
            17, 144, 255, 222, 2, 0, 76, 97, 118, 99, 53, 57, 174, 51, 55, 46, 49, 48, 48, 0, 66,
            85, 31, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 147, 51, 127, 134, 26,
            26, 128, 146, 231, 156, 107, 3, 68, 218, 197, 115, 87, 52, 236, 239, 137, 82, 36, 225,
            59, 171, 48, 224, 228, 201, 114, 168, 223, 208, 166, 107, 85, 153, 235, 15, 66, 232,
            59, 119, 66, 175, 53, 173, 70, 214, 159, 107, 82, 149, 41, 40, 25, 100, 221, 146, 81,
            37, 25, 55, 45, 48, 113, 10, 90, 56, 148, 63, 27, 1, 34, 68, 3, 25, 57, 2, 142, 32,
            117, 242, 164, 108, 16, 37, 240, 63, 69, 101, 121, 107, 35, 127, 64, 241, 77, 185, 199,
            57, 173, 36, 48, 0, 0, 0, 0, 0, 0, 0, 78, 237, 194,
        ];
        let (asc, mut rest) = INPUT.split_at(2);
        let mut t = Transcoder::new(&AacInput {
            specific_config: Bytes::copy_from_slice(asc),
            sample_rate: 48_000,
            channels: 2,
        })
        .unwrap();
        let mut out = Vec::new();
        let mut failed = 0;
        while let Some((&len, tail)) = rest.split_first() {
            let n = usize::from(len).min(tail.len());
            let (frame, next) = tail.split_at(n);
            rest = next;
            if !t.push(0, frame, &mut out) {
                failed += 1;
            }
        }
        assert!(failed >= 1);
    }

    #[test]
    fn refuses_unsupported_config() {
        let pool = Pool::start(1, 4);
        let bad = AacInput {
            specific_config: Bytes::new(),
            sample_rate: 48_000,
            channels: 2,
        };
        assert!(matches!(
            pool.open(bad),
            Err(TranscodeError::Unsupported(_))
        ));
    }

    #[test]
    fn drops_when_queue_full_and_counts() {
        let pool = Pool::start(1, 1);
        let t = pool
            .open(AacInput {
                specific_config: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48_000,
                channels: 2,
            })
            .unwrap();
        // Oversized frames are refused without touching the queue.
        assert!(!t.push(0, Bytes::from(vec![0u8; MAX_AAC_FRAME + 1])));
        assert_eq!(pool.counters().decode_errors.load(Ordering::Relaxed), 1);
        let mut dropped = 0;
        for i in 0..2000 {
            if !t.push(i, Bytes::from_static(&[0u8; 8])) {
                dropped += 1;
            }
        }
        assert_eq!(pool.counters().dropped.load(Ordering::Relaxed), dropped);
    }
}
