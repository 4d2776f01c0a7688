//! Typed agent configuration.
//!
//! Layering (lowest to highest): built-in defaults → TOML file (`--config FILE`) → environment
//! (`HIVECAST_AGENT__SECTION__KEY`) → command-line flags. Unknown keys are errors, and every
//! problem found is reported at once (see [`ConfigErrors`]); `main` exits with code 64 on them.
//!
//! `hivecast-agent --print-default-config` prints [`AgentConfig::default`] as TOML; the checked-in
//! `config/agent.toml` must equal that output (a test enforces it).

mod load;

pub use load::{ConfigErrors, Overrides, load};

use std::net::SocketAddr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

/// The whole agent configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Local listeners (player endpoint and admin endpoint).
    pub server: ServerConfig,
    /// How the agent talks to origins, and which origins it may talk to.
    pub origin: OriginConfig,
    /// In-memory segment cache.
    pub cache: CacheConfig,
    /// Playlist handling.
    pub playlist: PlaylistConfig,
    /// Segment integrity (digest sidecars published by the origin).
    pub integrity: IntegrityConfig,
    /// Peer-to-peer sharing (tracker, scheduler, WebRTC).
    pub p2p: P2pConfig,
    /// Logging.
    pub log: LogConfig,
    /// Named streams, reachable at `/streams/{name}.m3u8`.
    pub streams: Vec<StreamConfig>,
}

/// Local listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the local HLS endpoint that players use. Keep it on loopback unless the
    /// players run on other machines: the endpoint has no authentication.
    pub listen: SocketAddr,
    /// Address of the admin endpoint (`/metrics`, `/healthz`).
    pub admin_listen: SocketAddr,
    /// How long in-flight requests may take to finish after SIGTERM before the agent exits.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Maximum number of concurrent player connections; further connections wait.
    pub max_connections: usize,
}

/// Origin access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Origins the agent may fetch from, as `scheme://host[:port]` (for example
    /// `https://cdn.example.com`). Anything else is refused with 403: the agent is not an open
    /// proxy. Empty means the agent fetches nothing.
    pub allow: Vec<String>,
    /// TCP + TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to receiving the response head.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest silence allowed between two chunks of a response body.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// Upper bound on the whole request, retries included.
    #[serde(with = "humantime_serde")]
    pub total_timeout: Duration,
    /// Retries of idempotent failures (connect errors, timeouts, 502/503/504, cut-off bodies).
    pub retries: u32,
    /// First retry delay; doubles on every further retry.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Redirects followed per request. Targets must be allowed origins too.
    pub max_redirects: u32,
    /// Largest playlist or digest sidecar accepted.
    pub max_playlist_size: ByteSize,
    /// Largest segment accepted.
    pub max_segment_size: ByteSize,
    /// Idle pooled connections kept per origin host.
    pub pool_max_idle_per_host: usize,
    /// Proxy encryption keys through the agent (never cached to disk, never shared, never
    /// logged). Off by default: key URIs are made absolute and the player fetches them itself.
    pub proxy_keys: bool,
    /// `User-Agent` sent to origins.
    pub user_agent: String,
}

/// Segment cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory budget for segments and init segments (least recently used evicted first).
    pub max_bytes: ByteSize,
    /// Longest time a VOD playlist (one with `EXT-X-ENDLIST`) is served from cache.
    #[serde(with = "humantime_serde")]
    pub vod_playlist_ttl: Duration,
}

/// What to do with Low-Latency HLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LowLatencyMode {
    /// Rewrite parts, preload hints and rendition reports; forward `_HLS_*` directives.
    Passthrough,
    /// Strip LL-HLS tags so players see ordinary HLS; whole segments only.
    Degrade,
}

/// Playlist handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaylistConfig {
    /// Low-Latency HLS handling.
    pub low_latency: LowLatencyMode,
    /// Remove `EXT-X-CONTENT-STEERING` (the agent is the origin's client, so it steers).
    pub strip_content_steering: bool,
    /// Live media playlists: withhold this many of the newest segments from players, so they
    /// play that many segments further behind the live edge and peers get that much more time
    /// to share each segment (default 0).
    pub live_hold_back: usize,
    /// Live media playlists: learn when the origin publishes and reload just after the next
    /// segment's expected publication, never sooner than RFC 8216 §6.3.4 allows (default true;
    /// false: the RFC's rule alone, whose phase is wherever the first load fell).
    pub align_reloads: bool,
}

/// Integrity mode of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrityMode {
    /// Peer bytes are used only after their SHA-256 matches the origin's digest sidecar; a
    /// stream without digests plays from the origin only.
    Required,
    /// Share without digests (logged as a warning at start). Only for trusted swarms.
    Off,
}

/// Integrity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// Default mode for every stream (a `[[streams]]` entry may override it).
    pub mode: IntegrityMode,
}

/// Peer-to-peer sharing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Tracker URL (`ws://` or `wss://`, may carry an access token). Empty: P2P is off and
    /// every segment comes from the origin.
    pub tracker: String,
    /// Peers per swarm (one swarm per media playlist) that the agent seeks: it sends offers
    /// with its announces while below this.
    pub max_peers: usize,
    /// Offers from other agents are answered while the swarm has fewer than this many peers
    /// (at least `max_peers`). Accepting a few more peers than the agent seeks lets agents that
    /// join a swarm whose members all have `max_peers` connect to them at once.
    pub accept_peers: usize,
    /// Offers sent with an announce while below `max_peers`.
    pub offers_per_announce: usize,
    /// Longest re-announce interval (the tracker's `interval` wins when shorter).
    #[serde(with = "humantime_serde")]
    pub announce_interval: Duration,
    /// Re-announce interval while below `max_peers`.
    #[serde(with = "humantime_serde")]
    pub hungry_announce_interval: Duration,
    /// Origin copies wanted per new live segment per swarm (`k`).
    pub fetchers: u32,
    /// Most concurrent uploads to peers; fewer while the measured upload rate cannot give
    /// each 0.4 of the stream rate (1 = no adaptation, 0 = no upload).
    pub upload_slots: usize,
    /// Upload rate cap in bytes per second; 0 means no cap.
    pub upload_rate_cap: ByteSize,
    /// Time after a live segment appears by which its origin fallback must start; 0 means
    /// 1.5 × the target duration.
    #[serde(with = "humantime_serde")]
    pub peer_wait_budget: Duration,
    /// A peer transfer without progress for this long is hedged to another peer or the origin.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// Longest wait for a peer copy of the segment a player starts or seeks to, while no
    /// connected peer is known to hold it; 0 fetches it from the origin at once. The wait also
    /// sets how far behind the live edge playback starts, so lowering it trades offload for
    /// startup time.
    #[serde(with = "humantime_serde")]
    pub startup_wait: Duration,
    /// A swarm nobody played from for this long is left.
    #[serde(with = "humantime_serde")]
    pub swarm_idle_timeout: Duration,
    /// Units each segment with chunk digests is shared as (1 to 8, default 4; 1 = whole
    /// segments). Every agent of a swarm must use the same value: peers with another one are
    /// not connected. Segments without chunk digests are shared whole (see docs/operations.md).
    pub stripes: u8,
    /// WebRTC transport.
    pub webrtc: crate::transport::TransportConfig,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            tracker: String::new(),
            max_peers: 8,
            accept_peers: 10,
            offers_per_announce: 3,
            announce_interval: Duration::from_secs(60),
            hungry_announce_interval: Duration::from_secs(5),
            fetchers: 1,
            upload_slots: 4,
            upload_rate_cap: ByteSize::b(0),
            peer_wait_budget: Duration::ZERO,
            stall_timeout: Duration::from_millis(500),
            startup_wait: Duration::from_secs(1),
            swarm_idle_timeout: Duration::from_secs(30),
            stripes: 4,
            webrtc: crate::transport::TransportConfig::default(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, for example `info` or `hivecast_agent=debug,info`.
    /// `RUST_LOG` wins when set.
    pub level: String,
    /// Emit JSON lines instead of human-readable text.
    pub json: bool,
}

/// A named stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Name used in `/streams/{name}.m3u8` (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Origin URL of the playlist (multivariant or media).
    pub url: String,
    /// Integrity mode for this stream; the `[integrity]` default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityMode>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8585)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9585)),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            header_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            max_redirects: 5,
            max_playlist_size: ByteSize::mib(4),
            max_segment_size: ByteSize::mib(64),
            pool_max_idle_per_host: 16,
            proxy_keys: false,
            user_agent: concat!("hivecast-agent/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize::mib(256),
            vod_playlist_ttl: Duration::from_secs(300),
        }
    }
}

/// Largest `playlist.live_hold_back`: beyond it a player would sit minutes behind the edge of
/// a typical live window.
pub const MAX_LIVE_HOLD_BACK: usize = 10;

impl Default for PlaylistConfig {
    fn default() -> Self {
        Self {
            low_latency: LowLatencyMode::Passthrough,
            strip_content_steering: true,
            live_hold_back: 0,
            align_reloads: true,
        }
    }
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            mode: IntegrityMode::Required,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            json: false,
        }
    }
}

/// A URL with its path and query hidden (they may carry tokens).
pub fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "(invalid URL)".to_string(),
    }
}

/// An allowed origin: scheme, host and port (the port is explicit, default ports filled in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host (IPv6 without brackets).
    pub host: String,
    /// Port, the scheme's default when not given.
    pub port: u16,
}

impl AllowedOrigin {
    /// Parses `scheme://host[:port]` (a trailing `/` is accepted; any other path is not).
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        Self::from_url_strict(&url).map_err(|e| format!("`{s}`: {e}"))
    }

    fn from_url_strict(url: &Url) -> Result<Self, String> {
        let o =
            Self::of(url).ok_or_else(|| "only http and https origins are supported".to_string())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in an origin are not allowed".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("an origin is scheme://host[:port] only, without a path or query".into());
        }
        Ok(o)
    }

    /// The origin (scheme, host, port) of any http(s) URL.
    pub fn of(url: &Url) -> Option<Self> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        Some(Self {
            scheme: scheme.to_string(),
            host,
            port: url.port_or_known_default()?,
        })
    }
}

impl AgentConfig {
    /// Checks values across fields. Returns every problem found.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for a in &self.origin.allow {
            if let Err(e) = AllowedOrigin::parse(a) {
                errs.push(format!("origin.allow: {e}"));
            }
        }
        if self.server.listen == self.server.admin_listen && self.server.listen.port() != 0 {
            errs.push(format!(
                "server.listen and server.admin_listen are both {}; they must differ",
                self.server.listen
            ));
        }
        if self.server.max_connections == 0 {
            errs.push("server.max_connections must be at least 1".into());
        }
        if self.origin.connect_timeout.is_zero()
            || self.origin.header_timeout.is_zero()
            || self.origin.body_idle_timeout.is_zero()
        {
            errs.push("origin timeouts must be greater than zero".into());
        }
        if self.origin.total_timeout < self.origin.header_timeout {
            errs.push("origin.total_timeout must be at least origin.header_timeout".into());
        }
        if self.origin.retries > 10 {
            errs.push(format!(
                "origin.retries = {} is above the limit of 10",
                self.origin.retries
            ));
        }
        if self.origin.max_playlist_size.as_u64() < 1024 {
            errs.push("origin.max_playlist_size must be at least 1 KiB".into());
        }
        if self.origin.max_segment_size.as_u64() < 64 * 1024 {
            errs.push("origin.max_segment_size must be at least 64 KiB".into());
        }
        if self.origin.max_segment_size.as_u64() > self.cache.max_bytes.as_u64() {
            errs.push("origin.max_segment_size must not exceed cache.max_bytes".into());
        }
        if self.origin.user_agent.is_empty() || self.origin.user_agent.contains(['\r', '\n']) {
            errs.push("origin.user_agent must be a non-empty single line".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            errs.push(format!(
                "log.level `{}` is not a valid filter directive",
                self.log.level
            ));
        }
        if !self.p2p.tracker.is_empty() {
            match Url::parse(&self.p2p.tracker) {
                Ok(u) if (u.scheme() == "ws" || u.scheme() == "wss") && u.host().is_some() => {}
                _ => errs.push(format!(
                    "p2p.tracker `{}` must be a ws:// or wss:// URL",
                    redact_url(&self.p2p.tracker)
                )),
            }
        }
        if self.playlist.live_hold_back > MAX_LIVE_HOLD_BACK {
            errs.push(format!(
                "playlist.live_hold_back must be at most {MAX_LIVE_HOLD_BACK} segments (got {})",
                self.playlist.live_hold_back
            ));
        }
        if self.p2p.max_peers == 0 || self.p2p.max_peers > 200 {
            errs.push("p2p.max_peers must be between 1 and 200".into());
        }
        if self.p2p.accept_peers < self.p2p.max_peers || self.p2p.accept_peers > 200 {
            errs.push(format!(
                "p2p.accept_peers must be between p2p.max_peers ({}) and 200 (got {})",
                self.p2p.max_peers, self.p2p.accept_peers
            ));
        }
        if self.p2p.offers_per_announce == 0 || self.p2p.offers_per_announce > 10 {
            errs.push("p2p.offers_per_announce must be between 1 and 10".into());
        }
        if self.p2p.fetchers == 0 {
            errs.push("p2p.fetchers must be at least 1".into());
        }
        if crate::core::stripes::Stripes::new(self.p2p.stripes).is_none() {
            errs.push(format!(
                "p2p.stripes must be between 1 and {} (got {})",
                crate::core::stripes::MAX_STRIPES,
                self.p2p.stripes
            ));
        }
        if self.p2p.stall_timeout.is_zero() {
            errs.push("p2p.stall_timeout must be greater than zero".into());
        }
        if self.p2p.startup_wait > Duration::from_secs(30) {
            errs.push("p2p.startup_wait must be at most 30s".into());
        }
        if self.p2p.hungry_announce_interval.is_zero() || self.p2p.announce_interval.is_zero() {
            errs.push("p2p announce intervals must be greater than zero".into());
        }
        if let Err(e) = self.p2p.webrtc.validate() {
            errs.push(format!("p2p.webrtc: {e}"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            let valid_name = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && !s.name.starts_with('.');
            if !valid_name {
                errs.push(format!(
                    "streams[{i}].name `{}` must be 1-64 letters, digits, '-', '_' or '.'",
                    s.name
                ));
            }
            if !names.insert(s.name.as_str()) {
                errs.push(format!("streams[{i}].name `{}` is used twice", s.name));
            }
            match Url::parse(&s.url) {
                Ok(u) => match AllowedOrigin::of(&u) {
                    None => errs.push(format!("streams[{i}].url must be http or https")),
                    Some(o) if !self.allowed_origins().contains(&o) => errs.push(format!(
                        "streams[{i}].url: origin {}://{}:{} is not in origin.allow",
                        o.scheme, o.host, o.port
                    )),
                    Some(_) => {}
                },
                Err(e) => errs.push(format!("streams[{i}].url `{}` is not a URL: {e}", s.url)),
            }
        }
        errs
    }

    /// The parsed allow-list (entries that fail to parse are skipped; `validate` reports them).
    pub fn allowed_origins(&self) -> Vec<AllowedOrigin> {
        self.origin
            .allow
            .iter()
            .filter_map(|a| AllowedOrigin::parse(a).ok())
            .collect()
    }

    /// The default configuration as documented TOML (what `--print-default-config` prints).
    pub fn default_toml() -> String {
        load::default_toml()
    }
}
