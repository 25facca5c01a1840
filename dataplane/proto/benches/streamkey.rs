//! Stream-key decode cost (goal: under 1 µs for a typical key): base64, AES-CTR over ~40
//! bytes, msgpack parse and three small allocations; beside a memcpy of the key's bytes.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use sluice_proto::streamkey::{decode, encode};

mod workloads;

fn bench(c: &mut Criterion) {
    let (cert, claims, key) = workloads::streamkey_fixture();
    let mut g = c.benchmark_group("streamkey");
    g.throughput(Throughput::Bytes(key.len() as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; key.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(key.as_bytes()));
            black_box(&dst);
        })
    });
    g.bench_function("decode_typical", |b| {
        b.iter(|| decode(black_box(&cert), black_box(&key)))
    });
    g.bench_function("encode_typical", |b| {
        b.iter(|| encode(black_box(&cert), black_box(&claims), [7; 16]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
