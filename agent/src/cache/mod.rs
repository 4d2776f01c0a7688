//! In-memory caches: a byte-budgeted LRU for segments (on the `lru` crate), a small TTL cache
//! for playlists, and single-flight so N concurrent requests for one resource make one fetch.
//!
//! Nothing here touches disk. The cache knows where bytes came from only as a tag.

mod single_flight;

pub use single_flight::{Role, SingleFlight};

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use lru::LruCache;

use crate::metrics::{Metrics, Source};

/// A cached body and what the server needs to answer with it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The bytes, complete and verified (origin bytes are complete; peer bytes verified).
    pub body: Bytes,
    /// Content type to serve (derived from the name, not trusted from the origin).
    pub content_type: &'static str,
    /// Where the bytes came from.
    pub source: Source,
    /// When they were stored (for `Age`).
    pub stored_at: Instant,
    /// Length of the whole resource when `body` is a range of it (and the origin said).
    pub resource_len: Option<u64>,
}

struct Inner<K: Hash + Eq> {
    lru: LruCache<K, Entry>,
    bytes: u64,
}

/// A least-recently-used cache bounded by the total size of its bodies.
pub struct ByteLru<K: Hash + Eq> {
    inner: Mutex<Inner<K>>,
    max_bytes: u64,
    metrics: Option<Metrics>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for ByteLru<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteLru")
            .field("max_bytes", &self.max_bytes)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> ByteLru<K> {
    /// A cache holding at most `max_bytes` of bodies. Metrics (hits, misses, bytes, evictions)
    /// are updated when given.
    pub fn new(max_bytes: u64, metrics: Option<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            max_bytes,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // A panic while holding the lock leaves consistent data (every mutation is one step),
        // so recover from poisoning rather than propagate it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up and marks as recently used. Counts a hit or a miss.
    pub fn get(&self, key: &K) -> Option<Entry> {
        let hit = self.lock().lru.get(key).cloned();
        if let Some(m) = &self.metrics {
            if hit.is_some() {
                m.cache_hits.inc()
            } else {
                m.cache_misses.inc()
            }
        }
        hit
    }

    /// Looks up without counting or reordering.
    pub fn peek(&self, key: &K) -> Option<Entry> {
        self.lock().lru.peek(key).cloned()
    }

    /// Whether `key` is cached.
    pub fn contains(&self, key: &K) -> bool {
        self.lock().lru.contains(key)
    }

    /// Stores an entry, evicting least recently used entries to stay within budget. A body
    /// larger than the whole budget is not stored. Returns whether it was stored.
    pub fn insert(&self, key: K, entry: Entry) -> bool {
        let size = entry.body.len() as u64;
        if size > self.max_bytes {
            return false;
        }
        let mut evicted = 0u64;
        let total = {
            let mut g = self.lock();
            if let Some(old) = g.lru.pop(&key) {
                g.bytes -= old.body.len() as u64;
            }
            while g.bytes + size > self.max_bytes {
                match g.lru.pop_lru() {
                    Some((_, e)) => {
                        g.bytes -= e.body.len() as u64;
                        evicted += 1;
                    }
                    None => break,
                }
            }
            g.bytes += size;
            g.lru.put(key, entry);
            g.bytes
        };
        if let Some(m) = &self.metrics {
            m.cache_bytes.set(total as i64);
            m.cache_evictions.inc_by(evicted);
        }
        true
    }

    /// Removes an entry.
    pub fn remove(&self, key: &K) -> Option<Entry> {
        let (e, total) = {
            let mut g = self.lock();
            let e = g.lru.pop(key);
            if let Some(e) = &e {
                g.bytes -= e.body.len() as u64;
            }
            (e, g.bytes)
        };
        if let Some(m) = &self.metrics {
            m.cache_bytes.set(total as i64);
        }
        e
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A small cache whose entries expire at a given instant, bounded by count.
pub struct TtlCache<K: Hash + Eq, V: Clone> {
    inner: Mutex<LruCache<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TtlCache { .. }")
    }
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The value, if present and not expired at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(key) {
            Some((v, exp)) if *exp > now => Some(v.clone()),
            Some(_) => {
                g.pop(key);
                None
            }
            None => None,
        }
    }

    /// Stores a value until `expires`.
    pub fn insert(&self, key: K, value: V, expires: Instant) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, (value, expires));
    }
}

/// Shared handle type used by the app.
pub type SharedLru<K> = Arc<ByteLru<K>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(n: usize) -> Entry {
        Entry {
            body: Bytes::from(vec![7u8; n]),
            content_type: "video/mp2t",
            source: Source::Origin,
            stored_at: Instant::now(),
            resource_len: None,
        }
    }

    #[test]
    fn stays_within_budget_and_evicts_lru() {
        let c = ByteLru::new(1000, None);
        assert!(c.insert("a", entry(400)));
        assert!(c.insert("b", entry(400)));
        assert!(c.get(&"a").is_some()); // a is now most recent
        assert!(c.insert("c", entry(400))); // evicts b
        assert!(c.contains(&"a"));
        assert!(!c.contains(&"b"));
        assert!(c.contains(&"c"));
        assert_eq!(c.bytes(), 800);
        assert!(
            !c.insert("huge", entry(1001)),
            "larger than budget is refused"
        );
        assert_eq!(c.bytes(), 800);
    }

    #[test]
    fn replacing_a_key_keeps_accounting_right() {
        let c = ByteLru::new(1000, None);
        c.insert("a", entry(300));
        c.insert("a", entry(500));
        assert_eq!(c.bytes(), 500);
        assert_eq!(c.len(), 1);
        c.remove(&"a");
        assert_eq!(c.bytes(), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn metrics_follow_hits_misses_and_bytes() {
        let m = Metrics::new();
        let c = ByteLru::new(1000, Some(m.clone()));
        c.insert("a", entry(100));
        c.get(&"a");
        c.get(&"zz");
        assert_eq!(m.cache_hits.get(), 1);
        assert_eq!(m.cache_misses.get(), 1);
        assert_eq!(m.cache_bytes.get(), 100);
    }

    #[test]
    fn ttl_cache_expires() {
        let c = TtlCache::new(2);
        let now = Instant::now();
        c.insert("k", 1, now + Duration::from_secs(1));
        assert_eq!(c.get(&"k", now), Some(1));
        assert_eq!(c.get(&"k", now + Duration::from_secs(2)), None);
        c.insert("a", 1, now + Duration::from_secs(9));
        c.insert("b", 2, now + Duration::from_secs(9));
        c.insert("c", 3, now + Duration::from_secs(9));
        assert_eq!(c.get(&"a", now), None, "bounded by count");
    }
}
