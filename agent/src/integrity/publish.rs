//! `hivecast-agent publish-digests DIR [--watch]`: writes `NAME.sha256.json` next to every
//! media playlist under DIR, atomically (temp file, then rename). In watch mode it re-scans
//! at an interval, as a live packager (`ffmpeg -hls_flags delete_segments`) rewrites its
//! playlist, hashing each segment file once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use url::Url;

use super::{Manifest, sha256, sidecar_name};
use crate::playlist::{self, PlaylistInfo, Variables};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A sidecar cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// DIR is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
}

/// Identity of a hashed piece of a file: path, range, and the file's size and mtime.
type HashKey = (PathBuf, Option<(u64, u64)>, u64, Option<SystemTime>);

/// Remembers digests across scans so each segment is hashed once.
#[derive(Debug, Default)]
pub struct Publisher {
    known: HashMap<HashKey, [u8; 32]>,
}

/// What one scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Media playlists found.
    pub playlists: usize,
    /// Sidecars written (changed content).
    pub written: usize,
    /// Segments listed but missing or unreadable (skipped this round).
    pub missing: usize,
}

impl Publisher {
    /// A publisher with an empty digest memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `dir` once and (re)writes sidecars whose content changed.
    pub fn scan(&mut self, dir: &Path) -> Result<ScanReport, PublishError> {
        let root = dir.canonicalize().map_err(|source| PublishError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(PublishError::NotADirectory(dir.to_path_buf()));
        }
        let mut report = ScanReport::default();
        let mut playlists = Vec::new();
        collect_playlists(&root, &mut playlists, 0)?;
        let mut seen = std::collections::HashSet::new();
        for pl in playlists {
            let Some(segments) = self.digests_for(&root, &pl, &mut report, &mut seen) else {
                continue;
            };
            report.playlists += 1;
            let manifest = Manifest {
                version: 1,
                segments,
            };
            let name = pl
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("index.m3u8");
            let out = pl.with_file_name(sidecar_name(name));
            let text = match serde_json::to_string(&manifest) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot serialise manifest");
                    continue;
                }
            };
            if std::fs::read_to_string(&out).ok().as_deref() == Some(text.as_str()) {
                continue;
            }
            write_atomically(&out, text.as_bytes())?;
            report.written += 1;
        }
        // Forget digests of files that are gone (a live window moved on), so memory stays
        // bounded by what the playlists list.
        self.known.retain(|k, _| seen.contains(k));
        Ok(report)
    }

    fn digests_for(
        &mut self,
        root: &Path,
        pl: &Path,
        report: &mut ScanReport,
        seen: &mut std::collections::HashSet<HashKey>,
    ) -> Option<BTreeMap<String, String>> {
        let body = std::fs::read(pl).ok()?;
        let base = Url::from_file_path(pl).ok()?;
        let info = match playlist::parse(
            &body,
            &base,
            &Variables::default(),
            &playlist::Limits::default(),
        ) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(playlist = %pl.display(), error = %e, "skipping playlist that does not parse");
                return None;
            }
        };
        let PlaylistInfo::Media(media) = info else {
            return None;
        };
        let mut out = BTreeMap::new();
        for seg in &media.segments {
            if seg.url.scheme() != "file" {
                continue; // Absolute http(s) URIs point elsewhere; nothing local to hash.
            }
            let Ok(path) = seg.url.to_file_path() else {
                continue;
            };
            let Ok(path) = path.canonicalize() else {
                report.missing += 1;
                continue;
            };
            if !path.starts_with(root) {
                tracing::warn!(uri = %seg.uri, "segment outside the published directory; skipped");
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                report.missing += 1;
                continue;
            };
            let range = seg.byterange.map(|r| (r.offset, r.length));
            let key: HashKey = (path.clone(), range, meta.len(), meta.modified().ok());
            let digest = match self.known.get(&key) {
                Some(d) => *d,
                None => match read_piece(&path, range) {
                    Some(bytes) => {
                        let d = sha256(&bytes);
                        self.known.insert(key.clone(), d);
                        d
                    }
                    None => {
                        report.missing += 1;
                        continue;
                    }
                },
            };
            seen.insert(key);
            out.insert(seg.digest_key(), hex::encode(digest));
        }
        Some(out)
    }
}

fn read_piece(path: &Path, range: Option<(u64, u64)>) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    match range {
        None => {
            let mut v = Vec::new();
            f.read_to_end(&mut v).ok()?;
            Some(v)
        }
        Some((off, len)) => {
            f.seek(SeekFrom::Start(off)).ok()?;
            let mut v = vec![0u8; usize::try_from(len).ok()?];
            f.read_exact(&mut v).ok()?;
            Some(v)
        }
    }
}

fn collect_playlists(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), PublishError> {
    if depth > 8 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| PublishError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_playlists(&p, out, depth + 1)?;
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "m3u8") {
            out.push(p);
        }
    }
    out.sort();
    Ok(())
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|source| PublishError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PublishError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Runs one scan, or scans every `interval` until SIGTERM/SIGINT when `watch` is set.
pub async fn run(dir: &Path, watch: bool, interval: Duration) -> Result<(), PublishError> {
    let mut publisher = Publisher::new();
    let report = publisher.scan(dir)?;
    tracing::info!(
        playlists = report.playlists,
        written = report.written,
        "digests published"
    );
    if !watch {
        if report.playlists == 0 {
            tracing::warn!(dir = %dir.display(), "no media playlists found");
        }
        return Ok(());
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::task::watch_signals(cancel.clone()));
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match publisher.scan(dir) {
            Ok(r) if r.written > 0 => tracing::debug!(written = r.written, "digests updated"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scan failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hivecast-publish-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn publishes_vod_and_byterange_and_updates_live() {
        let d = tempdir("vod");
        std::fs::write(d.join("a.ts"), b"AAAA").expect("write");
        std::fs::write(d.join("b.ts"), b"BBBB").expect("write");
        std::fs::write(d.join("media.ts"), b"0123456789").expect("write");
        std::fs::write(
            d.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        std::fs::create_dir_all(d.join("br")).expect("mkdir");
        std::fs::copy(d.join("media.ts"), d.join("br/media.ts")).expect("copy");
        std::fs::write(
            d.join("br/br.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:4@0\n#EXTINF:2,\nmedia.ts\n#EXT-X-BYTERANGE:6\n#EXTINF:2,\nmedia.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        let mut p = Publisher::new();
        let r = p.scan(&d).expect("scan");
        assert_eq!(r.playlists, 2);
        assert_eq!(r.written, 2);
        let m: Manifest = serde_json::from_str(
            &std::fs::read_to_string(d.join("index.sha256.json")).expect("sidecar"),
        )
        .expect("json");
        assert_eq!(m.segments["a.ts"], hex::encode(sha256(b"AAAA")));
        assert_eq!(m.segments["b.ts"], hex::encode(sha256(b"BBBB")));
        let br: Manifest = serde_json::from_str(
            &std::fs::read_to_string(d.join("br/br.sha256.json")).expect("sidecar"),
        )
        .expect("json");
        assert_eq!(br.segments["media.ts@0-4"], hex::encode(sha256(b"0123")));
        assert_eq!(br.segments["media.ts@4-6"], hex::encode(sha256(b"456789")));

        // Unchanged: nothing rewritten.
        assert_eq!(p.scan(&d).expect("scan").written, 0);

        // A live window moves on: the sidecar follows.
        std::fs::write(d.join("c.ts"), b"CCCC").expect("write");
        std::fs::write(d.join("index.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n")
            .expect("write");
        std::fs::remove_file(d.join("a.ts")).expect("rm");
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let m: Manifest = serde_json::from_str(
            &std::fs::read_to_string(d.join("index.sha256.json")).expect("sidecar"),
        )
        .expect("json");
        assert!(!m.segments.contains_key("a.ts"));
        assert_eq!(m.segments["c.ts"], hex::encode(sha256(b"CCCC")));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_segments_and_escapes_are_skipped() {
        let d = tempdir("bad");
        std::fs::write(d.join("index.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nnot-there.ts\n#EXTINF:2,\n../../etc/passwd\n")
            .expect("write");
        std::fs::write(d.join("broken.m3u8"), "no header\n").expect("write");
        let mut p = Publisher::new();
        let r = p.scan(&d).expect("scan");
        assert_eq!(
            r.playlists, 1,
            "the malformed playlist is skipped, not fatal"
        );
        assert!(r.missing >= 1);
        let m: Manifest = serde_json::from_str(
            &std::fs::read_to_string(d.join("index.sha256.json")).expect("sidecar"),
        )
        .expect("json");
        assert!(m.segments.is_empty());
        assert!(matches!(
            p.scan(&d.join("nope")),
            Err(PublishError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
