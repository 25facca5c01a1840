//! Stream-key decode cost (goal: under 1 µs for a typical key): base64, AES-CTR over ~40
//! bytes, msgpack parse and three small allocations.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use sluice_proto::streamkey::{Certificate, KeyClaims, decode, encode};

fn bench(c: &mut Criterion) {
    let cert = Certificate::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    let claims = KeyClaims {
        channel: "sports-channel-42".into(),
        uid: "1234567".into(),
        expires_at: 1_700_086_400,
        template_id: Some("hd-transcode".into()),
    };
    let key = encode(&cert, &claims, [7; 16]);
    c.bench_function("streamkey/decode_typical", |b| {
        b.iter(|| decode(black_box(&cert), black_box(&key)))
    });
    c.bench_function("streamkey/encode_typical", |b| {
        b.iter(|| encode(black_box(&cert), black_box(&claims), [7; 16]))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
