//! `hivecast-agent publish-digests DIR [--watch]`: writes `NAME.sha256.json` next to every
//! media playlist under DIR, atomically (temp file, then rename). In watch mode it re-scans
//! at an interval, as a live packager (`ffmpeg -hls_flags delete_segments`) rewrites its
//! playlist, hashing each segment file once.
//!
//! Beside each full sidecar it writes the *latest* sidecar, `NAME.sha256.latest.json`: the
//! same document for the newest [`LATEST_SEGMENTS`] segments of the playlist only. An agent
//! that follows a live stream needs the digests of each new segment once; fetching the short
//! file instead of the whole window's cuts what every viewer costs the origin in digests by
//! the window length ÷ [`LATEST_SEGMENTS`] (see [`super::latest_sidecar_name`]).
//!
//! Every hashed segment also gets its per-chunk digests (`chunk_size` + `chunks`, see the
//! parent module): by default [`LIVE_CHUNK_SIZE`] bytes per chunk for a sliding live
//! playlist, where a segment must cross the swarm within seconds and each relay forwards a
//! chunk only once it has verified it, and [`DEFAULT_CHUNK_SIZE`] for VOD and EVENT playlists,
//! whose sidecar lists every segment and must stay small. The choice is made when a playlist
//! is first seen and kept for as long as the publisher runs (a live playlist that ends keeps
//! its chunk size: agents holding its segments must see the same chunks). `--chunk-size N`
//! fixes the size for every playlist; `--chunk-size 0` turns chunk digests off. A segment that would have more than [`MAX_CHUNKS_PER_SEGMENT`] chunks gets none
//! (agents then verify it whole), so the sidecar always stays acceptable to the parser.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use url::Url;

use super::{
    ChunkDigests, DEFAULT_CHUNK_SIZE, LATEST_SEGMENTS, LIVE_CHUNK_SIZE, MAX_CHUNK_SIZE,
    MAX_CHUNKS_PER_SEGMENT, MIN_CHUNK_SIZE, Manifest, latest_sidecar_name, sha256, sidecar_name,
};
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
    /// A chunk size outside the range agents accept.
    #[error(
        "chunk size {0} is invalid: use 0 (no chunk digests) or {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes"
    )]
    ChunkSize(u32),
    /// `--watch`: the SIGTERM/SIGINT listeners cannot be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Checks a `--chunk-size` value: 0 (no chunk digests) or within the parser's range.
pub fn check_chunk_size(chunk_size: u32) -> Result<(), PublishError> {
    if chunk_size == 0 || (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(PublishError::ChunkSize(chunk_size))
    }
}

/// Identity of a hashed piece of a file: path, range, the file's size and mtime, and the chunk
/// size it was hashed at.
type HashKey = (PathBuf, Option<(u64, u64)>, u64, Option<SystemTime>, u32);

/// What hashing one piece produced: the whole digest and, with a chunk size, the chunk
/// digests as sidecar hex (`None` when chunking is off or the piece has too many chunks).
#[derive(Debug, Clone)]
struct Hashed {
    whole: [u8; 32],
    chunks: Option<String>,
}

/// Remembers digests across scans so each segment is hashed once.
#[derive(Debug)]
pub struct Publisher {
    known: HashMap<HashKey, Hashed>,
    /// `Some(n)`: every playlist at `n` bytes per chunk (0 = no chunk digests); `None`: by
    /// playlist type.
    fixed: Option<u32>,
    /// The chunk size chosen for each playlist seen (by type, when `fixed` is `None`).
    chosen: HashMap<PathBuf, u32>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
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
    /// A publisher with an empty digest memory that chooses the chunk size by playlist type:
    /// [`LIVE_CHUNK_SIZE`] for live playlists, [`DEFAULT_CHUNK_SIZE`] for the others.
    pub fn new() -> Self {
        Self {
            known: HashMap::new(),
            fixed: None,
            chosen: HashMap::new(),
        }
    }

    /// A publisher with an empty digest memory and one chunk size for every playlist; 0 = no
    /// chunk digests. A size outside what agents accept (see [`check_chunk_size`]) is not
    /// checked here: the command line checks it, and agents would reject the sidecars.
    pub fn with_chunk_size(chunk_size: u32) -> Self {
        Self {
            fixed: Some(chunk_size),
            ..Self::new()
        }
    }

    /// The chunk size for playlist `pl` (`live`: it has no `EXT-X-ENDLIST` and is not VOD or
    /// EVENT), chosen once per playlist.
    fn chunk_size_for(&mut self, pl: &Path, live: bool) -> u32 {
        if let Some(n) = self.fixed {
            return n;
        }
        *self.chosen.entry(pl.to_path_buf()).or_insert(if live {
            LIVE_CHUNK_SIZE
        } else {
            DEFAULT_CHUNK_SIZE
        })
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
        let playlists_seen: std::collections::HashSet<PathBuf> =
            playlists.iter().cloned().collect();
        for pl in playlists {
            let Some((chunk_size, entries)) = self.digests_for(&root, &pl, &mut report, &mut seen)
            else {
                continue;
            };
            report.playlists += 1;
            let name = pl
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("index.m3u8");
            let latest = entries.len().saturating_sub(LATEST_SEGMENTS);
            let Some(full) = manifest_text(chunk_size, &entries) else {
                continue;
            };
            let Some(newest) = manifest_text(chunk_size, &entries[latest..]) else {
                continue;
            };
            // The full sidecar first: an agent that finds the latest one short of a segment
            // falls back to the full one, which is then at least as new.
            if write_if_changed(&pl.with_file_name(sidecar_name(name)), &full)? {
                report.written += 1;
            }
            write_if_changed(&pl.with_file_name(latest_sidecar_name(name)), &newest)?;
        }
        // Forget digests of files that are gone (a live window moved on), so memory stays
        // bounded by what the playlists list.
        self.known.retain(|k, _| seen.contains(k));
        self.chosen.retain(|pl, _| playlists_seen.contains(pl));
        Ok(report)
    }

    /// The chunk size of `pl` and the digests of the segments it lists, in playlist order (a
    /// key listed twice: once).
    fn digests_for(
        &mut self,
        root: &Path,
        pl: &Path,
        report: &mut ScanReport,
        seen: &mut std::collections::HashSet<HashKey>,
    ) -> Option<(u32, Vec<(String, Hashed)>)> {
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
        let live = media.is_live() && media.playlist_type.is_none();
        let chunk_size = self.chunk_size_for(pl, live);
        let mut out: Vec<(String, Hashed)> = Vec::new();
        let mut keys = std::collections::HashSet::new();
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
            let key: HashKey = (
                path.clone(),
                range,
                meta.len(),
                meta.modified().ok(),
                chunk_size,
            );
            let hashed = match self.known.get(&key) {
                Some(h) => h.clone(),
                None => match read_piece(&path, range) {
                    Some(bytes) => {
                        let h = hash_piece(&bytes, chunk_size, &seg.uri);
                        self.known.insert(key.clone(), h.clone());
                        h
                    }
                    None => {
                        report.missing += 1;
                        continue;
                    }
                },
            };
            seen.insert(key);
            let digest_key = seg.digest_key();
            if keys.insert(digest_key.clone()) {
                out.push((digest_key, hashed));
            }
        }
        Some((chunk_size, out))
    }
}

/// The sidecar document for `entries` (digest key, hashes) at `chunk_size` (0: no chunk
/// digests), as compact JSON.
fn manifest_text(chunk_size: u32, entries: &[(String, Hashed)]) -> Option<String> {
    let chunked = chunk_size > 0;
    let manifest = Manifest {
        version: 1,
        segments: entries
            .iter()
            .map(|(k, h)| (k.clone(), hex::encode(h.whole)))
            .collect(),
        chunk_size: chunked.then_some(chunk_size),
        chunks: chunked.then(|| {
            entries
                .iter()
                .filter_map(|(k, h)| Some((k.clone(), h.chunks.clone()?)))
                .collect::<BTreeMap<_, _>>()
        }),
    };
    serde_json::to_string(&manifest)
        .map_err(|e| tracing::warn!(error = %e, "cannot serialise manifest"))
        .ok()
}

/// Hashes one piece: the whole digest, and the chunk digests when `chunk_size` > 0 and the
/// piece has at most [`MAX_CHUNKS_PER_SEGMENT`] chunks.
fn hash_piece(bytes: &[u8], chunk_size: u32, uri: &str) -> Hashed {
    let whole = sha256(bytes);
    if chunk_size == 0 {
        return Hashed {
            whole,
            chunks: None,
        };
    }
    let count = (bytes.len() as u64).div_ceil(u64::from(chunk_size));
    if count > MAX_CHUNKS_PER_SEGMENT as u64 {
        tracing::warn!(
            uri,
            bytes = bytes.len(),
            chunk_size,
            "segment has more than {MAX_CHUNKS_PER_SEGMENT} chunks; publishing its whole digest only"
        );
        return Hashed {
            whole,
            chunks: None,
        };
    }
    Hashed {
        whole,
        chunks: Some(ChunkDigests::of(bytes, chunk_size).to_hex()),
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

/// Writes `text` to `path` (atomically) unless the file already holds exactly that; true if
/// it wrote.
fn write_if_changed(path: &Path, text: &str) -> Result<bool, PublishError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    write_atomically(path, text.as_bytes())?;
    Ok(true)
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
/// `chunk_size`: bytes per chunk digest for every playlist, 0 = none; anything else outside
/// [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`] is refused with [`PublishError::ChunkSize`].
/// `None`: by playlist type (see the module docs).
pub async fn run(
    dir: &Path,
    watch: bool,
    interval: Duration,
    chunk_size: Option<u32>,
) -> Result<(), PublishError> {
    if let Some(n) = chunk_size {
        check_chunk_size(n)?;
    }
    // Installed before the first scan, so a signal sent once it reports is handled.
    let signals = if watch {
        Some(crate::task::Signals::install().map_err(PublishError::Signals)?)
    } else {
        None
    };
    let mut publisher = chunk_size.map_or_else(Publisher::new, Publisher::with_chunk_size);
    let report = publisher.scan(dir)?;
    tracing::info!(
        playlists = report.playlists,
        written = report.written,
        "digests published"
    );
    let Some(signals) = signals else {
        if report.playlists == 0 {
            tracing::warn!(dir = %dir.display(), "no media playlists found");
        }
        return Ok(());
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(crate::task::watch_signals(cancel.clone(), signals));
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

    /// Reads a sidecar and checks it the way an agent does.
    fn read_sidecar(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path).expect("sidecar");
        super::super::Digests::parse(text.as_bytes()).expect("an agent accepts it");
        serde_json::from_str(&text).expect("json")
    }

    /// The chunk hex an agent expects for `body`, re-computed independently of the publisher.
    fn expected_chunks(body: &[u8], chunk_size: usize) -> String {
        body.chunks(chunk_size)
            .map(|c| hex::encode(sha256(c)))
            .collect()
    }

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
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert_eq!(m.segments["a.ts"], hex::encode(sha256(b"AAAA")));
        assert_eq!(m.segments["b.ts"], hex::encode(sha256(b"BBBB")));
        assert_eq!(m.chunk_size, Some(DEFAULT_CHUNK_SIZE));
        let chunks = m.chunks.as_ref().expect("chunks");
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks["a.ts"], expected_chunks(b"AAAA", 65536));
        assert_eq!(chunks["b.ts"], expected_chunks(b"BBBB", 65536));
        let br = read_sidecar(&d.join("br/br.sha256.json"));
        assert_eq!(br.segments["media.ts@0-4"], hex::encode(sha256(b"0123")));
        assert_eq!(br.segments["media.ts@4-6"], hex::encode(sha256(b"456789")));
        let chunks = br.chunks.as_ref().expect("chunks");
        assert_eq!(chunks["media.ts@0-4"], expected_chunks(b"0123", 65536));
        assert_eq!(chunks["media.ts@4-6"], expected_chunks(b"456789", 65536));

        // Unchanged: nothing rewritten.
        assert_eq!(p.scan(&d).expect("scan").written, 0);

        // A live window moves on: the sidecar follows.
        std::fs::write(d.join("c.ts"), b"CCCC").expect("write");
        std::fs::write(d.join("index.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n")
            .expect("write");
        std::fs::remove_file(d.join("a.ts")).expect("rm");
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert!(!m.segments.contains_key("a.ts"));
        assert_eq!(m.segments["c.ts"], hex::encode(sha256(b"CCCC")));
        let chunks = m.chunks.as_ref().expect("chunks");
        assert!(!chunks.contains_key("a.ts"));
        assert_eq!(chunks["c.ts"], expected_chunks(b"CCCC", 65536));
        assert_eq!(p.known.len(), 4, "b, c and the two ranges; a is forgotten");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn chunk_size_follows_the_playlist_type_and_sticks() {
        let d = tempdir("bytype");
        std::fs::write(d.join("a.ts"), vec![5u8; 40_000]).expect("write");
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n";
        std::fs::write(d.join("live.m3u8"), live).expect("write");
        std::fs::write(d.join("vod.m3u8"), format!("{live}#EXT-X-ENDLIST\n")).expect("write");
        std::fs::write(
            d.join("event.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n",
        )
        .expect("write");
        let mut p = Publisher::new();
        assert_eq!(p.scan(&d).expect("scan").written, 3);
        let size = |name: &str| read_sidecar(&d.join(name)).chunk_size;
        assert_eq!(size("live.sha256.json"), Some(LIVE_CHUNK_SIZE));
        assert_eq!(size("live.sha256.latest.json"), Some(LIVE_CHUNK_SIZE));
        assert_eq!(size("vod.sha256.json"), Some(DEFAULT_CHUNK_SIZE));
        assert_eq!(size("event.sha256.json"), Some(DEFAULT_CHUNK_SIZE));
        let m = read_sidecar(&d.join("live.sha256.json"));
        assert_eq!(
            m.chunks.as_ref().expect("chunks")["a.ts"],
            expected_chunks(&[5u8; 40_000], LIVE_CHUNK_SIZE as usize)
        );
        // The same file at both sizes: each sidecar has its own chunks.
        let v = read_sidecar(&d.join("vod.sha256.json"));
        assert_eq!(
            v.chunks.as_ref().expect("chunks")["a.ts"],
            expected_chunks(&[5u8; 40_000], DEFAULT_CHUNK_SIZE as usize)
        );
        // The live stream ends: its chunk size stays (agents hold its segments as they are).
        std::fs::write(d.join("live.m3u8"), format!("{live}#EXT-X-ENDLIST\n")).expect("write");
        p.scan(&d).expect("scan");
        assert_eq!(size("live.sha256.json"), Some(LIVE_CHUNK_SIZE));
        // A fixed size applies to every playlist.
        let mut f = Publisher::with_chunk_size(4096);
        f.scan(&d).expect("scan");
        assert_eq!(size("vod.sha256.json"), Some(4096));
        assert_eq!(size("live.sha256.json"), Some(4096));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn latest_sidecar_holds_the_newest_segments_in_playlist_order() {
        let d = tempdir("latest");
        // Names sort against playlist order, so the newest are not the last keys.
        for (name, body) in [("z.ts", b"ZZ"), ("y.ts", b"YY"), ("x.ts", b"XX")] {
            std::fs::write(d.join(name), body).expect("write");
        }
        let playlist = |names: &[&str]| {
            let mut t = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
            for n in names {
                t.push_str(&format!("#EXTINF:2,\n{n}\n"));
            }
            t
        };
        std::fs::write(d.join("index.m3u8"), playlist(&["z.ts", "y.ts", "x.ts"])).expect("write");
        let mut p = Publisher::with_chunk_size(4096);
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let full = read_sidecar(&d.join("index.sha256.json"));
        assert_eq!(full.segments.len(), 3);
        let latest = read_sidecar(&d.join("index.sha256.latest.json"));
        assert_eq!(LATEST_SEGMENTS, 2);
        assert_eq!(
            latest.segments.keys().collect::<Vec<_>>(),
            ["x.ts", "y.ts"],
            "the last two of the playlist"
        );
        assert_eq!(latest.segments["x.ts"], full.segments["x.ts"]);
        assert_eq!(latest.chunk_size, Some(4096));
        assert_eq!(
            latest.chunks.as_ref().expect("chunks")["y.ts"],
            expected_chunks(b"YY", 4096)
        );
        // The window moves on: both follow.
        std::fs::write(d.join("w.ts"), b"WW").expect("write");
        std::fs::write(d.join("index.m3u8"), playlist(&["y.ts", "x.ts", "w.ts"])).expect("write");
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let latest = read_sidecar(&d.join("index.sha256.latest.json"));
        assert_eq!(latest.segments.keys().collect::<Vec<_>>(), ["w.ts", "x.ts"]);
        // A one-segment playlist: the latest sidecar is the full one.
        std::fs::write(d.join("index.m3u8"), playlist(&["w.ts"])).expect("write");
        p.scan(&d).expect("scan");
        assert_eq!(
            std::fs::read(d.join("index.sha256.latest.json")).expect("latest"),
            std::fs::read(d.join("index.sha256.json")).expect("full")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn publishes_multi_chunk_digests_for_files_and_ranges() {
        let d = tempdir("chunks");
        // 3.5 chunks of 4 KiB, then a byte range over the middle of it.
        let body: Vec<u8> = (0..14_336u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(d.join("big.ts"), &body).expect("write");
        std::fs::write(d.join("exact.ts"), &body[..8192]).expect("write");
        std::fs::write(d.join("empty.ts"), b"").expect("write");
        std::fs::write(
            d.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nbig.ts\n#EXTINF:2,\nexact.ts\n\
             #EXTINF:2,\nempty.ts\n#EXT-X-BYTERANGE:5000@1000\n#EXTINF:2,\nbig.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        let mut p = Publisher::with_chunk_size(4096);
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert_eq!(m.chunk_size, Some(4096));
        let chunks = m.chunks.as_ref().expect("chunks");
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks["big.ts"], expected_chunks(&body, 4096));
        assert_eq!(chunks["big.ts"].len(), 4 * 64);
        assert_eq!(chunks["exact.ts"], expected_chunks(&body[..8192], 4096));
        assert_eq!(chunks["exact.ts"].len(), 2 * 64);
        assert_eq!(chunks["empty.ts"], "");
        assert_eq!(
            chunks["big.ts@1000-5000"],
            expected_chunks(&body[1000..6000], 4096)
        );
        // What an agent gets out of it verifies the real bytes, chunk by chunk.
        let text = std::fs::read(d.join("index.sha256.json")).expect("read");
        let digests = super::super::Digests::parse(&text).expect("parse");
        let c = digests.chunks("big.ts").expect("chunks");
        assert!(c.fits(body.len() as u64));
        for i in 0..c.count() {
            let r = c.range(i, body.len() as u64).expect("range");
            assert!(c.verify(i, body.len() as u64, &body[r]));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn chunk_size_zero_writes_no_chunk_digests() {
        let d = tempdir("nochunks");
        std::fs::write(d.join("a.ts"), vec![1u8; 10_000]).expect("write");
        std::fs::write(
            d.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        let mut p = Publisher::with_chunk_size(0);
        assert_eq!(p.scan(&d).expect("scan").written, 1);
        let text = std::fs::read_to_string(d.join("index.sha256.json")).expect("sidecar");
        assert!(!text.contains("chunk"), "{text}");
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert_eq!(m.chunk_size, None);
        assert_eq!(m.chunks, None);
        assert_eq!(m.segments["a.ts"], hex::encode(sha256(&[1u8; 10_000])));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn segments_with_too_many_chunks_get_whole_digests_only() {
        let d = tempdir("toomany");
        let big = vec![9u8; 4096 * MAX_CHUNKS_PER_SEGMENT + 1];
        std::fs::write(d.join("big.ts"), &big).expect("write");
        std::fs::write(d.join("small.ts"), b"small").expect("write");
        std::fs::write(
            d.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nbig.ts\n#EXTINF:2,\nsmall.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        let mut p = Publisher::with_chunk_size(4096);
        p.scan(&d).expect("scan");
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert_eq!(m.segments["big.ts"], hex::encode(sha256(&big)));
        let chunks = m.chunks.as_ref().expect("chunks");
        assert!(!chunks.contains_key("big.ts"));
        assert_eq!(chunks["small.ts"], expected_chunks(b"small", 4096));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn chunk_size_is_checked() {
        for ok in [0, MIN_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE] {
            assert!(check_chunk_size(ok).is_ok(), "{ok}");
        }
        for bad in [1, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, u32::MAX] {
            let e = check_chunk_size(bad).expect_err("invalid");
            assert!(matches!(e, PublishError::ChunkSize(n) if n == bad));
            assert!(e.to_string().contains("chunk size"), "{e}");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let d = tempdir("badsize");
        let r = rt.block_on(run(&d, false, Duration::from_millis(10), Some(100)));
        assert!(matches!(r, Err(PublishError::ChunkSize(100))));
        assert!(
            std::fs::read_dir(&d).expect("dir").next().is_none(),
            "nothing written"
        );
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
        let m = read_sidecar(&d.join("index.sha256.json"));
        assert!(m.segments.is_empty());
        assert_eq!(m.chunks, Some(BTreeMap::new()));
        assert!(matches!(
            p.scan(&d.join("nope")),
            Err(PublishError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
