//! Wiring: the only module that knows every other one.
//!
//! [`Proxy`] is the [`Backend`] of the local endpoint: it maps mirror-form paths to origin
//! URLs, enforces the allow-list, fetches through the caches with single-flight, rewrites
//! playlists and answers `/streams/{name}.m3u8` and `/api/stats`. [`run`] binds the
//! listeners, starts the tasks and drains them on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use lru::LruCache;
use tokio::net::TcpListener;
use url::Url;

use crate::cache::{ByteLru, Entry, SingleFlight, TtlCache};
use crate::config::{AgentConfig, IntegrityMode, LowLatencyMode};
use crate::metrics::{Metrics, RequestKind, Source};
use crate::mirror;
use crate::origin::{ByteRange, FetchRequest, Fetched, OriginClient, OriginError, redact};
use crate::playlist::{self, PlaylistInfo, RewriteOptions, UriKind, UriMapper, Variables};
use crate::server::mime::content_type_for_path;
use crate::server::{self, Backend, CachePolicy, LocalRequest, Refusal, Reply};
use crate::task::Supervisor;

/// Cache key of a segment: the origin URL and, for a range fetched alone, that range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    /// Absolute origin URL.
    pub url: String,
    /// The range, when only a range of the resource was fetched.
    pub range: Option<ByteRange>,
}

/// An origin playlist as fetched (before rewriting).
#[derive(Debug, Clone)]
pub struct FetchedPlaylist {
    /// Body as received.
    pub body: Bytes,
    /// URL after redirects.
    pub final_url: Url,
    /// When it was fetched.
    pub fetched_at: Instant,
}

/// Most URLs remembered as keys, and most media playlists remembered with imported variables.
const REMEMBERED_URLS: usize = 4096;

/// The proxy behind the local endpoint.
pub struct Proxy {
    cfg: Arc<AgentConfig>,
    origin: OriginClient,
    metrics: Metrics,
    segments: ByteLru<SegmentKey>,
    segment_flights: SingleFlight<SegmentKey, Entry, OriginError>,
    playlists: TtlCache<String, FetchedPlaylist>,
    playlist_flights: SingleFlight<String, FetchedPlaylist, OriginError>,
    key_urls: Mutex<LruCache<String, ()>>,
    imports: Mutex<LruCache<String, Variables>>,
    streams: HashMap<String, Url>,
    started: Instant,
    p2p: std::sync::OnceLock<Arc<crate::driver::P2p>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// Maps origin URLs to local mirror paths for the rewriter: allowed origins are proxied;
/// keys only when `proxy_keys` is on; the rest is left absolute.
struct Mapper<'a> {
    proxy: &'a Proxy,
    keys: std::cell::RefCell<Vec<String>>,
}

impl UriMapper for Mapper<'_> {
    fn local_url(&self, url: &Url, kind: UriKind) -> Option<String> {
        if !self.proxy.origin.is_allowed(url) {
            return None;
        }
        match kind {
            UriKind::Key => {
                if !self.proxy.cfg.origin.proxy_keys {
                    return None;
                }
                self.keys.borrow_mut().push(url.as_str().to_string());
            }
            UriKind::Steering | UriKind::SessionData | UriKind::Other => return None,
            _ => {}
        }
        mirror::to_mirror_path(url)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_playlist_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".m3u8") || lower.ends_with(".m3u")
}

fn looks_like_playlist(body: &[u8]) -> bool {
    let b = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    b.starts_with(b"#EXTM3U")
}

/// Maps an origin failure to what the player sees.
pub fn refusal_for(e: &OriginError) -> Refusal {
    match e {
        OriginError::NotAllowed(o) => Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("origin redirected to {o}, which is not in origin.allow"),
        ),
        OriginError::Status(s) if (400..500).contains(s) => Refusal::new(
            StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_GATEWAY),
            format!("origin answered {s}"),
        ),
        OriginError::Timeout(what) => Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("origin timed out ({what})"),
        ),
        other => Refusal::new(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

impl Proxy {
    /// Builds the proxy. `extra_roots` are DER trust anchors added to the web PKI roots.
    pub fn new(
        cfg: Arc<AgentConfig>,
        metrics: Metrics,
        extra_roots: &[Vec<u8>],
    ) -> Result<Self, OriginError> {
        let origin = OriginClient::new(
            &cfg.origin,
            cfg.allowed_origins(),
            extra_roots,
            metrics.clone(),
        )?;
        let mut streams = HashMap::new();
        for s in &cfg.streams {
            if let Ok(u) = Url::parse(&s.url) {
                streams.insert(s.name.clone(), u);
            }
            let mode = s.integrity.unwrap_or(cfg.integrity.mode);
            let label = match mode {
                IntegrityMode::Required => "required",
                IntegrityMode::Off => "off",
            };
            metrics.streams.with_label_values(&[label]).inc();
            if mode == IntegrityMode::Off {
                tracing::warn!(stream = %s.name, "integrity is off for this stream: peer bytes will not be verified");
            }
        }
        let cap = NonZeroUsize::new(REMEMBERED_URLS).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            segments: ByteLru::new(cfg.cache.max_bytes.as_u64(), Some(metrics.clone())),
            segment_flights: SingleFlight::new(),
            playlists: TtlCache::new(1024),
            playlist_flights: SingleFlight::new(),
            key_urls: Mutex::new(LruCache::new(cap)),
            imports: Mutex::new(LruCache::new(cap)),
            streams,
            origin,
            metrics,
            cfg,
            started: Instant::now(),
            p2p: std::sync::OnceLock::new(),
        })
    }

    /// The metrics this proxy updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The segment cache.
    pub fn segment_cache(&self) -> &ByteLru<SegmentKey> {
        &self.segments
    }

    /// The P2P runtime, when a tracker is configured.
    pub fn p2p(&self) -> Option<&Arc<crate::driver::P2p>> {
        self.p2p.get()
    }

    /// Fetches a segment (or a range of it) from the origin through the cache and single-flight.
    pub(crate) async fn origin_segment(
        &self,
        url: &Url,
        range: Option<ByteRange>,
    ) -> Result<Entry, OriginError> {
        let key = SegmentKey {
            url: strip_fragment(url),
            range,
        };
        self.fetch_segment(key, url, RequestKind::Segment).await
    }

    /// Fetches `range` of a segment straight from the origin, outside the cache and
    /// single-flight: a unit of a striped segment, or the tail of a segment whose head a peer
    /// delivers. A `206` must answer exactly that range (an origin that ignores `Range` fails
    /// with `BadRange`). `tap` sees the body as it arrives (a seed's cut-through).
    pub(crate) async fn origin_range(
        &self,
        url: &Url,
        range: ByteRange,
        tap: Option<crate::origin::BodyTap>,
    ) -> Result<bytes::Bytes, OriginError> {
        let req = FetchRequest {
            url: url.clone(),
            kind: RequestKind::Segment,
            max_bytes: self.cfg.origin.max_segment_size.as_u64(),
            range: Some(range),
            tap,
        };
        let f = self.origin.fetch(&req).await?;
        self.metrics
            .segment_downloaded(Source::Origin, f.body.len(), f.elapsed.as_secs_f64());
        Ok(f.body)
    }

    /// Fetches and parses a digest sidecar. `None` when absent or invalid (logged).
    pub(crate) async fn fetch_digests(&self, url: &Url) -> Option<crate::integrity::Digests> {
        let req = FetchRequest {
            url: url.clone(),
            kind: RequestKind::Digest,
            max_bytes: self.cfg.origin.max_playlist_size.as_u64(),
            range: None,
            tap: None,
        };
        match self.origin.fetch(&req).await {
            Ok(f) => match crate::integrity::Digests::parse(&f.body) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(url = %redact(url), error = %e, "digest sidecar rejected");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(url = %redact(url), error = %e, "no digest sidecar");
                None
            }
        }
    }

    /// Fetches and parses a media playlist for the swarm follower. The follower reads the
    /// origin directly (not the playlist cache) so an elected fetcher learns of a new segment
    /// as early as possible, then refreshes the cache for players, for `live_ttl` if the
    /// playlist is live.
    pub(crate) async fn fetch_media_info(
        &self,
        url: &Url,
        live_ttl: Duration,
    ) -> Option<(playlist::MediaInfo, Url)> {
        let f = self.fetch_playlist(url, false).await.ok()?;
        let lim = playlist::Limits {
            max_bytes: self.cfg.origin.max_playlist_size.as_u64() as usize,
            ..Default::default()
        };
        match playlist::parse(&f.body, &f.final_url, &Variables::default(), &lim) {
            Ok(PlaylistInfo::Media(m)) => {
                if !m.endlist {
                    let ttl = live_ttl.min(Duration::from_secs(30));
                    self.playlists
                        .insert(strip_fragment(url), f.clone(), f.fetched_at + ttl);
                }
                Some((m, f.final_url))
            }
            _ => None,
        }
    }

    fn stats_json(&self) -> String {
        let m = &self.metrics;
        serde_json::json!({
            "peer_id": self.p2p.get().map(|p| p.peer_id().to_string()),
            "swarms": self.p2p.get().map_or(0, |p| p.swarm_count()),
            "downloaded_bytes": {
                "origin": m.downloaded_bytes.with_label_values(&[Source::Origin.as_str()]).get(),
                "peer": m.downloaded_bytes.with_label_values(&[Source::Peer.as_str()]).get(),
            },
            "uploaded_bytes": m.uploaded_bytes.get(),
            "served_bytes": m.served_bytes.get(),
            "peers": m.peers.get(),
            "integrity_failures": m.integrity_failures.get(),
            "cache_bytes": m.cache_bytes.get(),
            "cache_hits": m.cache_hits.get(),
            "cache_misses": m.cache_misses.get(),
            "uptime_seconds": self.started.elapsed().as_secs(),
        })
        .to_string()
    }

    async fn fetch_playlist(
        &self,
        url: &Url,
        cacheable: bool,
    ) -> Result<FetchedPlaylist, OriginError> {
        let key = url.as_str().to_string();
        let now = Instant::now();
        if cacheable && let Some(p) = self.playlists.get(&key, now) {
            return Ok(p);
        }
        let origin = self.origin.clone();
        let req = FetchRequest {
            url: url.clone(),
            kind: RequestKind::Playlist,
            max_bytes: self.cfg.origin.max_playlist_size.as_u64(),
            range: None,
            tap: None,
        };
        let (result, role) = self
            .playlist_flights
            .run(
                key,
                move || async move {
                    let f = origin.fetch(&req).await?;
                    Ok(FetchedPlaylist {
                        body: f.body,
                        final_url: f.final_url,
                        fetched_at: Instant::now(),
                    })
                },
                OriginError::Invalid("playlist fetch ended without a result".into()),
            )
            .await;
        if role == crate::cache::Role::Joined {
            self.metrics.coalesced_requests.inc();
        }
        result
    }

    async fn serve_playlist(&self, origin_url: Url, req: &LocalRequest) -> Result<Reply, Refusal> {
        let ll_request = playlist::is_low_latency_request(origin_url.query());
        let mut fetch_url = origin_url.clone();
        if ll_request && self.cfg.playlist.low_latency == LowLatencyMode::Degrade {
            strip_hls_directives(&mut fetch_url);
        }
        let cacheable = !playlist::is_low_latency_request(fetch_url.query());
        let fetched = self
            .fetch_playlist(&fetch_url, cacheable)
            .await
            .map_err(|e| refusal_for(&e))?;
        self.rewrite_playlist(fetched, &origin_url, req, cacheable)
    }

    fn rewrite_playlist(
        &self,
        fetched: FetchedPlaylist,
        origin_url: &Url,
        req: &LocalRequest,
        cacheable: bool,
    ) -> Result<Reply, Refusal> {
        let host = req
            .host
            .clone()
            .unwrap_or_else(|| self.cfg.server.listen.to_string());
        let local = format!(
            "http://{host}{}{}",
            req.path,
            req.query
                .as_ref()
                .map_or(String::new(), |q| format!("?{q}"))
        );
        let local_url = Url::parse(&local)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("bad Host header: {e}")))?;
        let imports = lock(&self.imports)
            .get(&strip_query(origin_url))
            .cloned()
            .unwrap_or_default();
        let opts = RewriteOptions {
            degrade_low_latency: self.cfg.playlist.low_latency == LowLatencyMode::Degrade,
            strip_content_steering: self.cfg.playlist.strip_content_steering,
            live_hold_back: self.cfg.playlist.live_hold_back,
            limits: playlist::Limits {
                max_bytes: self.cfg.origin.max_playlist_size.as_u64() as usize,
                ..playlist::Limits::default()
            },
        };
        let mapper = Mapper {
            proxy: self,
            keys: std::cell::RefCell::new(Vec::new()),
        };
        let t0 = Instant::now();
        let rewritten = playlist::rewrite(
            &fetched.body,
            &fetched.final_url,
            &local_url,
            &imports,
            &opts,
            &mapper,
        )
        .map_err(|e| {
            self.metrics.playlist_errors.inc();
            tracing::warn!(url = %redact(origin_url), error = %e, "malformed origin playlist");
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!("origin playlist rejected: {e}"),
            )
        })?;
        self.metrics
            .rewrite_seconds
            .observe(t0.elapsed().as_secs_f64());
        if let Some(outcome) = rewritten.hold_back.outcome_label() {
            self.metrics
                .playlist_hold_back
                .with_label_values(&[outcome])
                .inc();
        }
        {
            let mut keys = lock(&self.key_urls);
            for k in mapper.keys.borrow().iter() {
                keys.put(k.clone(), ());
            }
        }
        let now = Instant::now();
        let (cache, ttl) = match &rewritten.info {
            PlaylistInfo::Media(m) if m.endlist => (
                CachePolicy::MaxAge(self.cfg.cache.vod_playlist_ttl.as_secs()),
                self.cfg.cache.vod_playlist_ttl,
            ),
            PlaylistInfo::Media(m) => (
                CachePolicy::NoCache,
                Duration::from_millis((m.target_duration * 500).min(30_000)),
            ),
            PlaylistInfo::Multivariant(mv) => {
                let mut imports = lock(&self.imports);
                if !mv.defines.is_empty() {
                    for p in &mv.playlists {
                        imports.put(strip_query(&p.url), mv.defines.clone());
                    }
                }
                (CachePolicy::NoCache, Duration::from_secs(2))
            }
        };
        if cacheable
            && let (Some(p2p), PlaylistInfo::Media(m)) = (self.p2p.get(), &rewritten.info)
            && !m.segments.is_empty()
        {
            p2p.observe_media_playlist(origin_url, &fetched.final_url, Arc::new(m.clone()));
        }
        if cacheable && !ttl.is_zero() {
            let key = strip_fragment(origin_url);
            // Store only what was fetched now; a cache hit keeps its original expiry.
            if now.duration_since(fetched.fetched_at) < Duration::from_millis(5) {
                self.playlists
                    .insert(key, fetched.clone(), fetched.fetched_at + ttl);
            }
        }
        let age = now.duration_since(fetched.fetched_at).as_secs();
        Ok(Reply::Whole {
            body: Bytes::from(rewritten.body),
            content_type: "application/vnd.apple.mpegurl",
            cache,
            age: Some(age),
        })
    }

    async fn fetch_segment(
        &self,
        key: SegmentKey,
        url: &Url,
        kind: RequestKind,
    ) -> Result<Entry, OriginError> {
        if let Some(e) = self.segments.get(&key) {
            return Ok(e);
        }
        let origin = self.origin.clone();
        let metrics = self.metrics.clone();
        let req = FetchRequest {
            url: url.clone(),
            kind,
            max_bytes: self.cfg.origin.max_segment_size.as_u64(),
            range: key.range,
            tap: None,
        };
        let content_type = content_type_for_path(url.path());
        let (result, role) = self
            .segment_flights
            .run(
                key.clone(),
                move || async move {
                    let f: Fetched = origin.fetch(&req).await?;
                    metrics.segment_downloaded(
                        Source::Origin,
                        f.body.len(),
                        f.elapsed.as_secs_f64(),
                    );
                    Ok(Entry {
                        body: f.body,
                        content_type,
                        source: Source::Origin,
                        stored_at: Instant::now(),
                        resource_len: f.resource_len,
                    })
                },
                OriginError::Invalid("segment fetch ended without a result".into()),
            )
            .await;
        if role == crate::cache::Role::Joined {
            self.metrics.coalesced_requests.inc();
        }
        let entry = result?;
        if role == crate::cache::Role::Leader && !looks_like_playlist(&entry.body) {
            self.segments.insert(key, entry.clone());
        }
        Ok(entry)
    }

    async fn serve_key(&self, url: &Url) -> Result<Reply, Refusal> {
        // Keys: fetched per request, never cached, never shared, never logged.
        let f = self
            .origin
            .fetch(&FetchRequest {
                url: url.clone(),
                kind: RequestKind::Key,
                max_bytes: 64 * 1024,
                range: None,
                tap: None,
            })
            .await
            .map_err(|e| refusal_for(&e))?;
        Ok(Reply::Whole {
            body: f.body,
            content_type: "application/octet-stream",
            cache: CachePolicy::NoStore,
            age: None,
        })
    }

    async fn serve_resource(&self, origin_url: Url, req: &LocalRequest) -> Result<Reply, Refusal> {
        let url_key = strip_fragment(&origin_url);
        if lock(&self.key_urls).get(&url_key).is_some() {
            return self.serve_key(&origin_url).await;
        }
        let whole = SegmentKey {
            url: url_key.clone(),
            range: None,
        };
        let closed = req.range.and_then(|r| r.closed());
        if let Some(p2p) = self.p2p.get() {
            let range = closed.map(|(start, len)| ByteRange { start, len });
            let key = match range {
                Some(r) => format!("{url_key}@{}-{}", r.start, r.len),
                None => url_key.clone(),
            };
            match p2p.player_request(&key).await {
                Some(crate::driver::PlayerAnswer::Ready(e)) => {
                    return Ok(match range {
                        Some(r) => Reply::Partial {
                            body: e.body,
                            start: r.start,
                            total: e.resource_len,
                            content_type: e.content_type,
                        },
                        None => Reply::Whole {
                            body: e.body,
                            content_type: e.content_type,
                            cache: CachePolicy::Immutable,
                            age: Some(e.stored_at.elapsed().as_secs()),
                        },
                    });
                }
                Some(crate::driver::PlayerAnswer::Failed(reason)) => {
                    return Err(Refusal::new(StatusCode::BAD_GATEWAY, reason));
                }
                Some(crate::driver::PlayerAnswer::Unknown) | None => {}
            }
        }
        if let (Some((start, len)), None) = (closed, self.segments.peek(&whole)) {
            let key = SegmentKey {
                url: url_key,
                range: Some(ByteRange { start, len }),
            };
            let e = self
                .fetch_segment(key, &origin_url, RequestKind::Segment)
                .await
                .map_err(|e| refusal_for(&e))?;
            return Ok(Reply::Partial {
                body: e.body,
                start,
                total: e.resource_len,
                content_type: e.content_type,
            });
        }
        let entry = self
            .fetch_segment(whole, &origin_url, RequestKind::Segment)
            .await
            .map_err(|e| refusal_for(&e))?;
        if looks_like_playlist(&entry.body) {
            // An extension-less playlist: rewrite it like any other.
            let fetched = FetchedPlaylist {
                body: entry.body,
                final_url: origin_url.clone(),
                fetched_at: Instant::now(),
            };
            return self.rewrite_playlist(fetched, &origin_url, req, false);
        }
        Ok(Reply::Whole {
            body: entry.body,
            content_type: entry.content_type,
            cache: CachePolicy::Immutable,
            age: Some(entry.stored_at.elapsed().as_secs()),
        })
    }
}

fn strip_fragment(u: &Url) -> String {
    let mut u = u.clone();
    u.set_fragment(None);
    u.as_str().to_string()
}

fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_fragment(None);
    u.set_query(None);
    u.as_str().to_string()
}

/// Removes `_HLS_msn`, `_HLS_part`, `_HLS_skip` (degrade mode fetches full playlists).
fn strip_hls_directives(u: &mut Url) {
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("_HLS_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
}

impl Backend for Proxy {
    async fn handle(&self, req: LocalRequest) -> Result<Reply, Refusal> {
        let path = req.path.as_str();
        if path.starts_with("/http/") || path.starts_with("/https/") {
            let pq = match &req.query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            let origin_url = mirror::from_mirror_path(&pq).map_err(|e| {
                Refusal::new(StatusCode::BAD_REQUEST, format!("bad mirror URL: {e}"))
            })?;
            if !self.origin.is_allowed(&origin_url) {
                self.metrics.forbidden_requests.inc();
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin {} is not in origin.allow",
                        crate::origin::origin_label(&origin_url)
                    ),
                ));
            }
            if is_playlist_path(origin_url.path()) {
                return self.serve_playlist(origin_url, &req).await;
            }
            return self.serve_resource(origin_url, &req).await;
        }
        if let Some(name) = path
            .strip_prefix("/streams/")
            .and_then(|n| n.strip_suffix(".m3u8"))
        {
            let url = self.streams.get(name).ok_or_else(|| {
                Refusal::new(StatusCode::NOT_FOUND, format!("no stream named `{name}`"))
            })?;
            let target = mirror::to_mirror_path(url).ok_or_else(|| {
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "stream URL cannot be mirrored",
                )
            })?;
            return Ok(Reply::Redirect(target));
        }
        match path {
            "/api/stats" => Ok(Reply::Json(self.stats_json())),
            "/" => {
                let mut names: Vec<&String> = self.streams.keys().collect();
                names.sort();
                let mut text = String::from(
                    "hivecast-agent\n\nPlay an allowed origin URL scheme://host/path as http://<this agent>/scheme/host/path\n",
                );
                for n in names {
                    text.push_str(&format!("stream: /streams/{n}.m3u8\n"));
                }
                Ok(Reply::Text(text))
            }
            _ => Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "not found: use /{scheme}/{host}/{path} or /streams/{name}.m3u8",
            )),
        }
    }

    fn served(&self, path: &str, status: StatusCode, body_bytes: usize) {
        let kind = if is_playlist_path(path) {
            "playlist"
        } else if path.starts_with("/http/") || path.starts_with("/https/") {
            "segment"
        } else {
            "other"
        };
        let class = match status.as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.metrics
            .player_requests
            .with_label_values(&[kind, class])
            .inc();
        if kind == "segment" && status.is_success() {
            self.metrics.served_bytes.inc_by(body_bytes as u64);
        }
    }
}

/// The admin endpoint: `/metrics` and `/healthz`.
#[derive(Debug)]
pub struct Admin {
    metrics: Metrics,
}

impl Backend for Admin {
    async fn handle(&self, req: LocalRequest) -> Result<Reply, Refusal> {
        match req.path.as_str() {
            "/metrics" => Ok(Reply::Whole {
                body: Bytes::from(self.metrics.render()),
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                cache: CachePolicy::NoStore,
                age: None,
            }),
            "/healthz" => Ok(Reply::Text("ok\n".into())),
            _ => Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "not found: /metrics or /healthz",
            )),
        }
    }
}

/// A running agent (for tests and the binary).
#[derive(Debug)]
pub struct Running {
    /// Bound player endpoint.
    pub listen: SocketAddr,
    /// Bound admin endpoint.
    pub admin: SocketAddr,
    /// The proxy (for inspection in tests).
    pub proxy: Arc<Proxy>,
    /// Supervisor; cancel it to stop.
    pub supervisor: Supervisor,
}

impl Running {
    /// Stops accepting, drains for up to the configured grace period, and waits for tasks.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.supervisor
            .shutdown(grace + Duration::from_secs(1))
            .await
    }
}

/// Error starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The origin client could not be built.
    #[error("origin client: {0}")]
    Origin(#[from] OriginError),
    /// Peer-to-peer sharing could not start.
    #[error("p2p: {0}")]
    P2p(#[from] crate::driver::P2pError),
}

/// Binds the listeners and starts serving. Returns once both listeners are bound (readiness).
pub async fn start(cfg: AgentConfig, extra_roots: &[Vec<u8>]) -> Result<Running, StartError> {
    let cfg = Arc::new(cfg);
    let metrics = Metrics::new();
    let proxy = Arc::new(Proxy::new(cfg.clone(), metrics.clone(), extra_roots)?);
    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "player endpoint",
            addr: cfg.server.listen,
            source,
        })?;
    let admin_listener = TcpListener::bind(cfg.server.admin_listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "admin endpoint",
            addr: cfg.server.admin_listen,
            source,
        })?;
    let listen = listener.local_addr().map_err(|source| StartError::Bind {
        what: "player endpoint",
        addr: cfg.server.listen,
        source,
    })?;
    let admin = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "admin endpoint",
            addr: cfg.server.admin_listen,
            source,
        })?;
    let supervisor = Supervisor::new();
    if !cfg.p2p.tracker.is_empty() {
        let p2p = crate::driver::P2p::start(
            cfg.clone(),
            Arc::downgrade(&proxy),
            metrics.clone(),
            supervisor.clone(),
        )?;
        let _ = proxy.p2p.set(p2p);
    }
    let grace = cfg.server.shutdown_grace;
    let max_conn = cfg.server.max_connections;
    {
        let proxy = proxy.clone();
        let cancel = supervisor.cancel.clone();
        supervisor.spawn("player-endpoint", async move {
            server::serve(listener, proxy, cancel, grace, max_conn).await;
        });
    }
    {
        let admin_backend = Arc::new(Admin {
            metrics: metrics.clone(),
        });
        let cancel = supervisor.cancel.clone();
        supervisor.spawn("admin-endpoint", async move {
            server::serve(admin_listener, admin_backend, cancel, grace, 64).await;
        });
    }
    Ok(Running {
        listen,
        admin,
        proxy,
        supervisor,
    })
}
