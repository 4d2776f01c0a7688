//! Digest verification of segment bytes, as the agent does it before a byte from a peer reaches
//! the cache, a player or another peer (and before offering origin bytes to peers): the
//! driver's `core::ids::Digest::verify`, and `integrity::verify`, which does the same.
//!
//! Baselines in the same run, on the same bytes: `sha2::Sha256::digest` (the hash alone, the
//! limit for any verification) and a memcpy into a preallocated buffer (a memory-bandwidth
//! reference). Throughput is in bytes of segment per second.
//!
//! Run: `cargo bench -p hivecast-bench --bench digest_verify`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hivecast_agent::core::ids::Digest;
use hivecast_agent::integrity;
use sha2::{Digest as _, Sha256};

const SIZES: [(&str, usize); 3] = [("64kib", 64 << 10), ("1mib", 1 << 20), ("4mib", 4 << 20)];

/// Deterministic, incompressible-looking bytes (xorshift64).
fn segment(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn bench(c: &mut Criterion) {
    for (name, len) in SIZES {
        let data = segment(len);
        let digest = Digest::of(&data);
        assert!(digest.verify(&data));
        assert!(integrity::verify(&data, digest.as_bytes()));

        let mut g = c.benchmark_group(format!("digest_verify_{name}"));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function("digest_verify", |b| {
            b.iter(|| black_box(black_box(&digest).verify(black_box(&data))))
        });
        g.bench_function("integrity_verify", |b| {
            b.iter(|| black_box(integrity::verify(black_box(&data), digest.as_bytes())))
        });
        g.bench_function("baseline_sha256", |b| {
            b.iter(|| black_box(Sha256::digest(black_box(&data))))
        });
        g.bench_function("baseline_memcpy", |b| {
            let mut dst = vec![0u8; len];
            b.iter(|| {
                dst.copy_from_slice(black_box(&data));
                black_box(&mut dst);
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared and has 2 cores.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
