//! Annex-B start-code scan over a 1 MiB H.264-like byte stream, beside a memcpy of the same
//! buffer (the goal is at least half of memcpy throughput).

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_main};
use sluice_proto::codec::annexb;

/// A 1 MiB byte stream shaped like encoder output: parameter sets, then slices of 2..64 KiB of
/// entropy-coded (random) bytes with emulation prevention applied, as a real encoder emits.
pub fn realistic_stream(size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(size + 70_000);
    out.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50]);
    out.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
    while out.len() < size {
        out.extend_from_slice(&[0, 0, 1, 0x41]);
        let len = 2048 + (rand() % (62 * 1024)) as usize;
        let mut zeros = 0;
        for _ in 0..len {
            let b = rand() as u8;
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        if out.last() == Some(&0) {
            out.push(0x80);
        }
    }
    out.truncate(size);
    out
}

fn bench(c: &mut Criterion) {
    let data = realistic_stream(1 << 20);
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
        b.iter(|| annexb::split(black_box(&buf)).count())
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
