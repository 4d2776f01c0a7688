//! Criterion benches of the peer-protocol codec.
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hivecast_agent::core::ids::Digest;
use hivecast_agent::core::peer_proto::{DATA_HEADER_LEN, MAX_FRAME_LEN, Message, decode, encode};

fn bench(c: &mut Criterion) {
    let payload = Bytes::from(vec![0xabu8; MAX_FRAME_LEN - DATA_HEADER_LEN]);
    let data = Message::Data {
        req_id: 7,
        offset: 1 << 20,
        total_len: 4 << 20,
        payload,
    };
    let have = Message::Have {
        seq: 123_456,
        digest: Some(Digest([7; 32])),
        partial: false,
    };
    let mut g = c.benchmark_group("peer_proto");
    for (name, msg) in [("data_64k", &data), ("have", &have)] {
        let mut buf = BytesMut::with_capacity(MAX_FRAME_LEN);
        encode(msg, &mut buf).expect("encodes");
        let frame = buf.freeze();
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(format!("encode_{name}"), |b| {
            let mut out = BytesMut::with_capacity(MAX_FRAME_LEN);
            b.iter(|| {
                out.clear();
                encode(black_box(msg), &mut out).expect("encodes");
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| black_box(decode(black_box(frame.clone())).expect("decodes")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
