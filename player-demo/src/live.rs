//! A live HLS packager for tests: it loops a VOD source segment set (e.g.
//! [`crate::fixtures::LIVE_SOURCE_TS`]) into a sliding-window live media playlist in a
//! directory, the way `ffmpeg -f hls -hls_flags delete_segments+temp_file+omit_endlist`
//! would, without encoding anything.
//!
//! # Output
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:3
//! #EXT-X-TARGETDURATION:2
//! #EXT-X-MEDIA-SEQUENCE:42
//! #EXT-X-DISCONTINUITY-SEQUENCE:3
//! #EXT-X-INDEPENDENT-SEGMENTS
//! #EXT-X-MAP:URI="init.mp4"            (fMP4 sources only)
//! #EXTINF:2.000000,
//! #EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z
//! seg_00042.ts
//! #EXT-X-DISCONTINUITY                  (where the source loops)
//! #EXTINF:2.000000,
//! ...
//! ```
//!
//! * Each new segment is a byte copy of the next source segment under a new unique name
//!   (`{segment_prefix}{sequence:05}.{ext}`), so segment bytes are known in advance:
//!   [`DigestTable`] gives the SHA-256 for any sequence number.
//! * Files are written atomically (temporary name, then rename). On every step the segment is
//!   written first, then the digest sidecar (if enabled), then the playlist, so a watcher
//!   (`hivecast-agent publish-digests DIR --watch`) or a player never sees a playlist that
//!   references a missing segment.
//! * The first loop starts without a discontinuity; every later return to source segment 0
//!   carries `EXT-X-DISCONTINUITY`. `EXT-X-DISCONTINUITY-SEQUENCE` counts the discontinuity
//!   tags that have slid out of the window (RFC 8216 §6.2.2).
//! * `EXT-X-PROGRAM-DATE-TIME` is continuous: by default the initial window *ends* at the
//!   time [`LivePackager::new`] runs, and each segment starts where the previous one ended.
//! * Segments that leave the window stay on disk for `keep_after_window` more segments, then
//!   are deleted.
//! * Driven explicitly with [`LivePackager::advance`] (deterministic tests) or in real time
//!   with [`LivePackager::spawn_realtime`] (a tokio task publishing one segment per segment
//!   duration, on `tokio::time`, so `tokio::time::pause()` works).
//! * [`LiveMultiPackager`] does the same for every media playlist of a multivariant source in
//!   lock step, and copies the multivariant playlist verbatim.

use std::collections::VecDeque;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::digest::{
    CHUNK_SIZE, DigestManifest, chunks_hex, latest_sidecar_path, sha256_hex, sidecar_path,
    write_atomic,
};
use crate::playlist::{self, Playlist, PlaylistError};
use crate::timefmt::rfc3339_millis;

/// Why the packager failed.
#[derive(Debug, Error)]
pub enum LiveError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The source playlist is malformed.
    #[error("source playlist {path}: {source}")]
    Playlist {
        /// The source playlist.
        path: PathBuf,
        /// The parse error.
        source: PlaylistError,
    },
    /// A media playlist was expected but a multivariant playlist was given, or vice versa.
    #[error("{path}: expected a {expected} playlist")]
    WrongKind {
        /// The source playlist.
        path: PathBuf,
        /// `media` or `multivariant`.
        expected: &'static str,
    },
    /// The source has no segments.
    #[error("source playlist {path} has no segments")]
    EmptySource {
        /// The source playlist.
        path: PathBuf,
    },
    /// The source uses a feature the packager does not loop.
    #[error("source playlist {path}: {what} is not supported")]
    Unsupported {
        /// The source playlist.
        path: PathBuf,
        /// The feature.
        what: &'static str,
    },
    /// A URI in the source is absolute or leaves the source directory.
    #[error("source URI {uri:?} must be a relative path inside the source directory")]
    BadUri {
        /// The URI.
        uri: String,
    },
    /// The configuration is invalid.
    #[error("invalid live packager configuration: {0}")]
    Config(&'static str),
    /// The real-time task ended (it failed or was stopped).
    #[error("the real-time packager task has ended")]
    Ended,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LiveError + '_ {
    move |source| LiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Settings of one live media playlist. [`LiveConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The VOD source media playlist to loop (its segments must be plain files next to it or
    /// below it; no byte ranges, no encryption).
    pub source: PathBuf,
    /// Output directory (created if missing; stale files of ours in it are removed).
    pub out_dir: PathBuf,
    /// Output playlist file name; default `index.m3u8`.
    pub playlist_name: String,
    /// Segment file name prefix; default `seg_` (→ `seg_00042.ts`).
    pub segment_prefix: String,
    /// Initialization section file name for fMP4 sources; default `init.mp4`.
    pub init_name: String,
    /// Segments in the playlist window; default 6.
    pub window: usize,
    /// Segments kept on disk after leaving the window before deletion; default 12.
    pub keep_after_window: usize,
    /// Media sequence number of the first segment; default 0.
    pub start_sequence: u64,
    /// Also write the digest sidecar (`index.sha256.json`) before each playlist; default
    /// `false` (the agent's `publish-digests --watch` normally does it).
    pub write_digests: bool,
    /// When the initial window ends (for `EXT-X-PROGRAM-DATE-TIME`); default: now.
    pub start_time: Option<SystemTime>,
}

impl LiveConfig {
    /// Defaults for looping `source` into `out_dir`.
    pub fn new(source: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        LiveConfig {
            source: source.into(),
            out_dir: out_dir.into(),
            playlist_name: "index.m3u8".into(),
            segment_prefix: "seg_".into(),
            init_name: "init.mp4".into(),
            window: 6,
            keep_after_window: 12,
            start_sequence: 0,
            write_digests: false,
            start_time: None,
        }
    }
}

/// One published segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSegment {
    /// Media sequence number.
    pub sequence: u64,
    /// URI as written in the playlist (the file name).
    pub uri: String,
    /// `EXTINF` duration in seconds.
    pub duration: f64,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Its `EXT-X-PROGRAM-DATE-TIME`.
    pub program_date_time: SystemTime,
    /// Index of the source segment it copies.
    pub source_index: usize,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// Progress of a packager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// `EXT-X-MEDIA-SEQUENCE` of the current playlist.
    pub media_sequence: u64,
    /// Sequence number of the newest segment.
    pub last_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` of the current playlist.
    pub discontinuity_sequence: u64,
    /// Segments published so far.
    pub published: u64,
}

/// The SHA-256 of every segment the packager will ever publish, by sequence number (segment
/// bytes are copies of the looping source). Cheap to clone.
#[derive(Debug, Clone)]
pub struct DigestTable {
    start_sequence: u64,
    digests: Arc<[String]>,
}

impl DigestTable {
    /// Hex SHA-256 of the segment with this sequence number (`None` before the start).
    pub fn get(&self, sequence: u64) -> Option<&str> {
        let offset = sequence.checked_sub(self.start_sequence)?;
        let n = self.digests.len() as u64;
        let idx = usize::try_from(offset % n.max(1)).ok()?;
        self.digests.get(idx).map(String::as_str)
    }
}

struct SourceSegment {
    bytes: Vec<u8>,
    duration: f64,
    ext: String,
    sha256: String,
    /// Chunk digests at [`CHUNK_SIZE`] (`None`: too many chunks).
    chunks: Option<String>,
}

struct Init {
    bytes: Vec<u8>,
    sha256: String,
    chunks: Option<String>,
}

/// One live media playlist being packaged. See the module docs.
pub struct LivePackager {
    cfg: LiveConfig,
    source: Vec<SourceSegment>,
    init: Option<Init>,
    target_duration: u64,
    version: u32,
    digests: DigestTable,
    window: VecDeque<LiveSegment>,
    retired: VecDeque<LiveSegment>,
    next_sequence: u64,
    next_source: usize,
    next_pdt: SystemTime,
    discontinuity_sequence: u64,
    published: u64,
}

impl std::fmt::Debug for LivePackager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePackager")
            .field("out", &self.playlist_path())
            .field("status", &self.status())
            .finish()
    }
}

/// Checks that a URI from a source playlist is a plain relative path inside its directory.
fn relative_path(uri: &str) -> Result<PathBuf, LiveError> {
    let bad = || LiveError::BadUri {
        uri: uri.to_string(),
    };
    if uri.contains("://") || uri.starts_with('/') || uri.contains('?') || uri.contains('#') {
        return Err(bad());
    }
    let path = Path::new(uri);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad());
    }
    Ok(path.to_path_buf())
}

fn read_playlist(path: &Path) -> Result<Playlist, LiveError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    playlist::parse(&text).map_err(|source| LiveError::Playlist {
        path: path.to_path_buf(),
        source,
    })
}

impl LivePackager {
    /// Loads the source, prepares the output directory and publishes the initial window
    /// (`window` segments, so a player can start 3 segments behind the live edge at once).
    pub fn new(cfg: LiveConfig) -> Result<LivePackager, LiveError> {
        if cfg.window == 0 {
            return Err(LiveError::Config("window must be at least 1 segment"));
        }
        for name in [&cfg.playlist_name, &cfg.segment_prefix, &cfg.init_name] {
            if name.is_empty() || name.contains('/') || name.contains('\\') {
                return Err(LiveError::Config(
                    "playlist, prefix and init names must be non-empty plain file names",
                ));
            }
        }
        let Playlist::Media(media) = read_playlist(&cfg.source)? else {
            return Err(LiveError::WrongKind {
                path: cfg.source.clone(),
                expected: "media",
            });
        };
        if media.segments.is_empty() {
            return Err(LiveError::EmptySource {
                path: cfg.source.clone(),
            });
        }
        let base = cfg.source.parent().unwrap_or(Path::new(".")).to_path_buf();
        let unsupported = |what| LiveError::Unsupported {
            path: cfg.source.clone(),
            what,
        };
        let first_map = media.segments[0].map.clone();
        let mut source = Vec::with_capacity(media.segments.len());
        for seg in &media.segments {
            if seg.byte_range.is_some() {
                return Err(unsupported("EXT-X-BYTERANGE"));
            }
            if seg.key.is_some() {
                return Err(unsupported("EXT-X-KEY"));
            }
            if seg.map != first_map {
                return Err(unsupported("more than one EXT-X-MAP"));
            }
            let rel = relative_path(&seg.uri)?;
            let ext = rel
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "ts".into());
            let path = base.join(&rel);
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            source.push(SourceSegment {
                sha256: sha256_hex(&bytes),
                chunks: chunks_hex(&bytes, CHUNK_SIZE),
                bytes,
                duration: seg.duration,
                ext,
            });
        }
        let init = match &first_map {
            None => None,
            Some(map) => {
                if map.byte_range.is_some() {
                    return Err(unsupported("EXT-X-MAP with BYTERANGE"));
                }
                let path = base.join(relative_path(&map.uri)?);
                let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                Some(Init {
                    sha256: sha256_hex(&bytes),
                    chunks: chunks_hex(&bytes, CHUNK_SIZE),
                    bytes,
                })
            }
        };
        let target_duration = source
            .iter()
            .map(|s| s.duration.round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let version = media
            .version
            .unwrap_or(3)
            .max(if init.is_some() { 6 } else { 3 });
        let digests = DigestTable {
            start_sequence: cfg.start_sequence,
            digests: source.iter().map(|s| s.sha256.clone()).collect(),
        };

        std::fs::create_dir_all(&cfg.out_dir).map_err(io_err(&cfg.out_dir))?;
        let initial: f64 = (0..cfg.window)
            .map(|i| source[i % source.len()].duration)
            .sum();
        let end = cfg.start_time.unwrap_or_else(SystemTime::now);
        let next_pdt = end
            .checked_sub(Duration::from_secs_f64(initial))
            .unwrap_or(end);
        let mut p = LivePackager {
            next_sequence: cfg.start_sequence,
            cfg,
            source,
            init,
            target_duration,
            version,
            digests,
            window: VecDeque::new(),
            retired: VecDeque::new(),
            next_source: 0,
            next_pdt,
            discontinuity_sequence: 0,
            published: 0,
        };
        p.remove_stale_outputs()?;
        if let Some(init) = &p.init {
            let path = p.cfg.out_dir.join(&p.cfg.init_name);
            write_atomic(&path, &init.bytes).map_err(io_err(&path))?;
        }
        for _ in 0..p.cfg.window {
            p.push_segment()?;
        }
        p.write_playlist()?;
        Ok(p)
    }

    /// Removes files a previous run left in the output directory (ours only).
    fn remove_stale_outputs(&self) -> Result<(), LiveError> {
        let dir = &self.cfg.out_dir;
        let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
        let name_of = |p: PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let sidecar_name = name_of(sidecar_path(&self.playlist_path()));
        let latest_name = name_of(latest_sidecar_path(&self.playlist_path()));
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours_tmp = name.starts_with('.') && name.contains(".tmp");
            let ours = name.starts_with(&self.cfg.segment_prefix)
                || name == self.cfg.playlist_name
                || name == self.cfg.init_name
                || name == sidecar_name
                || name == latest_name;
            if (ours || ours_tmp) && e.path().is_file() {
                std::fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
        Ok(())
    }

    /// Writes the next segment file and updates the window (no playlist write).
    fn push_segment(&mut self) -> Result<LiveSegment, LiveError> {
        let idx = self.next_source;
        let src = &self.source[idx];
        let sequence = self.next_sequence;
        let uri = format!("{}{:05}.{}", self.cfg.segment_prefix, sequence, src.ext);
        let path = self.cfg.out_dir.join(&uri);
        write_atomic(&path, &src.bytes).map_err(io_err(&path))?;
        let seg = LiveSegment {
            sequence,
            uri,
            duration: src.duration,
            discontinuity: idx == 0 && sequence != self.cfg.start_sequence,
            program_date_time: self.next_pdt,
            source_index: idx,
            sha256: src.sha256.clone(),
        };
        self.next_pdt += Duration::from_secs_f64(src.duration);
        self.next_sequence += 1;
        self.next_source = (idx + 1) % self.source.len();
        self.published += 1;
        self.window.push_back(seg.clone());
        while self.window.len() > self.cfg.window {
            if let Some(old) = self.window.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                self.retired.push_back(old);
            }
        }
        while self.retired.len() > self.cfg.keep_after_window {
            if let Some(old) = self.retired.pop_front() {
                let path = self.cfg.out_dir.join(&old.uri);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
        Ok(seg)
    }

    fn write_playlist(&self) -> Result<(), LiveError> {
        let playlist = self.playlist_path();
        if self.cfg.write_digests {
            let sidecar = sidecar_path(&playlist);
            self.digest_manifest()
                .write_atomic(&sidecar)
                .map_err(io_err(&sidecar))?;
            let latest = latest_sidecar_path(&playlist);
            self.latest_digest_manifest()
                .write_atomic(&latest)
                .map_err(io_err(&latest))?;
        }
        write_atomic(&playlist, self.render_playlist().as_bytes()).map_err(io_err(&playlist))
    }

    /// Publishes one more segment: writes it, then the sidecar (if enabled), then the
    /// playlist; deletes segments that are `keep_after_window` past the window.
    pub fn advance(&mut self) -> Result<LiveSegment, LiveError> {
        let seg = self.push_segment()?;
        self.write_playlist()?;
        Ok(seg)
    }

    /// The playlist text for the current window.
    pub fn render_playlist(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(128 + self.window.len() * 96);
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            self.version,
            self.target_duration,
            self.media_sequence(),
            self.discontinuity_sequence
        );
        if self.init.is_some() {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", self.cfg.init_name);
        }
        for seg in &self.window {
            if seg.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                out,
                "#EXTINF:{:.6},\n#EXT-X-PROGRAM-DATE-TIME:{}\n{}\n",
                seg.duration,
                rfc3339_millis(seg.program_date_time),
                seg.uri
            );
        }
        out
    }

    /// The digest sidecar for the current state: every segment still on disk (window and
    /// retired) plus the init section, each with its whole digest and its chunk digests at
    /// [`CHUNK_SIZE`](crate::digest::CHUNK_SIZE) bytes (hashed once, when the source loads).
    pub fn digest_manifest(&self) -> DigestManifest {
        let mut m = DigestManifest::new();
        m.chunk_size = Some(CHUNK_SIZE);
        m.chunks = Some(Default::default());
        for seg in self.retired.iter().chain(self.window.iter()) {
            m.segments.insert(seg.uri.clone(), seg.sha256.clone());
            if let Some(hex) = self
                .source
                .get(seg.source_index)
                .and_then(|s| s.chunks.clone())
            {
                m.insert_chunks(seg.uri.clone(), CHUNK_SIZE, hex);
            }
        }
        if let Some(init) = &self.init {
            m.segments
                .insert(self.cfg.init_name.clone(), init.sha256.clone());
            if let Some(hex) = init.chunks.clone() {
                m.insert_chunks(self.cfg.init_name.clone(), CHUNK_SIZE, hex);
            }
        }
        m
    }

    /// The latest sidecar: [`digest_manifest`](Self::digest_manifest) for the newest
    /// [`LATEST_SEGMENTS`](crate::digest::LATEST_SEGMENTS) segments of the window only.
    pub fn latest_digest_manifest(&self) -> DigestManifest {
        let mut m = self.digest_manifest();
        let skip = self
            .window
            .len()
            .saturating_sub(crate::digest::LATEST_SEGMENTS);
        let newest: std::collections::HashSet<&str> = self
            .window
            .iter()
            .skip(skip)
            .map(|s| s.uri.as_str())
            .collect();
        m.segments.retain(|k, _| newest.contains(k.as_str()));
        if let Some(c) = m.chunks.as_mut() {
            c.retain(|k, _| newest.contains(k.as_str()));
        }
        m
    }

    /// Path of the output playlist.
    pub fn playlist_path(&self) -> PathBuf {
        self.cfg.out_dir.join(&self.cfg.playlist_name)
    }

    /// The configuration in use.
    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    /// `EXT-X-MEDIA-SEQUENCE` of the current playlist.
    pub fn media_sequence(&self) -> u64 {
        self.window
            .front()
            .map_or(self.next_sequence, |s| s.sequence)
    }

    /// `EXT-X-DISCONTINUITY-SEQUENCE` of the current playlist.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// `EXT-X-TARGETDURATION`.
    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The segments in the current playlist, oldest first.
    pub fn window(&self) -> impl Iterator<Item = &LiveSegment> {
        self.window.iter()
    }

    /// Duration of the segment the next [`advance`](Self::advance) will publish.
    pub fn next_duration(&self) -> Duration {
        Duration::from_secs_f64(self.source[self.next_source].duration)
    }

    /// Number of segments in one loop of the source.
    pub fn source_len(&self) -> usize {
        self.source.len()
    }

    /// Digests of every segment by sequence number.
    pub fn digests(&self) -> DigestTable {
        self.digests.clone()
    }

    /// Current progress.
    pub fn status(&self) -> LiveStatus {
        LiveStatus {
            media_sequence: self.media_sequence(),
            last_sequence: self.next_sequence.saturating_sub(1),
            discontinuity_sequence: self.discontinuity_sequence,
            published: self.published,
        }
    }

    /// Starts publishing in real time (one segment per segment duration) on a tokio task.
    pub fn spawn_realtime(self) -> LiveHandle<LivePackager> {
        LiveHandle::spawn(self)
    }
}

/// Something the real-time driver can advance.
pub trait Advance: Send + 'static {
    /// Publishes the next segment(s) and returns the new status.
    fn advance_once(&mut self) -> Result<LiveStatus, LiveError>;
    /// How long until the next publication is due.
    fn next_due(&self) -> Duration;
    /// Current status.
    fn current_status(&self) -> LiveStatus;
}

impl Advance for LivePackager {
    fn advance_once(&mut self) -> Result<LiveStatus, LiveError> {
        self.advance()?;
        Ok(self.status())
    }
    fn next_due(&self) -> Duration {
        self.next_duration()
    }
    fn current_status(&self) -> LiveStatus {
        self.status()
    }
}

/// A packager running in real time. Dropping the handle stops the task.
pub struct LiveHandle<P: Advance> {
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<P, LiveError>>>,
    status: watch::Receiver<LiveStatus>,
}

impl<P: Advance> std::fmt::Debug for LiveHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHandle")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl<P: Advance> LiveHandle<P> {
    fn spawn(mut packager: P) -> Self {
        let cancel = CancellationToken::new();
        let (tx, status) = watch::channel(packager.current_status());
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let mut due = tokio::time::Instant::now() + packager.next_due();
            loop {
                tokio::select! {
                    _ = token.cancelled() => return Ok(packager),
                    _ = tokio::time::sleep_until(due) => {}
                }
                match packager.advance_once() {
                    Ok(s) => {
                        tx.send_replace(s);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "live packager stopped");
                        return Err(e);
                    }
                }
                due += packager.next_due();
            }
        });
        LiveHandle {
            cancel,
            task: Some(task),
            status,
        }
    }

    /// The latest status.
    pub fn status(&self) -> LiveStatus {
        *self.status.borrow()
    }

    /// A receiver whose `changed()` fires on every publication after this call.
    pub fn subscribe(&self) -> watch::Receiver<LiveStatus> {
        let mut rx = self.status.clone();
        rx.mark_unchanged();
        rx
    }

    /// Waits until the segment with this sequence number has been published. Fails with
    /// [`LiveError::Ended`] if the task ends first.
    pub async fn wait_for_sequence(&self, sequence: u64) -> Result<LiveStatus, LiveError> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| s.last_sequence >= sequence && s.published > 0)
            .await
            .map_err(|_| LiveError::Ended)?;
        Ok(*s)
    }

    /// Stops the task and returns the packager (or the error that stopped it).
    pub async fn stop(mut self) -> Result<P, LiveError> {
        self.cancel.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(|_| LiveError::Ended)?,
            None => Err(LiveError::Ended),
        }
    }
}

impl<P: Advance> Drop for LiveHandle<P> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Settings for [`LiveMultiPackager`].
#[derive(Debug, Clone)]
pub struct LiveMultiConfig {
    /// The source multivariant playlist (e.g. [`crate::fixtures::MULTIVARIANT`]); its media
    /// playlists must be relative paths inside its directory.
    pub source_master: PathBuf,
    /// Output directory; the multivariant playlist keeps its file name and every media
    /// playlist its relative path.
    pub out_dir: PathBuf,
    /// Segments in each window; default 6.
    pub window: usize,
    /// Segments kept after the window; default 12.
    pub keep_after_window: usize,
    /// First media sequence number; default 0.
    pub start_sequence: u64,
    /// Write digest sidecars; default `false`.
    pub write_digests: bool,
    /// When the initial windows end; default now.
    pub start_time: Option<SystemTime>,
}

impl LiveMultiConfig {
    /// Defaults for packaging `source_master` into `out_dir`.
    pub fn new(source_master: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        LiveMultiConfig {
            source_master: source_master.into(),
            out_dir: out_dir.into(),
            window: 6,
            keep_after_window: 12,
            start_sequence: 0,
            write_digests: false,
            start_time: None,
        }
    }
}

/// Every rendition of a multivariant source as live playlists advancing in lock step (one
/// segment per rendition per step, so sequence numbers stay aligned; renditions whose loop
/// length differs from the first one's drift apart in content, which players tolerate).
#[derive(Debug)]
pub struct LiveMultiPackager {
    master_path: PathBuf,
    renditions: Vec<(String, LivePackager)>,
}

impl LiveMultiPackager {
    /// Copies the multivariant playlist and starts one [`LivePackager`] per media playlist.
    pub fn new(cfg: LiveMultiConfig) -> Result<Self, LiveError> {
        let text =
            std::fs::read_to_string(&cfg.source_master).map_err(io_err(&cfg.source_master))?;
        let parsed = playlist::parse(&text).map_err(|source| LiveError::Playlist {
            path: cfg.source_master.clone(),
            source,
        })?;
        let Playlist::Multivariant(master) = parsed else {
            return Err(LiveError::WrongKind {
                path: cfg.source_master.clone(),
                expected: "multivariant",
            });
        };
        let base = cfg
            .source_master
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let start_time = cfg.start_time.unwrap_or_else(SystemTime::now);
        let mut uris = master.media_playlist_uris();
        // Pace by the first video variant: move it to the front.
        if let Some(first) = master.variants.first()
            && let Some(pos) = uris.iter().position(|u| *u == first.uri)
        {
            let v = uris.remove(pos);
            uris.insert(0, v);
        }
        let mut renditions = Vec::new();
        for uri in uris {
            let rel = relative_path(&uri)?;
            let out = cfg.out_dir.join(&rel);
            let out_dir = out.parent().unwrap_or(&cfg.out_dir).to_path_buf();
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "index.m3u8".into());
            let stem = name.strip_suffix(".m3u8").unwrap_or(&name).to_string();
            let mut lc = LiveConfig::new(base.join(&rel), out_dir);
            lc.playlist_name = name;
            // Several media playlists may share a directory (e.g. video and its subtitles).
            lc.segment_prefix = format!("{stem}_seg_");
            lc.init_name = format!("{stem}_init.mp4");
            lc.window = cfg.window;
            lc.keep_after_window = cfg.keep_after_window;
            lc.start_sequence = cfg.start_sequence;
            lc.write_digests = cfg.write_digests;
            lc.start_time = Some(start_time);
            renditions.push((uri, LivePackager::new(lc)?));
        }
        if renditions.is_empty() {
            return Err(LiveError::EmptySource {
                path: cfg.source_master.clone(),
            });
        }
        std::fs::create_dir_all(&cfg.out_dir).map_err(io_err(&cfg.out_dir))?;
        let master_name = cfg
            .source_master
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "master.m3u8".into());
        let master_path = cfg.out_dir.join(master_name);
        write_atomic(&master_path, text.as_bytes()).map_err(io_err(&master_path))?;
        Ok(LiveMultiPackager {
            master_path,
            renditions,
        })
    }

    /// Path of the copied multivariant playlist.
    pub fn master_path(&self) -> &Path {
        &self.master_path
    }

    /// The renditions: (URI as written in the multivariant playlist, packager).
    pub fn renditions(&self) -> &[(String, LivePackager)] {
        &self.renditions
    }

    /// Publishes one segment in every rendition.
    pub fn advance(&mut self) -> Result<LiveStatus, LiveError> {
        for (_, p) in &mut self.renditions {
            p.advance()?;
        }
        Ok(self.status())
    }

    /// Status of the first rendition (the first video variant; all advance together).
    pub fn status(&self) -> LiveStatus {
        self.renditions
            .first()
            .map(|(_, p)| p.status())
            .unwrap_or_default()
    }

    /// Starts publishing in real time, paced by the first rendition's segment durations.
    pub fn spawn_realtime(self) -> LiveHandle<LiveMultiPackager> {
        LiveHandle::spawn(self)
    }
}

impl Advance for LiveMultiPackager {
    fn advance_once(&mut self) -> Result<LiveStatus, LiveError> {
        self.advance()
    }
    fn next_due(&self) -> Duration {
        self.renditions
            .first()
            .map_or(Duration::from_secs(1), |(_, p)| p.next_duration())
    }
    fn current_status(&self) -> LiveStatus {
        self.status()
    }
}
