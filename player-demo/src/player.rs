//! A paced HLS player for tests and benchmarks: it fetches like a real player and plays in
//! real time, without decoding.
//!
//! # Behaviour
//!
//! * Loads the URL; a multivariant playlist selects one variant ([`VariantChoice`]).
//! * Live (no `EXT-X-ENDLIST`): starts `live_start_behind` segments behind the live edge
//!   (3 by default, like hls.js), and reloads the media playlist at the RFC 8216 §6.3.4 pace:
//!   the target duration after a load that changed the playlist, half of it after one that
//!   did not, measured from the start of the previous load.
//! * VOD: starts at the first segment and never reloads.
//! * Downloads segments strictly in order, one at a time, while less than `max_buffer_ahead`
//!   of media is buffered; `EXT-X-MAP` sections are fetched when they change; byte-range
//!   segments are fetched with `Range`. A failed segment is retried `segment_retries` times,
//!   then skipped. A segment that slid out of the window before it could be fetched is
//!   skipped and counted.
//! * Media clock: playback starts when the first segment has arrived (`startup_seconds`),
//!   then the position advances with wall time while buffered media remains. Running dry is
//!   a stall (counted, with its duration) until the next segment arrives. Reaching the end of
//!   a VOD is not a stall.
//! * Every segment's SHA-256, size, URI and sequence number are recorded, so tests can check
//!   byte identity against the origin (e.g. with [`crate::live::DigestTable`]).
//! * Stops at `max_duration` of wall time, after `stop_after_played` of media, or at the end
//!   of a VOD. One tokio task, no busy loop: it wakes only for I/O, reloads and clock events.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::time::Instant;
use url::Url;

use crate::client::{ClientError, HttpClient};
use crate::playlist::{self, InitSection, MediaPlaylist, MediaSegment, Playlist, PlaylistError};

/// Fatal player errors (problems after startup are recorded in the report instead).
#[derive(Debug, Error)]
pub enum PlayerError {
    /// The URL is not an `http://` URL.
    #[error("invalid player URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No media playlist could be loaded before `max_duration` ran out.
    #[error("no playable media playlist from {url} within the time limit: {last_error}")]
    NoPlaylist {
        /// The URL.
        url: String,
        /// The last error seen.
        last_error: String,
    },
}

/// Which variant of a multivariant playlist to play.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantChoice {
    /// The first `EXT-X-STREAM-INF` (default).
    #[default]
    First,
    /// The highest `BANDWIDTH`.
    Highest,
    /// The lowest `BANDWIDTH`.
    Lowest,
}

/// Player settings; [`PlayerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Playlist URL (`http://` only).
    pub url: String,
    /// Wall-clock limit of the session; default 30 s.
    pub max_duration: Duration,
    /// Stop once this much media has played; default none.
    pub stop_after_played: Option<Duration>,
    /// Live start position in segments behind the live edge; default 3.
    pub live_start_behind: usize,
    /// Stop fetching while this much media is buffered ahead; default 30 s.
    pub max_buffer_ahead: Duration,
    /// Per-request timeout; default 10 s.
    pub request_timeout: Duration,
    /// Retries of a failed segment before skipping it; default 2.
    pub segment_retries: u32,
    /// Variant choice for multivariant URLs; default [`VariantChoice::First`].
    pub variant: VariantChoice,
}

impl PlayerConfig {
    /// Defaults for playing `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PlayerConfig {
            url: url.into(),
            max_duration: Duration::from_secs(30),
            stop_after_played: None,
            live_start_behind: 3,
            max_buffer_ahead: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            segment_retries: 2,
            variant: VariantChoice::First,
        }
    }
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_duration` elapsed.
    MaxDuration,
    /// `stop_after_played` reached.
    Played,
    /// A VOD (or a live stream that ended) was played to the end.
    Ended,
}

/// One downloaded media segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Media sequence number.
    pub sequence: u64,
    /// Discontinuity sequence number.
    pub discontinuity_sequence: u64,
    /// URI as written in the playlist.
    pub uri: String,
    /// Absolute URL fetched.
    pub url: String,
    /// `(offset, length)` for byte-range segments.
    pub byte_range: Option<(u64, u64)>,
    /// `EXTINF` duration.
    pub duration: f64,
    /// Body bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the body.
    pub sha256: String,
    /// Seconds from session start to the request.
    pub requested_at: f64,
    /// Seconds the successful attempt took.
    pub download_seconds: f64,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

/// One downloaded initialization section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRecord {
    /// URI as written in `EXT-X-MAP`.
    pub uri: String,
    /// Absolute URL fetched.
    pub url: String,
    /// Body bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// The result of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerReport {
    /// The URL given.
    pub url: String,
    /// The media playlist URL played.
    pub media_playlist_url: String,
    /// Whether the stream was live (no `EXT-X-ENDLIST` at start).
    pub live: bool,
    /// Seconds from start until playback began (first segment arrived).
    pub startup_seconds: Option<f64>,
    /// Stalls after startup.
    pub stalls: u64,
    /// Total stall time in seconds (including one still going on at the end).
    pub stall_seconds: f64,
    /// Media seconds played.
    pub played_seconds: f64,
    /// Media seconds downloaded.
    pub buffered_seconds: f64,
    /// Wall-clock seconds of the session.
    pub wall_seconds: f64,
    /// Media playlist loads (including the first).
    pub playlist_loads: u64,
    /// Loads that returned the same playlist.
    pub playlist_unchanged: u64,
    /// Failed playlist loads.
    pub playlist_errors: u64,
    /// Segments downloaded, in order.
    pub segments: Vec<SegmentRecord>,
    /// Initialization sections downloaded.
    pub init_sections: Vec<InitRecord>,
    /// Segments that left the window before they could be fetched.
    pub skipped_segments: u64,
    /// Segments given up after all retries.
    pub failed_segments: u64,
    /// Failed attempts (including ones that a retry fixed).
    pub failed_attempts: u64,
    /// Body bytes downloaded (segments and init sections).
    pub bytes_downloaded: u64,
    /// Why the session ended.
    pub stop_reason: StopReason,
    /// The first 100 error messages.
    pub errors: Vec<String>,
}

impl PlayerReport {
    /// Media sequence → SHA-256 of every downloaded segment.
    pub fn digests(&self) -> BTreeMap<u64, &str> {
        self.segments
            .iter()
            .map(|s| (s.sequence, s.sha256.as_str()))
            .collect()
    }
}

/// The media clock (pure; times are arguments).
#[derive(Debug, Clone)]
struct MediaClock {
    started: bool,
    position: f64,
    buffer_end: f64,
    last: Instant,
    stall_start: Option<Instant>,
    stalls: u64,
    stall_seconds: f64,
    /// No more media will arrive (VOD fully downloaded): running dry is the end, not a stall.
    input_done: bool,
}

impl MediaClock {
    fn new(now: Instant) -> Self {
        MediaClock {
            started: false,
            position: 0.0,
            buffer_end: 0.0,
            last: now,
            stall_start: None,
            stalls: 0,
            stall_seconds: 0.0,
            input_done: false,
        }
    }

    fn advance(&mut self, now: Instant) {
        if self.started && self.stall_start.is_none() {
            let dt = now.saturating_duration_since(self.last).as_secs_f64();
            let avail = (self.buffer_end - self.position).max(0.0);
            if dt < avail {
                self.position += dt;
            } else {
                self.position = self.buffer_end;
                if !self.input_done {
                    self.stall_start = Some(self.last + Duration::from_secs_f64(avail));
                    self.stalls += 1;
                }
            }
        }
        self.last = now;
    }

    fn add(&mut self, now: Instant, duration: f64) {
        self.advance(now);
        self.buffer_end += duration;
        if !self.started {
            self.started = true;
        }
        if let Some(s) = self.stall_start.take() {
            self.stall_seconds += now.saturating_duration_since(s).as_secs_f64();
        }
    }

    fn ahead(&self) -> f64 {
        (self.buffer_end - self.position).max(0.0)
    }

    /// Stall seconds including an ongoing stall.
    fn total_stall(&self, now: Instant) -> f64 {
        self.stall_seconds
            + self
                .stall_start
                .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64())
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

async fn maybe<T>(f: &mut Option<BoxFut<T>>) -> T {
    match f.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

struct Job {
    segment: MediaSegment,
    url: String,
    init: Option<(InitSection, String)>,
}

struct JobResult {
    segment: MediaSegment,
    url: String,
    init: Option<Result<InitRecord, String>>,
    outcome: Result<(u64, String, f64), String>,
    attempts: u32,
    failed_attempts: u64,
    requested_at: Instant,
    errors: Vec<String>,
}

async fn fetch_body(
    client: &HttpClient,
    url: &str,
    range: Option<String>,
) -> Result<bytes::Bytes, String> {
    let headers: Vec<(&str, &str)> = match &range {
        Some(r) => vec![("range", r.as_str())],
        None => Vec::new(),
    };
    let r = client
        .get(url, &headers)
        .await
        .map_err(|e: ClientError| e.to_string())?;
    let ok = match range {
        Some(_) => r.status == 206,
        None => r.status == 200,
    };
    if !ok {
        return Err(format!("{url}: HTTP {}", r.status));
    }
    Ok(r.body)
}

async fn run_job(client: HttpClient, job: Job, retries: u32) -> JobResult {
    let requested_at = Instant::now();
    let mut errors = Vec::new();
    let mut failed_attempts = 0;
    let init = match job.init {
        None => None,
        Some((section, url)) => {
            let range = section.byte_range.map(|r| r.http_range());
            let mut result = Err(String::new());
            for _ in 0..=retries {
                match fetch_body(&client, &url, range.clone()).await {
                    Ok(body) => {
                        result = Ok(InitRecord {
                            uri: section.uri.clone(),
                            url: url.clone(),
                            bytes: body.len() as u64,
                            sha256: hex::encode(Sha256::digest(&body)),
                        });
                        break;
                    }
                    Err(e) => {
                        failed_attempts += 1;
                        errors.push(e.clone());
                        result = Err(e);
                    }
                }
            }
            Some(result)
        }
    };
    let range = job.segment.byte_range.map(|r| r.http_range());
    let mut attempts = 0;
    let mut outcome = Err(String::from("not attempted"));
    for _ in 0..=retries {
        attempts += 1;
        let t = Instant::now();
        match fetch_body(&client, &job.url, range.clone()).await {
            Ok(body) => {
                let expected = job.segment.byte_range.map(|r| r.length);
                if let Some(len) = expected
                    && len != body.len() as u64
                {
                    let e = format!(
                        "{}: range returned {} bytes, wanted {len}",
                        job.url,
                        body.len()
                    );
                    failed_attempts += 1;
                    errors.push(e.clone());
                    outcome = Err(e);
                    continue;
                }
                outcome = Ok((
                    body.len() as u64,
                    hex::encode(Sha256::digest(&body)),
                    t.elapsed().as_secs_f64(),
                ));
                break;
            }
            Err(e) => {
                failed_attempts += 1;
                errors.push(e.clone());
                outcome = Err(e);
            }
        }
    }
    JobResult {
        segment: job.segment,
        url: job.url,
        init,
        outcome,
        attempts,
        failed_attempts,
        requested_at,
        errors,
    }
}

struct Loaded {
    started: Instant,
    result: Result<(String, MediaPlaylist), String>,
}

async fn load_media(client: HttpClient, url: String) -> Loaded {
    let started = Instant::now();
    let result = async {
        let r = client.get(&url, &[]).await.map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("{url}: HTTP {}", r.status));
        }
        let text = String::from_utf8(r.body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))?;
        let media =
            playlist::parse_media(&text).map_err(|e: PlaylistError| format!("{url}: {e}"))?;
        Ok((text, media))
    }
    .await;
    Loaded { started, result }
}

/// Loads `url`; if it is multivariant, picks a variant and loads that. Returns
/// (media playlist URL, text, playlist).
async fn load_initial(
    client: &HttpClient,
    url: &Url,
    choice: VariantChoice,
) -> Result<(Url, String, MediaPlaylist), String> {
    let r = client
        .get(url.as_str(), &[])
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("{url}: HTTP {}", r.status));
    }
    let text = String::from_utf8(r.body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))?;
    match playlist::parse(&text).map_err(|e| format!("{url}: {e}"))? {
        Playlist::Media(m) => Ok((url.clone(), text, m)),
        Playlist::Multivariant(mv) => {
            let variant = match choice {
                VariantChoice::First => mv.variants.first(),
                VariantChoice::Highest => mv.variants.iter().max_by_key(|v| v.bandwidth),
                VariantChoice::Lowest => mv.variants.iter().min_by_key(|v| v.bandwidth),
            }
            .ok_or_else(|| format!("{url}: multivariant playlist without variants"))?;
            let media_url = url
                .join(&variant.uri)
                .map_err(|e| format!("{url}: bad variant URI {:?}: {e}", variant.uri))?;
            let loaded = load_media(client.clone(), media_url.to_string()).await;
            let (text, media) = loaded.result?;
            Ok((media_url, text, media))
        }
    }
}

/// Plays `config.url` and returns the report. See the module docs.
pub async fn play(config: PlayerConfig) -> Result<PlayerReport, PlayerError> {
    let url = Url::parse(&config.url).map_err(|e| PlayerError::InvalidUrl {
        url: config.url.clone(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "http" {
        return Err(PlayerError::InvalidUrl {
            url: config.url.clone(),
            reason: "only http:// is supported".into(),
        });
    }
    let client = HttpClient::new(config.request_timeout);
    let start = Instant::now();
    let deadline = start + config.max_duration;

    // Startup: load the playlist, retrying until the deadline.
    let (media_url, mut last_text, first) = loop {
        match load_initial(&client, &url, config.variant).await {
            Ok(v) => break v,
            Err(e) => {
                let retry = Instant::now() + Duration::from_millis(500);
                if retry >= deadline {
                    return Err(PlayerError::NoPlaylist {
                        url: config.url.clone(),
                        last_error: e,
                    });
                }
                tracing::debug!(error = %e, "paced player: playlist not ready, retrying");
                tokio::time::sleep_until(retry).await;
            }
        }
    };
    let live = !first.endlist;
    let mut report = PlayerReport {
        url: config.url.clone(),
        media_playlist_url: media_url.to_string(),
        live,
        startup_seconds: None,
        stalls: 0,
        stall_seconds: 0.0,
        played_seconds: 0.0,
        buffered_seconds: 0.0,
        wall_seconds: 0.0,
        playlist_loads: 1,
        playlist_unchanged: 0,
        playlist_errors: 0,
        segments: Vec::new(),
        init_sections: Vec::new(),
        skipped_segments: 0,
        failed_segments: 0,
        failed_attempts: 0,
        bytes_downloaded: 0,
        stop_reason: StopReason::MaxDuration,
        errors: Vec::new(),
    };
    let push_error = |report: &mut PlayerReport, e: String| {
        if report.errors.len() < 100 {
            report.errors.push(e);
        }
    };

    let target = Duration::from_secs(first.target_duration.max(1));
    let mut endlist = first.endlist;
    let mut next_seq = if live {
        let idx = first
            .segments
            .len()
            .saturating_sub(config.live_start_behind.max(1));
        first
            .segments
            .get(idx)
            .map_or(first.media_sequence, |s| s.sequence)
    } else {
        first.media_sequence
    };
    let mut known: BTreeMap<u64, MediaSegment> = first
        .segments
        .into_iter()
        .map(|s| (s.sequence, s))
        .collect();
    let mut next_reload = start + target;
    let mut current_init: Option<InitSection> = None;
    let mut clock = MediaClock::new(Instant::now());
    let mut download: Option<BoxFut<JobResult>> = None;
    let mut reload: Option<BoxFut<Loaded>> = None;
    let max_ahead = config.max_buffer_ahead.as_secs_f64();

    loop {
        let now = Instant::now();
        clock.advance(now);
        if now >= deadline {
            report.stop_reason = StopReason::MaxDuration;
            break;
        }
        if let Some(limit) = config.stop_after_played
            && clock.position >= limit.as_secs_f64() - 1e-6
        {
            report.stop_reason = StopReason::Played;
            break;
        }
        let last_known = known.keys().next_back().copied();
        let input_done = endlist && last_known.is_none_or(|l| next_seq > l) && download.is_none();
        clock.input_done = input_done;
        if input_done && clock.started && clock.ahead() <= 1e-6 {
            report.stop_reason = StopReason::Ended;
            break;
        }
        if input_done && !clock.started {
            // An empty or entirely failed VOD: nothing will ever play.
            report.stop_reason = StopReason::Ended;
            break;
        }

        // Start the next download.
        if download.is_none() && clock.ahead() < max_ahead {
            if let Some(first_known) = known.keys().next().copied()
                && next_seq < first_known
            {
                report.skipped_segments += first_known - next_seq;
                push_error(
                    &mut report,
                    format!("segments {next_seq}..{first_known} left the window before download"),
                );
                next_seq = first_known;
            }
            if let Some(seg) = known.get(&next_seq).cloned() {
                match media_url.join(&seg.uri) {
                    Ok(seg_url) => {
                        let init = match &seg.map {
                            Some(map) if current_init.as_ref() != Some(map) => {
                                match media_url.join(&map.uri) {
                                    Ok(u) => Some((map.clone(), u.to_string())),
                                    Err(e) => {
                                        push_error(
                                            &mut report,
                                            format!("bad init URI {:?}: {e}", map.uri),
                                        );
                                        None
                                    }
                                }
                            }
                            _ => None,
                        };
                        let job = Job {
                            segment: seg,
                            url: seg_url.to_string(),
                            init,
                        };
                        download = Some(Box::pin(run_job(
                            client.clone(),
                            job,
                            config.segment_retries,
                        )));
                    }
                    Err(e) => {
                        push_error(&mut report, format!("bad segment URI {:?}: {e}", seg.uri));
                        report.failed_segments += 1;
                        next_seq += 1;
                        continue;
                    }
                }
            }
        }
        if reload.is_none() && !endlist && now >= next_reload {
            reload = Some(Box::pin(load_media(client.clone(), media_url.to_string())));
        }

        // When to wake up without I/O.
        let mut wake = deadline;
        if !endlist && reload.is_none() {
            wake = wake.min(next_reload);
        }
        if clock.started && clock.stall_start.is_none() {
            let ahead = clock.ahead();
            // Buffer runs dry (stall or end).
            wake = wake.min(now + Duration::from_secs_f64(ahead));
            // Buffer drops below the cap, so the next download may start.
            if download.is_none() && ahead >= max_ahead {
                wake = wake.min(now + Duration::from_secs_f64(ahead - max_ahead + 0.001));
            }
            if let Some(limit) = config.stop_after_played {
                let left = (limit.as_secs_f64() - clock.position).max(0.0);
                wake = wake.min(now + Duration::from_secs_f64(left));
            }
        }

        tokio::select! {
            done = maybe(&mut download) => {
                download = None;
                let now = Instant::now();
                for e in &done.errors {
                    push_error(&mut report, e.clone());
                }
                report.failed_attempts += done.failed_attempts;
                if let Some(init) = done.init {
                    match init {
                        Ok(rec) => {
                            report.bytes_downloaded += rec.bytes;
                            report.init_sections.push(rec);
                            current_init = done.segment.map.clone();
                        }
                        Err(_) => {
                            // Without its init section the segment is useless.
                            report.failed_segments += 1;
                            next_seq = done.segment.sequence + 1;
                            continue;
                        }
                    }
                }
                match done.outcome {
                    Ok((bytes, sha256, secs)) => {
                        if !clock.started {
                            report.startup_seconds = Some(now.saturating_duration_since(start).as_secs_f64());
                        }
                        clock.add(now, done.segment.duration);
                        report.bytes_downloaded += bytes;
                        report.segments.push(SegmentRecord {
                            sequence: done.segment.sequence,
                            discontinuity_sequence: done.segment.discontinuity_sequence,
                            uri: done.segment.uri.clone(),
                            url: done.url,
                            byte_range: done.segment.byte_range.map(|r| (r.offset, r.length)),
                            duration: done.segment.duration,
                            bytes,
                            sha256,
                            requested_at: done.requested_at.saturating_duration_since(start).as_secs_f64(),
                            download_seconds: secs,
                            attempts: done.attempts,
                        });
                    }
                    Err(_) => report.failed_segments += 1,
                }
                next_seq = done.segment.sequence + 1;
            }
            loaded = maybe(&mut reload) => {
                reload = None;
                report.playlist_loads += 1;
                match loaded.result {
                    Ok((text, media)) => {
                        if text == last_text {
                            report.playlist_unchanged += 1;
                            next_reload = loaded.started + target / 2;
                        } else {
                            next_reload = loaded.started + target;
                            last_text = text;
                            endlist = media.endlist;
                            known = media.segments.into_iter().map(|s| (s.sequence, s)).collect();
                        }
                    }
                    Err(e) => {
                        report.playlist_errors += 1;
                        push_error(&mut report, e);
                        next_reload = loaded.started + target / 2;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }

    let end = Instant::now();
    clock.advance(end);
    report.startup_seconds = report.startup_seconds.filter(|_| clock.started);
    report.stalls = clock.stalls;
    report.stall_seconds = clock.total_stall(end);
    report.played_seconds = clock.position;
    report.buffered_seconds = clock.buffer_end;
    report.wall_seconds = end.saturating_duration_since(start).as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn media_clock_counts_stalls() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0);
        c.add(t0, 2.0);
        let t1 = t0 + Duration::from_secs(1);
        c.advance(t1);
        assert!((c.position - 1.0).abs() < 1e-9);
        assert_eq!(c.stalls, 0);
        // Runs dry at t0+2, stalls until t0+3.5.
        let t2 = t0 + Duration::from_millis(3500);
        c.advance(t2);
        assert_eq!(c.stalls, 1);
        assert!((c.position - 2.0).abs() < 1e-9);
        assert!((c.total_stall(t2) - 1.5).abs() < 1e-6);
        c.add(t2, 2.0);
        assert!((c.stall_seconds - 1.5).abs() < 1e-6);
        assert!(c.stall_start.is_none());
        let t3 = t2 + Duration::from_secs(1);
        c.advance(t3);
        assert!((c.position - 3.0).abs() < 1e-9);
        // End of input: running dry is not a stall.
        c.input_done = true;
        c.advance(t3 + Duration::from_secs(5));
        assert_eq!(c.stalls, 1);
        assert!((c.position - 4.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn rejects_bad_urls() {
        assert!(matches!(
            play(PlayerConfig::new("not a url")).await,
            Err(PlayerError::InvalidUrl { .. })
        ));
        assert!(matches!(
            play(PlayerConfig::new("https://127.0.0.1:1/x.m3u8")).await,
            Err(PlayerError::InvalidUrl { .. })
        ));
    }

    #[tokio::test]
    async fn no_playlist_error_when_nothing_listens() {
        // Bind and drop to find a port that refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut cfg = PlayerConfig::new(format!("http://127.0.0.1:{port}/index.m3u8"));
        cfg.max_duration = Duration::from_millis(800);
        let r = tokio::time::timeout(Duration::from_secs(10), play(cfg))
            .await
            .expect("timeout");
        assert!(matches!(r, Err(PlayerError::NoPlaylist { .. })), "{r:?}");
    }
}
