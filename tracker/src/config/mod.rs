//! Typed tracker configuration, loaded once at startup.
//!
//! Layers, later ones win: built-in defaults ([`Config::default`]) → TOML file
//! (`--config FILE`) → environment (`HIVECAST_TRACKER__SECTION__KEY`, e.g.
//! `HIVECAST_TRACKER__LIMITS__MAX_OFFERS_PER_ANNOUNCE=5`; list values comma-separated)
//! → command-line flags. Every struct denies unknown fields; [`load`] goes further and
//! reports *every* unknown key, bad value and failed cross-field check at once
//! ([`ConfigErrors`]), so an operator fixes a file in one pass. `main` exits with code 64
//! on any of them.
//!
//! The documented defaults are [`DEFAULT_TOML`], printed by
//! `hivecast-tracker --print-default-config` and checked in as `config/tracker.toml`;
//! tests keep it equal to [`Config::default`] and require a comment on every key.

mod load;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::policy::PolicyKind;
use crate::proto::InfoHash;
use crate::swarm::RegistryConfig;

pub use load::{ConfigErrors, Overrides, load, load_with_env};

/// The documented default configuration file.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Prefix of environment variables (`HIVECAST_TRACKER__SECTION__KEY`).
pub const ENV_PREFIX: &str = "HIVECAST_TRACKER";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The WebSocket listener.
    pub server: ServerConfig,
    /// The admin listener (`/metrics`, `/healthz`).
    pub admin: AdminConfig,
    /// Values sent to clients.
    pub protocol: ProtocolConfig,
    /// Swarm registry: expiry, peer choice, capacity.
    pub swarm: SwarmConfig,
    /// Limits against heavy or hostile clients.
    pub limits: LimitsConfig,
    /// Optional access control.
    pub access: AccessConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The WebSocket listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the WebSocket listener (`ws://`, or `wss://` when TLS is set).
    pub listen: SocketAddr,
    /// PEM certificate chain for `wss://`; set together with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `wss://`.
    pub tls_key_file: Option<PathBuf>,
    /// Time a client has to finish the TLS and WebSocket handshakes.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A WebSocket ping is sent after this much silence from the client.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) for this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A write to a client that does not complete within this time drops the client.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Messages queued for one client; a client whose queue is full is a slow reader
    /// and is dropped.
    pub outbound_queue: usize,
    /// On SIGTERM/SIGINT, connections get this long to close; a second signal exits
    /// at once.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            tls_cert_file: None,
            tls_key_file: None,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            outbound_queue: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address serving `/metrics` (Prometheus text) and `/healthz`.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9586)),
        }
    }
}

/// Values sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// `interval` in announce responses: how often clients re-announce.
    #[serde(with = "humantime_serde")]
    pub announce_interval: Duration,
    /// `min interval` in announce responses.
    #[serde(with = "humantime_serde")]
    pub min_announce_interval: Duration,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            announce_interval: Duration::from_secs(120),
            min_announce_interval: Duration::from_secs(30),
        }
    }
}

/// Swarm registry settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// A peer that has not announced for this long leaves its swarm.
    #[serde(with = "humantime_serde")]
    pub peer_ttl: Duration,
    /// A relayed offer not answered within this time is forgotten; a later answer is
    /// dropped (clients give up on offers after 50 s).
    #[serde(with = "humantime_serde")]
    pub offer_ttl: Duration,
    /// How often idle peers and stale offers are swept.
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
    /// Who receives offers: `random`, or `same-subnet` (same IPv4 /24 or IPv6 /48
    /// first, then random).
    pub policy: PolicyKind,
    /// Maximum swarms at once; announces that would create more are refused.
    pub max_swarms: usize,
    /// Maximum peers over all swarms; announces that would add more are refused.
    pub max_peers: usize,
    /// Offers awaiting an answer remembered per peer; the oldest is forgotten first.
    pub max_pending_offers_per_peer: usize,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        let r = RegistryConfig::default();
        Self {
            peer_ttl: r.peer_ttl,
            offer_ttl: r.offer_ttl,
            cleanup_interval: Duration::from_secs(30),
            policy: PolicyKind::Random,
            max_swarms: r.max_swarms,
            max_peers: r.max_peers,
            max_pending_offers_per_peer: r.max_pending_offers_per_peer,
        }
    }
}

/// Limits against heavy or hostile clients. Each refusal is a `failure reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest WebSocket message (and frame) accepted; bigger ones close the
    /// connection after a `failure reason`.
    pub max_message_size: ByteSize,
    /// Most offers in one announce; more is refused.
    pub max_offers_per_announce: usize,
    /// Most (swarm, peer_id) memberships one connection may hold.
    pub max_swarms_per_connection: usize,
    /// Most `info_hash` values in one scrape.
    pub max_scrape_info_hashes: usize,
    /// Most open connections in total; further clients are refused.
    pub max_connections: usize,
    /// Most open connections from one IP address (IPv6: one /64).
    pub max_connections_per_ip: usize,
    /// Sustained announces plus scrapes per second allowed from one IP address (IPv6:
    /// one /64); answers are not counted.
    pub announce_rate_per_ip: u32,
    /// Announces allowed in a burst above the sustained rate.
    pub announce_burst_per_ip: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_size: ByteSize::kib(64),
            max_offers_per_announce: 10,
            max_swarms_per_connection: 16,
            max_scrape_info_hashes: 64,
            max_connections: 100_000,
            max_connections_per_ip: 256,
            announce_rate_per_ip: 20,
            announce_burst_per_ip: 100,
        }
    }
}

/// A secret string (access token): never printed by `Debug`, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; use only to compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Optional access control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Accepted access tokens. When non-empty, clients connect to
    /// `/announce/<token>` or add `?token=<token>`. Characters: A–Z a–z 0–9 - . _ ~
    pub tokens: Vec<Secret>,
    /// `info_hash` allow-list as 40 hex digits. When non-empty, only these swarms can
    /// be announced or scraped.
    pub info_hash_allow: Vec<String>,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter in `RUST_LOG` syntax (the `RUST_LOG` variable, if set, wins).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".to_owned(),
        }
    }
}

/// Longest accepted duration setting (keeps `Instant` arithmetic far from overflow).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Config {
    /// Cross-field and range checks; returns every problem found.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let s = &self.server;
        if s.tls_cert_file.is_some() != s.tls_key_file.is_some() {
            errs.push(
                "server.tls_cert_file and server.tls_key_file must be set together".to_owned(),
            );
        }
        let durations = [
            ("server.handshake_timeout", s.handshake_timeout),
            ("server.ping_interval", s.ping_interval),
            ("server.idle_timeout", s.idle_timeout),
            ("server.write_timeout", s.write_timeout),
            (
                "protocol.announce_interval",
                self.protocol.announce_interval,
            ),
            ("swarm.peer_ttl", self.swarm.peer_ttl),
            ("swarm.offer_ttl", self.swarm.offer_ttl),
            ("swarm.cleanup_interval", self.swarm.cleanup_interval),
        ];
        for (key, d) in durations {
            if d.is_zero() || d > MAX_DURATION {
                errs.push(format!("{key} must be between 1ms and 7 days"));
            }
        }
        if s.shutdown_grace > MAX_DURATION {
            errs.push("server.shutdown_grace must be at most 7 days".to_owned());
        }
        if self.protocol.min_announce_interval > self.protocol.announce_interval {
            errs.push(
                "protocol.min_announce_interval must not exceed protocol.announce_interval"
                    .to_owned(),
            );
        }
        if s.idle_timeout <= s.ping_interval {
            errs.push("server.idle_timeout must be longer than server.ping_interval".to_owned());
        }
        if self.swarm.peer_ttl <= self.protocol.announce_interval {
            errs.push("swarm.peer_ttl must be longer than protocol.announce_interval".to_owned());
        }
        let l = &self.limits;
        let size = l.max_message_size.as_u64();
        if !(1024..=16 * 1024 * 1024).contains(&size) {
            errs.push("limits.max_message_size must be between 1 KiB and 16 MiB".to_owned());
        }
        let positive = [
            ("server.outbound_queue", s.outbound_queue),
            ("swarm.max_swarms", self.swarm.max_swarms),
            ("swarm.max_peers", self.swarm.max_peers),
            ("limits.max_offers_per_announce", l.max_offers_per_announce),
            (
                "limits.max_swarms_per_connection",
                l.max_swarms_per_connection,
            ),
            ("limits.max_scrape_info_hashes", l.max_scrape_info_hashes),
            ("limits.max_connections", l.max_connections),
            ("limits.max_connections_per_ip", l.max_connections_per_ip),
            (
                "limits.announce_rate_per_ip",
                l.announce_rate_per_ip as usize,
            ),
            (
                "limits.announce_burst_per_ip",
                l.announce_burst_per_ip as usize,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                errs.push(format!("{key} must be at least 1"));
            }
        }
        if l.max_offers_per_announce > 100 {
            errs.push("limits.max_offers_per_announce must be at most 100".to_owned());
        }
        if s.outbound_queue > 65_536 {
            errs.push("server.outbound_queue must be at most 65536".to_owned());
        }
        for (i, t) in self.access.tokens.iter().enumerate() {
            let t = t.expose();
            let ok_chars = t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            // The token itself is never echoed, only its position.
            if t.len() < 8 || t.len() > 256 || !ok_chars {
                errs.push(format!(
                    "access.tokens[{i}] must be 8 to 256 characters from A-Z a-z 0-9 - . _ ~"
                ));
            }
        }
        for (i, h) in self.access.info_hash_allow.iter().enumerate() {
            if InfoHash::from_hex(h.trim()).is_err() {
                errs.push(format!(
                    "access.info_hash_allow[{i}] is not 40 hex digits: {h:?}"
                ));
            }
        }
        errs
    }

    /// The registry settings derived from this config.
    pub fn registry(&self) -> RegistryConfig {
        RegistryConfig {
            peer_ttl: self.swarm.peer_ttl,
            offer_ttl: self.swarm.offer_ttl,
            max_swarms: self.swarm.max_swarms,
            max_peers: self.swarm.max_peers,
            max_swarms_per_connection: self.limits.max_swarms_per_connection,
            max_pending_offers_per_peer: self.swarm.max_pending_offers_per_peer,
        }
    }

    /// The parsed allow-list (invalid entries are rejected by [`Config::validate`]).
    pub fn allow_list(&self) -> HashSet<InfoHash> {
        self.access
            .info_hash_allow
            .iter()
            .filter_map(|h| InfoHash::from_hex(h.trim()).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests;
