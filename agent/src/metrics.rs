//! The agent's Prometheus metrics, in a registry the agent owns (never the global default).
//!
//! Names and labels are a contract (DESIGN.md, `docs/metrics.md`): dashboards and alerts use
//! them. Label values come from closed enums only — never a peer id, URL or stream name.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Where segment bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The origin (or CDN).
    Origin,
    /// Another agent.
    Peer,
}

impl Source {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Origin => "origin",
            Source::Peer => "peer",
        }
    }
}

/// Kind of origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Multivariant or media playlist.
    Playlist,
    /// Media segment, init segment or part.
    Segment,
    /// Encryption key.
    Key,
    /// Digest sidecar.
    Digest,
    /// Anything else (session data, subtitles index…).
    Other,
}

impl RequestKind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Playlist => "playlist",
            RequestKind::Segment => "segment",
            RequestKind::Key => "key",
            RequestKind::Digest => "digest",
            RequestKind::Other => "other",
        }
    }
}

/// Outcome of an origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    /// 2xx with a complete body.
    Ok,
    /// 304 Not Modified.
    NotModified,
    /// 4xx from the origin.
    ClientError,
    /// 5xx from the origin.
    ServerError,
    /// Connect, header or body timeout.
    Timeout,
    /// Connection or TLS failure.
    Connect,
    /// Body shorter than announced, or cut off.
    Truncated,
    /// Body above the configured limit.
    TooLarge,
    /// Anything else (bad redirect, invalid response).
    Other,
}

impl RequestResult {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::NotModified => "not_modified",
            RequestResult::ClientError => "client_error",
            RequestResult::ServerError => "server_error",
            RequestResult::Timeout => "timeout",
            RequestResult::Connect => "connect_error",
            RequestResult::Truncated => "truncated",
            RequestResult::TooLarge => "too_large",
            RequestResult::Other => "other",
        }
    }
}

/// Every metric the agent exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hivecast_agent_downloaded_bytes_total{source}`
    pub downloaded_bytes: IntCounterVec,
    /// `hivecast_agent_served_bytes_total`
    pub served_bytes: IntCounter,
    /// `hivecast_agent_uploaded_bytes_total`
    pub uploaded_bytes: IntCounter,
    /// `hivecast_agent_origin_requests_total{kind,result}`
    pub origin_requests: IntCounterVec,
    /// `hivecast_agent_cache_hits_total`
    pub cache_hits: IntCounter,
    /// `hivecast_agent_cache_misses_total`
    pub cache_misses: IntCounter,
    /// `hivecast_agent_cache_bytes`
    pub cache_bytes: IntGauge,
    /// `hivecast_agent_cache_evictions_total`
    pub cache_evictions: IntCounter,
    /// `hivecast_agent_peers`
    pub peers: IntGauge,
    /// `hivecast_agent_integrity_failures_total`
    pub integrity_failures: IntCounter,
    /// `hivecast_agent_segment_fetch_seconds{source}`
    pub segment_fetch_seconds: HistogramVec,
    /// `hivecast_agent_player_requests_total{kind,status}`
    pub player_requests: IntCounterVec,
    /// `hivecast_agent_playlist_errors_total`
    pub playlist_errors: IntCounter,
    /// `hivecast_agent_coalesced_requests_total`
    pub coalesced_requests: IntCounter,
    /// `hivecast_agent_forbidden_requests_total`
    pub forbidden_requests: IntCounter,
    /// `hivecast_agent_playlist_rewrite_seconds`
    pub rewrite_seconds: Histogram,
    /// `hivecast_agent_streams{integrity}`
    pub streams: IntGaugeVec,
    /// `hivecast_agent_p2p_origin_fetches_total{reason}`
    pub p2p_origin_fetches: IntCounterVec,
    /// `hivecast_agent_p2p_cut_through_uploads_total`
    pub p2p_cut_through_uploads: IntCounter,
    /// `hivecast_agent_p2p_origin_cut_through_total`
    pub p2p_origin_cut_through: IntCounter,
    /// `hivecast_agent_p2p_striped_segments_total`
    pub p2p_striped_segments: IntCounter,
    /// `hivecast_agent_p2p_origin_tails_total{outcome}`
    pub p2p_origin_tails: IntCounterVec,
    /// `hivecast_agent_playlist_hold_back_total{outcome}`
    pub playlist_hold_back: IntCounterVec,
    /// `hivecast_agent_playlist_reloads_total{result}`
    pub playlist_reloads: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            downloaded_bytes: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_downloaded_bytes_total",
                    "Segment bytes downloaded, by source.",
                ),
                &["source"],
            )
            .expect("valid metric"),
            served_bytes: IntCounter::new(
                "hivecast_agent_served_bytes_total",
                "Segment bytes served to local players.",
            )
            .expect("valid metric"),
            uploaded_bytes: IntCounter::new(
                "hivecast_agent_uploaded_bytes_total",
                "Segment bytes sent to peers.",
            )
            .expect("valid metric"),
            origin_requests: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_origin_requests_total",
                    "Requests to origins, by kind and result.",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
            cache_hits: IntCounter::new(
                "hivecast_agent_cache_hits_total",
                "Segment requests served from cache.",
            )
            .expect("valid metric"),
            cache_misses: IntCounter::new(
                "hivecast_agent_cache_misses_total",
                "Segment requests not in cache.",
            )
            .expect("valid metric"),
            cache_bytes: IntGauge::new(
                "hivecast_agent_cache_bytes",
                "Bytes held in the segment cache.",
            )
            .expect("valid metric"),
            cache_evictions: IntCounter::new(
                "hivecast_agent_cache_evictions_total",
                "Segments evicted from the cache to stay within budget.",
            )
            .expect("valid metric"),
            peers: IntGauge::new("hivecast_agent_peers", "Connected peers.").expect("valid metric"),
            integrity_failures: IntCounter::new(
                "hivecast_agent_integrity_failures_total",
                "Peer segments that failed digest verification.",
            )
            .expect("valid metric"),
            segment_fetch_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "hivecast_agent_segment_fetch_seconds",
                    "Time to get a segment, by source.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0,
                ]),
                &["source"],
            )
            .expect("valid metric"),
            player_requests: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_player_requests_total",
                    "Requests from local players, by kind and status class.",
                ),
                &["kind", "status"],
            )
            .expect("valid metric"),
            playlist_errors: IntCounter::new(
                "hivecast_agent_playlist_errors_total",
                "Origin playlists that could not be parsed or rewritten.",
            )
            .expect("valid metric"),
            coalesced_requests: IntCounter::new(
                "hivecast_agent_coalesced_requests_total",
                "Player requests that joined an in-flight fetch instead of starting one.",
            )
            .expect("valid metric"),
            forbidden_requests: IntCounter::new(
                "hivecast_agent_forbidden_requests_total",
                "Requests refused because the origin is not on the allow-list.",
            )
            .expect("valid metric"),
            rewrite_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "hivecast_agent_playlist_rewrite_seconds",
                    "Time to rewrite a playlist.",
                )
                .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            )
            .expect("valid metric"),
            streams: IntGaugeVec::new(
                Opts::new(
                    "hivecast_agent_streams",
                    "Configured streams, by integrity mode.",
                ),
                &["integrity"],
            )
            .expect("valid metric"),
            p2p_origin_fetches: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_p2p_origin_fetches_total",
                    "Origin segment fetches while P2P is on, by why the scheduler chose the origin.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            p2p_cut_through_uploads: IntCounter::new(
                "hivecast_agent_p2p_cut_through_uploads_total",
                "Uploads to peers of a segment this agent was still receiving (served chunk by verified chunk).",
            )
            .expect("valid metric"),
            p2p_origin_cut_through: IntCounter::new(
                "hivecast_agent_p2p_origin_cut_through_total",
                "Units fetched from the origin that this agent offered to peers before they were whole (chunk by verified chunk).",
            )
            .expect("valid metric"),
            p2p_striped_segments: IntCounter::new(
                "hivecast_agent_p2p_striped_segments_total",
                "Segments assembled from units (p2p.stripes) fetched from several sources at once, each verified by its chunk digests.",
            )
            .expect("valid metric"),
            p2p_origin_tails: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_p2p_origin_tails_total",
                    "Origin tails (byte ranges) that completed a late peer transfer, by outcome: joined, or failed (then the origin sent the whole segment).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            playlist_hold_back: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_playlist_hold_back_total",
                    "Live media playlists served while playlist.live_hold_back is set, by outcome: applied (newest segments withheld), or served whole because of low_latency (LL-HLS passed through) or short_window (too few segments).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            playlist_reloads: IntCounterVec::new(
                Opts::new(
                    "hivecast_agent_playlist_reloads_total",
                    "Reloads of live media playlists by the P2P swarms, by result: new_segment (it listed a segment not seen before) or unchanged. With playlist.align_reloads an unchanged reload is a timing probe that came early.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("hivecast_agent_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Label values known up front exist from the start (at 0), so dashboards and rates see
        // them before the first event.
        for outcome in ["joined", "failed"] {
            m.p2p_origin_tails.with_label_values(&[outcome]);
        }
        for outcome in ["applied", "low_latency", "short_window"] {
            m.playlist_hold_back.with_label_values(&[outcome]);
        }
        for result in ["new_segment", "unchanged"] {
            m.playlist_reloads.with_label_values(&[result]);
        }
        for c in [
            Box::new(m.downloaded_bytes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.served_bytes.clone()),
            Box::new(m.uploaded_bytes.clone()),
            Box::new(m.origin_requests.clone()),
            Box::new(m.cache_hits.clone()),
            Box::new(m.cache_misses.clone()),
            Box::new(m.cache_bytes.clone()),
            Box::new(m.cache_evictions.clone()),
            Box::new(m.peers.clone()),
            Box::new(m.integrity_failures.clone()),
            Box::new(m.segment_fetch_seconds.clone()),
            Box::new(m.player_requests.clone()),
            Box::new(m.playlist_errors.clone()),
            Box::new(m.coalesced_requests.clone()),
            Box::new(m.forbidden_requests.clone()),
            Box::new(m.rewrite_seconds.clone()),
            Box::new(m.streams.clone()),
            Box::new(m.p2p_origin_fetches.clone()),
            Box::new(m.p2p_cut_through_uploads.clone()),
            Box::new(m.p2p_origin_cut_through.clone()),
            Box::new(m.p2p_striped_segments.clone()),
            Box::new(m.p2p_origin_tails.clone()),
            Box::new(m.playlist_hold_back.clone()),
            Box::new(m.playlist_reloads.clone()),
            Box::new(build_info),
        ] {
            m.registry.register(c).expect("unique metric names");
        }
        // Make the labelled series exist from the start, so dashboards and rate() see zeros.
        for s in [Source::Origin, Source::Peer] {
            m.downloaded_bytes.with_label_values(&[s.as_str()]);
            m.segment_fetch_seconds.with_label_values(&[s.as_str()]);
        }
        m
    }

    /// Counts one origin request.
    pub fn origin_request(&self, kind: RequestKind, result: RequestResult) {
        self.origin_requests
            .with_label_values(&[kind.as_str(), result.as_str()])
            .inc();
    }

    /// Adds downloaded segment bytes and the fetch time.
    pub fn segment_downloaded(&self, source: Source, bytes: usize, seconds: f64) {
        self.downloaded_bytes
            .with_label_values(&[source.as_str()])
            .inc_by(bytes as u64);
        self.segment_fetch_seconds
            .with_label_values(&[source.as_str()])
            .observe(seconds);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The registry, for components that register their own collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contract_names() {
        let m = Metrics::new();
        m.origin_request(RequestKind::Segment, RequestResult::Ok);
        m.segment_downloaded(Source::Origin, 1000, 0.01);
        let text = m.render();
        for name in [
            "hivecast_agent_downloaded_bytes_total{source=\"origin\"} 1000",
            "hivecast_agent_downloaded_bytes_total{source=\"peer\"} 0",
            "hivecast_agent_served_bytes_total",
            "hivecast_agent_uploaded_bytes_total",
            "hivecast_agent_origin_requests_total{kind=\"segment\",result=\"ok\"} 1",
            "hivecast_agent_cache_hits_total",
            "hivecast_agent_cache_misses_total",
            "hivecast_agent_cache_bytes",
            "hivecast_agent_peers",
            "hivecast_agent_integrity_failures_total",
            "hivecast_agent_segment_fetch_seconds_bucket",
            "hivecast_agent_build_info{version=",
            "hivecast_agent_p2p_origin_tails_total{outcome=\"joined\"} 0",
            "hivecast_agent_p2p_origin_tails_total{outcome=\"failed\"} 0",
            "hivecast_agent_playlist_hold_back_total{outcome=\"applied\"} 0",
            "hivecast_agent_playlist_hold_back_total{outcome=\"low_latency\"} 0",
            "hivecast_agent_playlist_hold_back_total{outcome=\"short_window\"} 0",
            "hivecast_agent_playlist_reloads_total{result=\"new_segment\"} 0",
            "hivecast_agent_playlist_reloads_total{result=\"unchanged\"} 0",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
