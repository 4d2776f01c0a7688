//! Segment integrity: digest sidecars published by the origin, verification, and publishing.
//!
//! Contract (DESIGN.md): next to each media playlist `name.m3u8` the origin serves
//! `name.sha256.json` = `{"version":1,"segments":{"<uri as written>":"<hex sha256>"}}`, byte
//! range segments keyed `uri@offset-length`. No byte from a peer reaches a player, the cache
//! or another peer before its SHA-256 matches such a digest.

pub mod publish;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

/// Largest number of entries accepted in one sidecar.
pub const MAX_ENTRIES: usize = 200_000;

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
}

/// The sidecar document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 1.
    pub version: u32,
    /// Digest (lower-case hex SHA-256) by segment key.
    pub segments: BTreeMap<String, String>,
}

/// A verified manifest: digests decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    map: std::collections::HashMap<String, [u8; 32]>,
}

impl Digests {
    /// Parses and checks a sidecar body.
    pub fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.version != 1 {
            return Err(ManifestError::Version(m.version));
        }
        if m.segments.len() > MAX_ENTRIES {
            return Err(ManifestError::TooLarge);
        }
        let mut map = std::collections::HashMap::with_capacity(m.segments.len());
        for (k, v) in m.segments {
            let mut d = [0u8; 32];
            hex::decode_to_slice(&v, &mut d).map_err(|_| ManifestError::BadDigest(k.clone()))?;
            map.insert(k, d);
        }
        Ok(Self { map })
    }

    /// The digest for a segment key (`uri` or `uri@offset-length`).
    pub fn get(&self, key: &str) -> Option<[u8; 32]> {
        self.map.get(key).copied()
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

/// The sidecar URL for a media playlist URL (query dropped: digests are per rendition).
pub fn sidecar_url(playlist: &Url) -> Option<Url> {
    let name = playlist.path_segments()?.next_back()?.to_string();
    if name.is_empty() {
        return None;
    }
    let mut u = playlist.join(&sidecar_name(&name)).ok()?;
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

    #[test]
    fn sidecar_names() {
        assert_eq!(sidecar_name("index.m3u8"), "index.sha256.json");
        assert_eq!(sidecar_name("a.b.m3u8"), "a.b.sha256.json");
        let u = Url::parse("https://cdn.test/live/720p/index.m3u8?token=1").expect("url");
        assert_eq!(
            sidecar_url(&u).expect("sidecar").as_str(),
            "https://cdn.test/live/720p/index.sha256.json"
        );
    }
}
