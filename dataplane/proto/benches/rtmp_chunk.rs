//! Chunk stream decoding throughput: a realistic publish (30 fps H.264 at about 4 Mbit/s with a
//! keyframe each second, plus 44.1 kHz AAC) chunked at 4096 and at 128 bytes, fed to the
//! decoder in 64 KiB reads as a socket would deliver it, beside a plain memcpy of the same
//! bytes in the same 64 KiB pieces as the floor.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

mod workloads;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtmp_chunk");
    for size in [4096u32, 128] {
        let input = workloads::rtmp_stream(size);
        let reads = workloads::pieces(&input, 64 * 1024);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(format!("decode_chunk_{size}"), |b| {
            b.iter(|| black_box(workloads::rtmp_decode(black_box(&input))))
        });
        g.bench_function(format!("memcpy_chunk_{size}"), |b| {
            let mut dst = vec![0u8; 64 * 1024];
            b.iter(|| black_box(workloads::memcpy_chunks(black_box(&reads), &mut dst)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
