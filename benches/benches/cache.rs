//! The segment cache (`hivecast_agent::cache::ByteLru`, as the agent builds it: keyed by
//! `SegmentKey`, with metrics) against a plain `lru::LruCache` and a `HashMap` holding the same
//! keys and `Entry` values, measured in the same run.
//!
//! Two shapes: 1 MiB bodies with the default 256 MiB budget (256 entries), and 1 KiB bodies
//! with a 4 MiB budget (4,096 entries). Bodies are `Bytes` sharing one buffer, so no case copies
//! or frees body bytes, and keys are built outside the timing: the figures are the cost of the
//! cache itself (lock, hashing the URL, LRU links, byte accounting, metrics, freeing an evicted
//! key), not of the allocator.
//!
//! - `put`: insert a new key into a cache that has room (it grows from empty to full).
//! - `get_hit` / `get_miss`: look up a cached / absent key; a hit clones the `Entry`.
//! - `put_evict`: insert a new key into a full cache, evicting the least recently used entry
//!   (steady state of a live stream).
//!
//! `bytelru_no_metrics` is the same cache built without metrics. The baselines are `lru`
//! (`LruCache::unbounded` for `put`, `LruCache::new(n)` for `put_evict`) and `hashmap` (same
//! hasher as `lru`, no recency order, no eviction).
//!
//! Run: `cargo bench -p hivecast-bench --bench cache`.

use std::collections::HashMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, Bencher, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use hivecast_agent::app::SegmentKey;
use hivecast_agent::cache::{ByteLru, Entry};
use hivecast_agent::metrics::{Metrics, Source};
use lru::LruCache;

/// One cache shape: body size and how many bodies fit in the byte budget.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    body_len: usize,
    entries: usize,
}

impl Shape {
    /// The byte budget: exactly `entries` bodies when bounded, else effectively none.
    fn budget(self, bounded: bool) -> u64 {
        if bounded {
            (self.body_len * self.entries) as u64
        } else {
            u64::MAX / 2
        }
    }
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "1mib",
        body_len: 1 << 20,
        entries: 256,
    },
    Shape {
        name: "1kib",
        body_len: 1 << 10,
        entries: 4096,
    },
];

/// First media sequence number (live streams often count from a wall-clock epoch).
const FIRST_SEQ: u64 = 1_700_000_000;

/// The key the agent stores a segment under: the absolute origin URL, fragment stripped.
fn key(seq: u64) -> SegmentKey {
    SegmentKey {
        url: format!("https://cdn.example.com/live/channel-1/720p/segment_{seq}.ts"),
        range: None,
    }
}

/// A verified peer segment, as the driver stores it.
fn entry(body: &Bytes) -> Entry {
    Entry {
        body: body.clone(),
        content_type: "video/mp2t",
        source: Source::Peer,
        stored_at: Instant::now(),
        resource_len: None,
    }
}

/// The caches under test behind one interface, so every case runs the same code around them
/// (monomorphised: no dynamic dispatch in the timed loops).
trait Cache: Sized {
    const NAME: &'static str;
    /// An empty cache. `bounded`: evicts once `shape.entries` bodies are held (`HashMap`
    /// never does).
    fn empty(shape: Shape, bounded: bool) -> Self;
    fn put(&mut self, k: SegmentKey, e: Entry);
    fn get(&mut self, k: &SegmentKey) -> Option<Entry>;

    /// A cache holding keys `FIRST_SEQ..FIRST_SEQ + entries`, which is full when bounded.
    fn full(shape: Shape, body: &Bytes) -> Self {
        let mut c = Self::empty(shape, true);
        for seq in FIRST_SEQ..FIRST_SEQ + shape.entries as u64 {
            c.put(key(seq), entry(body));
        }
        c
    }
}

impl Cache for ByteLru<SegmentKey> {
    const NAME: &'static str = "bytelru";
    fn empty(shape: Shape, bounded: bool) -> Self {
        // As the agent builds it (`Proxy::new`): with metrics.
        ByteLru::new(shape.budget(bounded), Some(Metrics::new()))
    }
    fn put(&mut self, k: SegmentKey, e: Entry) {
        black_box(self.insert(k, e));
    }
    fn get(&mut self, k: &SegmentKey) -> Option<Entry> {
        ByteLru::get(self, k)
    }
}

/// `ByteLru` built without metrics, to split the wrapper's cost between the lock and byte
/// accounting on one side and the metric updates on the other.
struct NoMetrics(ByteLru<SegmentKey>);

impl Cache for NoMetrics {
    const NAME: &'static str = "bytelru_no_metrics";
    fn empty(shape: Shape, bounded: bool) -> Self {
        NoMetrics(ByteLru::new(shape.budget(bounded), None))
    }
    fn put(&mut self, k: SegmentKey, e: Entry) {
        black_box(self.0.insert(k, e));
    }
    fn get(&mut self, k: &SegmentKey) -> Option<Entry> {
        self.0.get(k)
    }
}

impl Cache for LruCache<SegmentKey, Entry> {
    const NAME: &'static str = "lru";
    fn empty(shape: Shape, bounded: bool) -> Self {
        if bounded {
            LruCache::new(NonZeroUsize::new(shape.entries).expect("non-zero"))
        } else {
            LruCache::unbounded()
        }
    }
    fn put(&mut self, k: SegmentKey, e: Entry) {
        // `push` returns the evicted pair; it is dropped here, inside the timing.
        black_box(self.push(k, e));
    }
    fn get(&mut self, k: &SegmentKey) -> Option<Entry> {
        LruCache::get(self, k).cloned()
    }
}

/// A plain map with the same hasher as `lru` (foldhash via hashbrown), so the comparison is
/// not one of hash functions.
type Map = HashMap<SegmentKey, Entry, lru::DefaultHasher>;

impl Cache for Map {
    const NAME: &'static str = "hashmap";
    fn empty(_: Shape, _: bool) -> Self {
        Map::default()
    }
    fn put(&mut self, k: SegmentKey, e: Entry) {
        black_box(self.insert(k, e));
    }
    fn get(&mut self, k: &SegmentKey) -> Option<Entry> {
        HashMap::get(self, k).cloned()
    }
}

/// Inserts `iters` new keys, timing only the inserts: the cache is rebuilt empty every
/// `shape.entries` keys, so it stays the realistic size and never evicts.
fn put<C: Cache>(b: &mut Bencher<'_>, shape: Shape, body: &Bytes) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(shape.entries as u64);
            left -= n;
            let mut c = C::empty(shape, false);
            let batch: Vec<_> = (FIRST_SEQ..FIRST_SEQ + n)
                .map(|seq| (key(seq), entry(body)))
                .collect();
            let t = Instant::now();
            for (k, e) in batch {
                c.put(k, e);
            }
            total += t.elapsed();
            drop(black_box(c));
        }
        total
    })
}

/// Looks up `keys` round-robin in `c`.
fn get<C: Cache>(b: &mut Bencher<'_>, c: &mut C, keys: &[SegmentKey]) {
    let mut i = 0;
    b.iter(|| {
        let hit = c.get(black_box(&keys[i]));
        i += 1;
        if i == keys.len() {
            i = 0;
        }
        black_box(hit)
    })
}

/// Inserts ever newer keys into a full cache; each insert evicts the oldest entry.
fn put_evict<C: Cache>(b: &mut Bencher<'_>, shape: Shape, body: &Bytes) {
    let mut c = C::full(shape, body);
    let mut seq = FIRST_SEQ + shape.entries as u64;
    b.iter_batched(
        || {
            seq += 1;
            (key(seq), entry(body))
        },
        |(k, e)| c.put(k, e),
        BatchSize::SmallInput,
    )
}

/// All cases for one implementation. `evicts`: whether `put_evict` applies.
fn cases<C: Cache>(g: &mut BenchmarkGroup<'_, WallTime>, shape: Shape, body: &Bytes, evicts: bool) {
    let name = C::NAME;
    g.bench_function(format!("put/{name}"), |b| put::<C>(b, shape, body));
    let hits: Vec<_> = (FIRST_SEQ..FIRST_SEQ + shape.entries as u64)
        .map(key)
        .collect();
    let misses: Vec<_> = (0..shape.entries as u64).map(key).collect();
    let mut full = C::full(shape, body);
    g.bench_function(format!("get_hit/{name}"), |b| get(b, &mut full, &hits));
    g.bench_function(format!("get_miss/{name}"), |b| get(b, &mut full, &misses));
    if evicts {
        g.bench_function(format!("put_evict/{name}"), |b| {
            put_evict::<C>(b, shape, body)
        });
    }
}

fn bench(c: &mut Criterion) {
    for shape in SHAPES {
        let body = Bytes::from(vec![0x47u8; shape.body_len]);
        let mut g = c.benchmark_group(format!("cache_{}", shape.name));
        cases::<ByteLru<SegmentKey>>(&mut g, shape, &body, true);
        cases::<NoMetrics>(&mut g, shape, &body, true);
        cases::<LruCache<SegmentKey, Entry>>(&mut g, shape, &body, true);
        cases::<Map>(&mut g, shape, &body, false);
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
