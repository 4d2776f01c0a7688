//! Segment integrity: digest sidecars published by the origin, verification, and publishing.
//!
//! Contract (DESIGN.md): next to each media playlist `name.m3u8` the origin serves
//! `name.sha256.json` = `{"version":1,"segments":{"<uri as written>":"<hex sha256>"}}`, byte
//! range segments keyed `uri@offset-length`. No byte from a peer reaches a player, the cache
//! or another peer before its SHA-256 matches such a digest.
//!
//! Optional extension of version 1 (still `"version":1`): per-chunk digests,
//!
//! ```json
//! {"version":1,
//!  "segments":{"seg_00042.ts":"<hex sha256 of the whole segment>"},
//!  "chunk_size":65536,
//!  "chunks":{"seg_00042.ts":"<hex: SHA-256 of each chunk_size piece, concatenated>"}}
//! ```
//!
//! A segment of `L` bytes has `ceil(L / chunk_size)` chunks, the last one possibly shorter
//! (an empty segment: none, an empty string). `chunk_size` and `chunks` come together or not
//! at all; `chunk_size` is within [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`]; a segment has at
//! most [`MAX_CHUNKS_PER_SEGMENT`] chunks; every `chunks` key also has a whole-segment digest
//! in `segments` (a segment may have no chunk entry). Chunk digests let a chunk be verified,
//! and so forwarded, before the whole segment has arrived ([`ChunkDigests::verify`]); the
//! whole-segment digest still applies. The chunk count is only checked against a segment's
//! length when the length is known ([`ChunkDigests::fits`]).
//!
//! Note: [`Manifest`] denies unknown fields, so an agent built before this extension rejects
//! a sidecar that has chunk digests (and plays the stream from the origin only).

pub mod publish;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

/// Largest number of entries accepted in one sidecar (in `segments`, and so in `chunks`).
pub const MAX_ENTRIES: usize = 200_000;

/// Largest number of chunk digests accepted for one segment.
pub const MAX_CHUNKS_PER_SEGMENT: usize = 4096;

/// Smallest accepted `chunk_size` (4 KiB).
pub const MIN_CHUNK_SIZE: u32 = 4096;

/// Largest accepted `chunk_size` (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// The chunk size `publish-digests` uses for VOD and EVENT playlists unless told otherwise
/// (64 KiB): their sidecar lists every segment, so it must stay small.
pub const DEFAULT_CHUNK_SIZE: u32 = 65536;

/// The chunk size `publish-digests` uses for live playlists unless told otherwise (16 KiB). A
/// relay forwards a chunk once it has verified it, so each hop of a live segment across the
/// swarm costs one chunk time: in the simulator (10,000 viewers, 1.5× upload) 16 KiB chunks
/// take the offload from 96.7 % to 98.0 % against 64 KiB. The sidecar of a sliding window
/// stays small, and agents fetch only its newest segments' part (the latest sidecar).
pub const LIVE_CHUNK_SIZE: u32 = 16384;

/// Why a sidecar was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("digest sidecar is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// A version this agent does not understand.
    #[error("digest sidecar version {0} is not supported (expected 1)")]
    Version(u32),
    /// A digest that is not 64 hex characters.
    #[error("digest for `{0}` is not 64 hex characters")]
    BadDigest(String),
    /// Too many entries.
    #[error("digest sidecar has more than {MAX_ENTRIES} entries")]
    TooLarge,
    /// `chunk_size` without `chunks`, or `chunks` without `chunk_size`.
    #[error("digest sidecar has `{present}` without `{missing}`; they must appear together")]
    UnpairedChunkFields {
        /// The field that is present.
        present: &'static str,
        /// The field that is missing.
        missing: &'static str,
    },
    /// `chunk_size` outside [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`].
    #[error("digest sidecar chunk_size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes")]
    ChunkSize(u32),
    /// A `chunks` value that is not a whole number of 64-hex-character digests.
    #[error("chunk digests for `{0}` are not a concatenation of 64-hex-character digests")]
    BadChunks(String),
    /// A `chunks` value with more than [`MAX_CHUNKS_PER_SEGMENT`] digests.
    #[error("chunk digests for `{0}` list more than {MAX_CHUNKS_PER_SEGMENT} chunks")]
    TooManyChunks(String),
    /// A `chunks` key without a whole-segment digest in `segments`.
    #[error("chunk digests for `{0}` have no whole-segment digest in `segments`")]
    ChunksWithoutDigest(String),
}

/// The sidecar document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 1.
    pub version: u32,
    /// Digest (lower-case hex SHA-256) by segment key.
    pub segments: BTreeMap<String, String>,
    /// Bytes per chunk for `chunks`; present exactly when `chunks` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// Concatenated lower-case hex SHA-256 of each `chunk_size` piece, by segment key (a
    /// subset of the keys of `segments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<BTreeMap<String, String>>,
}

/// Chunk digests of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDigests {
    chunk_size: u32,
    hashes: Arc<[[u8; 32]]>,
}

impl ChunkDigests {
    /// Chunk digests from their parts. A `chunk_size` of 0 fits only an empty segment.
    pub fn new(chunk_size: u32, hashes: Vec<[u8; 32]>) -> Self {
        Self {
            chunk_size,
            hashes: hashes.into(),
        }
    }

    /// Bytes per chunk (the last chunk of a segment may be shorter).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn count(&self) -> usize {
        self.hashes.len()
    }

    /// True if a segment of `total_len` bytes has exactly `count()` chunks.
    pub fn fits(&self, total_len: u64) -> bool {
        let expected = match self.chunk_size {
            0 if total_len == 0 => 0,
            0 => return false,
            cs => total_len.div_ceil(u64::from(cs)),
        };
        u64::try_from(self.hashes.len()).is_ok_and(|n| n == expected)
    }

    /// Byte range of chunk `index` in a segment of `total_len` bytes (None if out of range or
    /// !fits).
    pub fn range(&self, index: usize, total_len: u64) -> Option<Range<usize>> {
        if index >= self.hashes.len() || !self.fits(total_len) {
            return None;
        }
        let cs = u64::from(self.chunk_size);
        let start = u64::try_from(index).ok()?.checked_mul(cs)?;
        let end = start.checked_add(cs)?.min(total_len);
        Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }

    /// True if `bytes` is chunk `index` of a segment of `total_len` bytes (its length must
    /// equal `range(index, total_len).len()` and its SHA-256 must match).
    pub fn verify(&self, index: usize, total_len: u64, bytes: &[u8]) -> bool {
        match self.range(index, total_len) {
            Some(r) if r.len() == bytes.len() => verify(bytes, &self.hashes[index]),
            _ => false,
        }
    }

    /// The digests of chunks `range` (a unit of a striped segment; see
    /// [`crate::core::stripes`]): they verify those chunks' bytes as a body of their own.
    /// `None` if the range lies outside the list or is empty.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        let hashes = self.hashes.get(range)?;
        (!hashes.is_empty()).then(|| Self::new(self.chunk_size, hashes.to_vec()))
    }

    /// True if `body` is exactly these chunks: its length fits the list and every chunk
    /// matches its digest.
    pub fn verify_all(&self, body: &[u8]) -> bool {
        let total = body.len() as u64;
        self.fits(total)
            && (0..self.count()).all(|i| {
                self.range(i, total)
                    .is_some_and(|r| self.verify(i, total, &body[r]))
            })
    }

    /// Computes the chunk digests of a whole body (used by publishers and tests).
    ///
    /// # Panics
    /// If `chunk_size` is 0.
    pub fn of(body: &[u8], chunk_size: u32) -> Self {
        assert!(chunk_size > 0, "chunk_size must be positive");
        let step = usize::try_from(chunk_size).unwrap_or(usize::MAX);
        Self::new(chunk_size, body.chunks(step).map(sha256).collect())
    }

    /// The digests as concatenated lower-case hex, as in a sidecar's `chunks` value.
    pub(crate) fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.hashes.len() * 64);
        for h in self.hashes.iter() {
            s.push_str(&hex::encode(h));
        }
        s
    }
}

/// A verified manifest: digests decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    map: HashMap<String, [u8; 32]>,
    chunks: HashMap<String, ChunkDigests>,
}

impl Digests {
    /// Parses and checks a sidecar body.
    pub fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.version != 1 {
            return Err(ManifestError::Version(m.version));
        }
        if m.segments.len() > MAX_ENTRIES
            || m.chunks.as_ref().is_some_and(|c| c.len() > MAX_ENTRIES)
        {
            return Err(ManifestError::TooLarge);
        }
        let (chunk_size, chunk_map) = match (m.chunk_size, m.chunks) {
            (None, None) => (0, BTreeMap::new()),
            (Some(_), None) => {
                return Err(ManifestError::UnpairedChunkFields {
                    present: "chunk_size",
                    missing: "chunks",
                });
            }
            (None, Some(_)) => {
                return Err(ManifestError::UnpairedChunkFields {
                    present: "chunks",
                    missing: "chunk_size",
                });
            }
            (Some(cs), Some(c)) => {
                if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&cs) {
                    return Err(ManifestError::ChunkSize(cs));
                }
                (cs, c)
            }
        };
        let mut map = HashMap::with_capacity(m.segments.len());
        for (k, v) in m.segments {
            let mut d = [0u8; 32];
            hex::decode_to_slice(&v, &mut d).map_err(|_| ManifestError::BadDigest(k.clone()))?;
            map.insert(k, d);
        }
        let mut chunks = HashMap::with_capacity(chunk_map.len());
        for (k, v) in chunk_map {
            if !map.contains_key(&k) {
                return Err(ManifestError::ChunksWithoutDigest(k));
            }
            if v.len() % 64 != 0 {
                return Err(ManifestError::BadChunks(k));
            }
            if v.len() / 64 > MAX_CHUNKS_PER_SEGMENT {
                return Err(ManifestError::TooManyChunks(k));
            }
            let mut hashes = Vec::with_capacity(v.len() / 64);
            for piece in v.as_bytes().chunks_exact(64) {
                let mut d = [0u8; 32];
                if hex::decode_to_slice(piece, &mut d).is_err() {
                    return Err(ManifestError::BadChunks(k));
                }
                hashes.push(d);
            }
            chunks.insert(k, ChunkDigests::new(chunk_size, hashes));
        }
        Ok(Self { map, chunks })
    }

    /// The digest for a segment key (`uri` or `uri@offset-length`).
    pub fn get(&self, key: &str) -> Option<[u8; 32]> {
        self.map.get(key).copied()
    }

    /// The chunk digests for a segment key, if the sidecar has them (a cheap clone). Check
    /// [`ChunkDigests::fits`] against the segment's length before relying on them.
    pub fn chunks(&self, key: &str) -> Option<ChunkDigests> {
        self.chunks.get(key).cloned()
    }

    /// These digests updated with `newer` (its entries win), keeping only the keys `keep`
    /// accepts (a live window moved on: what it no longer lists is dropped, so the set stays
    /// bounded by the playlist).
    pub fn merged(&self, newer: &Digests, keep: impl Fn(&str) -> bool) -> Digests {
        let mut out = Digests::default();
        for (k, d) in self.map.iter().chain(&newer.map) {
            if keep(k) {
                out.map.insert(k.clone(), *d);
            }
        }
        for (k, c) in &self.chunks {
            // Chunk digests of an entry that `newer` replaced belong to the old copy.
            if keep(k) && newer.map.get(k).is_none_or(|d| self.map.get(k) == Some(d)) {
                out.chunks.insert(k.clone(), c.clone());
            }
        }
        for (k, c) in &newer.chunks {
            if keep(k) {
                out.chunks.insert(k.clone(), c.clone());
            }
        }
        out
    }

    /// Number of digests.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Whether `bytes` hash to `expected`.
pub fn verify(bytes: &[u8], expected: &[u8; 32]) -> bool {
    // Not secret material: a plain comparison is fine.
    &sha256(bytes) == expected
}

/// The sidecar file name for a playlist file name: `index.m3u8` → `index.sha256.json`.
pub fn sidecar_name(playlist_name: &str) -> String {
    let stem = playlist_name
        .strip_suffix(".m3u8")
        .or_else(|| playlist_name.strip_suffix(".m3u"))
        .unwrap_or(playlist_name);
    format!("{stem}.sha256.json")
}

/// Segments in a *latest* sidecar: the newest this many of the playlist.
pub const LATEST_SEGMENTS: usize = 2;

/// The latest sidecar's file name for a playlist file name: `index.m3u8` →
/// `index.sha256.latest.json`. Same format as the full sidecar, for the newest
/// [`LATEST_SEGMENTS`] segments only: an agent that already holds the window's digests fetches
/// it for each new segment instead of the whole window's. (The name cannot be another
/// playlist's full sidecar: those end in `.sha256.json`.)
pub fn latest_sidecar_name(playlist_name: &str) -> String {
    let full = sidecar_name(playlist_name);
    let stem = full.strip_suffix(".json").unwrap_or(&full);
    format!("{stem}.latest.json")
}

/// The sidecar URL for a media playlist URL (query dropped: digests are per rendition).
pub fn sidecar_url(playlist: &Url) -> Option<Url> {
    sidecar_url_named(playlist, sidecar_name)
}

/// The latest sidecar's URL for a media playlist URL (see [`latest_sidecar_name`]).
pub fn latest_sidecar_url(playlist: &Url) -> Option<Url> {
    sidecar_url_named(playlist, latest_sidecar_name)
}

fn sidecar_url_named(playlist: &Url, name_for: fn(&str) -> String) -> Option<Url> {
    let name = playlist.path_segments()?.next_back()?.to_string();
    if name.is_empty() {
        return None;
    }
    let mut u = playlist.join(&name_for(&name)).ok()?;
    u.set_query(None);
    u.set_fragment(None);
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_sidecar() {
        let d = sha256(b"hello");
        let body = format!(
            r#"{{"version":1,"segments":{{"seg1.ts":"{}","media.ts@0-100":"{}"}}}}"#,
            hex::encode(d),
            hex::encode(d)
        );
        let m = Digests::parse(body.as_bytes()).expect("valid");
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("seg1.ts"), Some(d));
        assert!(verify(b"hello", &d));
        assert!(!verify(b"hellO", &d));
    }

    #[test]
    fn rejects_bad_sidecars() {
        assert!(matches!(
            Digests::parse(b"not json"),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Digests::parse(br#"{"version":2,"segments":{}}"#),
            Err(ManifestError::Version(2))
        ));
        assert!(matches!(
            Digests::parse(br#"{"version":1,"segments":{"a.ts":"zz"}}"#),
            Err(ManifestError::BadDigest(_))
        ));
        assert!(matches!(
            Digests::parse(br#"{"version":1,"segments":{},"x":1}"#),
            Err(ManifestError::Json(_))
        ));
    }

    fn chunked_sidecar(chunk_size: u32, key: &str, body: &[u8]) -> String {
        format!(
            r#"{{"version":1,"segments":{{"{key}":"{}"}},"chunk_size":{chunk_size},"chunks":{{"{key}":"{}"}}}}"#,
            hex::encode(sha256(body)),
            ChunkDigests::of(body, chunk_size).to_hex()
        )
    }

    #[test]
    fn chunked_sidecar_round_trip() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let text = chunked_sidecar(4096, "seg_00042.ts", &body);
        let m: Manifest = serde_json::from_str(&text).expect("manifest");
        assert_eq!(m.chunk_size, Some(4096));
        assert_eq!(serde_json::to_string(&m).expect("json"), text);
        let d = Digests::parse(text.as_bytes()).expect("valid");
        assert_eq!(d.get("seg_00042.ts"), Some(sha256(&body)));
        let c = d.chunks("seg_00042.ts").expect("chunks");
        assert_eq!(c, ChunkDigests::of(&body, 4096));
        assert_eq!(c.chunk_size(), 4096);
        assert_eq!(c.count(), 3);
        assert!(c.fits(body.len() as u64));
        for i in 0..3 {
            let r = c.range(i, body.len() as u64).expect("range");
            assert!(c.verify(i, body.len() as u64, &body[r]));
        }
        assert!(d.chunks("other.ts").is_none());
        // Without chunk fields the serialised form is the plain v1 one.
        let plain = Manifest {
            version: 1,
            segments: m.segments.clone(),
            chunk_size: None,
            chunks: None,
        };
        let text = serde_json::to_string(&plain).expect("json");
        assert!(!text.contains("chunk"), "{text}");
    }

    #[test]
    fn v1_sidecar_without_chunks_parses() {
        let d = sha256(b"hello");
        let body = format!(
            r#"{{"version":1,"segments":{{"a.ts":"{}"}}}}"#,
            hex::encode(d)
        );
        let m = Digests::parse(body.as_bytes()).expect("valid");
        assert_eq!(m.get("a.ts"), Some(d));
        assert!(m.chunks("a.ts").is_none());
    }

    #[test]
    fn chunks_are_optional_per_segment_and_empty_for_empty_segments() {
        let a = hex::encode(sha256(b"a"));
        let e = hex::encode(sha256(b""));
        let body = format!(
            r#"{{"version":1,"segments":{{"a.ts":"{a}","e.ts":"{e}"}},"chunk_size":65536,"chunks":{{"e.ts":""}}}}"#
        );
        let m = Digests::parse(body.as_bytes()).expect("valid");
        assert!(m.chunks("a.ts").is_none());
        let c = m.chunks("e.ts").expect("chunks");
        assert_eq!(c.count(), 0);
        assert!(c.fits(0));
        assert!(!c.fits(1));
        // Upper-case hex is accepted, as for whole-segment digests.
        let body = format!(
            r#"{{"version":1,"segments":{{"a.ts":"{a}"}},"chunk_size":4096,"chunks":{{"a.ts":"{}"}}}}"#,
            a.to_uppercase()
        );
        let m = Digests::parse(body.as_bytes()).expect("valid");
        assert!(m.chunks("a.ts").expect("chunks").verify(0, 1, b"a"));
    }

    #[test]
    fn rejects_bad_chunk_fields() {
        let a = hex::encode(sha256(b"a"));
        let parse = |extra: &str| {
            Digests::parse(
                format!(r#"{{"version":1,"segments":{{"a.ts":"{a}"}}{extra}}}"#).as_bytes(),
            )
        };
        assert_eq!(
            parse(r#","chunk_size":65536"#),
            Err(ManifestError::UnpairedChunkFields {
                present: "chunk_size",
                missing: "chunks"
            })
        );
        assert_eq!(
            parse(r#","chunks":{}"#),
            Err(ManifestError::UnpairedChunkFields {
                present: "chunks",
                missing: "chunk_size"
            })
        );
        for bad in [0, 1, 4095, 16 * 1024 * 1024 + 1, u32::MAX] {
            assert_eq!(
                parse(&format!(r#","chunk_size":{bad},"chunks":{{}}"#)),
                Err(ManifestError::ChunkSize(bad))
            );
        }
        for good in [4096, 16 * 1024 * 1024] {
            assert!(parse(&format!(r#","chunk_size":{good},"chunks":{{}}"#)).is_ok());
        }
        assert!(matches!(
            parse(r#","chunk_size":-1,"chunks":{}"#),
            Err(ManifestError::Json(_))
        ));
        // Not a multiple of 64 hex characters.
        assert_eq!(
            parse(&format!(r#","chunk_size":4096,"chunks":{{"a.ts":"{a}0"}}"#)),
            Err(ManifestError::BadChunks("a.ts".into()))
        );
        // Right length, not hex.
        let not_hex = format!("{a}{}", "g".repeat(64));
        assert_eq!(
            parse(&format!(
                r#","chunk_size":4096,"chunks":{{"a.ts":"{not_hex}"}}"#
            )),
            Err(ManifestError::BadChunks("a.ts".into()))
        );
        // Too many chunks for one segment; exactly the limit is fine.
        let limit = a.repeat(MAX_CHUNKS_PER_SEGMENT);
        let m = parse(&format!(
            r#","chunk_size":4096,"chunks":{{"a.ts":"{limit}"}}"#
        ))
        .expect("limit");
        assert_eq!(
            m.chunks("a.ts").expect("chunks").count(),
            MAX_CHUNKS_PER_SEGMENT
        );
        assert_eq!(
            parse(&format!(
                r#","chunk_size":4096,"chunks":{{"a.ts":"{limit}{a}"}}"#
            )),
            Err(ManifestError::TooManyChunks("a.ts".into()))
        );
        // Chunks for a key without a whole-segment digest.
        assert_eq!(
            parse(&format!(r#","chunk_size":4096,"chunks":{{"b.ts":"{a}"}}"#)),
            Err(ManifestError::ChunksWithoutDigest("b.ts".into()))
        );
        // Unknown fields are still refused; chunks must be a map of strings.
        assert!(matches!(
            parse(r#","chunk_size":4096,"chunks":{"a.ts":1}"#),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            parse(r#","chunk_size":4096,"chunks":{},"chunk_count":1"#),
            Err(ManifestError::Json(_))
        ));
        // Every message names the problem.
        for e in [
            ManifestError::UnpairedChunkFields {
                present: "chunks",
                missing: "chunk_size",
            },
            ManifestError::ChunkSize(1),
            ManifestError::BadChunks("a.ts".into()),
            ManifestError::TooManyChunks("a.ts".into()),
            ManifestError::ChunksWithoutDigest("a.ts".into()),
        ] {
            assert!(e.to_string().contains("chunk"), "{e}");
        }
    }

    #[test]
    fn rejects_too_many_chunk_entries() {
        let mut m = Manifest {
            version: 1,
            segments: BTreeMap::new(),
            chunk_size: Some(4096),
            chunks: Some(BTreeMap::new()),
        };
        let c = m.chunks.as_mut().expect("chunks");
        for i in 0..=MAX_ENTRIES {
            c.insert(format!("s{i}"), String::new());
        }
        let text = serde_json::to_vec(&m).expect("json");
        assert_eq!(Digests::parse(&text), Err(ManifestError::TooLarge));
    }

    #[test]
    fn chunk_ranges_exact_multiple() {
        let body = vec![7u8; 8192];
        let c = ChunkDigests::of(&body, 4096);
        assert_eq!(c.count(), 2);
        assert!(c.fits(8192));
        assert!(!c.fits(8191 - 4096));
        assert!(!c.fits(8193));
        assert_eq!(c.range(0, 8192), Some(0..4096));
        assert_eq!(c.range(1, 8192), Some(4096..8192));
        assert_eq!(c.range(2, 8192), None);
        assert_eq!(c.range(0, 8193), None, "does not fit");
        assert!(c.verify(1, 8192, &body[4096..]));
        assert!(!c.verify(2, 8192, &body[4096..]));
    }

    #[test]
    fn chunk_ranges_short_last_chunk() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 241) as u8).collect();
        let c = ChunkDigests::of(&body, 4096);
        assert_eq!(c.count(), 3);
        assert!(c.fits(10_000));
        assert!(c.fits(8193), "same chunk count");
        assert!(!c.fits(8192));
        assert!(!c.fits(12_289));
        assert_eq!(c.range(2, 10_000), Some(8192..10_000));
        assert!(c.verify(2, 10_000, &body[8192..]));
        // Wrong length: the full-size piece, or one byte short.
        assert!(!c.verify(2, 10_000, &body[8192..9_999]));
        let mut padded = body[8192..].to_vec();
        padded.push(0);
        assert!(!c.verify(2, 10_000, &padded));
        // Same bytes, total length that implies a different last-chunk length.
        assert!(!c.verify(2, 10_001, &body[8192..]));
        // A flipped byte.
        let mut flipped = body[4096..8192].to_vec();
        flipped[100] ^= 1;
        assert!(!c.verify(1, 10_000, &flipped));
        assert!(c.verify(1, 10_000, &body[4096..8192]));
        // A chunk checked at the wrong index.
        assert!(!c.verify(0, 10_000, &body[4096..8192]));
    }

    #[test]
    fn chunk_ranges_tiny_and_empty_segments() {
        let c = ChunkDigests::of(b"x", 65536);
        assert_eq!(c.count(), 1);
        assert!(c.fits(1));
        assert!(!c.fits(0));
        assert_eq!(c.range(0, 1), Some(0..1));
        assert!(c.verify(0, 1, b"x"));
        assert!(!c.verify(0, 1, b"y"));
        assert!(!c.verify(0, 1, b""));
        assert!(!c.verify(0, 2, b"x"));

        let e = ChunkDigests::of(b"", 65536);
        assert_eq!(e.count(), 0);
        assert!(e.fits(0));
        assert!(!e.fits(1));
        assert_eq!(e.range(0, 0), None);
        assert!(!e.verify(0, 0, b""));

        let zero = ChunkDigests::new(0, Vec::new());
        assert!(zero.fits(0));
        assert!(!zero.fits(1));
        let zero = ChunkDigests::new(0, vec![sha256(b"x")]);
        assert!(!zero.fits(1));
        assert!(!zero.verify(0, 1, b"x"));
    }

    #[test]
    fn chunk_digests_match_manual_hashing() {
        let body = b"abcdefghij";
        let c = ChunkDigests::of(body, 4);
        assert_eq!(
            c,
            ChunkDigests::new(4, vec![sha256(b"abcd"), sha256(b"efgh"), sha256(b"ij")])
        );
        assert_eq!(
            c.to_hex(),
            format!(
                "{}{}{}",
                hex::encode(sha256(b"abcd")),
                hex::encode(sha256(b"efgh")),
                hex::encode(sha256(b"ij"))
            )
        );
        // Clones share the digests.
        let d = c.clone();
        assert!(Arc::ptr_eq(&c.hashes, &d.hashes));
    }

    #[test]
    fn sidecar_names() {
        assert_eq!(sidecar_name("index.m3u8"), "index.sha256.json");
        assert_eq!(sidecar_name("a.b.m3u8"), "a.b.sha256.json");
        let u = Url::parse("https://cdn.test/live/720p/index.m3u8?token=1").expect("url");
        assert_eq!(
            sidecar_url(&u).expect("sidecar").as_str(),
            "https://cdn.test/live/720p/index.sha256.json"
        );
        assert_eq!(
            latest_sidecar_name("index.m3u8"),
            "index.sha256.latest.json"
        );
        assert_eq!(
            latest_sidecar_url(&u).expect("latest").as_str(),
            "https://cdn.test/live/720p/index.sha256.latest.json"
        );
        // A playlist whose name looks like a latest sidecar's stem still gets its own name.
        assert_ne!(
            sidecar_name("index.sha256.latest.m3u8"),
            latest_sidecar_name("index.m3u8")
        );
    }

    fn digests_of(entries: &[(&str, &[u8])]) -> Digests {
        let m = Manifest {
            version: 1,
            segments: entries
                .iter()
                .map(|(k, b)| (k.to_string(), hex::encode(sha256(b))))
                .collect(),
            chunk_size: Some(4096),
            chunks: Some(
                entries
                    .iter()
                    .map(|(k, b)| (k.to_string(), ChunkDigests::of(b, 4096).to_hex()))
                    .collect(),
            ),
        };
        Digests::parse(&serde_json::to_vec(&m).expect("json")).expect("parse")
    }

    #[test]
    fn merged_digests_take_the_newer_entries_and_drop_what_the_window_left() {
        let held = digests_of(&[("a.ts", b"A"), ("b.ts", b"B"), ("c.ts", b"C")]);
        // The latest sidecar: c (re-published with other bytes) and the new d.
        let newer = digests_of(&[("c.ts", b"C2"), ("d.ts", b"D")]);
        let m = held.merged(&newer, |k| k != "a.ts");
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("a.ts"), None, "outside the window");
        assert_eq!(m.get("b.ts"), Some(sha256(b"B")));
        assert_eq!(m.get("c.ts"), Some(sha256(b"C2")), "the newer sidecar wins");
        assert_eq!(m.get("d.ts"), Some(sha256(b"D")));
        assert!(m.chunks("c.ts").expect("chunks").verify_all(b"C2"));
        assert!(!m.chunks("c.ts").expect("chunks").verify_all(b"C"));
        assert!(m.chunks("b.ts").expect("chunks").verify_all(b"B"));
        assert!(m.chunks("a.ts").is_none());
        // A newer sidecar without chunk digests for a replaced entry: the old chunks go too.
        let plain = Digests::parse(
            format!(
                r#"{{"version":1,"segments":{{"b.ts":"{}"}}}}"#,
                hex::encode(sha256(b"B2"))
            )
            .as_bytes(),
        )
        .expect("parse");
        let m = m.merged(&plain, |_| true);
        assert_eq!(m.get("b.ts"), Some(sha256(b"B2")));
        assert!(m.chunks("b.ts").is_none());
        assert!(m.chunks("c.ts").is_some());
    }
}
