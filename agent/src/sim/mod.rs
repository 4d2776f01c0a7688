//! A deterministic discrete-event simulation of a live swarm, driving one real
//! [`Scheduler`](crate::core::scheduler::Scheduler) per agent in virtual time.
//!
//! # Model
//!
//! * **Time.** A binary heap of events ordered by (virtual microsecond, insertion number); the
//!   schedulers see `base + offset` as `now`. Same seed, same config → identical report.
//! * **Stream.** Live, one rendition: a segment of `segment_duration_s` is published every
//!   segment duration, size = bitrate × duration × (1 ± `size_variation`). The playlist window
//!   holds `window_segments`. Every segment has a digest (integrity on).
//! * **Agents.** Each reloads the playlist by the agent's rule (a target duration after a reload
//!   that found a new segment, half of one after one that did not; phase from the join time),
//!   or every `poll_interval_ms` if set, and feeds it to
//!   its scheduler; executes the scheduler's actions; carries one player.
//! * **Player** (hls.js-like): on joining it loads the playlist and starts `player_latency_segments`
//!   target durations behind the live edge, loads one fragment at a time in order, plays in real
//!   time, stalls when the next fragment is not there, resumes when it arrives. Startup = join →
//!   first fragment delivered. With `live_hold_back` the player sees the agent's playlist
//!   without its newest segments (`playlist.live_hold_back`), so it starts and stays that many
//!   segments further behind.
//! * **Peer messages** are real [`Message`](crate::core::peer_proto::Message) values delivered
//!   after the link latency; their encoded sizes are counted (segment data as 64 KiB chunks).
//! * **Links.** Per-agent upload and download rates are log-normal around a mean given as a
//!   multiple of the bitrate; a transfer's rate is `min(sender upload / its uploads,
//!   receiver download / its downloads)`, recomputed whenever a transfer starts or ends at
//!   either end. One-way latency per agent is uniform in a range; a message's delay is the sum
//!   of both ends'. Loss is modelled as extra delay: a message is delayed by `rto_ms` with
//!   probability `loss`, a transfer by the expected retransmission delay of its chunks.
//! * **Chunk digests** (`chunk_size` > 0, the default): a receiver verifies a peer transfer
//!   chunk by chunk; after its first chunk (one chunk time plus the link latency) it tells its
//!   scheduler (`handle_partial_verified`), which announces a partial `have` and serves requests
//!   cut-through. A transfer from a partial holder reports no more progress than the holder has
//!   verified, and when it reaches its own end before the holder's copy is whole it waits: its
//!   last chunk arrives one chunk time after the holder completes. Origin fetches of striped
//!   units are cut through the same way (their first chunk in, the seed announces a partial
//!   `have`); whole segments and origin tails are not, as in the agent. A corrupt sender is
//!   detected at the first chunk. `chunk_size = 0` models whole-segment digests (store-and-forward).
//! * **Origin tails.** When a scheduler keeps a late peer transfer's head and asks the origin
//!   for the rest, the transfer ends at the split point (waiting, like any cut-through
//!   transfer, while its source has not verified that far) and an origin transfer of the
//!   remaining bytes runs beside it; the agent holds the segment when both are in.
//! * **Origin.** Each fetch takes `origin_latency_ms` to first byte and then flows at
//!   `min(origin_rate_x × bitrate, receiver download share)`; aggregate origin capacity is
//!   unbounded (a CDN).
//! * **Tracker.** On joining and then every `hungry_interval_s` while it has fewer than `degree`
//!   peers (else every `tracker_interval_s`) an agent is connected to random live agents until
//!   it has `degree` peers (a peer accepts up to `max_degree`); connections take
//!   `connect_delay_ms`. The defaults are the agent's: it seeks `p2p.max_peers` (8) peers,
//!   answers offers while below `p2p.accept_peers` (10), and re-announces every 5 s while
//!   short of peers, every minute otherwise. The tracker's swarm size (live agents) is fed to every scheduler.
//! * **Churn.** Departures are a Poisson process of `churn_per_min` × N per minute; each
//!   departure is replaced by a new agent, so the population stays at N.
//!
//! # Diagnostics
//!
//! With `HIVECAST_SIM_OBTAINED` set, the simulator prints one line per event of interest to
//! stderr, times in seconds after the segment was published: `OBT agent seq t source` (a copy
//! obtained), `ORG agent seq t reason have fetching full neighbours` (an origin fetch started;
//! how many neighbours held the unit, were receiving it, and had every upload slot taken, out
//! of how many), `AGT agent t upload download` (an agent joined; rates as bitrate multiples),
//! `REQ agent seq t` (a peer request), `NEED agent seq t` (the player needs the segment),
//! `XFR seq seconds rate uploader_rate` (a peer transfer ended), `CAN seq done_fraction rate
//! waiting` (a peer transfer cancelled by its receiver) and `TAIL seq head_fraction
//! split_fraction rate` (an origin tail). `HIVECAST_SIM_TRACE` prints every message and action
//! (small runs only).
//!
//! # Report
//!
//! Byte figures count segments first published after `warmup_s` and at least `tail_s` before the
//! end. `origin_copies_per_segment` = origin bytes ÷ unique bytes (partial origin transfers count);
//! `offload_ratio` = 1 − origin bytes ÷ bytes the agents obtained. The origin's other cost per
//! viewer is counted beside it: every playlist reload fetches the playlist, and a reload that
//! lists a segment without a digest fetches the digest sidecar (the full one on joining, the
//! latest one after that), bodies sized as `publish-digests` writes them for the simulated
//! window (`origin_metadata_bytes`, counted against the newest segment at the time, and
//! `offload_ratio_with_metadata`, which puts them on both sides of the ratio; HTTP headers
//! are left out on both counts). `agent_cpu_percent_mean`,
//! `agent_rss_mb_max` and `tracker_rss_mb` are process figures that a simulation cannot measure:
//! they are always `null` here (the emulation bench in `hivecast-bench` fills them).

mod engine;
mod mesh;
mod queue;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::core::scheduler::SchedulerConfig;

pub use engine::run;

/// Checks a simulation config, reporting every problem at once (one per line).
pub fn validate(cfg: &SimConfig) -> Result<(), String> {
    let mut errs = Vec::new();
    let mut positive = |name: &str, v: f64| {
        if !(v.is_finite() && v > 0.0) {
            errs.push(format!("{name} must be a positive number (got {v})"));
        }
    };
    positive("duration_s", cfg.duration_s);
    positive("segment_duration_s", cfg.segment_duration_s);
    positive("bitrate_bps", cfg.bitrate_bps);
    positive("upload_mean_x", cfg.upload_mean_x);
    positive("download_mean_x", cfg.download_mean_x);
    positive("tracker_interval_s", cfg.tracker_interval_s);
    positive("hungry_interval_s", cfg.hungry_interval_s);
    if let Some(ms) = cfg.poll_interval_ms {
        positive("poll_interval_ms", ms);
    }
    if cfg.degree == 0 || cfg.max_degree < cfg.degree {
        errs.push(format!(
            "degree must be at least 1 and max_degree at least degree (got {} and {})",
            cfg.degree, cfg.max_degree
        ));
    }
    if cfg.agents == 0 {
        errs.push("agents must be at least 1".into());
    }
    if crate::core::stripes::Stripes::new(cfg.stripes).is_none() {
        errs.push(format!(
            "stripes must be 1 to {} (got {})",
            crate::core::stripes::MAX_STRIPES,
            cfg.stripes
        ));
    }
    if cfg.live_hold_back + crate::playlist::HOLD_BACK_MIN_KEPT > cfg.window_segments {
        errs.push(format!(
            "live_hold_back must leave at least {} of the {} window segments (got {})",
            crate::playlist::HOLD_BACK_MIN_KEPT,
            cfg.window_segments,
            cfg.live_hold_back
        ));
    }
    if !(0.0..=1.0).contains(&cfg.churn_per_min) {
        errs.push(format!(
            "churn_per_min must lie within [0, 1] (got {})",
            cfg.churn_per_min
        ));
    }
    if cfg.chunk_size != 0
        && !(u64::from(crate::integrity::MIN_CHUNK_SIZE)
            ..=u64::from(crate::integrity::MAX_CHUNK_SIZE))
            .contains(&cfg.chunk_size)
    {
        errs.push(format!(
            "chunk_size must be 0 or within {}..={} bytes (got {})",
            crate::integrity::MIN_CHUNK_SIZE,
            crate::integrity::MAX_CHUNK_SIZE,
            cfg.chunk_size
        ));
    }
    if let Err(e) = engine::scheduler_config(cfg).validate() {
        errs.push(e.to_string());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

/// The report keys every swarm benchmark writes (simulation and emulation alike); dashboards
/// and the benchmark table read these names.
pub const REPORT_KEYS: [&str; 15] = [
    "agents",
    "segments",
    "origin_segment_bytes",
    "unique_segment_bytes",
    "origin_copies_per_segment",
    "offload_ratio",
    "ideal_offload",
    "upload_bound",
    "stalls",
    "stall_seconds",
    "startup_ms_p50",
    "startup_ms_p95",
    "agent_cpu_percent_mean",
    "agent_rss_mb_max",
    "tracker_rss_mb",
];

/// Simulation parameters. Every field has a default (`#[serde(default)]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// RNG seed.
    pub seed: u64,
    /// Concurrent agents (N).
    pub agents: usize,
    /// Simulated time, seconds.
    pub duration_s: f64,
    /// Initial agents join uniformly over this many seconds.
    pub ramp_s: f64,
    /// Segments published before this time are not counted.
    pub warmup_s: f64,
    /// Segments published in the last `tail_s` are not counted.
    pub tail_s: f64,
    /// Segment duration (= target duration), seconds.
    pub segment_duration_s: f64,
    /// Stream bitrate, bits/s.
    pub bitrate_bps: f64,
    /// Relative segment size variation (uniform ±).
    pub size_variation: f64,
    /// Segments in the live playlist.
    pub window_segments: usize,
    /// A fixed playlist reload interval, ms, instead of the agent's rule (default: the rule, RFC
    /// 8216 §6.3.4: a target duration after a reload that found the playlist changed, half of
    /// one after an unchanged reload).
    pub poll_interval_ms: Option<f64>,
    /// The agent's `playlist.align_reloads`: reload just after the origin's expected next
    /// publication ([`crate::core::edge`]) instead of at the RFC rule's phase alone (default
    /// true, as in the agent).
    pub align_reloads: bool,
    /// Player start distance from the live edge, in segments (hls.js `liveSyncDurationCount`).
    pub player_latency_segments: usize,
    /// The agent's `playlist.live_hold_back`: players see the playlist without its newest this
    /// many segments, so they sit that much further behind the origin's live edge.
    pub live_hold_back: usize,
    /// The agent's `p2p.stripes`: units each segment with chunk digests is shared as (default
    /// 4, as in the agent; 1 = whole segments; see `crate::core::stripes`).
    pub stripes: u8,
    /// Connections an agent seeks (the agent's `p2p.max_peers`, default 8).
    pub degree: usize,
    /// Most connections an agent accepts (the agent's `p2p.accept_peers`, default 10: it
    /// answers offers while below that).
    pub max_degree: usize,
    /// Connection set-up time (signalling + ICE + DTLS), ms.
    pub connect_delay_ms: f64,
    /// Re-announce interval with `degree` peers, seconds (the agent's `p2p.announce_interval`,
    /// default 60).
    pub tracker_interval_s: f64,
    /// Re-announce interval below `degree` peers, seconds (the agent's
    /// `p2p.hungry_announce_interval`, default 5).
    pub hungry_interval_s: f64,
    /// Mean upload rate as a multiple of the bitrate.
    pub upload_mean_x: f64,
    /// Log-normal sigma of upload rates.
    pub upload_sigma: f64,
    /// Mean download rate as a multiple of the bitrate.
    pub download_mean_x: f64,
    /// Log-normal sigma of download rates.
    pub download_sigma: f64,
    /// One-way access latency range, ms (uniform).
    pub latency_ms_min: f64,
    /// Upper end of the latency range, ms.
    pub latency_ms_max: f64,
    /// Chunk size of the published chunk digests, bytes; 0 = whole-segment digests only
    /// (store-and-forward).
    pub chunk_size: u64,
    /// Packet loss probability (modelled as extra delay).
    pub loss: f64,
    /// Extra delay of a lost message, ms.
    pub rto_ms: f64,
    /// Origin time to first byte, ms.
    pub origin_latency_ms: f64,
    /// Origin per-fetch rate as a multiple of the bitrate.
    pub origin_rate_x: f64,
    /// Fraction of agents leaving (and being replaced) per minute.
    pub churn_per_min: f64,
    /// The first this many agents created upload corrupt data.
    pub corrupt_agents: usize,
    /// At these times (s) the live agent with the most uploads in progress leaves, without a
    /// replacement (peers lost mid-transfer).
    pub fail_uploaders_at_s: Vec<f64>,
    /// Scheduler knobs.
    pub scheduler: SimSchedulerConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        // The mesh the agent forms with its default settings.
        let p2p = crate::config::P2pConfig::default();
        SimConfig {
            seed: 1,
            agents: 100,
            duration_s: 600.0,
            ramp_s: 10.0,
            warmup_s: 30.0,
            tail_s: 20.0,
            segment_duration_s: 4.0,
            bitrate_bps: 2_000_000.0,
            size_variation: 0.2,
            window_segments: 6,
            poll_interval_ms: None,
            align_reloads: true,
            player_latency_segments: 3,
            live_hold_back: 0,
            stripes: 4,
            degree: p2p.max_peers,
            max_degree: p2p.accept_peers,
            connect_delay_ms: 500.0,
            tracker_interval_s: p2p.announce_interval.as_secs_f64(),
            hungry_interval_s: p2p.hungry_announce_interval.as_secs_f64(),
            upload_mean_x: 1.5,
            upload_sigma: 0.5,
            download_mean_x: 10.0,
            download_sigma: 0.5,
            latency_ms_min: 5.0,
            latency_ms_max: 40.0,
            chunk_size: crate::integrity::LIVE_CHUNK_SIZE as u64,
            loss: 0.01,
            rto_ms: 200.0,
            origin_latency_ms: 50.0,
            origin_rate_x: 20.0,
            churn_per_min: 0.02,
            corrupt_agents: 0,
            fail_uploaders_at_s: Vec::new(),
            scheduler: SimSchedulerConfig::default(),
        }
    }
}

/// Scheduler knobs as the simulator exposes them (time values in ms, rates as bitrate multiples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSchedulerConfig {
    /// `fetchers` (k).
    pub fetchers: u32,
    /// `seed_fraction_init`.
    pub seed_fraction_init: f64,
    /// `seed_fraction_min`.
    pub seed_fraction_min: f64,
    /// `seed_fraction_max`.
    pub seed_fraction_max: f64,
    /// `seed_fraction_up`.
    pub seed_fraction_up: f64,
    /// `seed_fraction_up_scarce`.
    pub seed_fraction_up_scarce: f64,
    /// `seed_fraction_down`.
    pub seed_fraction_down: f64,
    /// `seed_fraction_slack` (target durations).
    pub seed_fraction_slack: f64,
    /// `peer_wait_budget` as a multiple of the target duration.
    pub peer_wait_factor: f64,
    /// `player_wait_budget`, ms.
    pub player_wait_ms: f64,
    /// `origin_safety_margin`, ms.
    pub origin_margin_ms: f64,
    /// `stall_timeout`, ms.
    pub stall_timeout_ms: f64,
    /// `join_prefetch`.
    pub join_prefetch: usize,
    /// `upload_slots`.
    pub upload_slots: usize,
    /// `upload_rate_cap` as a multiple of the bitrate (none if absent).
    pub upload_cap_x: Option<f64>,
    /// `busy_backoff`, ms.
    pub busy_backoff_ms: f64,
    /// `max_parallel`.
    pub max_parallel: usize,
    /// `origin_tails`.
    pub origin_tails: bool,
}

impl Default for SimSchedulerConfig {
    fn default() -> Self {
        let d = SchedulerConfig::default();
        SimSchedulerConfig {
            fetchers: d.fetchers,
            seed_fraction_init: d.seed_fraction_init,
            seed_fraction_min: d.seed_fraction_min,
            seed_fraction_max: d.seed_fraction_max,
            seed_fraction_up: d.seed_fraction_up,
            seed_fraction_up_scarce: d.seed_fraction_up_scarce,
            seed_fraction_down: d.seed_fraction_down,
            seed_fraction_slack: d.seed_fraction_slack,
            peer_wait_factor: 1.5,
            player_wait_ms: d.player_wait_budget.as_secs_f64() * 1000.0,
            origin_margin_ms: d.origin_safety_margin.as_secs_f64() * 1000.0,
            stall_timeout_ms: d.stall_timeout.as_secs_f64() * 1000.0,
            join_prefetch: d.join_prefetch,
            upload_slots: d.upload_slots,
            upload_cap_x: None,
            busy_backoff_ms: d.busy_backoff.as_secs_f64() * 1000.0,
            max_parallel: d.max_parallel,
            origin_tails: d.origin_tails,
        }
    }
}

/// The figures every swarm measurement reports, simulated or real ([`REPORT_KEYS`], in that
/// order). `hivecast-bench sim` and `hivecast-bench swarm` both flatten it into their JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SwarmFigures {
    /// N (concurrent agents).
    pub agents: usize,
    /// Segments counted.
    pub segments: u64,
    /// Segment bytes fetched from the origin (partial transfers included).
    pub origin_segment_bytes: u64,
    /// Bytes of the counted segments, one copy each.
    pub unique_segment_bytes: u64,
    /// `origin_segment_bytes / unique_segment_bytes`.
    pub origin_copies_per_segment: f64,
    /// `1 − origin bytes / bytes obtained by the agents (or their players)`.
    pub offload_ratio: f64,
    /// `1 − 1/N`.
    pub ideal_offload: f64,
    /// `min(1, mean upload / bitrate)`.
    pub upload_bound: f64,
    /// Player stalls (startup excluded).
    pub stalls: u64,
    /// Seconds stalled.
    pub stall_seconds: f64,
    /// Median startup time, ms.
    pub startup_ms_p50: f64,
    /// 95th percentile startup time, ms.
    pub startup_ms_p95: f64,
    /// Mean agent CPU, percent of one core (`null` in a simulation).
    pub agent_cpu_percent_mean: Option<f64>,
    /// Largest agent RSS, MiB (`null` in a simulation).
    pub agent_rss_mb_max: Option<f64>,
    /// Largest tracker RSS, MiB (`null` in a simulation).
    pub tracker_rss_mb: Option<f64>,
}

/// Simulation results: the [`SwarmFigures`] (stalls counted after the warm-up) and the
/// simulator's own counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// The figures every measurement reports.
    #[serde(flatten)]
    pub figures: SwarmFigures,
    /// Player seconds watched after the warm-up (stalls excluded).
    pub watch_seconds: f64,
    /// `stall_seconds / watch_seconds`.
    pub stall_ratio: f64,
    /// Bytes of counted segments the agents obtained (any source).
    pub obtained_segment_bytes: u64,
    /// … of which from peers.
    pub peer_segment_bytes: u64,
    /// Playlist and digest-sidecar bodies the agents fetched from the origin, over the same
    /// segments (each counted against the newest segment at the time): the origin's other
    /// cost per viewer, which `offload_ratio` leaves out.
    pub origin_metadata_bytes: u64,
    /// `1 − (origin segment bytes + origin_metadata_bytes) ÷ (obtained segment bytes +
    /// origin_metadata_bytes)`: the offload of everything the agents fetch.
    pub offload_ratio_with_metadata: f64,
    /// Agents that joined (initial + churn).
    pub joins: u64,
    /// Agents that left.
    pub leaves: u64,
    /// Origin fetches started, by reason (all segments).
    pub origin_fetches: OriginFetches,
    /// Peer requests sent.
    pub peer_requests: u64,
    /// Peer hedges (second peer for a slow transfer).
    pub peer_hedges: u64,
    /// `Busy` refusals sent.
    pub busy_refusals: u64,
    /// Peers banned.
    pub bans: u64,
    /// Peer transfers that failed verification.
    pub integrity_failures: u64,
    /// Peer transfers lost with their peer.
    pub peer_lost_transfers: u64,
    /// Player requests the scheduler answered `Failed`.
    pub player_failures: u64,
    /// Agents removed by `fail_uploaders_at_s` while uploading.
    pub failed_uploaders: u64,
    /// Mean seed fraction ρ of the agents alive at the end.
    pub seed_fraction_mean: f64,
    /// Peer-protocol messages sent (data chunks included).
    pub messages: u64,
    /// Encoded bytes of those messages.
    pub message_bytes: u64,
    /// Events processed.
    pub events: u64,
    /// Bytes peers sent, partial transfers included (all segments).
    pub peer_uploaded_bytes: u64,
    /// `peer_uploaded_bytes` ÷ Σ upload rate × time online.
    pub upload_utilisation: f64,
}

/// Origin fetches by reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OriginFetches {
    /// Elected seed.
    pub elected: u64,
    /// Deadline fallback.
    pub fallback: u64,
    /// Hedge of a slow peer transfer.
    pub hedge: u64,
    /// Player waiting and no holder.
    pub no_peers: u64,
    /// Backstop of a segment nobody announced (partial view, few seeds).
    pub backstop: u64,
    /// Origin tails of late peer transfers (only the rest of the segment).
    pub tail: u64,
    /// … of which joined with their peer head into the segment.
    pub tail_joined: u64,
    /// Retries and unverified.
    pub other: u64,
}
