//! The segment digest sidecar of DESIGN.md "Segment integrity", as far as the test toolkit
//! needs it: `index.m3u8` → `index.sha256.json` holding
//! `{"version":1,"segments":{"<uri as written in the playlist>":"<hex sha256>"}}`, byte-range
//! segments keyed `uri@offset-length`.
//!
//! The real publisher is `hivecast-agent publish-digests`; [`DigestManifest::write_atomic`]
//! exists only for tests and demos that run without the agent binary.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

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
}

/// The sidecar document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DigestManifest {
    /// Always 1.
    pub version: u32,
    /// URI as written in the playlist (or `uri@offset-length`) → lowercase hex SHA-256.
    pub segments: BTreeMap<String, String>,
}

impl DigestManifest {
    /// An empty version-1 manifest.
    pub fn new() -> Self {
        DigestManifest {
            version: 1,
            segments: BTreeMap::new(),
        }
    }

    /// Parses and validates a sidecar.
    pub fn from_json(text: &str) -> Result<Self, DigestError> {
        let m: DigestManifest = serde_json::from_str(text)?;
        if m.version != 1 {
            return Err(DigestError::Version(m.version));
        }
        for (uri, hex) in &m.segments {
            let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !ok {
                return Err(DigestError::BadDigest { uri: uri.clone() });
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

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
