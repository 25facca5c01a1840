//! Chunk stream decoding throughput: a realistic publish (30 fps H.264 at about 4 Mbit/s with a
//! keyframe each second, plus 44.1 kHz AAC) chunked at 4096 and at 128 bytes, fed to the
//! decoder in 64 KiB reads as a socket would deliver it, beside a plain memcpy of the same
//! bytes as the floor.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use sluice_proto::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkStreamId, MessageStreamId};

/// Ten seconds of interleaved audio and video messages, chunked at `chunk_size`.
fn stream(chunk_size: u32) -> Bytes {
    let mut enc = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    let set = chunk_size.to_be_bytes();
    enc.encode(
        ChunkStreamId::CONTROL,
        0,
        1,
        MessageStreamId(0),
        &set,
        &mut wire,
    );
    enc.set_chunk_size(chunk_size);
    let video = ChunkStreamId::new(6).unwrap();
    let audio = ChunkStreamId::new(4).unwrap();
    let mut audio_ms = 0u32;
    for frame in 0..300u32 {
        let ts = frame * 1000 / 30;
        let len = if frame % 30 == 0 {
            120_000
        } else {
            14_000 + (frame as usize * 131) % 4000
        };
        enc.encode(
            video,
            ts,
            9,
            MessageStreamId(1),
            &vec![frame as u8; len],
            &mut wire,
        );
        while audio_ms <= ts {
            enc.encode(
                audio,
                audio_ms,
                8,
                MessageStreamId(1),
                &[0xAF; 372],
                &mut wire,
            );
            audio_ms += 23;
        }
    }
    wire.freeze()
}

fn decode(input: &Bytes) -> usize {
    let mut dec = ChunkDecoder::default();
    let mut n = 0;
    for start in (0..input.len()).step_by(64 * 1024) {
        dec.push(input.slice(start..(start + 64 * 1024).min(input.len())));
        while let Some(m) = dec.poll_message().expect("valid stream") {
            n += m.payload.len();
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtmp_chunk");
    for size in [4096u32, 128] {
        let input = stream(size);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(format!("decode_chunk_{size}"), |b| {
            b.iter(|| black_box(decode(black_box(&input))))
        });
        g.bench_function(format!("memcpy_chunk_{size}"), |b| {
            let mut dst = vec![0u8; input.len()];
            b.iter(|| {
                dst.copy_from_slice(black_box(&input));
                black_box(&dst);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
