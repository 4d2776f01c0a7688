//! Prometheus metrics on an owned [`Registry`] (never the global default).
//!
//! Every label value comes from a closed enum with `as_label()`; peer ids, addresses,
//! tokens and info hashes are never labels. All label combinations are created up
//! front so dashboards see zeros instead of missing series. Domain code writes metrics
//! and never reads them to make decisions.

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Outcome of an announce (not counting answers, which are signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceResult {
    /// Accepted.
    Ok,
    /// Refused with a `failure reason`.
    Refused,
}

impl AnnounceResult {
    /// All values.
    pub const ALL: [AnnounceResult; 2] = [AnnounceResult::Ok, AnnounceResult::Refused];

    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            AnnounceResult::Ok => "ok",
            AnnounceResult::Refused => "refused",
        }
    }
}

/// A relayed signalling message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// An offer, announcer → chosen peer.
    Offer,
    /// An answer, answerer → offerer.
    Answer,
}

impl SignalKind {
    /// All values.
    pub const ALL: [SignalKind; 2] = [SignalKind::Offer, SignalKind::Answer];

    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            SignalKind::Offer => "offer",
            SignalKind::Answer => "answer",
        }
    }
}

/// Why a signalling message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The target's queue was full (it is dropped as a slow reader).
    QueueFull,
    /// The target's connection had already closed.
    ConnectionGone,
    /// The answer named an unknown swarm.
    UnknownSwarm,
    /// The answering peer is not a member on its connection.
    NotMember,
    /// The offerer has left.
    PeerGone,
    /// No matching remembered offer (never relayed, answered, or expired).
    UnknownOffer,
}

impl DropReason {
    /// All values.
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::ConnectionGone,
        DropReason::UnknownSwarm,
        DropReason::NotMember,
        DropReason::PeerGone,
        DropReason::UnknownOffer,
    ];

    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::ConnectionGone => "connection_gone",
            DropReason::UnknownSwarm => "unknown_swarm",
            DropReason::NotMember => "not_member",
            DropReason::PeerGone => "peer_gone",
            DropReason::UnknownOffer => "unknown_offer",
        }
    }
}

/// Why a request or connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not a valid protocol message.
    InvalidMessage,
    /// Larger than `limits.max_message_size`.
    MessageTooLarge,
    /// More than `limits.max_offers_per_announce`.
    TooManyOffers,
    /// The connection holds `limits.max_swarms_per_connection`.
    TooManySwarms,
    /// `swarm.max_swarms` or `swarm.max_peers` reached.
    Capacity,
    /// The `peer_id` is owned by a connection from another address.
    PeerIdInUse,
    /// Announce rate per IP exceeded.
    RateLimited,
    /// `limits.max_connections` reached.
    TooManyConnections,
    /// `limits.max_connections_per_ip` reached.
    TooManyConnectionsPerIp,
    /// Missing or wrong access token.
    BadToken,
    /// `info_hash` not in the allow-list.
    InfoHashNotAllowed,
    /// Scrape without `info_hash`.
    FullScrape,
    /// More than `limits.max_scrape_info_hashes`.
    TooManyScrapeHashes,
}

impl RefusalReason {
    /// All values.
    pub const ALL: [RefusalReason; 13] = [
        RefusalReason::InvalidMessage,
        RefusalReason::MessageTooLarge,
        RefusalReason::TooManyOffers,
        RefusalReason::TooManySwarms,
        RefusalReason::Capacity,
        RefusalReason::PeerIdInUse,
        RefusalReason::RateLimited,
        RefusalReason::TooManyConnections,
        RefusalReason::TooManyConnectionsPerIp,
        RefusalReason::BadToken,
        RefusalReason::InfoHashNotAllowed,
        RefusalReason::FullScrape,
        RefusalReason::TooManyScrapeHashes,
    ];

    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            RefusalReason::InvalidMessage => "invalid_message",
            RefusalReason::MessageTooLarge => "message_too_large",
            RefusalReason::TooManyOffers => "too_many_offers",
            RefusalReason::TooManySwarms => "too_many_swarms",
            RefusalReason::Capacity => "capacity",
            RefusalReason::PeerIdInUse => "peer_id_in_use",
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::TooManyConnections => "too_many_connections",
            RefusalReason::TooManyConnectionsPerIp => "too_many_connections_per_ip",
            RefusalReason::BadToken => "bad_token",
            RefusalReason::InfoHashNotAllowed => "info_hash_not_allowed",
            RefusalReason::FullScrape => "full_scrape",
            RefusalReason::TooManyScrapeHashes => "too_many_scrape_hashes",
        }
    }
}

/// Why a connection ended (for `hivecast_tracker_disconnects_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client closed or the socket failed.
    Closed,
    /// Nothing received for `server.idle_timeout`.
    Idle,
    /// The outbound queue filled or a write timed out.
    SlowReader,
    /// A protocol violation (oversized message, bad frame).
    ProtocolError,
    /// Refused at connect time (limits, token).
    Refused,
    /// Tracker shutdown.
    Shutdown,
}

impl DisconnectReason {
    /// All values.
    pub const ALL: [DisconnectReason; 6] = [
        DisconnectReason::Closed,
        DisconnectReason::Idle,
        DisconnectReason::SlowReader,
        DisconnectReason::ProtocolError,
        DisconnectReason::Refused,
        DisconnectReason::Shutdown,
    ];

    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            DisconnectReason::Closed => "closed",
            DisconnectReason::Idle => "idle",
            DisconnectReason::SlowReader => "slow_reader",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::Refused => "refused",
            DisconnectReason::Shutdown => "shutdown",
        }
    }
}

/// Errors building the metrics (only a programming error: duplicate or bad names).
#[derive(Debug, thiserror::Error)]
#[error("metrics setup: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// All tracker metrics and the registry they live in.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hivecast_tracker_peers`.
    pub peers: IntGauge,
    /// `hivecast_tracker_swarms`.
    pub swarms: IntGauge,
    /// `hivecast_tracker_connections`.
    pub connections: IntGauge,
    /// Pre-resolved `announces_total{result}` handles, indexed like `AnnounceResult::ALL`.
    announces: [IntCounter; 2],
    /// Pre-resolved `signals_relayed_total{kind}` handles, indexed like `SignalKind::ALL`.
    signals_relayed: [IntCounter; 2],
    signals_dropped: IntCounterVec,
    refusals: IntCounterVec,
    disconnects: IntCounterVec,
    expired: IntCounterVec,
    /// `hivecast_tracker_slow_readers_dropped_total`.
    pub slow_readers_dropped: IntCounter,
    /// `hivecast_tracker_scrapes_total`.
    pub scrapes: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric; `version` labels `build_info`.
    pub fn new(version: &str) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };

        let peers = gauge("hivecast_tracker_peers", "Peers over all swarms.")?;
        let swarms = gauge("hivecast_tracker_swarms", "Swarms with at least one peer.")?;
        let connections = gauge(
            "hivecast_tracker_connections",
            "Open WebSocket connections.",
        )?;
        let announces = counter_vec(
            "hivecast_tracker_announces_total",
            "Announces handled (answers excluded), by result.",
            &["result"],
        )?;
        let signals_relayed = counter_vec(
            "hivecast_tracker_signals_relayed_total",
            "Offers and answers handed to the target's connection, by kind.",
            &["kind"],
        )?;
        let signals_dropped = counter_vec(
            "hivecast_tracker_signals_dropped_total",
            "Offers and answers not delivered, by kind and reason.",
            &["kind", "reason"],
        )?;
        let refusals = counter_vec(
            "hivecast_tracker_refusals_total",
            "Requests and connections refused with a failure reason, by reason.",
            &["reason"],
        )?;
        let disconnects = counter_vec(
            "hivecast_tracker_disconnects_total",
            "Closed connections, by reason.",
            &["reason"],
        )?;
        let expired = counter_vec(
            "hivecast_tracker_expired_total",
            "Idle peers and stale offers removed by the cleanup sweep, by kind.",
            &["kind"],
        )?;
        let slow_readers_dropped = counter(
            "hivecast_tracker_slow_readers_dropped_total",
            "Connections dropped because they did not read fast enough.",
        )?;
        let scrapes = counter(
            "hivecast_tracker_scrapes_total",
            "Scrape requests answered.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "hivecast_tracker_build_info",
                "Build information; always 1.",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info.with_label_values(&[version]).set(1);

        let announces = AnnounceResult::ALL.map(|r| announces.with_label_values(&[r.as_label()]));
        let signals_relayed =
            SignalKind::ALL.map(|k| signals_relayed.with_label_values(&[k.as_label()]));
        for k in SignalKind::ALL {
            for d in DropReason::ALL {
                signals_dropped.with_label_values(&[k.as_label(), d.as_label()]);
            }
        }
        for r in RefusalReason::ALL {
            refusals.with_label_values(&[r.as_label()]);
        }
        for r in DisconnectReason::ALL {
            disconnects.with_label_values(&[r.as_label()]);
        }
        for k in ["peer", "offer"] {
            expired.with_label_values(&[k]);
        }

        Ok(Self {
            registry,
            peers,
            swarms,
            connections,
            announces,
            signals_relayed,
            signals_dropped,
            refusals,
            disconnects,
            expired,
            slow_readers_dropped,
            scrapes,
        })
    }

    /// The registry (for encoding or adding collectors).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts an announce.
    pub fn announce(&self, result: AnnounceResult) {
        let [ok, refused] = &self.announces;
        match result {
            AnnounceResult::Ok => ok.inc(),
            AnnounceResult::Refused => refused.inc(),
        }
    }

    /// Counts relayed signals.
    pub fn relayed(&self, kind: SignalKind, n: u64) {
        let [offer, answer] = &self.signals_relayed;
        match kind {
            SignalKind::Offer => offer.inc_by(n),
            SignalKind::Answer => answer.inc_by(n),
        }
    }

    /// Counts a dropped signal.
    pub fn dropped(&self, kind: SignalKind, reason: DropReason) {
        self.signals_dropped
            .with_label_values(&[kind.as_label(), reason.as_label()])
            .inc();
    }

    /// Counts a refusal.
    pub fn refused(&self, reason: RefusalReason) {
        self.refusals.with_label_values(&[reason.as_label()]).inc();
    }

    /// Counts a closed connection.
    pub fn disconnected(&self, reason: DisconnectReason) {
        self.disconnects
            .with_label_values(&[reason.as_label()])
            .inc();
    }

    /// Counts what a cleanup sweep removed.
    pub fn expired(&self, peers: usize, offers: usize) {
        self.expired
            .with_label_values(&["peer"])
            .inc_by(peers as u64);
        self.expired
            .with_label_values(&["offer"])
            .inc_by(offers as u64);
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which our fixed
        // names and labels cannot produce; an empty page is the fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_required_names_and_zeros() {
        let m = Metrics::new("1.2.3").unwrap();
        m.announce(AnnounceResult::Ok);
        m.relayed(SignalKind::Offer, 3);
        m.refused(RefusalReason::RateLimited);
        m.peers.set(5);
        let text = m.encode();
        for needle in [
            "hivecast_tracker_peers 5",
            "hivecast_tracker_swarms 0",
            "hivecast_tracker_connections 0",
            "hivecast_tracker_announces_total{result=\"ok\"} 1",
            "hivecast_tracker_announces_total{result=\"refused\"} 0",
            "hivecast_tracker_signals_relayed_total{kind=\"offer\"} 3",
            "hivecast_tracker_signals_relayed_total{kind=\"answer\"} 0",
            "hivecast_tracker_build_info{version=\"1.2.3\"} 1",
            "hivecast_tracker_refusals_total{reason=\"rate_limited\"} 1",
            "hivecast_tracker_slow_readers_dropped_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn labels_are_snake_case() {
        let all: Vec<&str> = RefusalReason::ALL
            .iter()
            .map(|r| r.as_label())
            .chain(DropReason::ALL.iter().map(|r| r.as_label()))
            .chain(DisconnectReason::ALL.iter().map(|r| r.as_label()))
            .collect();
        for l in all {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
    }
}
