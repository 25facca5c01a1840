//! Annex-B start-code scan over a 1 MiB H.264-like byte stream, beside a memcpy of the same
//! buffer (the goal is at least half of memcpy throughput).

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_main};
use sluice_proto::codec::annexb;

mod workloads;

fn bench(c: &mut Criterion) {
    let data = workloads::annexb_stream(1 << 20);
    let buf = Bytes::from(data.clone());
    let mut g = c.benchmark_group("annexb_1MiB");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; data.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&data));
            black_box(&dst);
        })
    });
    g.bench_function("split", |b| {
        b.iter(|| workloads::annexb_split(black_box(&buf)))
    });
    g.bench_function("find_start_code", |b| {
        b.iter(|| {
            let mut n = 0;
            let mut pos = 0;
            while let Some((at, len)) = annexb::find_start_code(black_box(&data), pos) {
                n += 1;
                pos = at + len;
            }
            n
        })
    });
    g.finish();
}

mod group {
    // criterion_group! defines an undocumented public function.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
