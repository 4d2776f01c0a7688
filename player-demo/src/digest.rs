//! The segment digest sidecar of DESIGN.md "Segment integrity", as far as the test toolkit
//! needs it: `index.m3u8` → `index.sha256.json` holding
//! `{"version":1,"segments":{"<uri as written in the playlist>":"<hex sha256>"}}`, byte-range
//! segments keyed `uri@offset-length`.
//!
//! Optional extension (still version 1): `"chunk_size":16384` and `"chunks":{"<key>":"<hex>"}`,
//! the hex being the 32-byte SHA-256 of each consecutive `chunk_size` piece of the segment,
//! concatenated (the last piece may be shorter; an empty segment has none). The two fields come
//! together or not at all, `chunk_size` is within [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`], a
//! segment has at most [`MAX_CHUNKS_PER_SEGMENT`] chunks and every `chunks` key also has a
//! whole-segment digest. [`DigestManifest::insert_body`] fills in both kinds of digest.
//!
//! The real publisher is `hivecast-agent publish-digests`; [`DigestManifest::write_atomic`]
//! exists only for tests and demos that run without the agent binary.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The chunk size this toolkit's manifests use (16 KiB, as `publish-digests` uses for live
/// playlists).
pub const CHUNK_SIZE: u32 = 16384;

/// Smallest accepted `chunk_size` (4 KiB).
pub const MIN_CHUNK_SIZE: u32 = 4096;

/// Largest accepted `chunk_size` (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Largest number of chunk digests accepted for one segment.
pub const MAX_CHUNKS_PER_SEGMENT: usize = 4096;

/// Errors reading a digest sidecar.
#[derive(Debug, Error)]
pub enum DigestError {
    /// The JSON is malformed or has the wrong shape.
    #[error("malformed digest sidecar: {0}")]
    Json(#[from] serde_json::Error),
    /// `version` is not 1.
    #[error("unsupported digest sidecar version {0}")]
    Version(u32),
    /// A digest is not 64 lowercase hex characters.
    #[error("digest for {uri:?} is not a hex SHA-256")]
    BadDigest {
        /// The key whose value is bad.
        uri: String,
    },
    /// `chunk_size` without `chunks`, or `chunks` without `chunk_size`.
    #[error("digest sidecar has {present:?} without {missing:?}; they must appear together")]
    UnpairedChunkFields {
        /// The field that is present.
        present: &'static str,
        /// The field that is missing.
        missing: &'static str,
    },
    /// `chunk_size` outside [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`].
    #[error("chunk_size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes")]
    ChunkSize(u32),
    /// A `chunks` value that is not a concatenation of 64-lowercase-hex-character digests.
    #[error("chunk digests for {uri:?} are not concatenated hex SHA-256s")]
    BadChunks {
        /// The key whose value is bad.
        uri: String,
    },
    /// A `chunks` value with more than [`MAX_CHUNKS_PER_SEGMENT`] digests.
    #[error("chunk digests for {uri:?} list more than {MAX_CHUNKS_PER_SEGMENT} chunks")]
    TooManyChunks {
        /// The key whose value is too long.
        uri: String,
    },
    /// A `chunks` key without a whole-segment digest in `segments`.
    #[error("chunk digests for {uri:?} have no whole-segment digest in \"segments\"")]
    ChunksWithoutDigest {
        /// The key without a whole-segment digest.
        uri: String,
    },
}

/// The sidecar document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DigestManifest {
    /// Always 1.
    pub version: u32,
    /// URI as written in the playlist (or `uri@offset-length`) → lowercase hex SHA-256.
    pub segments: BTreeMap<String, String>,
    /// Bytes per chunk for `chunks`; present exactly when `chunks` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// Same keys (a subset) → concatenated lowercase hex SHA-256 of each `chunk_size` piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<BTreeMap<String, String>>,
}

impl DigestManifest {
    /// An empty version-1 manifest (no chunk fields until [`insert_body`](Self::insert_body)
    /// or [`insert_chunks`](Self::insert_chunks) adds some).
    pub fn new() -> Self {
        DigestManifest {
            version: 1,
            segments: BTreeMap::new(),
            chunk_size: None,
            chunks: None,
        }
    }

    /// Records the digests of a segment body under `key`: its whole SHA-256 and its chunk
    /// digests at the manifest's chunk size ([`CHUNK_SIZE`] if it has none yet). A body with
    /// more than [`MAX_CHUNKS_PER_SEGMENT`] chunks gets the whole digest only.
    pub fn insert_body(&mut self, key: impl Into<String>, body: &[u8]) {
        let key = key.into();
        let chunk_size = self.chunk_size.unwrap_or(CHUNK_SIZE);
        self.segments.insert(key.clone(), sha256_hex(body));
        match chunks_hex(body, chunk_size) {
            Some(hex) => self.insert_chunks(key, chunk_size, hex),
            None => {
                // Keep the chunk fields paired even if no segment has chunks.
                self.chunk_size.get_or_insert(chunk_size);
                self.chunks.get_or_insert_default();
            }
        }
    }

    /// Records already computed chunk digests (from [`chunks_hex`]) for `key`, setting the
    /// manifest's `chunk_size`. The whole digest goes into `segments` separately.
    ///
    /// # Panics
    /// If the manifest already has a different chunk size.
    pub fn insert_chunks(&mut self, key: impl Into<String>, chunk_size: u32, hex: String) {
        let current = *self.chunk_size.get_or_insert(chunk_size);
        assert_eq!(current, chunk_size, "one chunk size per manifest");
        self.chunks.get_or_insert_default().insert(key.into(), hex);
    }

    /// Parses and validates a sidecar.
    pub fn from_json(text: &str) -> Result<Self, DigestError> {
        let m: DigestManifest = serde_json::from_str(text)?;
        if m.version != 1 {
            return Err(DigestError::Version(m.version));
        }
        for (uri, hex) in &m.segments {
            if hex.len() != 64 || !is_lower_hex(hex) {
                return Err(DigestError::BadDigest { uri: uri.clone() });
            }
        }
        match (m.chunk_size, &m.chunks) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(DigestError::UnpairedChunkFields {
                    present: "chunk_size",
                    missing: "chunks",
                });
            }
            (None, Some(_)) => {
                return Err(DigestError::UnpairedChunkFields {
                    present: "chunks",
                    missing: "chunk_size",
                });
            }
            (Some(size), Some(chunks)) => {
                if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
                    return Err(DigestError::ChunkSize(size));
                }
                for (uri, hex) in chunks {
                    if !m.segments.contains_key(uri) {
                        return Err(DigestError::ChunksWithoutDigest { uri: uri.clone() });
                    }
                    if hex.len() % 64 != 0 || !is_lower_hex(hex) {
                        return Err(DigestError::BadChunks { uri: uri.clone() });
                    }
                    if hex.len() / 64 > MAX_CHUNKS_PER_SEGMENT {
                        return Err(DigestError::TooManyChunks { uri: uri.clone() });
                    }
                }
            }
        }
        Ok(m)
    }

    /// Serializes to compact JSON.
    pub fn to_json(&self) -> String {
        // A BTreeMap of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Writes the sidecar atomically (temporary file in the same directory, then rename).
    pub fn write_atomic(&self, path: &Path) -> io::Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }
}

/// The key of a byte-range segment: `uri@offset-length`.
pub fn range_key(uri: &str, offset: u64, length: u64) -> String {
    format!("{uri}@{offset}-{length}")
}

/// The sidecar path for a media playlist path: `.m3u8` replaced by `.sha256.json`
/// (a name without `.m3u8` gets `.sha256.json` appended).
pub fn sidecar_path(playlist: &Path) -> PathBuf {
    let name = playlist
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".m3u8").unwrap_or(&name);
    playlist.with_file_name(format!("{stem}.sha256.json"))
}

/// The latest sidecar's path for a media playlist path (`index.m3u8` →
/// `index.sha256.latest.json`): the same document for the newest [`LATEST_SEGMENTS`]
/// segments only, which agents fetch for each new segment once they hold the window's digests.
pub fn latest_sidecar_path(playlist: &Path) -> PathBuf {
    // The sidecar's name ends in `.json`: only that last extension is replaced.
    sidecar_path(playlist).with_extension("latest.json")
}

/// Segments in a latest sidecar (as `publish-digests` writes it).
pub const LATEST_SEGMENTS: usize = 2;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `chunks` value for `body`: the lowercase hex SHA-256 of each `chunk_size` piece,
/// concatenated (`""` for an empty body). `None` if `chunk_size` is 0 or the body has more
/// than [`MAX_CHUNKS_PER_SEGMENT`] chunks.
pub fn chunks_hex(body: &[u8], chunk_size: u32) -> Option<String> {
    let step = usize::try_from(chunk_size).ok().filter(|&s| s > 0)?;
    if body.len().div_ceil(step) > MAX_CHUNKS_PER_SEGMENT {
        return None;
    }
    Some(body.chunks(step).map(sha256_hex).collect())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes `bytes` to `path` atomically: a temporary sibling file, then `rename`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_path_replaces_extension() {
        assert_eq!(
            sidecar_path(Path::new("/a/live/index.m3u8")),
            PathBuf::from("/a/live/index.sha256.json")
        );
        assert_eq!(
            sidecar_path(Path::new("x/index_vtt.m3u8")),
            PathBuf::from("x/index_vtt.sha256.json")
        );
        assert_eq!(
            sidecar_path(Path::new("x/list")),
            PathBuf::from("x/list.sha256.json")
        );
        assert_eq!(
            latest_sidecar_path(Path::new("/a/live/index.m3u8")),
            PathBuf::from("/a/live/index.sha256.latest.json")
        );
    }

    #[test]
    fn round_trip_and_exact_format() {
        let mut m = DigestManifest::new();
        m.segments.insert("seg_00001.ts".into(), sha256_hex(b"abc"));
        m.segments
            .insert(range_key("media.ts", 0, 10), sha256_hex(b""));
        let json = m.to_json();
        assert_eq!(
            json,
            "{\"version\":1,\"segments\":{\"media.ts@0-10\":\
\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\
\"seg_00001.ts\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}}"
        );
        assert_eq!(DigestManifest::from_json(&json).expect("parse"), m);
    }

    #[test]
    fn rejects_bad_sidecars() {
        assert!(matches!(
            DigestManifest::from_json("{\"version\":2,\"segments\":{}}"),
            Err(DigestError::Version(2))
        ));
        assert!(matches!(
            DigestManifest::from_json("{\"version\":1,\"segments\":{\"a\":\"XYZ\"}}"),
            Err(DigestError::BadDigest { .. })
        ));
        assert!(matches!(
            DigestManifest::from_json("{\"version\":1}"),
            Err(DigestError::Json(_))
        ));
        assert!(matches!(
            DigestManifest::from_json("{\"version\":1,\"segments\":{},\"extra\":1}"),
            Err(DigestError::Json(_))
        ));
    }

    #[test]
    fn insert_body_fills_chunk_digests() {
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut m = DigestManifest::new();
        m.insert_body("seg_00042.ts", &body);
        m.insert_body(range_key("media.ts", 0, 0), b"");
        m.insert_body("tiny.ts", b"x");
        assert_eq!(m.chunk_size, Some(CHUNK_SIZE));
        assert_eq!(m.segments["seg_00042.ts"], sha256_hex(&body));
        let chunks = m.chunks.as_ref().expect("chunks");
        let expected = format!(
            "{}{}{}",
            sha256_hex(&body[..16384]),
            sha256_hex(&body[16384..32768]),
            sha256_hex(&body[32768..])
        );
        assert_eq!(chunks["seg_00042.ts"], expected);
        assert_eq!(chunks["media.ts@0-0"], "");
        assert_eq!(chunks["tiny.ts"], sha256_hex(b"x"));
        let json = m.to_json();
        assert!(
            json.starts_with("{\"version\":1,\"segments\":{")
                && json.contains("},\"chunk_size\":16384,\"chunks\":{"),
            "{json}"
        );
        assert_eq!(DigestManifest::from_json(&json).expect("parse"), m);
    }

    #[test]
    fn chunks_hex_limits() {
        assert_eq!(chunks_hex(b"abc", 0), None);
        assert_eq!(chunks_hex(b"", 4096).as_deref(), Some(""));
        let at_limit = vec![0u8; 4096 * MAX_CHUNKS_PER_SEGMENT];
        assert_eq!(
            chunks_hex(&at_limit, 4096).map(|h| h.len()),
            Some(64 * MAX_CHUNKS_PER_SEGMENT)
        );
        let over = vec![0u8; 4096 * MAX_CHUNKS_PER_SEGMENT + 1];
        assert_eq!(chunks_hex(&over, 4096), None);
        // Too many chunks: whole digest only, and the chunk fields stay paired.
        let mut m = DigestManifest::new();
        m.chunk_size = Some(4096);
        m.insert_body("big.ts", &over);
        assert_eq!(m.segments["big.ts"], sha256_hex(&over));
        assert_eq!(m.chunks, Some(BTreeMap::new()));
        assert!(DigestManifest::from_json(&m.to_json()).is_ok());
    }

    #[test]
    fn rejects_bad_chunk_fields() {
        let a = sha256_hex(b"a");
        let parse = |extra: &str| {
            DigestManifest::from_json(&format!(
                "{{\"version\":1,\"segments\":{{\"a.ts\":\"{a}\"}}{extra}}}"
            ))
        };
        assert!(matches!(
            parse(",\"chunk_size\":65536"),
            Err(DigestError::UnpairedChunkFields {
                present: "chunk_size",
                missing: "chunks"
            })
        ));
        assert!(matches!(
            parse(",\"chunks\":{}"),
            Err(DigestError::UnpairedChunkFields {
                present: "chunks",
                missing: "chunk_size"
            })
        ));
        for bad in [0, 4095, MAX_CHUNK_SIZE + 1] {
            assert!(matches!(
                parse(&format!(",\"chunk_size\":{bad},\"chunks\":{{}}")),
                Err(DigestError::ChunkSize(n)) if n == bad
            ));
        }
        for good in [MIN_CHUNK_SIZE, CHUNK_SIZE, MAX_CHUNK_SIZE] {
            assert!(parse(&format!(",\"chunk_size\":{good},\"chunks\":{{}}")).is_ok());
        }
        let cases = [
            (format!("{a}0"), "length not a multiple of 64"),
            (format!("{a}{}", "g".repeat(64)), "not hex"),
            (a.to_uppercase(), "upper case"),
        ];
        for (hex, why) in cases {
            assert!(
                matches!(
                    parse(&format!(
                        ",\"chunk_size\":4096,\"chunks\":{{\"a.ts\":\"{hex}\"}}"
                    )),
                    Err(DigestError::BadChunks { .. })
                ),
                "{why}"
            );
        }
        let limit = a.repeat(MAX_CHUNKS_PER_SEGMENT);
        assert!(
            parse(&format!(
                ",\"chunk_size\":4096,\"chunks\":{{\"a.ts\":\"{limit}\"}}"
            ))
            .is_ok()
        );
        assert!(matches!(
            parse(&format!(
                ",\"chunk_size\":4096,\"chunks\":{{\"a.ts\":\"{limit}{a}\"}}"
            )),
            Err(DigestError::TooManyChunks { .. })
        ));
        assert!(matches!(
            parse(&format!(",\"chunk_size\":4096,\"chunks\":{{\"b.ts\":\"{a}\"}}")),
            Err(DigestError::ChunksWithoutDigest { uri }) if uri == "b.ts"
        ));
        // A plain v1 sidecar still parses and has no chunk fields.
        let m = parse("").expect("v1");
        assert_eq!((m.chunk_size, m.chunks), (None, None));
    }

    #[test]
    fn write_atomic_replaces_file() {
        let dir = std::env::temp_dir().join(format!("hivecast-digest-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("index.sha256.json");
        let mut m = DigestManifest::new();
        m.write_atomic(&path).expect("write");
        m.segments.insert("a.ts".into(), sha256_hex(b"a"));
        m.write_atomic(&path).expect("write");
        let back = std::fs::read_to_string(&path).expect("read");
        assert_eq!(DigestManifest::from_json(&back).expect("parse"), m);
        assert!(write_atomic(Path::new("/"), b"x").is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
