//! A transcoder worker thread: owns the decoder and encoder of every stream sharded to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use crossbeam::channel::{Receiver, Sender, TrySendError};
use symphonia_codec_aac::AacDecoder;
use symphonia_core::audio::SampleBuffer;
use symphonia_core::codecs::{CODEC_TYPE_AAC, CodecParameters, Decoder, DecoderOptions};
use symphonia_core::formats::Packet;

use crate::{
    AacInput, Counters, Job, LinearResampler, MAX_CHANNELS, OPUS_FRAME_SAMPLES, OPUS_RATE,
    OpusFrame, TranscodeError,
};

/// Opus bitrate per channel, in bits per second (64 kbps stereo, 32 kbps mono).
const OPUS_BITRATE_PER_CHANNEL: i32 = 32_000;
/// A jump of input timestamps beyond this (90 kHz ticks, 200 ms) restarts the output clock.
const PTS_RESYNC_TICKS: i64 = 18_000;
/// Largest Opus packet produced (RFC 6716 §3.2.1 allows up to 1275 bytes per frame).
const MAX_OPUS_PACKET: usize = 1500;

fn decoder_for(input: &AacInput) -> Result<AacDecoder, TranscodeError> {
    if input.specific_config.len() < 2 {
        return Err(TranscodeError::Unsupported(
            "missing AAC AudioSpecificConfig".into(),
        ));
    }
    let mut params = CodecParameters::new();
    params
        .for_codec(CODEC_TYPE_AAC)
        .with_sample_rate(input.sample_rate.max(1))
        .with_extra_data(input.specific_config.to_vec().into_boxed_slice());
    AacDecoder::try_new(&params, &DecoderOptions::default())
        .map_err(|e| TranscodeError::Unsupported(e.to_string()))
}

/// Checks that the decoder accepts the track (on the caller's thread, once per track).
pub(crate) fn check_input(input: &AacInput) -> Result<(), TranscodeError> {
    decoder_for(input).map(|_| ())
}

/// The synchronous AAC → Opus state of one stream: what a worker runs, usable on its own
/// (tests, fuzzing). Never call it on a reactor thread.
pub struct Transcoder {
    input: AacInput,
    decoder: AacDecoder,
    encoder: Option<opus::Encoder>,
    channels: usize,
    resampler: Option<LinearResampler>,
    /// Decoded audio at 48 kHz, interleaved, waiting for a whole 20 ms frame.
    fifo: Vec<f32>,
    scratch: Vec<f32>,
    /// pts (90 kHz) of the first sample in `fifo`'s timeline.
    base_pts: Option<i64>,
    /// Samples per channel emitted since `base_pts`.
    emitted: u64,
    /// Samples per channel received since `base_pts` (for resync checks).
    received: u64,
}

struct StreamState {
    transcoder: Transcoder,
    out: Sender<OpusFrame>,
    pending: Vec<OpusFrame>,
}

impl StreamState {
    fn new(input: AacInput, out: Sender<OpusFrame>) -> Result<Self, TranscodeError> {
        Ok(StreamState {
            transcoder: Transcoder::new(&input)?,
            out,
            pending: Vec::new(),
        })
    }

    /// Transcodes one frame and sends the results. Returns false when the stream's handle is
    /// gone.
    fn frame(&mut self, pts: i64, data: &Bytes, counters: &Counters) -> bool {
        self.pending.clear();
        if !self.transcoder.push(pts, data, &mut self.pending) {
            counters.decode_errors.fetch_add(1, Ordering::Relaxed);
        }
        for frame in self.pending.drain(..) {
            counters.encoded.fetch_add(1, Ordering::Relaxed);
            match self.out.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    counters.output_overflow.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }
}

impl Transcoder {
    /// A transcoder for the track; fails when the decoder does not support it.
    pub fn new(input: &AacInput) -> Result<Self, TranscodeError> {
        Ok(Transcoder {
            input: input.clone(),
            decoder: decoder_for(input)?,
            encoder: None,
            channels: 0,
            resampler: None,
            fifo: Vec::new(),
            scratch: Vec::new(),
            base_pts: None,
            emitted: 0,
            received: 0,
        })
    }

    /// Decodes one AAC frame (pts in 90 kHz ticks) and appends every whole 20 ms Opus frame
    /// now available to `out`. Returns false when the frame could not be decoded.
    pub fn push(&mut self, pts: i64, data: &[u8], out: &mut Vec<OpusFrame>) -> bool {
        let packet = Packet::new_from_slice(0, 0, 1024, data);
        // Symphonia's AAC decoder can panic on hostile frames (fuzzing found an index out of
        // bounds in its ICS parser): contain it here, and start over with a fresh decoder.
        let decoder = &mut self.decoder;
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder
                .decode(&packet)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
        match ok {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "AAC frame not decodable");
                return false;
            }
            Err(_) => {
                tracing::warn!("AAC decoder panicked on a frame; decoder reset");
                if let Ok(d) = decoder_for(&self.input) {
                    self.decoder = d;
                }
                return false;
            }
        }
        let decoded = self.decoder.last_decoded();
        let spec = *decoded.spec();
        let in_channels = spec.channels.count().max(1);
        let out_channels = in_channels.min(usize::from(MAX_CHANNELS));
        let frames = decoded.frames();
        if frames == 0 {
            return true;
        }
        let mut sb = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        sb.copy_interleaved_ref(decoded);
        let samples = sb.samples();

        if self.encoder.is_none() || self.channels != out_channels {
            let ch = if out_channels == 1 {
                opus::Channels::Mono
            } else {
                opus::Channels::Stereo
            };
            match opus::Encoder::new(OPUS_RATE, ch, opus::Application::Audio) {
                Ok(mut enc) => {
                    let _ = enc.set_bitrate(opus::Bitrate::Bits(
                        OPUS_BITRATE_PER_CHANNEL * out_channels as i32,
                    ));
                    self.encoder = Some(enc);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Opus encoder unavailable");
                    return true;
                }
            }
            self.channels = out_channels;
            self.fifo.clear();
            self.base_pts = None;
            self.resampler = (spec.rate != OPUS_RATE)
                .then(|| LinearResampler::new(spec.rate, OPUS_RATE, out_channels));
        }

        // Timeline: restart when the input jumps (a gap or a publisher restart).
        let expected = self
            .base_pts
            .map(|b| b + (self.received as i64) * 90_000 / i64::from(OPUS_RATE));
        if expected.is_none_or(|e| (pts - e).abs() > PTS_RESYNC_TICKS) {
            self.base_pts = Some(pts);
            self.emitted = 0;
            self.received = 0;
            self.fifo.clear();
        }

        // Keep the first `out_channels` channels (stereo down-mix of surround is left out).
        self.scratch.clear();
        for f in samples.chunks(in_channels).take(frames) {
            self.scratch.extend(f.iter().take(out_channels).copied());
        }
        let before = self.fifo.len();
        match &mut self.resampler {
            Some(r) => r.process(&self.scratch, &mut self.fifo),
            None => self.fifo.extend_from_slice(&self.scratch),
        }
        self.received += ((self.fifo.len() - before) / out_channels) as u64;

        let frame_len = OPUS_FRAME_SAMPLES * out_channels;
        let mut packet = [0u8; MAX_OPUS_PACKET];
        let mut consumed = 0usize;
        while self.fifo.len() - consumed >= frame_len {
            let Some(pcm) = self.fifo.get(consumed..consumed + frame_len) else {
                break;
            };
            consumed += frame_len;
            let Some(enc) = self.encoder.as_mut() else {
                break;
            };
            let n = match enc.encode_float(pcm, &mut packet) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "Opus encode failed");
                    continue;
                }
            };
            let out_pts = self.base_pts.unwrap_or(pts)
                + (self.emitted as i64) * 90_000 / i64::from(OPUS_RATE);
            self.emitted += OPUS_FRAME_SAMPLES as u64;
            out.push(OpusFrame {
                pts: out_pts,
                data: Bytes::copy_from_slice(packet.get(..n).unwrap_or_default()),
            });
        }
        self.fifo.drain(..consumed);
        true
    }
}

/// The worker loop: runs until every job sender is gone.
pub(crate) fn run(rx: Receiver<Job>, counters: Arc<Counters>) {
    let mut streams: HashMap<u64, StreamState> = HashMap::new();
    while let Ok(job) = rx.recv() {
        match job {
            Job::Open { id, input, out } => match StreamState::new(input, out) {
                Ok(s) => {
                    streams.insert(id, s);
                }
                Err(e) => tracing::warn!(error = %e, "transcoder open failed"),
            },
            Job::Frame { id, pts, data } => {
                // A decoder panic on hostile input must cost only that stream's audio, not
                // the worker (and every other stream sharded to it).
                let alive = streams.get_mut(&id).is_some_and(|s| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        s.frame(pts, &data, &counters)
                    }))
                    .unwrap_or_else(|_| {
                        counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("AAC decoder panicked; transcoding stopped for one stream");
                        false
                    })
                });
                if !alive {
                    streams.remove(&id);
                }
            }
            Job::Close { id } => {
                streams.remove(&id);
            }
        }
    }
}
