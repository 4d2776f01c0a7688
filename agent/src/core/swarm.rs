//! The local view of one swarm: connected peers, which recent segments each one holds, their
//! scores, and the peers banned for this swarm session.
//!
//! Everything is bounded: a peer's availability is a sliding window of [`HAVE_WINDOW`] sequence
//! numbers (older announcements fall off as newer ones arrive), the peer list is capped by the
//! caller's connection limit, and the ban list keeps at most [`MAX_BANS`] ids (oldest dropped).
//! Peers are kept in a `Vec` in connection order: swarms have tens of peers, a linear scan is
//! cheaper than hashing, and iteration order is deterministic (the simulator relies on it).

use std::collections::VecDeque;

use crate::core::ids::PeerId;
use crate::core::policy::{PeerStats, ScoreWeights, ewma};

/// Number of sequence numbers a peer's availability window covers.
pub const HAVE_WINDOW: u64 = 256;
/// Most banned ids remembered per swarm.
pub const MAX_BANS: usize = 1024;

/// Sliding availability window: bit `i` = the peer holds `base + i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaveWindow {
    base: u64,
    bits: [u64; 4],
}

impl HaveWindow {
    /// True if the peer announced `seq` (and it is still inside the window).
    pub fn contains(&self, seq: u64) -> bool {
        if seq < self.base || seq - self.base >= HAVE_WINDOW {
            return false;
        }
        let i = (seq - self.base) as usize;
        self.bits[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Records `seq`. Announcements older than the window are ignored; newer ones slide the
    /// window forward, forgetting the oldest sequence numbers.
    pub fn insert(&mut self, seq: u64) {
        if self.bits == [0; 4] {
            self.base = seq.saturating_sub(HAVE_WINDOW / 2);
        }
        if seq < self.base {
            return;
        }
        if seq - self.base >= HAVE_WINDOW {
            let new_base = seq - (HAVE_WINDOW - 1);
            self.shift(new_base - self.base);
            self.base = new_base;
        }
        let i = (seq - self.base) as usize;
        self.bits[i / 64] |= 1u64 << (i % 64);
    }

    /// Forgets `seq` (the peer answered `Absent` for it).
    pub fn remove(&mut self, seq: u64) {
        if self.contains(seq) {
            let i = (seq - self.base) as usize;
            self.bits[i / 64] &= !(1u64 << (i % 64));
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= HAVE_WINDOW {
            self.bits = [0; 4];
            return;
        }
        let by = by as usize;
        let (words, rem) = (by / 64, by % 64);
        let old = self.bits;
        for i in 0..4 {
            let src = i + words;
            let lo = old.get(src).copied().unwrap_or(0);
            let hi = old.get(src + 1).copied().unwrap_or(0);
            self.bits[i] = if rem == 0 {
                lo
            } else {
                (lo >> rem) | (hi << (64 - rem))
            };
        }
    }

    /// Number of sequence numbers recorded.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }
}

/// What we know about one connected peer.
#[derive(Clone, Debug)]
pub struct PeerEntry {
    /// The peer.
    pub id: PeerId,
    /// Segments it announced.
    pub have: HaveWindow,
    /// Segments it announced as partial (still receiving; served chunk by verified chunk).
    pub partial: HaveWindow,
    /// Throughput EWMA of finished transfers from it, bytes/s.
    pub throughput: Option<f64>,
    /// Recent failures (absent answers, stalls, lost transfers); halves on each success.
    pub failures: f64,
    /// Recent busy refusals; halves on each success.
    pub busy: f64,
    /// Requests we have in flight to it.
    pub in_flight: u32,
    /// Uploads we are serving to it.
    pub uploads: u32,
    /// Bytes received from it (verified).
    pub bytes_from: u64,
    /// Bytes uploaded to it.
    pub bytes_to: u64,
}

impl PeerEntry {
    fn new(id: PeerId) -> Self {
        PeerEntry {
            id,
            have: HaveWindow::default(),
            partial: HaveWindow::default(),
            throughput: None,
            failures: 0.0,
            busy: 0.0,
            in_flight: 0,
            uploads: 0,
            bytes_from: 0,
            bytes_to: 0,
        }
    }

    /// Inputs of the peer score.
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            throughput: self.throughput,
            failures: self.failures,
            busy: self.busy,
            in_flight: self.in_flight,
        }
    }
}

/// Peers of one swarm plus its ban list.
#[derive(Clone, Debug, Default)]
pub struct SwarmView {
    peers: Vec<PeerEntry>,
    /// A 64-bit digest of `peers[i].id` ([`id_key`]) for the first [`KEYS_INLINE`] peers,
    /// held inline (no pointer to follow) and dense, so the lookup every peer message starts
    /// with reads one or two cache lines and compares words; a match is confirmed against the
    /// entry's full id. Peers past them (more than `p2p.accept_peers` allows by default) are
    /// found by their ids.
    keys: [u64; KEYS_INLINE],
    bans: VecDeque<PeerId>,
}

/// Peers whose folded ids [`SwarmView`] keeps inline.
const KEYS_INLINE: usize = 16;

/// All 20 bytes of a peer id folded into one word (ids share prefixes: the client tag).
fn id_key(id: &PeerId) -> u64 {
    let b = &id.0;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut tail = [0u8; 8];
    tail[..4].copy_from_slice(&b[16..20]);
    word(0) ^ word(8).rotate_left(21) ^ u64::from_le_bytes(tail).rotate_left(42)
}

impl SwarmView {
    /// An empty swarm.
    pub fn new() -> Self {
        SwarmView::default()
    }

    /// Adds a connected peer. Returns `false` (and does nothing) if it is banned or already known.
    pub fn connect(&mut self, id: PeerId) -> bool {
        if self.is_banned(&id) || self.get(&id).is_some() {
            return false;
        }
        if let Some(k) = self.keys.get_mut(self.peers.len()) {
            *k = id_key(&id);
        }
        self.peers.push(PeerEntry::new(id));
        true
    }

    fn index(&self, id: &PeerId) -> Option<usize> {
        let key = id_key(id);
        let inline = self.peers.len().min(KEYS_INLINE);
        self.keys[..inline]
            .iter()
            .enumerate()
            .filter(|&(_, &k)| k == key)
            .map(|(i, _)| i)
            .chain(inline..self.peers.len())
            .find(|&i| self.peers.get(i).is_some_and(|p| p.id == *id))
    }

    /// Removes a peer; returns its entry if it was connected.
    pub fn disconnect(&mut self, id: &PeerId) -> Option<PeerEntry> {
        let i = self.index(id)?;
        let entry = self.peers.remove(i);
        let inline = self.peers.len().min(KEYS_INLINE);
        for j in i..inline {
            self.keys[j] = id_key(&self.peers[j].id);
        }
        Some(entry)
    }

    /// Bans a peer for the rest of the swarm session and disconnects it.
    pub fn ban(&mut self, id: PeerId) {
        self.disconnect(&id);
        if !self.is_banned(&id) {
            if self.bans.len() >= MAX_BANS {
                self.bans.pop_front();
            }
            self.bans.push_back(id);
        }
    }

    /// True if the peer is banned.
    pub fn is_banned(&self, id: &PeerId) -> bool {
        self.bans.contains(id)
    }

    /// Number of banned ids remembered.
    pub fn ban_count(&self) -> usize {
        self.bans.len()
    }

    /// The entry of a connected peer.
    pub fn get(&self, id: &PeerId) -> Option<&PeerEntry> {
        self.index(id).and_then(|i| self.peers.get(i))
    }

    /// The mutable entry of a connected peer.
    pub fn get_mut(&mut self, id: &PeerId) -> Option<&mut PeerEntry> {
        self.index(id).and_then(|i| self.peers.get_mut(i))
    }

    /// Connected peers in connection order.
    pub fn peers(&self) -> &[PeerEntry] {
        &self.peers
    }

    /// Number of connected peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True if no peer is connected.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Records a verified transfer of `bytes` that took `secs` seconds.
    pub fn record_success(&mut self, id: &PeerId, bytes: u64, secs: f64, w: &ScoreWeights) {
        if let Some(p) = self.get_mut(id) {
            if secs > 0.0 {
                p.throughput = Some(ewma(p.throughput, bytes as f64 / secs, w.ewma_alpha));
            }
            p.failures /= 2.0;
            p.busy /= 2.0;
            p.bytes_from += bytes;
        }
    }

    /// Records a throughput observation (bytes/s) of an unfinished transfer.
    pub fn record_rate(&mut self, id: &PeerId, rate: f64, w: &ScoreWeights) {
        if let Some(p) = self.get_mut(id) {
            p.throughput = Some(ewma(p.throughput, rate, w.ewma_alpha));
        }
    }

    /// Records a failure (absent, stall, timeout).
    pub fn record_failure(&mut self, id: &PeerId) {
        if let Some(p) = self.get_mut(id) {
            p.failures += 1.0;
        }
    }

    /// Records a busy refusal.
    pub fn record_busy(&mut self, id: &PeerId) {
        if let Some(p) = self.get_mut(id) {
            p.busy += 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(i: u8) -> PeerId {
        PeerId([i; 20])
    }

    #[test]
    fn have_window_slides() {
        let mut w = HaveWindow::default();
        assert!(!w.contains(5));
        w.insert(1000);
        assert!(w.contains(1000));
        w.insert(999);
        w.insert(1001);
        assert_eq!(w.count(), 3);
        // Much older than the window: ignored.
        w.insert(100);
        assert!(!w.contains(100));
        // Slide by a little: older bits kept while inside the window.
        w.insert(1000 + HAVE_WINDOW / 2 + 10);
        assert!(w.contains(1000) && w.contains(999) && w.contains(1001));
        // Slide far: the old ones drop off.
        w.insert(1000 + HAVE_WINDOW + 5);
        assert!(!w.contains(1000));
        assert!(w.contains(1000 + HAVE_WINDOW + 5));
        assert!(w.contains(1000 + HAVE_WINDOW / 2 + 10));
        w.remove(1000 + HAVE_WINDOW + 5);
        assert!(!w.contains(1000 + HAVE_WINDOW + 5));
        // Jump beyond the whole window clears everything else.
        w.insert(1_000_000);
        assert_eq!(w.count(), 1);
        // Near zero: no underflow.
        let mut z = HaveWindow::default();
        z.insert(0);
        z.insert(3);
        assert!(z.contains(0) && z.contains(3));
        z.insert(u64::MAX);
        assert!(z.contains(u64::MAX));
    }

    #[test]
    fn have_window_shift_matches_naive_model() {
        let mut w = HaveWindow::default();
        let mut naive = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = crate::core::policy::mix64(x);
            let seq = 5000 + (x % 700);
            w.insert(seq);
            naive.insert(seq);
            let max = *naive.iter().next_back().unwrap();
            for s in 4900..6000 {
                let expect = naive.contains(&s) && s + HAVE_WINDOW > max && s >= w.base;
                assert_eq!(w.contains(s), expect, "seq {s}");
            }
        }
    }

    /// Lookups confirm the full id: ids whose folded keys collide are still told apart.
    #[test]
    fn ids_with_the_same_key_are_told_apart() {
        let a = pid(1);
        // Flip the same bit in two words: the fold cancels it.
        let mut b = a;
        b.0[0] ^= 1;
        b.0[8 + (64 - 21) / 8] ^= 1 << ((64 - 21) % 8);
        assert_ne!(a, b);
        assert_eq!(id_key(&a), id_key(&b), "the test needs colliding keys");
        let mut s = SwarmView::new();
        assert!(s.connect(b));
        assert!(s.get(&a).is_none());
        assert!(s.connect(a));
        s.record_busy(&a);
        assert_eq!(s.get(&a).map(|p| (p.id, p.busy)), Some((a, 1.0)));
        assert_eq!(s.get(&b).map(|p| (p.id, p.busy)), Some((b, 0.0)));
        assert_eq!(s.disconnect(&b).map(|p| p.id), Some(b));
        assert_eq!(s.get(&a).map(|p| p.id), Some(a));
        assert!(s.get(&b).is_none());
    }

    /// Past the inline keys peers are found by their ids, and disconnects anywhere keep every
    /// remaining peer findable (checked against a plain list).
    #[test]
    fn peers_beyond_the_inline_keys_are_found() {
        let mut s = SwarmView::new();
        let mut model: Vec<PeerId> = Vec::new();
        let mut x: u64 = 7;
        let mut most = 0;
        for step in 0..3000u32 {
            x = crate::core::policy::mix64(x);
            let id = pid((x % 40) as u8);
            if x.is_multiple_of(3) || model.len() > 2 * KEYS_INLINE {
                assert_eq!(
                    s.disconnect(&id).is_some(),
                    model.contains(&id),
                    "step {step}"
                );
                model.retain(|p| *p != id);
            } else {
                assert_eq!(s.connect(id), !model.contains(&id), "step {step}");
                if !model.contains(&id) {
                    model.push(id);
                }
            }
            assert_eq!(s.len(), model.len());
            for i in 0..40u8 {
                let p = pid(i);
                assert_eq!(s.get(&p).map(|e| e.id), model.contains(&p).then_some(p));
            }
            let order: Vec<PeerId> = s.peers().iter().map(|e| e.id).collect();
            assert_eq!(order, model, "connection order");
            most = most.max(model.len());
        }
        assert!(
            most > KEYS_INLINE + 4,
            "the test must go past the inline keys: {most}"
        );
    }

    #[test]
    fn connect_ban_and_stats() {
        let mut s = SwarmView::new();
        assert!(s.is_empty());
        assert!(s.connect(pid(1)));
        assert!(!s.connect(pid(1)));
        assert!(s.connect(pid(2)));
        assert_eq!(s.len(), 2);
        s.record_failure(&pid(1));
        s.record_busy(&pid(1));
        assert_eq!(s.get(&pid(1)).unwrap().failures, 1.0);
        s.record_success(&pid(1), 1000, 0.5, &ScoreWeights::default());
        s.record_rate(&pid(2), 100.0, &ScoreWeights::default());
        assert_eq!(s.get(&pid(2)).unwrap().throughput, Some(100.0));
        let p = s.get(&pid(1)).unwrap();
        assert_eq!(p.throughput, Some(2000.0));
        assert_eq!(p.failures, 0.5);
        assert_eq!(p.busy, 0.5);
        assert_eq!(p.bytes_from, 1000);
        s.ban(pid(1));
        assert!(s.is_banned(&pid(1)));
        assert!(s.get(&pid(1)).is_none());
        assert!(!s.connect(pid(1)));
        assert_eq!(s.ban_count(), 1);
        assert!(s.disconnect(&pid(2)).is_some());
        assert!(s.disconnect(&pid(2)).is_none());
        for i in 0..(MAX_BANS + 5) {
            let mut b = [0u8; 20];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s.ban(PeerId(b));
        }
        assert_eq!(s.ban_count(), MAX_BANS);
    }
}
