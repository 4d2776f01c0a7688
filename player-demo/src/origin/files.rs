//! Static-file helpers shared by the test origin and the demo's web server: content types by
//! extension, resource kinds for counters, percent-decoding and safe path resolution under a
//! root directory.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What kind of HLS resource a path is, judged by its extension (for per-kind counters).
///
/// | extension | kind |
/// |---|---|
/// | `.m3u8`, `.m3u` | `Playlist` |
/// | `.ts`, `.m4s`, `.aac`, `.m4a`, `.m4v`, `.ac3`, `.ec3`, `.mp3` | `Segment` |
/// | `.mp4` | `Init` (fMP4 initialization sections; a single-file fMP4 counts here too) |
/// | `.key` | `Key` |
/// | `.vtt`, `.webvtt` | `Subtitles` |
/// | `.sha256.json` | `Digest` |
/// | anything else | `Other` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Playlists.
    Playlist,
    /// Media segments.
    Segment,
    /// Initialization sections.
    Init,
    /// Encryption keys.
    Key,
    /// WebVTT subtitle segments.
    Subtitles,
    /// Digest sidecars.
    Digest,
    /// Everything else.
    Other,
}

impl ResourceKind {
    /// Every kind, for iteration.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Playlist,
        ResourceKind::Segment,
        ResourceKind::Init,
        ResourceKind::Key,
        ResourceKind::Subtitles,
        ResourceKind::Digest,
        ResourceKind::Other,
    ];

    /// Classifies a URL path or file name by its extension.
    pub fn of_path(path: &str) -> ResourceKind {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".sha256.json") || lower.ends_with(".sha256.latest.json") {
            return ResourceKind::Digest;
        }
        match extension(&lower) {
            "m3u8" | "m3u" => ResourceKind::Playlist,
            "ts" | "m4s" | "aac" | "m4a" | "m4v" | "ac3" | "ec3" | "mp3" => ResourceKind::Segment,
            "mp4" => ResourceKind::Init,
            "key" => ResourceKind::Key,
            "vtt" | "webvtt" => ResourceKind::Subtitles,
            _ => ResourceKind::Other,
        }
    }
}

fn extension(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((_, ext)) => ext,
        None => "",
    }
}

/// The `Content-Type` for a path, by extension (case-insensitive).
pub fn content_type(path: &str) -> &'static str {
    match extension(&path.to_ascii_lowercase()) {
        "m3u8" | "m3u" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" | "m4v" => "video/mp4",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "ac3" => "audio/ac3",
        "ec3" => "audio/eac3",
        "mp3" => "audio/mpeg",
        "vtt" | "webvtt" => "text/vtt; charset=utf-8",
        "key" => "application/octet-stream",
        "json" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Why a request path cannot be mapped to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRejection {
    /// Bad percent-encoding or not UTF-8 (→ 400).
    BadEncoding,
    /// `..`, a NUL, a backslash, or a path that leaves the root (→ 403).
    Traversal,
}

/// Percent-decodes a URL path. `+` is kept as is (it only means space in forms).
pub fn percent_decode(path: &str) -> Result<String, PathRejection> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathRejection::BadEncoding),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathRejection::BadEncoding)
}

/// Maps a decoded URL path (starting with `/`) to a path under `root`, refusing anything that
/// could leave it: `..` components, NUL bytes and backslashes. Does not touch the file system;
/// callers that follow symlinks should also check the canonical path (see [`contained`]).
pub fn resolve_under(root: &Path, decoded: &str) -> Result<PathBuf, PathRejection> {
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(PathRejection::Traversal);
    }
    let rel = decoded.trim_start_matches('/');
    let mut out = root.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathRejection::Traversal);
            }
        }
    }
    Ok(out)
}

/// Whether `candidate` (canonicalized) lies inside `canonical_root`.
pub fn contained(canonical_root: &Path, candidate: &Path) -> bool {
    match candidate.canonicalize() {
        Ok(c) => c.starts_with(canonical_root),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("/a/index.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type("/a/SEG.TS"), "video/mp2t");
        assert_eq!(content_type("x.m4s"), "video/iso.segment");
        assert_eq!(content_type("init.mp4"), "video/mp4");
        assert_eq!(content_type("a.m4a"), "audio/mp4");
        assert_eq!(content_type("a.aac"), "audio/aac");
        assert_eq!(content_type("a.vtt"), "text/vtt; charset=utf-8");
        assert_eq!(content_type("enc.key"), "application/octet-stream");
        assert_eq!(content_type("index.sha256.json"), "application/json");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("dir.d/noext"), "application/octet-stream");
    }

    #[test]
    fn kinds() {
        assert_eq!(
            ResourceKind::of_path("/live/index.m3u8"),
            ResourceKind::Playlist
        );
        assert_eq!(
            ResourceKind::of_path("/live/seg_00001.ts"),
            ResourceKind::Segment
        );
        assert_eq!(
            ResourceKind::of_path("/v/seg_001.m4s"),
            ResourceKind::Segment
        );
        assert_eq!(ResourceKind::of_path("/v/init.mp4"), ResourceKind::Init);
        assert_eq!(ResourceKind::of_path("/aes/enc.key"), ResourceKind::Key);
        assert_eq!(
            ResourceKind::of_path("/s/index0.vtt"),
            ResourceKind::Subtitles
        );
        assert_eq!(
            ResourceKind::of_path("/live/index.sha256.latest.json"),
            ResourceKind::Digest
        );
        assert_eq!(
            ResourceKind::of_path("/live/index.sha256.json"),
            ResourceKind::Digest
        );
        assert_eq!(ResourceKind::of_path("/favicon.ico"), ResourceKind::Other);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/a%20b.ts").as_deref(), Ok("/a b.ts"));
        assert_eq!(percent_decode("/a+b").as_deref(), Ok("/a+b"));
        assert_eq!(percent_decode("/a%2"), Err(PathRejection::BadEncoding));
        assert_eq!(percent_decode("/a%zz"), Err(PathRejection::BadEncoding));
        assert_eq!(percent_decode("/%ff%fe"), Err(PathRejection::BadEncoding));
    }

    #[test]
    fn traversal_is_refused() {
        let root = Path::new("/srv/root");
        assert_eq!(
            resolve_under(root, "/live/index.m3u8"),
            Ok(PathBuf::from("/srv/root/live/index.m3u8"))
        );
        assert_eq!(
            resolve_under(root, "/./a"),
            Ok(PathBuf::from("/srv/root/a"))
        );
        assert_eq!(
            resolve_under(root, "/../etc/passwd"),
            Err(PathRejection::Traversal)
        );
        assert_eq!(
            resolve_under(root, "/a/../../b"),
            Err(PathRejection::Traversal)
        );
        assert_eq!(
            resolve_under(root, "/a\\..\\b"),
            Err(PathRejection::Traversal)
        );
        assert_eq!(resolve_under(root, "/a\0b"), Err(PathRejection::Traversal));
        // "//etc/passwd" must not become an absolute path.
        assert_eq!(
            resolve_under(root, "//etc/passwd"),
            Ok(PathBuf::from("/srv/root/etc/passwd"))
        );
    }
}
