//! The simulator's event queue: a calendar queue (a ring of 1 ms buckets over a horizon, plus
//! an overflow heap for later events). Almost every event of a swarm simulation falls within a
//! few seconds of now, so pushing is an append and popping sorts one small bucket at a time;
//! a binary heap of a few hundred thousand entries spent most of its time in cache misses.
//!
//! Order is exactly that of a min-heap on `(t, n)`: events of the current bucket sit in a small
//! heap, later buckets are plain vectors moved into it when their turn comes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bucket width, µs.
const WIDTH: u64 = 1_000;
/// Buckets in the ring (a horizon of about 16 s).
const BUCKETS: usize = 1 << 14;

/// A time-ordered queue of `T` keyed by (time µs, insertion number).
pub struct CalendarQueue<T> {
    ring: Vec<Vec<(u64, u64, T)>>,
    /// Events of bucket `cursor` (time `cursor * WIDTH ..`), ordered.
    current: BinaryHeap<Reverse<Key<T>>>,
    /// Events at or beyond the ring's horizon when pushed.
    overflow: BinaryHeap<Reverse<Key<T>>>,
    /// Absolute index of the current bucket.
    cursor: u64,
    /// Events in `ring` (not counting `current` and `overflow`).
    in_ring: usize,
}

/// Orders by (t, n) only.
struct Key<T>(u64, u64, T);

impl<T> PartialEq for Key<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl<T> Eq for Key<T> {}
impl<T> PartialOrd for Key<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Key<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

impl<T> Default for CalendarQueue<T> {
    fn default() -> Self {
        CalendarQueue {
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            current: BinaryHeap::new(),
            overflow: BinaryHeap::new(),
            cursor: 0,
            in_ring: 0,
        }
    }
}

impl<T> CalendarQueue<T> {
    /// Adds `item` at time `t` with tie-breaker `n` (unique, increasing). `t` must not be
    /// before the last popped time.
    pub fn push(&mut self, t: u64, n: u64, item: T) {
        let b = t / WIDTH;
        if b <= self.cursor {
            self.current.push(Reverse(Key(t, n, item)));
        } else if b < self.cursor + BUCKETS as u64 {
            self.ring[(b % BUCKETS as u64) as usize].push((t, n, item));
            self.in_ring += 1;
        } else {
            self.overflow.push(Reverse(Key(t, n, item)));
        }
    }

    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        loop {
            if let Some(Reverse(Key(t, _, item))) = self.current.pop() {
                return Some((t, item));
            }
            if self.in_ring == 0 {
                // Jump straight to the first overflow event.
                let Reverse(Key(t, _, _)) = self.overflow.peek()?;
                self.cursor = t / WIDTH;
            } else {
                self.cursor += 1;
            }
            let slot = (self.cursor % BUCKETS as u64) as usize;
            let bucket = std::mem::take(&mut self.ring[slot]);
            self.in_ring -= bucket.len();
            self.current
                .extend(bucket.into_iter().map(|(t, n, i)| Reverse(Key(t, n, i))));
            // Overflow events whose bucket is now current.
            while self
                .overflow
                .peek()
                .is_some_and(|Reverse(Key(t, _, _))| t / WIDTH <= self.cursor)
            {
                if let Some(e) = self.overflow.pop() {
                    self.current.push(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pops_in_the_same_order_as_a_min_heap() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut q = CalendarQueue::default();
        let mut reference = BinaryHeap::new();
        let mut now = 0u64;
        let mut n = 0u64;
        let mut popped = 0;
        for round in 0..20_000 {
            // Mostly near events, some far beyond the horizon, some at exactly now.
            for _ in 0..rng.random_range(0..4) {
                let dt = match rng.random_range(0..10) {
                    0 => 0,
                    1 => rng.random_range(0..200_000_000),
                    _ => rng.random_range(0..3_000_000),
                };
                n += 1;
                q.push(now + dt, n, round);
                reference.push(Reverse((now + dt, n, round)));
            }
            if rng.random_range(0..3) > 0 {
                let a = q.pop();
                let b = reference.pop().map(|Reverse((t, _, r))| (t, r));
                assert_eq!(a, b);
                if let Some((t, _)) = a {
                    assert!(t >= now);
                    now = t;
                    popped += 1;
                }
            }
        }
        while let Some(Reverse((t, _, r))) = reference.pop() {
            assert_eq!(q.pop(), Some((t, r)));
        }
        assert_eq!(q.pop(), None);
        assert!(popped > 1000);
    }
}
