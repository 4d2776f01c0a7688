//! Striped sharing: a segment whose sidecar publishes chunk digests is shared as up to
//! `stripes` *units*, consecutive runs of whole chunks. Each unit has its own id, holders,
//! origin seeds and transfers, so the swarm moves a segment as several smaller pieces that
//! spread through different trees at once (see `docs/proposals/striped-transfers.md`).
//!
//! Unit ids live in one `u64` space: unit `j` of segment `seq` is `seq × stripes + j`. Every
//! agent of a swarm must use the same stripe count; it is carried in the handshake and a
//! session with a different count is refused. With one stripe a unit id *is* the segment's
//! sequence number, so an unstriped swarm behaves exactly as before.
//!
//! A segment of `n` chunks is split into `k = min(stripes, n / MIN_CHUNKS_PER_STRIPE)` units
//! (at least one); unit `j` covers chunks `j·n/k .. (j+1)·n/k`. Both ends derive the split
//! from the sidecar alone. A segment without chunk digests is one unit (its whole-segment
//! digest is what verifies it).

use std::ops::Range;

use sha2::{Digest as _, Sha256};

use crate::core::ids::Digest;

/// Largest stripe count.
pub const MAX_STRIPES: u8 = 8;

/// A unit is at least this many chunks; smaller segments get fewer units.
pub const MIN_CHUNKS_PER_STRIPE: usize = 2;

/// The stripe count of a swarm (1 = whole segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stripes(u8);

impl Default for Stripes {
    fn default() -> Self {
        Stripes::WHOLE
    }
}

impl Stripes {
    /// Whole segments: a unit id is the segment's sequence number.
    pub const WHOLE: Stripes = Stripes(1);

    /// `n` stripes, if `1 ≤ n ≤ MAX_STRIPES`.
    pub fn new(n: u8) -> Option<Self> {
        (1..=MAX_STRIPES).contains(&n).then_some(Stripes(n))
    }

    /// The stripe count.
    pub fn get(self) -> u8 {
        self.0
    }

    fn n(self) -> u64 {
        u64::from(self.0)
    }

    /// Id of unit `j` of segment `seq` (saturates for sequence numbers beyond `u64::MAX / n`).
    pub fn unit(self, seq: u64, j: u8) -> u64 {
        seq.saturating_mul(self.n()).saturating_add(u64::from(j))
    }

    /// The segment a unit belongs to.
    pub fn seq_of(self, unit: u64) -> u64 {
        unit / self.n()
    }

    /// The unit's index inside its segment.
    pub fn index_of(self, unit: u64) -> u8 {
        // < MAX_STRIPES, fits.
        (unit % self.n()) as u8
    }

    /// Every possible unit id of segment `seq` (a segment may use fewer, see [`Self::count_for`]).
    pub fn units(self, seq: u64) -> Range<u64> {
        let first = self.unit(seq, 0);
        first..first.saturating_add(self.n())
    }

    /// Number of units a segment of `n_chunks` chunk digests is split into (1 without chunk
    /// digests).
    pub fn count_for(self, n_chunks: Option<usize>) -> u8 {
        let Some(n) = n_chunks else { return 1 };
        let most = (n / MIN_CHUNKS_PER_STRIPE).clamp(1, usize::from(MAX_STRIPES));
        // Both ≤ MAX_STRIPES.
        (most as u8).min(self.0)
    }
}

/// Chunk indices of unit `j` of `k` over a segment of `n_chunks` chunks.
pub fn chunk_range(n_chunks: usize, j: u8, k: u8) -> Range<usize> {
    let (j, k) = (usize::from(j), usize::from(k.max(1)));
    (j * n_chunks / k)..((j + 1) * n_chunks / k)
}

/// Byte range of unit `j` of `k` of a segment of `size` bytes cut into `chunk_size` chunks.
pub fn byte_range(size: u64, chunk_size: u32, j: u8, k: u8) -> Range<u64> {
    let chunk = u64::from(chunk_size.max(1));
    let n = usize::try_from(size.div_ceil(chunk)).unwrap_or(usize::MAX);
    let r = chunk_range(n, j, k);
    let at = |c: usize| (c as u64).saturating_mul(chunk).min(size);
    at(r.start)..at(r.end)
}

/// The identifier peers exchange for unit `j` of `k` of a segment with digest `seg` split
/// into `chunk_size` chunks: the segment digest itself when the segment is one unit, else
/// `SHA-256(seg ‖ j ‖ k ‖ chunk_size as 4 big-endian bytes)`. It names the copy and its split,
/// so a peer holding another version of the segment, or the same segment split at another
/// chunk size (a publisher restarted with another `--chunk-size`), answers `Absent` instead of
/// sending bytes that fail our chunk digests and get it banned. The unit's bytes are verified
/// against the sidecar's chunk digests.
pub fn unit_digest(seg: &Digest, j: u8, k: u8, chunk_size: u32) -> Digest {
    if k <= 1 {
        return *seg;
    }
    let mut h = Sha256::new();
    h.update(seg.0);
    h.update([j, k]);
    h.update(chunk_size.to_be_bytes());
    Digest(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_ids_round_trip_and_one_stripe_is_the_identity() {
        let s = Stripes::new(4).unwrap();
        for seq in [0u64, 1, 7, 1_000_000] {
            for j in 0..4 {
                let u = s.unit(seq, j);
                assert_eq!((s.seq_of(u), s.index_of(u)), (seq, j));
                assert!(s.units(seq).contains(&u));
            }
        }
        assert_eq!(Stripes::WHOLE.unit(42, 0), 42);
        assert_eq!(Stripes::WHOLE.units(42), 42..43);
        assert!(Stripes::new(0).is_none() && Stripes::new(MAX_STRIPES + 1).is_none());
    }

    #[test]
    fn small_segments_get_fewer_units_and_unchunked_ones_one() {
        let s = Stripes::new(4).unwrap();
        assert_eq!(s.count_for(None), 1);
        assert_eq!(s.count_for(Some(1)), 1);
        assert_eq!(s.count_for(Some(3)), 1);
        assert_eq!(s.count_for(Some(5)), 2);
        assert_eq!(s.count_for(Some(8)), 4);
        assert_eq!(s.count_for(Some(4096)), 4);
        assert_eq!(Stripes::WHOLE.count_for(Some(100)), 1);
    }

    #[test]
    fn units_tile_the_segment_on_chunk_boundaries() {
        for n in 1..40usize {
            for k in 1..=4u8 {
                let mut next = 0;
                for j in 0..k {
                    let r = chunk_range(n, j, k);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
        // 10 chunks of 100 bytes, the last one short.
        let size = 950;
        let rs: Vec<_> = (0..3).map(|j| byte_range(size, 100, j, 3)).collect();
        assert_eq!(rs, vec![0..300, 300..600, 600..950]);
    }

    #[test]
    fn unit_digests_differ_per_unit_and_keep_the_segment_digest_for_one_unit() {
        let d = Digest([7; 32]);
        assert_eq!(unit_digest(&d, 0, 1, 16384), d);
        let a = unit_digest(&d, 0, 4, 16384);
        let b = unit_digest(&d, 1, 4, 16384);
        assert_ne!(a, d);
        assert_ne!(a, b);
        assert_ne!(unit_digest(&d, 0, 2, 16384), a);
        // Another chunk size is another split: another name.
        assert_ne!(unit_digest(&d, 0, 4, 65536), a);
        assert_eq!(unit_digest(&d, 0, 4, 16384), a);
    }
}
