//! Cut-through: a segment we are still receiving from a peer, kept as its verified prefix and
//! shared with the uploads that serve it to other peers before it is whole.
//!
//! Only chunks whose SHA-256 matches the sidecar's chunk digest enter the prefix, in order, so
//! an upload can never send an unverified byte. The prefix is published through a
//! [`tokio::sync::watch`] channel; an upload task sends what is there, waits for more, and ends
//! when the whole segment went out or the partial copy was given up (sender dropped short).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::integrity::ChunkDigests;

/// The verified prefix of a segment, as uploads see it.
#[derive(Clone, Debug, Default)]
pub struct Verified {
    /// Verified chunks, in order (each `chunk_size` bytes except a short last one).
    pub chunks: Arc<Vec<Bytes>>,
    /// Bytes in `chunks`.
    pub len: usize,
    /// Length of the whole segment.
    pub total: usize,
}

impl Verified {
    /// True once every chunk is verified.
    pub fn is_whole(&self) -> bool {
        self.len == self.total
    }

    /// Up to `max` bytes starting at byte `offset` of the verified prefix, without copying
    /// (never crosses a chunk boundary). `None` when `offset` is not below `len`.
    pub fn slice(&self, offset: usize, max: usize, chunk_size: usize) -> Option<Bytes> {
        if offset >= self.len || chunk_size == 0 || max == 0 {
            return None;
        }
        let chunk = self.chunks.get(offset / chunk_size)?;
        let start = offset % chunk_size;
        let end = (start + max).min(chunk.len());
        (start < end).then(|| chunk.slice(start..end))
    }
}

/// A chunk of a peer transfer did not match its digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMismatch {
    /// Index of the bad chunk.
    pub index: usize,
}

/// One segment being received with chunk digests.
#[derive(Debug)]
pub struct PartialSegment {
    digests: ChunkDigests,
    total: usize,
    chunks: Vec<Bytes>,
    len: usize,
    tx: watch::Sender<Verified>,
}

impl PartialSegment {
    /// A partial copy of a segment of `total` bytes, or `None` if the chunk list does not fit
    /// that length (then the announced length is wrong or the sidecar is stale).
    pub fn new(digests: ChunkDigests, total: u64) -> Option<Self> {
        if !digests.fits(total) || total == 0 {
            return None;
        }
        let total = usize::try_from(total).ok()?;
        let (tx, _) = watch::channel(Verified {
            chunks: Arc::new(Vec::new()),
            len: 0,
            total,
        });
        Some(PartialSegment {
            digests,
            total,
            chunks: Vec::new(),
            len: 0,
            tx,
        })
    }

    /// Length of the whole segment.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Verified bytes so far.
    pub fn verified_len(&self) -> usize {
        self.len
    }

    /// The whole segment from the verified prefix up to `from` and `tail` (bytes `from..` from
    /// the origin), once the prefix reaches `from`. `None` while it does not, or when the tail
    /// does not end the segment exactly. The caller still checks the whole-segment digest.
    pub fn join_tail(&self, from: usize, tail: &[u8]) -> Option<Vec<u8>> {
        if self.len < from || from.checked_add(tail.len()) != Some(self.total) {
            return None;
        }
        let mut body = Vec::with_capacity(self.total);
        for c in &self.chunks {
            let take = (from - body.len()).min(c.len());
            body.extend_from_slice(&c[..take]);
            if body.len() == from {
                break;
            }
        }
        body.extend_from_slice(tail);
        Some(body)
    }

    /// Chunk size of the digests.
    pub fn chunk_size(&self) -> usize {
        self.digests.chunk_size() as usize
    }

    /// Verifies the whole chunks of `prefix` (bytes from offset 0 of the segment) beyond the
    /// verified prefix and appends those that match. Returns the bytes added; a chunk that does
    /// not match stops it with the chunk's index (nothing of that chunk is kept).
    pub fn extend_from(&mut self, prefix: &[u8]) -> Result<usize, ChunkMismatch> {
        let before = self.len;
        let total = self.total as u64;
        while let Some(range) = self.digests.range(self.chunks.len(), total) {
            if range.end > prefix.len() {
                break;
            }
            let index = self.chunks.len();
            let bytes = &prefix[range.clone()];
            if !self.digests.verify(index, total, bytes) {
                return Err(ChunkMismatch { index });
            }
            self.chunks.push(Bytes::copy_from_slice(bytes));
            self.len = range.end;
        }
        if self.len > before {
            self.tx.send_replace(Verified {
                chunks: Arc::new(self.chunks.clone()),
                len: self.len,
                total: self.total,
            });
        }
        Ok(self.len - before)
    }

    /// A receiver of the verified prefix for an upload.
    pub fn subscribe(&self) -> watch::Receiver<Verified> {
        self.tx.subscribe()
    }
}

/// The bytes of an origin fetch so far, in order, as its body tap reports them (see
/// [`crate::origin::BodyTap`]): the source a seed's partial copy is verified from, so a unit
/// it fetches from the origin is shared before it is whole. A retried attempt reports from
/// offset 0 again; only what lies past the prefix is kept. A lost frame leaves a gap, and
/// nothing past a gap is kept (the whole body still completes the copy when it arrives).
#[derive(Debug, Default)]
pub struct OriginPrefix {
    buf: BytesMut,
}

impl OriginPrefix {
    /// Appends what `frame`, at `offset` in the body, adds past the prefix, never beyond
    /// `limit` bytes in all. True if the prefix grew.
    pub fn feed(&mut self, offset: u64, frame: &[u8], limit: usize) -> bool {
        let len = self.buf.len();
        let Ok(offset) = usize::try_from(offset) else {
            return false;
        };
        let end = offset.saturating_add(frame.len()).min(limit);
        if offset > len || end <= len {
            return false;
        }
        self.buf
            .extend_from_slice(&frame[len - offset..end - offset]);
        true
    }

    /// The bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn verifies_whole_chunks_in_order_and_publishes_them() {
        let b = body(10_000);
        let d = ChunkDigests::of(&b, 4096);
        let mut p = PartialSegment::new(d, b.len() as u64).expect("fits");
        let mut rx = p.subscribe();
        // Less than a chunk: nothing yet.
        assert_eq!(p.extend_from(&b[..4000]), Ok(0));
        assert!(!rx.has_changed().unwrap());
        // One and a half chunks: one chunk.
        assert_eq!(p.extend_from(&b[..6000]), Ok(4096));
        assert!(rx.has_changed().unwrap());
        let v = rx.borrow_and_update().clone();
        assert_eq!((v.len, v.total, v.chunks.len()), (4096, 10_000, 1));
        assert_eq!(&v.chunks[0][..], &b[..4096]);
        // The rest, including the short last chunk.
        assert_eq!(p.extend_from(&b), Ok(10_000 - 4096));
        let v = rx.borrow_and_update().clone();
        assert!(v.is_whole());
        let mut joined = Vec::new();
        let mut off = 0;
        while let Some(s) = v.slice(off, 1500, 4096) {
            off += s.len();
            joined.extend_from_slice(&s);
        }
        assert_eq!(joined, b);
        // Feeding the same bytes again adds nothing.
        assert_eq!(p.extend_from(&b), Ok(0));
    }

    #[test]
    fn a_bad_chunk_is_refused_and_nothing_of_it_is_kept() {
        let b = body(9000);
        let d = ChunkDigests::of(&b, 4096);
        let mut p = PartialSegment::new(d, b.len() as u64).expect("fits");
        let mut bad = b.clone();
        bad[5000] ^= 1;
        assert_eq!(p.extend_from(&bad), Err(ChunkMismatch { index: 1 }));
        assert_eq!(p.verified_len(), 4096);
        // Good bytes from another source continue where the verified prefix ends.
        assert_eq!(p.extend_from(&b), Ok(9000 - 4096));
    }

    #[test]
    fn an_origin_tail_joins_the_verified_head_only_when_it_reaches_the_split() {
        let b = body(10_000);
        let d = ChunkDigests::of(&b, 4096);
        let mut p = PartialSegment::new(d, b.len() as u64).expect("fits");
        let tail = &b[8192..];
        // The head has one verified chunk: not enough for a split at 8192.
        assert_eq!(p.extend_from(&b[..5000]), Ok(4096));
        assert_eq!(p.join_tail(8192, tail), None);
        // Two chunks (and more bytes than needed): the join is the segment.
        assert_eq!(p.extend_from(&b[..9000]), Ok(4096));
        assert_eq!(p.join_tail(8192, tail).as_deref(), Some(&b[..]));
        // A split inside the verified prefix works too (the head's extra bytes are dropped).
        assert_eq!(p.join_tail(4096, &b[4096..]).as_deref(), Some(&b[..]));
        // A tail that does not end the segment exactly is refused.
        assert_eq!(p.join_tail(8192, &b[8192..9999]), None);
        assert_eq!(p.join_tail(8192, &b[8000..]), None);
    }

    #[test]
    fn an_origin_prefix_keeps_bytes_in_order_across_retries_and_gaps() {
        let body = body(100);
        let mut p = OriginPrefix::default();
        assert!(p.feed(0, &body[..30], 100));
        assert!(p.feed(30, &body[30..50], 100));
        // A retry starts again at 0: only what lies past the prefix is new.
        assert!(!p.feed(0, &body[..40], 100));
        assert!(p.feed(0, &body[..60], 100));
        assert_eq!(p.bytes(), &body[..60]);
        // A lost frame leaves a gap: nothing past it is kept.
        assert!(!p.feed(70, &body[70..80], 100));
        assert_eq!(p.bytes().len(), 60);
        // Never past the limit (a body longer than the unit announced).
        assert!(p.feed(60, &body[60..100], 90));
        assert_eq!(p.bytes(), &body[..90]);
        assert!(!p.feed(90, &body[90..100], 90));
        assert!(!p.feed(u64::MAX, &body[..1], 100));
    }

    #[test]
    fn a_length_that_does_not_fit_the_chunk_list_is_refused() {
        let b = body(9000);
        let d = ChunkDigests::of(&b, 4096);
        assert!(PartialSegment::new(d.clone(), 20_000).is_none());
        assert!(PartialSegment::new(d, 0).is_none());
    }

    #[test]
    fn slices_never_cross_chunks_or_the_verified_end() {
        let b = body(10_000);
        let d = ChunkDigests::of(&b, 4096);
        let mut p = PartialSegment::new(d, b.len() as u64).expect("fits");
        p.extend_from(&b[..8192]).unwrap();
        let v = p.subscribe().borrow().clone();
        assert_eq!(v.slice(4000, 1000, 4096).map(|s| s.len()), Some(96));
        assert_eq!(v.slice(8191, 10, 4096).map(|s| s.len()), Some(1));
        assert!(v.slice(8192, 10, 4096).is_none());
    }
}
